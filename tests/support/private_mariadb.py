"""A private MariaDB of the test's own, for what must never be done to the shared server.

The shared server has TLS disabled and must not be reconfigured (other tests
and CI use it), so tests that need a server-wide setting start their own
`mariadbd` on a free loopback port and stop it at the end:

- `tls=True`: TLS with a throwaway CA and server certificate (the daemon's DB_TLS);
- `grants=True`: real privilege checks, so a test can create a non-admin user
  and flip `read_only` (an Aurora failover's old writer) with `admin()`, which
  runs as root over the server's own unix socket. Without it, the server runs
  with no grant checks and root connects over TCP without a password.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.daemon_proc import free_port

__all__ = ("MARIADBD", "PrivateMariaDb", "private_mariadb", "require_mariadbd")

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
CLIENT = shutil.which("mariadb") or "/usr/bin/mariadb"


@dataclass(frozen=True)
class PrivateMariaDb:
    port: int
    socket: Path
    ca: Path  # the CA that signed the server certificate (served only with tls=True)
    other_ca: Path  # a CA that did not

    def admin(self, *statements: str) -> None:
        """Run statements as root over the unix socket (works whatever TCP users may do)."""
        subprocess.run(
            [CLIENT, "--no-defaults", f"--socket={self.socket}", "--user=root", "-e", ";\n".join(statements)],
            check=True,
            capture_output=True,
            timeout=30,
        )


def require_mariadbd() -> None:
    """Skip the calling test where this machine has no MariaDB server binary to start."""
    if not Path(MARIADBD).exists():
        pytest.skip("mariadbd is not installed on this machine")


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_certs(folder: Path) -> tuple[Path, Path, Path, Path]:
    ca_key, ca_cert = _ca("customers-mngr test CA")
    _, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return (
        _write_pem(folder / "ca.pem", ca_cert.public_bytes(pem)),
        _write_pem(folder / "other-ca.pem", other_cert.public_bytes(pem)),
        _write_pem(folder / "server.pem", cert.public_bytes(pem)),
        _write_pem(
            folder / "server.key",
            key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()),
        ),
    )


@contextlib.contextmanager
def private_mariadb(folder: Path, *, tls: bool = False, grants: bool = False) -> Iterator[PrivateMariaDb]:
    ca, other_ca, cert, key = _make_certs(folder)
    data = folder / "data"
    subprocess.run(
        [
            INSTALL_DB,
            "--no-defaults",
            f"--datadir={data}",
            "--skip-test-db",
            "--user=root",
            "--auth-root-authentication-method=normal",  # root@localhost without a password, for admin()
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    socket_path = folder / "sock"
    options = [
        "--no-defaults",
        f"--datadir={data}",
        f"--socket={socket_path}",
        f"--port={port}",
        "--bind-address=127.0.0.1",
        "--user=root",
        f"--pid-file={folder / 'pid'}",
        f"--log-error={folder / 'error.log'}",
        "--innodb-buffer-pool-size=16M",
        "--skip-log-bin",
    ]
    if not grants:
        options.append("--skip-grant-tables")
    if tls:
        options += [f"--ssl-ca={ca}", f"--ssl-cert={cert}", f"--ssl-key={key}"]
    proc = subprocess.Popen([MARIADBD, *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited: {(folder / 'error.log').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"mariadbd did not listen on port {port} within 60 s")
        yield PrivateMariaDb(port=port, socket=socket_path, ca=ca, other_ca=other_ca)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
