"""Regenerate the README sections that are derived from code (`make docs`).

The configuration table comes from the declared variables and the data
section from the field policy; a test fails when the README is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from daemon.config import config_table
from daemon.policy import FIELDS, Classification

__all__ = ("data_table", "render", "sections")

_TREATMENT = {
    Classification.PUBLIC: "stored in clear",
    Classification.PII: "AES-256-GCM at rest",
    Classification.FINANCIAL: "AES-256-GCM at rest + last 4 in clear",
    Classification.PCI: "AES-256-GCM at rest + last 4, display mask and HMAC blind index in clear",
    Classification.SAD: "**dropped at parse: never stored, logged, quarantined or returned**",
}


def data_table() -> str:
    lines = ["| field | classification | storage | viewer | analyst | admin |", "|---|---|---|---|---|---|"]
    for f in FIELDS:
        cells = [f.views[role].value if role in f.views else "—" for role in ("viewer", "analyst", "admin")]
        lines.append(
            f"| `{f.name}` | {f.classification.value} | {_TREATMENT[f.classification]} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def sections() -> dict[str, str]:
    return {"config": config_table(), "data": data_table()}


def render(text: str) -> str:
    for name, body in sections().items():
        begin, end = f"<!-- BEGIN {name} -->\n", f"<!-- END {name} -->"
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
        text = pattern.sub(lambda _m, body=body, begin=begin, end=end: begin + body + "\n" + end, text)  # type: ignore[misc]
    return text


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "README.md")
    path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
