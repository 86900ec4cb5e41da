"""`customers-mngr tokens new --role R --name N`: a fresh API token and its API_TOKENS entry.

The token (256 random bits, URL-safe, with a `cmgr_` prefix that secret
scanners can match) is printed once on stdout and stored nowhere; only its
SHA-256 goes into configuration. `tokens hash --role R --name N` reads an
existing token from stdin and prints its entry (to move a client's token
between environments without re-issuing it). Token rotation: README.md,
"Rotating an API token".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import sys
from collections.abc import Mapping
from typing import Any, Final

from daemon.cli.common import fail
from daemon.config.http import DEMO_TOKENS, ROLES

__all__ = ("TOKEN_PREFIX", "entry_for", "new_token", "register")

TOKEN_PREFIX: Final = "cmgr_"  # noqa: S105 - a public prefix, not a secret
TOKEN_BYTES: Final = 32  # 256 bits
_NAME: Final = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")  # the rule API_TOKENS names are checked against


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "tokens",
        help="issue API tokens (prints the token once and its API_TOKENS entry)",
        description="API token management. Only the SHA-256 of a token is ever configured (API_TOKENS).",
    )
    actions = parser.add_subparsers(dest="tokens_action", metavar="ACTION", required=True)
    for action, text in (
        ("new", "print a new random token (shown once) and its API_TOKENS entry"),
        ("hash", "read a token from stdin and print its API_TOKENS entry"),
    ):
        command = actions.add_parser(action, help=text, description=text)
        command.add_argument("--role", required=True, choices=ROLES, help="what the token may see")
        command.add_argument("--name", required=True, help="who holds it (1-64 of A-Z a-z 0-9 . _ @ -); audited")
        command.add_argument("--json", action="store_true", help="one JSON object instead of text")
        command.set_defaults(handler=handle)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def entry_for(token: str, *, role: str, name: str) -> dict[str, str]:
    return {"name": name, "role": role, "sha256": hashlib.sha256(token.encode()).hexdigest()}


def handle(args: argparse.Namespace, _env: Mapping[str, str]) -> int:
    if not _NAME.match(args.name):
        fail("tokens: --name must be 1-64 of A-Z a-z 0-9 . _ @ -")
        return 2
    if args.tokens_action == "hash":
        token = sys.stdin.readline().strip()
        if not token or " " in token:
            fail("tokens hash: expected the token on stdin")
            return 2
        if token in DEMO_TOKENS:
            fail("tokens hash: a predecessor demo token is refused in production; issue one with `tokens new`")
            return 2
        entry = entry_for(token, role=args.role, name=args.name)
        print(json.dumps(entry) if not args.json else json.dumps({"entry": entry}))
        return 0
    token = new_token()
    entry = entry_for(token, role=args.role, name=args.name)
    if args.json:
        print(json.dumps({"token": token, "entry": entry}))
        return 0
    print(f"Token for {args.name!r} (role {args.role}). It is shown only now: hand it to its holder")
    print("through your secret store, never by chat, ticket or e-mail.")
    print()
    print(f"  {token}")
    print()
    print("API_TOKENS entry (add it to the JSON list; only the hash is configured):")
    print()
    print(f"  {json.dumps(entry)}")
    return 0
