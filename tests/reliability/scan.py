"""Searching files (logs, DB dumps) for the provider's sensitive values, tokens and keys.

Values are searched in the forms they could leak in, in one pass per pattern rather than
one per value (tens of thousands of values over tens of megabytes):

- card numbers: every digit run of 12 or more (spaces or dashes allowed between digits),
  normalised to its digits, and each of its windows of a card's length, against the set
  of card numbers served — so a card is found with and without its separators;
- account numbers: every run of 5+ digits (separators allowed) standing on its own (not
  inside a longer word such as a random hex id), against the set of accounts served;
- IPs: every dotted quad, against the set served;
- DNI photo URLs: every URL, against the set served, and the hosts only those URLs use;
- CVVs: the recording simulator's CVV marker, wherever it appears;
- tokens, keys and odd values (invalid records, hostile input): plain substring search.

A finding names the file, the kind and a masked hint of the value — never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.reliability.harness import CVV_PREFIX, Needles

__all__ = ("Finding", "ScanResult", "scan")

_CARD = re.compile(rb"[0-9](?:[ -]?[0-9]){11,}")
_ACCOUNT = re.compile(rb"(?<![0-9A-Za-z])[0-9](?:[ -]?[0-9]){4,40}(?![0-9A-Za-z])")
_IP = re.compile(rb"(?<![0-9.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9.])")
_URL = re.compile(rb"https?://[^\s\"'<>\\,}\]]+")
_NOT_DIGIT = re.compile(rb"[^0-9]")
DNI_HOSTS = (b"placeimg.com", b"loremflickr.com", b"dni.hostile.test")


@dataclass(frozen=True)
class Finding:
    path: str
    kind: str
    hint: str  # first two characters and the length: enough to look, never the value

    def __str__(self) -> str:
        return f"{self.kind} in {self.path} ({self.hint})"


@dataclass
class ScanResult:
    files: int = 0
    bytes: int = 0
    findings: list[Finding] = field(default_factory=list)


def _hint(value: bytes) -> str:
    return f"{value[:2].decode('latin-1')}… {len(value)} chars"


def scan(paths: Iterable[Path], needles: Needles, fixed: Iterable[str], *, root: Path) -> ScanResult:
    cards = {c.encode() for c in needles.cards}
    card_lengths = sorted({len(c) for c in cards if len(c) <= 20})
    accounts = {a.encode() for a in needles.accounts}
    ips = {i.encode() for i in needles.ips}
    urls = {u.encode()[:256] for u in needles.dni_urls}
    plain = [(kind, value.encode("utf-8", "surrogateescape")) for kind, value in _plain(needles, fixed)]
    result = ScanResult()
    for path in paths:
        data = path.read_bytes()
        result.files += 1
        result.bytes += len(data)
        name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        found: list[Finding] = []
        for match in _CARD.finditer(data):
            digits = _NOT_DIGIT.sub(b"", match.group())
            if digits in cards or any(
                digits[i : i + n] in cards for n in card_lengths for i in range(len(digits) - n + 1)
            ):
                found.append(Finding(name, "card number", _hint(digits)))
        for match in _ACCOUNT.finditer(data):
            digits = _NOT_DIGIT.sub(b"", match.group())
            if digits in accounts:
                found.append(Finding(name, "account number", _hint(digits)))
        found += [Finding(name, "IP", _hint(m.group())) for m in _IP.finditer(data) if m.group() in ips]
        found += [Finding(name, "DNI URL", _hint(m.group())) for m in _URL.finditer(data) if m.group()[:256] in urls]
        found += [Finding(name, "DNI URL host", host.decode()) for host in DNI_HOSTS if host in data]
        if CVV_PREFIX.encode() in data:
            found.append(Finding(name, "CVV", "the CVV marker"))
        found += [Finding(name, kind, _hint(value)) for kind, value in plain if value and value in data]
        result.findings += list(dict.fromkeys(found))
    return result


def _plain(needles: Needles, fixed: Iterable[str]) -> list[tuple[str, str]]:
    out = [("token or key", value) for value in fixed]
    out += [("odd provider value", value) for value in sorted(needles.other) if len(value) >= 6]
    return out
