"""The GitHub Actions workflows: actionlint-clean, OIDC only, pinned actions, a deploy that fits ecs/."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.support import (
    FAMILIES,
    ROOT,
    WORKFLOWS,
    fill_tool,
    filled,
    run_tool,
    task_definition,
    template,
    tool_path,
    workflow,
)

FILES = sorted(path.name for path in WORKFLOWS.glob("*.yml"))
# The oldest major accepted per action (current majors when this was written): a downgrade to
# the predecessor's actions/checkout@v2 or configure-aws-credentials@v1 fails here.
MIN_MAJOR = {
    "actions/checkout": 7,
    "actions/setup-python": 7,
    "aws-actions/configure-aws-credentials": 6,
    "aws-actions/amazon-ecr-login": 2,
    "aws-actions/amazon-ecs-render-task-definition": 1,
    "aws-actions/amazon-ecs-deploy-task-definition": 2,
    "docker/setup-buildx-action": 4,
    "docker/build-push-action": 7,
}
PIN = re.compile(r"^(?P<action>[\w.-]+/[\w./-]+)@(?:v(?P<major>\d+)|[0-9a-f]{40})$")


def steps(data: dict[str, Any], job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data["jobs"][job]["steps"]
    return found


def uses(data: dict[str, Any]) -> list[str]:
    return [step["uses"] for job in data["jobs"].values() for step in job.get("steps", []) if "uses" in step]


def step_using(data: dict[str, Any], job: str, action: str) -> list[dict[str, Any]]:
    return [s for s in steps(data, job) if s.get("uses", "").split("@")[0] == action]


def test_actionlint_finds_nothing() -> None:
    """actionlint (with shellcheck on every run: script) reports no finding on any workflow."""
    done = run_tool(
        [
            tool_path("actionlint"),
            "-shellcheck",
            tool_path("shellcheck"),
            "-no-color",
            *(f".github/workflows/{f}" for f in FILES),
        ]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_actionlint_is_real(tmp_path: Any) -> None:
    """The same actionlint run flags a retired action, an unknown input and an injectable expression."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.write_text(
        "on: pull_request\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v2\n"
        "      - uses: actions/setup-python@v7\n        with:\n          pyhton-version: '3.11'\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    done = run_tool(
        [tool_path("actionlint"), "-shellcheck", tool_path("shellcheck"), "-no-color", str(bad)], cwd=tmp_path
    )
    assert done.returncode == 1
    for needle in ("actions/checkout@v2", "pyhton-version", "potentially untrusted"):
        assert needle in done.stdout


@pytest.mark.parametrize("name", FILES)
def test_actions_are_pinned_to_current_majors(name: str) -> None:
    """Every action is pinned to a major tag or a commit SHA, never a branch, never an old major."""
    for reference in uses(workflow(name)):
        if reference.startswith("./"):
            continue
        match = PIN.match(reference)
        assert match, f"{name}: {reference} is not pinned to vN or a full SHA"
        if match["major"] is not None and match["action"] in MIN_MAJOR:
            assert int(match["major"]) >= MIN_MAJOR[match["action"]], reference


@pytest.mark.parametrize("name", FILES)
def test_no_long_lived_aws_keys_and_read_only_by_default(name: str) -> None:
    """No access keys anywhere; the workflow's default token is read-only."""
    text = (WORKFLOWS / name).read_text(encoding="utf-8")
    for forbidden in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert forbidden not in text
    assert workflow(name)["permissions"] == {"contents": "read"}


def test_ci_runs_every_check_on_pull_requests_and_pushes() -> None:
    """ci.yml: PRs, pushes and calls; lint, MySQL 8.4 tests, binary e2e, deploy checks, image build."""
    data = workflow("ci.yml")
    assert {"pull_request", "push", "workflow_call"} <= set(data["on"])
    runs = "\n".join(s.get("run", "") for job in data["jobs"] for s in steps(data, job))
    assert "make lint typecheck" in runs
    assert "-m binary" in runs
    assert "pytest -q tests/deploy" in runs
    test_job = data["jobs"]["test"]
    assert test_job["services"]["mysql"]["image"] == "mysql:8.4"
    assert test_job["env"]["TEST_DATABASE_URL"].startswith("mysql://root@127.0.0.1:3306")
    (build,) = step_using(data, "image", "docker/build-push-action")
    assert build["with"]["file"] == "docker/Dockerfile"
    assert build["with"]["push"] is False


def test_deploy_triggers_concurrency_and_oidc() -> None:
    """Push to main and manual runs; one deploy at a time; the job assumes a role through OIDC."""
    data = workflow("deploy.yml")
    assert data["on"]["push"] == {"branches": ["main"]}
    threshold = data["on"]["workflow_dispatch"]["inputs"]["fail-on-severity"]
    assert threshold["default"] == "CRITICAL" and "HIGH" in threshold["options"]
    assert data["concurrency"]["cancel-in-progress"] is False and data["concurrency"]["group"]
    job = data["jobs"]["deploy"]
    assert job["needs"] == "ci" and data["jobs"]["ci"]["uses"] == "./.github/workflows/ci.yml"
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["environment"] == "production", "the OIDC trust pins the production environment"
    (credentials,) = step_using(data, "deploy", "aws-actions/configure-aws-credentials")
    assert credentials["with"]["role-to-assume"].endswith(":role/customers-mngr-deploy")
    assert step_using(data, "deploy", "aws-actions/amazon-ecr-login")


def test_deploy_builds_one_image_tagged_with_the_commit_and_gates_on_the_scan() -> None:
    """One build, tagged with github.sha, pushed; the scan is awaited and gated by scan_gate.py with the input."""
    data = workflow("deploy.yml")
    (build,) = step_using(data, "deploy", "docker/build-push-action")
    assert build["with"]["push"] is True
    assert build["with"]["tags"].endswith(":${{ github.sha }}")
    assert build["with"]["file"] == "docker/Dockerfile"
    runs = [s.get("run", "") for s in steps(data, "deploy")]
    assert any("describe-image-scan-findings" in r and "COMPLETE" in r for r in runs)
    (gate,) = [r for r in runs if "scan_gate.py" in r]
    assert '--fail-on "$FAIL_ON_SEVERITY"' in gate
    assert data["jobs"]["deploy"]["env"]["FAIL_ON_SEVERITY"] == "${{ inputs.fail-on-severity || 'CRITICAL' }}"
    order = [s.get("name", "") for s in steps(data, "deploy")]
    scan_at = next(i for i, s in enumerate(steps(data, "deploy")) if "scan_gate.py" in s.get("run", ""))
    first_deploy = next(
        i for i, s in enumerate(steps(data, "deploy")) if "amazon-ecs-deploy-task-definition" in s.get("uses", "")
    )
    assert scan_at < first_deploy, order


def test_fill_step_provides_every_placeholder_of_the_task_definitions() -> None:
    """The fill step's environment covers every placeholder of both task definitions (IMAGE is rendered)."""
    data = workflow("deploy.yml")
    (fill,) = [s for s in steps(data, "deploy") if "fill_placeholders.py" in s.get("run", "")]
    needed = set().union(*(fill_tool().placeholders(template(f"task-definitions/{f}.json")) for f in FAMILIES))
    provided = set(fill["env"]) | {"AWS_REGION"}  # AWS_REGION is the job's env
    assert data["jobs"]["deploy"]["env"]["AWS_REGION"] == "${{ vars.AWS_REGION }}"
    assert needed - {"IMAGE"} <= provided
    for name, value in fill["env"].items():
        assert value == f"${{{{ vars.{name} }}}}", f"{name} comes from the environment's variables, not a secret"
    assert "--keep IMAGE" in fill["run"]


def test_render_steps_name_containers_that_exist() -> None:
    """Each render step targets a container of the task definition file it renders."""
    data = workflow("deploy.yml")
    renders = step_using(data, "deploy", "aws-actions/amazon-ecs-render-task-definition")
    assert len(renders) == len(FAMILIES)
    rendered = set()
    for step in renders:
        family = re.search(r"/ecs/(\w+)\.json$", step["with"]["task-definition"])
        assert family, step["with"]["task-definition"]
        names = [c["name"] for c in task_definition(family[1])["containerDefinitions"]]
        assert step["with"]["container-name"] in names
        assert step["with"]["image"].endswith(":${{ github.sha }}")
        rendered.add(family[1])
    assert rendered == set(FAMILIES)


def test_deploys_wait_for_stability_syncer_first() -> None:
    """Both services deploy their rendered definition and wait; the syncer (migrations) goes first."""
    data = workflow("deploy.yml")
    deploys = step_using(data, "deploy", "aws-actions/amazon-ecs-deploy-task-definition")
    renders = step_using(data, "deploy", "aws-actions/amazon-ecs-render-task-definition")
    container_of = {s["id"]: s["with"]["container-name"] for s in renders}
    assert len(deploys) == len(FAMILIES)
    for deploy, family in zip(deploys, ("syncer", "api"), strict=True):
        spec = filled(f"services/{family}.json")
        assert resolve_env(data, deploy["with"]["service"]) == spec["serviceName"]
        assert resolve_env(data, deploy["with"]["cluster"]) == spec["cluster"]
        assert deploy["with"]["wait-for-service-stability"] is True
        source = re.fullmatch(
            r"\$\{\{ steps\.([\w-]+)\.outputs\.task-definition \}\}", deploy["with"]["task-definition"]
        )
        assert source, deploy["with"]["task-definition"]
        assert container_of[source[1]] == family


def resolve_env(data: dict[str, Any], expression: str) -> str:
    """The workflow-level value behind `${{ env.NAME }}`."""
    match = re.fullmatch(r"\$\{\{ env\.(\w+) \}\}", expression)
    assert match, expression
    value: str = data["env"][match[1]]
    return value


def test_workflows_reference_files_that_exist() -> None:
    """Paths the deploy workflow reads (templates, tools, Dockerfile) exist in the repository."""
    text = (WORKFLOWS / "deploy.yml").read_text(encoding="utf-8")
    for path in ("ecs/tools/scan_gate.py", "ecs/tools/fill_placeholders.py", "docker/Dockerfile"):
        assert path in text
        if path != "docker/Dockerfile":
            assert (ROOT / path).is_file()
    for family in FAMILIES:
        assert (ROOT / "ecs" / "task-definitions" / f"{family}.json").is_file()
