"""docker/Dockerfile: hadolint-clean, and consistent with what the ECS task definitions assume."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.deploy.support import DOCKERFILE, FAMILIES, ROOT, container, run_tool, tool_path


def instructions(name: str) -> list[str]:
    """Arguments of every `NAME` instruction of the final stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    final_stage = re.split(r"(?im)^FROM\s", text)[-1]
    return [m.group(1).strip() for m in re.finditer(rf"(?im)^{name}\s+(.+)$", final_stage)]


def test_hadolint_finds_nothing() -> None:
    """hadolint reports nothing at any level (a justified exception is an inline `# hadolint ignore=`)."""
    done = run_tool([tool_path("hadolint"), "--no-color", str(DOCKERFILE.relative_to(ROOT))])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_hadolint_is_real(tmp_path: Path) -> None:
    """The same hadolint run flags an unpinned base image, root, and apt without pins."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian\nRUN apt-get update && apt-get install -y curl\n")
    done = run_tool([tool_path("hadolint"), "--no-color", str(bad)])
    assert done.returncode == 1
    for rule in ("DL3006", "DL3008", "DL3015"):
        assert rule in done.stdout


def test_task_definitions_run_the_images_user_and_binary() -> None:
    """The task definitions' user and health-check binary are the image's USER and ENTRYPOINT."""
    (user,) = instructions("USER")
    (entrypoint,) = instructions("ENTRYPOINT")
    binary = json.loads(entrypoint)
    assert len(binary) == 1, "the entrypoint is the binary alone (commands come from the task definition)"
    assert not user.startswith("0") and user.split(":")[0] != "root"
    for family in FAMILIES:
        definition = container(family)
        assert definition["user"] == user
        assert definition["healthCheck"]["command"][1] == binary[0]


def test_image_exposes_the_ports_the_task_definitions_map() -> None:
    """Every containerPort of the task definitions is EXPOSEd by the image."""
    exposed = {int(port.split("/")[0]) for line in instructions("EXPOSE") for port in line.split()}
    for family in FAMILIES:
        assert {m["containerPort"] for m in container(family)["portMappings"]} <= exposed
