"""What the middleware and the handlers share about one request."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from daemon.api.audit import AuditRecord

__all__ = ("STATE", "RequestState", "request_id_from", "state_of")

_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_DIGIT_RUN: Final = re.compile(r"[0-9]{12}")


@dataclass(slots=True)
class RequestState:
    request_id: str
    audit: AuditRecord | None  # present on audited routes: the handler fills it in
    token_name: str | None = None  # once authenticated, for the access log


STATE: Final = web.RequestKey("customers_mngr_state", RequestState)


def state_of(request: web.Request) -> RequestState:
    return request[STATE]


def request_id_from(header: str | None) -> str:
    """The caller's X-Request-ID when well-formed, else a fresh one.

    A value holding a long digit run is replaced too: the id is echoed and
    logged everywhere, so it must not be able to carry a card number.
    """
    if header is not None and _REQUEST_ID.match(header) and not _DIGIT_RUN.search(header):
        return header
    return os.urandom(16).hex()
