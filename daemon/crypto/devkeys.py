"""Development keys: generated once into a local file (mode 0600) and reused on every later start.

Only used when APP_ENV=development and none of ENCRYPTION_KEYS / INDEX_KEY is
set. The predecessor generated a fresh key at every start, so nothing it had
stored could be read back; here the first start writes the file and every
later start (and every other process sharing it) reads the same keys.

The file appears atomically with its full content: it is written to a
private temporary file in the same folder and hard-linked into place, which
fails if the name exists — so two processes starting at once agree on one
set of keys, and nobody ever reads a half-written file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from daemon.config.crypto import DEV_KEY_FILE, KEY_BYTES, KEY_ID_RE, decode_key
from daemon.errors import ConfigError
from daemon.observability.logs import get_logger

__all__ = ("DevKeys", "load_or_create_dev_keys")

log = get_logger("customers_mngr.crypto")

_FORMAT: Final = 1
_MAX_FILE_BYTES: Final = 64 * 1024
_RECOVER: Final = "a file written by customers-mngr (delete it to start over: data written with it becomes unreadable)"


@dataclass(frozen=True, slots=True)
class DevKeys:
    keys: dict[str, bytes] = field(repr=False)
    active_key_id: str
    index_key: bytes = field(repr=False)


def load_or_create_dev_keys(path: Path) -> DevKeys:
    """The keys of `path`, creating the file (0600, atomically) if it does not exist yet."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    created = _generate()
    try:
        _create_exclusive(path, _serialise(created))
    except FileExistsError:  # another process created it first: use theirs
        return _read(path)
    except OSError as exc:
        raise ConfigError(DEV_KEY_FILE.name, f"cannot create {path} ({exc.strerror})", "a writable path") from None
    log.warning(
        "dev_keys_created",
        path=str(path),
        key_ids=list(created.keys),
        note="development keys generated once; keep this file to read the data again, never use it in production",
    )
    return created


def _generate() -> DevKeys:
    key_id = f"dev-{secrets.token_hex(3)}"
    return DevKeys(
        keys={key_id: secrets.token_bytes(KEY_BYTES)}, active_key_id=key_id, index_key=secrets.token_bytes(KEY_BYTES)
    )


def _serialise(dev: DevKeys) -> bytes:
    data = {
        "format": _FORMAT,
        "comment": "customers-mngr development keys. Never use in production. Deleting this file makes "
        "the data encrypted with it unreadable.",
        "encryption_keys": {key_id: base64.b64encode(key).decode() for key_id, key in dev.keys.items()},
        "active_key": dev.active_key_id,
        "index_key": base64.b64encode(dev.index_key).decode(),
    }
    return (json.dumps(data, indent=2) + "\n").encode()


def _create_exclusive(path: Path, content: bytes) -> None:
    """Create `path` with `content` and mode 0600, or raise FileExistsError; never overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the name exists
        except FileExistsError:
            raise
        except OSError:  # no hard links on this filesystem: exclusive create, one small write
            _create_with_o_excl(path, content)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _create_with_o_excl(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())


def _read(path: Path) -> DevKeys:
    var = DEV_KEY_FILE.name
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        raw = handle.read(_MAX_FILE_BYTES + 1)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("dev_key_file_permissive", path=str(path), mode=oct(stat.S_IMODE(mode)), expected="0o600")
    try:
        data: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ConfigError(var, f"{path} is not JSON", _RECOVER) from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise ConfigError(var, f"{path} is not a development key file (format {_FORMAT})", _RECOVER)
    ring, active = data.get("encryption_keys"), data.get("active_key")
    if not isinstance(ring, dict) or not ring:
        raise ConfigError(var, f"{path} has no encryption_keys", _RECOVER)
    keys: dict[str, bytes] = {}
    for key_id, text in ring.items():
        if not KEY_ID_RE.match(key_id):
            raise ConfigError(var, f"{path} has an invalid key id", _RECOVER)
        keys[key_id] = decode_key(var, text, what=f"key {key_id!r} in {path}")
    if not isinstance(active, str) or active not in keys:
        raise ConfigError(var, f"{path}: active_key is not one of its encryption_keys", _RECOVER)
    index_key = decode_key(var, data.get("index_key"), what=f"index_key in {path}")
    log.warning("dev_keys_loaded", path=str(path), key_ids=list(keys), active_key_id=active)
    return DevKeys(keys=keys, active_key_id=active, index_key=index_key)
