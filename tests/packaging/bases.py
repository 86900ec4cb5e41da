"""Local stand-ins for the Dockerfile's base images, made with debootstrap and cached.

No registry is reachable here, so `python:3.11-slim-bookworm` and `debian:12-slim` are
replaced by root filesystems of the same Debian release made with debootstrap:

- `minbase`: `debootstrap --variant=minbase bookworm`, trimmed like Docker's slim images
  (no docs, man pages or apt lists): the runtime base, and the chroot the binary tests run in.
- `builder`: the same plus Debian's Python 3.11 with venv, its shared libpython (PyInstaller
  needs it, as in the official python images) and the CA certificates.

Each is kept as a tarball under the cache folder (CM_CACHE_DIR, default
~/.cache/customers-mngr/bases) and rebuilt only when its recipe changes or it is older than
CACHE_MAX_AGE_DAYS. An exclusive lock on the folder makes concurrent runs wait for one
another instead of writing the same tarball twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ("BASES", "Base", "BaseError", "cache_dir", "ensure_base", "ensure_tools", "extract")

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CACHE_MAX_AGE_DAYS = 30
_DEBOOTSTRAP_TIMEOUT_S = 900
# What Docker's slim images drop from a minbase system (debuerreotype's "slimify").
_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "var/cache/apt", "var/lib/apt/lists")


class BaseError(Exception):
    """A base image could not be made; the message is one line."""


@dataclass(frozen=True)
class Base:
    name: str
    include: tuple[str, ...]

    def key(self, mirror: str) -> str:
        recipe = "|".join((SUITE, "minbase", ",".join(self.include), ",".join(_TRIM), mirror, "v1"))
        return hashlib.sha256(recipe.encode()).hexdigest()[:12]


BASES = {
    "minbase": Base("minbase", ()),
    "builder": Base("builder", ("python3", "python3-venv", "libpython3.11", "ca-certificates")),
}


def ensure_tools(tools: dict[str, str], *, log: Path | None = None) -> list[str]:
    """Install the Debian package of each missing tool ({command: package}); the packages installed."""
    missing = sorted({package for tool, package in tools.items() if shutil.which(tool) is None})
    if not missing:
        return []
    if os.geteuid() != 0:
        raise BaseError(f"{' '.join(missing)} missing and apt-get needs root")
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "-q"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([*apt, "update"], [*apt, "install", "-y", "--no-install-recommends", *missing]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        if log is not None:
            with open(log, "a") as out:
                out.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            raise BaseError(f"apt-get {command[4]} exited {done.returncode}: {_last_error(done)}")
    return missing


def cache_dir() -> Path:
    path = Path(os.environ.get("CM_CACHE_DIR") or Path.home() / ".cache" / "customers-mngr" / "bases")
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror() -> str:
    return os.environ.get("CM_DEBIAN_MIRROR") or DEFAULT_MIRROR


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_base(name: str, *, log: Path | None = None) -> Path:
    """The cached tarball of base `name`, made with debootstrap if missing or stale."""
    base = BASES[name]
    folder = cache_dir()
    target = folder / f"{SUITE}-{base.name}-{base.key(mirror())}.tar"
    with _locked(folder):
        fresh = target.exists() and time.time() - target.stat().st_mtime < CACHE_MAX_AGE_DAYS * 86400
        if fresh and not os.environ.get("CM_REFRESH_BASES"):
            return target
        _build(base, target, log=log)
        for old in folder.glob(f"{SUITE}-{base.name}-*.tar"):
            if old != target:
                old.unlink()
    return target


def _build(base: Base, target: Path, *, log: Path | None) -> None:
    ensure_tools({"debootstrap": "debootstrap"})
    with tempfile.TemporaryDirectory(prefix=f"cm-{base.name}-", dir=target.parent) as tmp:
        root = Path(tmp) / "root"
        command = ["debootstrap", "--variant=minbase"]
        if base.include:
            command.append("--include=" + ",".join(base.include))
        command += [SUITE, str(root), mirror()]
        started = time.monotonic()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=_DEBOOTSTRAP_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise BaseError(f"debootstrap of {base.name} took more than {_DEBOOTSTRAP_TIMEOUT_S}s") from None
        if log is not None:
            with open(log, "a") as out:
                out.write(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}\n")
        if done.returncode != 0:
            raise BaseError(f"debootstrap of {base.name} exited {done.returncode}: {_last_error(done)}")
        _trim(root)
        partial = target.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, capture_output=True)
        partial.replace(target)
        if log is not None:
            with open(log, "a") as out:
                out.write(f"base {base.name}: {target} in {time.monotonic() - started:.0f}s\n")


def _trim(root: Path) -> None:
    for relative in _TRIM:
        folder = root / relative
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def _last_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("E:", "W:"))]
    return (errors or lines or ["no output"])[-1][:300]


def extract(tarball: Path, destination: Path) -> Path:
    """Unpack a base tarball into `destination` (a root filesystem for chroot)."""
    destination.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-C", str(destination), "-xf", str(tarball)], check=True)
    return destination
