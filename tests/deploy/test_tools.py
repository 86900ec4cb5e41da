"""The two scripts deploy.yml runs: the placeholder filler and the ECR scan gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.deploy.support import ECS, SAMPLE_VALUES, fill_tool, run_tool, scan_tool, template

FILL = str(ECS / "tools" / "fill_placeholders.py")
GATE = str(ECS / "tools" / "scan_gate.py")
TEMPLATES = sorted(str(p.relative_to(ECS)) for p in ECS.rglob("*.json"))


def test_every_placeholder_has_a_sample_value() -> None:
    """Each `<NAME>` used under ecs/ is known here (and so must be taught to the workflow too)."""
    used = set().union(*(fill_tool().placeholders(template(t)) for t in TEMPLATES))
    assert used == set(SAMPLE_VALUES)


@pytest.mark.parametrize("relative", TEMPLATES)
def test_filled_templates_hold_no_placeholder(relative: str) -> None:
    """After filling, no `<NAME>` is left anywhere in the document."""
    filled = fill_tool().fill(template(relative), SAMPLE_VALUES)
    assert not fill_tool().placeholders(filled)
    assert "<" not in json.dumps(filled)


def test_values_with_json_metacharacters_stay_valid_json() -> None:
    """A value with quotes, backslashes, slashes and ampersands is inserted verbatim (what sed got wrong)."""
    tricky = 'https://p.example.com/a?x="1"&y=\\2/'
    document = {"a": ["<PROVIDER_URL>", {"b": "url=<PROVIDER_URL>;"}], "<PROVIDER_URL>": 1}
    result = fill_tool().fill(document, {"PROVIDER_URL": tricky})
    assert result == {"a": [tricky, {"b": f"url={tricky};"}], "<PROVIDER_URL>": 1}
    assert json.loads(json.dumps(result)) == result


def test_missing_and_malformed_values_are_refused_without_echoing_them() -> None:
    """No value, a malformed ARN or account id, or a value holding a placeholder: FillError naming only the variable."""
    tool = fill_tool()
    document = {"x": "<AWS_ACCOUNT_ID>/<CRYPTO_SECRET_ARN>/<DB_NAME>"}
    with pytest.raises(tool.FillError, match="no value for CRYPTO_SECRET_ARN, DB_NAME"):
        tool.fill(document, {"AWS_ACCOUNT_ID": "123456789012", "DB_NAME": "  "})
    partial_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:customers-mngr/crypto"
    with pytest.raises(tool.FillError) as caught:
        tool.fill(document, {"AWS_ACCOUNT_ID": "12345", "CRYPTO_SECRET_ARN": partial_arn, "DB_NAME": "<IMAGE>"})
    message = str(caught.value)
    assert "AWS_ACCOUNT_ID is not 12 digits" in message
    assert "CRYPTO_SECRET_ARN is not the complete secret ARN" in message
    assert "DB_NAME" in message
    assert partial_arn not in message and "12345" not in message


def test_keep_leaves_a_placeholder_for_the_render_action() -> None:
    """--keep IMAGE leaves `<IMAGE>` (the render action sets it) and fills the rest."""
    result = fill_tool().fill({"image": "<IMAGE>", "r": "<AWS_REGION>"}, {"AWS_REGION": "eu-west-1"}, keep=["IMAGE"])
    assert result == {"image": "<IMAGE>", "r": "eu-west-1"}


def test_fill_command_line(tmp_path: Path) -> None:
    """The CLI reads values from the environment, writes the output, exits 2 on a gap."""
    out = tmp_path / "out" / "api.json"
    env = {name: value for name, value in SAMPLE_VALUES.items() if name != "IMAGE"}
    done = run_tool(
        [sys.executable, FILL, str(ECS / "task-definitions/api.json"), str(out), "--keep", "IMAGE"], env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["containerDefinitions"][0]["image"] == "<IMAGE>"
    env.pop("CRYPTO_SECRET_ARN")
    failed = run_tool(
        [sys.executable, FILL, str(ECS / "task-definitions/api.json"), str(tmp_path / "x.json"), "--keep", "IMAGE"],
        env={**env, "CRYPTO_SECRET_ARN": ""},
    )
    assert failed.returncode == 2
    assert "no value for CRYPTO_SECRET_ARN" in failed.stderr
    assert not (tmp_path / "x.json").exists()


def scan(status: str = "COMPLETE", **counts: int) -> dict[str, object]:
    return {
        "imageScanStatus": {"status": status},
        "imageScanFindings": {"findingSeverityCounts": counts, "findings": []},
    }


@pytest.mark.parametrize(
    ("counts", "fail_on", "passed"),
    [
        ({}, "CRITICAL", True),
        ({"HIGH": 3, "MEDIUM": 10}, "CRITICAL", True),
        ({"CRITICAL": 1}, "CRITICAL", False),
        ({"HIGH": 1}, "HIGH", False),
        ({"CRITICAL": 1}, "HIGH", False),
        ({"MEDIUM": 2, "LOW": 5}, "HIGH", True),
        ({"LOW": 1}, "LOW", False),
        ({"INFORMATIONAL": 9, "UNDEFINED": 4}, "LOW", True),
    ],
)
def test_scan_gate_threshold(counts: dict[str, int], fail_on: str, passed: bool) -> None:
    """Fails at or above the threshold severity, passes below it."""
    assert scan_tool().judge(scan(**counts), fail_on).passed is passed


@pytest.mark.parametrize(
    "answer", [scan("IN_PROGRESS"), scan("FAILED"), {"imageScanStatus": {"status": "COMPLETE"}}, {}]
)
def test_scan_gate_refuses_an_unfinished_or_unreadable_scan(answer: dict[str, object]) -> None:
    """A scan that is not complete, or has no findings summary, never lets a deploy through."""
    with pytest.raises(scan_tool().ScanUnreadable):
        scan_tool().judge(answer, "CRITICAL")


def test_scan_gate_command_line(tmp_path: Path) -> None:
    """Exit 0 with HIGH reported as a warning; exit 1 on CRITICAL; exit 2 on an unreadable answer; summary written."""
    answer, summary = tmp_path / "scan.json", tmp_path / "summary.md"
    answer.write_text(json.dumps(scan("ACTIVE", HIGH=2, LOW=1)))
    done = run_tool([sys.executable, GATE, str(answer)], env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 0, done.stdout
    assert "::warning title=ECR scan::2 HIGH" in done.stdout
    assert "| HIGH | 2 |" in summary.read_text()
    answer.write_text(json.dumps(scan(CRITICAL=1, HIGH=2)))
    blocked = run_tool([sys.executable, GATE, str(answer), "--fail-on", "CRITICAL"], env={"GITHUB_STEP_SUMMARY": ""})
    assert blocked.returncode == 1
    assert "::error title=ECR scan::1 CRITICAL" in blocked.stdout
    stricter = run_tool([sys.executable, GATE, str(answer), "--fail-on", "HIGH"], env={"GITHUB_STEP_SUMMARY": ""})
    assert stricter.returncode == 1 and "1 CRITICAL, 2 HIGH" in stricter.stdout
    answer.write_text("not json")
    assert run_tool([sys.executable, GATE, str(answer)], env={"GITHUB_STEP_SUMMARY": ""}).returncode == 2
