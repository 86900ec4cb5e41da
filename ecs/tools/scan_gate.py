#!/usr/bin/env python3
"""Gate a deploy on the ECR scan of the pushed image.

    aws ecr describe-image-scan-findings ... --no-paginate > scan.json
    python3 ecs/tools/scan_gate.py scan.json --fail-on CRITICAL

Reads the `describe-image-scan-findings` answer (basic or enhanced scanning: both fill
`imageScanFindings.findingSeverityCounts`), prints the count of every severity, writes the
same table to the GitHub step summary when `GITHUB_STEP_SUMMARY` is set, and exits 1 when
any finding is at or above the `--fail-on` severity. Findings below the threshold are
reported as warnings (HIGH is always shown), never hidden: the predecessor printed HIGH and
CRITICAL findings and deployed anyway.

Exit codes: 0 pass; 1 findings at or above the threshold; 2 the scan is missing, failed or
unreadable (a deploy never proceeds on a scan it could not read).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ("SEVERITIES", "ScanUnreadable", "ScanVerdict", "judge", "main")

# Highest first. UNDEFINED/INFORMATIONAL never fail a deploy but are still listed.
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")
_GATING = SEVERITIES[:4]
_DONE = ("COMPLETE", "ACTIVE")  # ACTIVE: enhanced (Inspector) scanning, continuously monitored


class ScanVerdict:
    """The counts per severity and whether they pass the threshold."""

    def __init__(self, counts: Mapping[str, int], fail_on: str) -> None:
        self.counts = {severity: int(counts.get(severity, 0)) for severity in SEVERITIES}
        self.fail_on = fail_on
        gating = _GATING[: _GATING.index(fail_on) + 1]
        self.blocking = {s: n for s, n in self.counts.items() if s in gating and n > 0}
        self.passed = not self.blocking

    def table(self) -> str:
        rows = ["| severity | findings |", "|---|---|"]
        rows += [f"| {severity} | {count} |" for severity, count in self.counts.items()]
        outcome = "passed" if self.passed else "FAILED"
        return f"ECR scan {outcome} (fails on {self.fail_on} and above)\n\n" + "\n".join(rows) + "\n"


class ScanUnreadable(Exception):
    """The scan answer is missing, failed, or not the expected shape."""


def judge(answer: Mapping[str, Any], fail_on: str) -> ScanVerdict:
    """Judge one describe-image-scan-findings answer against the threshold."""
    if fail_on not in _GATING:
        raise ScanUnreadable(f"--fail-on must be one of {', '.join(_GATING)}")
    status = (answer.get("imageScanStatus") or {}).get("status")
    if status not in _DONE:
        raise ScanUnreadable(f"scan status is {status!r}, not one of {', '.join(_DONE)}")
    findings = answer.get("imageScanFindings")
    if not isinstance(findings, Mapping):
        raise ScanUnreadable("the answer has no imageScanFindings")
    counts = findings.get("findingSeverityCounts") or {}
    if not isinstance(counts, Mapping) or not all(isinstance(n, int) for n in counts.values()):
        raise ScanUnreadable("findingSeverityCounts is not a map of counts")
    return ScanVerdict(counts, fail_on)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fail on ECR scan findings at or above a severity.")
    parser.add_argument("answer", type=Path, help="JSON from aws ecr describe-image-scan-findings")
    parser.add_argument("--fail-on", default="CRITICAL", choices=_GATING)
    args = parser.parse_args(argv)
    try:
        verdict = judge(json.loads(args.answer.read_text(encoding="utf-8")), args.fail_on)
    except (OSError, json.JSONDecodeError, ScanUnreadable) as exc:
        print(f"::error title=ECR scan::{exc}")
        return 2
    print(verdict.table())
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(verdict.table())
    for severity, count in verdict.counts.items():
        if count and severity not in verdict.blocking and severity in _GATING[:2]:
            print(f"::warning title=ECR scan::{count} {severity} finding(s) below the {args.fail_on} threshold")
    if not verdict.passed:
        found = ", ".join(f"{n} {s}" for s, n in verdict.blocking.items())
        print(f"::error title=ECR scan::{found}: at or above {args.fail_on}; not deploying")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
