"""The git commit this build came from.

`make binary` (and the image build) writes `daemon/_commit.txt` before
PyInstaller runs; from a source checkout the commit is read from `.git`
by plain file reads (no subprocess, no git needed).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

__all__ = ("git_commit",)


@cache
def git_commit() -> str:
    try:
        baked = resources.files("daemon").joinpath("_commit.txt").read_text().strip()
    except (FileNotFoundError, OSError):
        baked = ""
    return baked or _from_checkout(Path(__file__).resolve().parent.parent) or "unknown"


def _from_checkout(root: Path) -> str | None:
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: ".git" points at the real git dir
            git = root / git.read_text().split(":", 1)[1].strip()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        common = git / "commondir"
        base = (git / common.read_text().strip()).resolve() if common.exists() else git
        for folder in (git, base):
            if (folder / ref).exists():
                return (folder / ref).read_text().strip()[:12]
        for line in (base / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except (OSError, IndexError):
        return None
    return None
