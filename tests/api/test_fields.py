"""What each role sees: exactly the policy's fields, with the right values, never a CVV."""

from __future__ import annotations

from typing import Any

from daemon.api.queries import PROJECTIONS
from daemon.policy import View, encrypted_fields, visible_fields
from daemon.provider.simulator import Simulator
from tests.api.conftest import SEEDED, Api
from tests.api.support import Feed

VIEWER_FIELDS = ["id", "user_name", "direccion", "avatar"]


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit())


async def test_viewer_sees_exactly_id_user_name_direccion_avatar(api: Api, customers: list[dict[str, Any]]) -> None:
    """A viewer page holds the four public fields, `id` as an integer, values equal to the provider's."""
    body = await api.json("/clientes", "viewer")
    assert isinstance(body, list) and len(body) == 100
    for item, provider in zip(body, customers, strict=False):
        assert list(item) == VIEWER_FIELDS
        assert item["id"] == int(provider["id"]) and isinstance(item["id"], int)
        assert item["user_name"] == provider["user_name"]
        assert item["direccion"] == provider["direccion"]
        assert item["avatar"] == provider["avatar"]


async def test_analyst_sees_the_stored_mask_ending_with_the_real_last_four(
    api: Api, customers: list[dict[str, Any]]
) -> None:
    """The analyst adds `credit_card_num` as a mask: the card's last four digits and no other digit."""
    body = await api.json("/clientes?limit=1000", "analyst")
    assert len(body) == SEEDED
    by_id = {int(c["id"]): c for c in customers}
    for item in body:
        assert list(item) == [*VIEWER_FIELDS[:2], "credit_card_num", *VIEWER_FIELDS[2:]]
        card = by_id[item["id"]]["credit_card_num"]
        mask = item["credit_card_num"]
        assert _digits(mask) == _digits(card)[-4:], "the card's last four digits and no other digit"
        assert len(mask) == len(card) and mask[-1] == card[-1] and "*" in mask


async def test_admin_sees_every_stored_field_decrypted(api: Api, customers: list[dict[str, Any]]) -> None:
    """Admin values equal the provider's: card and account decrypted exactly as sent; no CVV."""
    body = await api.json("/clientes?limit=1000", "admin")
    assert len(body) == SEEDED
    expected_fields = [f.name for f, _ in visible_fields("admin")]
    assert "credit_card_ccv" not in expected_fields
    by_id = {int(c["id"]): c for c in customers}
    for item in body:
        assert list(item) == expected_fields
        provider = by_id[item["id"]]
        for name in expected_fields:
            if name == "id":
                assert item[name] == int(provider[name])
            else:
                assert item[name] == provider[name], name


async def test_no_role_ever_gets_a_cvv(api: Api) -> None:
    """No page or item of any role has a CVV field (it is not even stored)."""
    for role in ("viewer", "analyst", "admin"):
        for path in ("/clientes?limit=1000", "/clientes/1", "/clientes?include_deleted=true"):
            response = await api.get(path, role)
            text = await response.text()
            assert "ccv" not in text.lower() and "cvv" not in text.lower()
    columns = await api.db.fetch_all(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND table_name = 'customers'"
    )
    assert not [c for (c,) in columns if "ccv" in c.lower() or "cvv" in c.lower()]


async def test_item_has_the_same_projection_as_the_page(api: Api) -> None:
    """/clientes/{id} returns the object the page returns for that id, per role."""
    for role in ("viewer", "analyst", "admin"):
        page = await api.json("/clientes?limit=5", role)
        item = await api.json("/clientes/3", role)
        assert item == page[2]


def test_viewer_and_analyst_statements_select_no_ciphertext() -> None:
    """Every viewer/analyst statement selects no `_enc` column; admin's select exactly the encrypted fields."""
    for role in ("viewer", "analyst", "admin"):
        projection = PROJECTIONS[role]
        statements = [
            projection.page_sql(include_deleted=deleted, by_card=card)
            for deleted in (False, True)
            for card in (False, True)
        ] + [projection.item_sql(include_deleted=deleted) for deleted in (False, True)]
        for sql in statements:
            selected = sql.split(" FROM customers ")[0]
            encrypted = {c for c in selected.replace(",", " ").split() if c.endswith("_enc")}
            if role == "admin":
                assert encrypted == {f.enc_column for f in encrypted_fields()}
            else:
                assert not encrypted and not projection.decrypts
    assert dict((f.name, v) for f, v in visible_fields("analyst"))["credit_card_num"] is View.MASK
    assert "credit_card_num_mask" in PROJECTIONS["analyst"].columns


async def test_soft_deleted_hidden_unless_admin_asks(api: Api, provider: Simulator, feed: Feed) -> None:
    """Customers the provider dropped (soft-deleted by the syncer) vanish; an admin sees them on request."""
    provider.remove([2, 5])
    assert (await feed.sync(provider)).counts.deleted == 2
    for role in ("viewer", "analyst", "admin"):
        ids = [c["id"] for c in await api.json("/clientes?limit=10", role)]
        assert 2 not in ids and 5 not in ids and len(ids) == 10
        assert (await api.get("/clientes/2", role)).status == 404
    everything = await api.json("/clientes?limit=10&include_deleted=true", "admin")
    assert [c["id"] for c in everything] == list(range(1, 11))
    deleted = {c["id"] for c in everything if c["deleted_at"] is not None}
    assert deleted == {2, 5}
    item = await api.json("/clientes/2?include_deleted=true", "admin")
    assert item["id"] == 2 and item["deleted_at"]
    for role in ("viewer", "analyst"):
        response = await api.get("/clientes?include_deleted=true", role)
        assert response.status == 403
        assert (await api.get("/clientes/2?include_deleted=true", role)).status == 403


async def test_card_number_search_is_admin_only_and_exact(api: Api, customers: list[dict[str, Any]]) -> None:
    """An admin finds a customer by card number (any grouping) through the blind index; others get 403."""
    target = customers[41]
    digits = _digits(target["credit_card_num"])
    for spelled in (digits, target["credit_card_num"], " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))):
        found = await api.json(f"/clientes?card_number={spelled}", "admin")
        assert [c["id"] for c in found] == [int(target["id"])]
        assert found[0]["credit_card_num"] == target["credit_card_num"]
    assert await api.json("/clientes?card_number=4000000000000002", "admin") == []
    for role in ("viewer", "analyst"):
        response = await api.get(f"/clientes?card_number={digits}", role)
        assert response.status == 403
        assert (await response.json())["type"].endswith(":forbidden")
