"""Reference `predecessor_api`: the old Flask app, written from its description.

    python -m tests.bench.predecessor_api --port P --database mysql://.../DB

Flask's built-in (werkzeug) server, threaded as `app.run` defaults; a token
checked against three hard-coded values; a new mysql-connector-python
connection for every request; `SELECT` of the page of 100; JSON. Reads the
`clientes` table `predecessor_sync` wrote.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from flask import Flask, jsonify, request

from tests.bench.predecessor_sync import connect

__all__ = ("create_app", "main")

TOKENS = {"admin-token": "admin", "analyst-token": "analyst", "viewer-token": "viewer"}
PAGE_SQL = "SELECT id, user_name, credit_card_num, direccion, avatar FROM clientes ORDER BY id LIMIT 100"


def create_app(database_url: str) -> Flask:
    app = Flask("predecessor")

    @app.get("/clientes")
    def clientes() -> Any:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in TOKENS:
            return jsonify({"error": "unauthorized"}), 401
        conn = connect(database_url)  # a new connection per request, as the predecessor did
        try:
            cursor = conn.cursor(dictionary=True)
            cursor.execute(PAGE_SQL)
            rows = cursor.fetchall()
        finally:
            conn.close()
        return jsonify(rows)

    @app.get("/health")
    def health() -> Any:
        return jsonify({"status": "ok"})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.predecessor_api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    args = parser.parse_args(argv)
    create_app(args.database).run(host=args.host, port=args.port, threaded=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
