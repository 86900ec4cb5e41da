"""The provider's own example record (mockapi.io's shape, test data: not a real card or account)."""

from __future__ import annotations

from typing import Any

__all__ = ("PROVIDER_SAMPLE",)

# Every field as the provider sends it, id aside (tests give each record its own).
PROVIDER_SAMPLE: dict[str, Any] = {
    "fec_alta": "2021-07-31T00:11:06.741Z",
    "user_name": "Jacinto_Cruickshank",
    "codigo_zip": "02567",
    "credit_card_num": "4111-1111-1111-1111",
    "credit_card_ccv": "583",
    "cuenta_numero": "01553296",
    "direccion": "Kuhn Squares 41862",
    "geo_latitud": "-79.6474",
    "geo_longitud": "-114.6098",
    "color_favorito": "magenta",
    "foto_dni": "http://placeimg.com/640/480/people",
    "ip": "95.129.216.105",
    "auto": "Chrysler",
    "auto_modelo": "1",
    "auto_tipo": "SUV",
    "auto_color": "maroon",
    "cantidad_compras_realizadas": 24,
    "avatar": "https://cdn.fakercloud.com/avatars/jacinto_128.jpg",
    "fec_birthday": "2022-03-29T03:50:37.209Z",
}
