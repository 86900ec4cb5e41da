"""TLS to the database: required, verified against the configured CA, never silently downgraded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.config import Settings
from daemon.db.connect import open_database
from daemon.errors import ConfigError, DatabaseUnavailable
from daemon.observability.metrics import Metrics
from tests.support.private_mariadb import PrivateMariaDb, private_mariadb, require_mariadbd

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMariaDb]:
    require_mariadbd()
    with private_mariadb(tmp_path_factory.mktemp("tls-db"), tls=True) as server:
        yield server


def _url(port: int) -> str:
    return f"mysql://root@127.0.0.1:{port}/tls_check"


async def test_verify_identity_with_the_right_ca_connects_encrypted(
    tls_server: PrivateMariaDb, make_settings: Callable[..., Settings], metrics: Metrics
) -> None:
    """DB_TLS=verify_identity with the server's CA connects, and the session is encrypted."""
    settings = make_settings(DATABASE_URL=_url(tls_server.port), DB_TLS="verify_identity", DB_TLS_CA=str(tls_server.ca))
    async with open_database(settings.db, metrics=metrics, create=True) as db:
        cipher = await db.fetch_one("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        assert cipher is not None and cipher[1], "the session uses TLS"


async def test_wrong_ca_is_refused(
    tls_server: PrivateMariaDb, make_settings: Callable[..., Settings], metrics: Metrics
) -> None:
    """A server certificate not signed by DB_TLS_CA fails the handshake: no connection."""
    settings = make_settings(
        DATABASE_URL=_url(tls_server.port),
        DB_TLS="verify_identity",
        DB_TLS_CA=str(tls_server.other_ca),
        DB_CONNECT_TIMEOUT_S="1",
    )
    with pytest.raises(DatabaseUnavailable, match="not ready"):
        async with open_database(settings.db, metrics=metrics, create=False):
            pass


async def test_tls_to_a_plain_server_is_never_downgraded(
    make_settings: Callable[..., Settings], metrics: Metrics
) -> None:
    """DB_TLS=required against the shared server (TLS disabled) fails instead of falling back to plain text."""
    settings = make_settings(DB_TLS="required", DB_CONNECT_TIMEOUT_S="1")
    with pytest.raises(DatabaseUnavailable):
        async with open_database(settings.db, metrics=metrics, create=False):
            pass


def test_missing_ca_file_is_a_config_error(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    """A DB_TLS_CA that does not exist fails at start (exit 2), not as a retry loop."""
    with pytest.raises(ConfigError, match="DB_TLS_CA"):
        make_settings(DB_TLS="verify_identity", DB_TLS_CA=str(tmp_path / "nope.pem"))
