"""Shared pieces of the offline deployment checks: paths, sample values, the repo's own tools.

The task definitions, IAM documents and service inputs under `ecs/` are templates with
`<NAME>` placeholders; tests fill them with the same tool the deploy workflow runs
(`ecs/tools/fill_placeholders.py`), using the well-formed sample values below.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ECS = ROOT / "ecs"
WORKFLOWS = ROOT / ".github" / "workflows"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "compose.yml"

FAMILIES = ("api", "syncer")
ACCOUNT = "123456789012"
REGION = "eu-west-1"
REPOSITORY = "acme/customers-mngr"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/customers-mngr:3f9c2d1e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"


def _secret(name: str, suffix: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:customers-mngr/production/{name}-{suffix}"


# One well-formed value per placeholder used anywhere under ecs/ (a new placeholder without a
# sample here fails the tests, which is the point: the workflow must be taught to fill it too).
SAMPLE_VALUES: dict[str, str] = {
    "AWS_ACCOUNT_ID": ACCOUNT,
    "AWS_REGION": REGION,
    "IMAGE": IMAGE,
    "GITHUB_REPOSITORY": REPOSITORY,
    "DB_READER_HOST": f"customers.cluster-ro-c9akciq32.{REGION}.rds.amazonaws.com",
    "DB_WRITER_HOST": f"customers.cluster-c9akciq32.{REGION}.rds.amazonaws.com",
    "DB_NAME": "customers_mngr",
    "PROVIDER_URL": "https://provider.example.com/api/v1/usuarios",
    "DB_API_SECRET_ARN": _secret("db-api", "Qug0Pf"),
    "DB_SYNCER_SECRET_ARN": _secret("db-syncer", "x7Tb2K"),
    "CRYPTO_SECRET_ARN": _secret("crypto", "M3nZ9a"),
    "API_TOKENS_SECRET_ARN": _secret("api-tokens", "p0Rr4e"),
    "PROVIDER_SECRET_ARN": _secret("provider", "Lk8sW1"),
    "SECRETS_KMS_KEY_ARN": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
    "API_TARGET_GROUP_ARN": (
        f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/customers-mngr-api/73e2d6bc24d8a067"
    ),
    "ALB_RESOURCE_LABEL": "app/customers-mngr/50dc6c495c0c9188/targetgroup/customers-mngr-api/73e2d6bc24d8a067",
    "VPC_ID": "vpc-0a1b2c3d4e5f60718",
    "PRIVATE_SUBNET_A": "subnet-0a1b2c3d4e5f60711",
    "PRIVATE_SUBNET_B": "subnet-0a1b2c3d4e5f60722",
    "API_SECURITY_GROUP_ID": "sg-0a1b2c3d4e5f60733",
    "SYNCER_SECURITY_GROUP_ID": "sg-0a1b2c3d4e5f60744",
}


def load_tool(name: str) -> ModuleType:
    """Import one of ecs/tools/*.py (standalone scripts, not part of the package)."""
    path = ECS / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"ecs_tools_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@cache
def fill_tool() -> ModuleType:
    return load_tool("fill_placeholders")


@cache
def scan_tool() -> ModuleType:
    return load_tool("scan_gate")


def template(relative: str) -> Any:
    """The raw JSON template at ecs/<relative>."""
    return json.loads((ECS / relative).read_text(encoding="utf-8"))


def filled(relative: str) -> Any:
    """The template at ecs/<relative> with every placeholder filled with its sample value."""
    return fill_tool().fill(template(relative), SAMPLE_VALUES)


def task_definition(family: str) -> dict[str, Any]:
    """What the deploy workflow registers: filled (image kept), then rendered with the image."""
    document: dict[str, Any] = fill_tool().fill(
        template(f"task-definitions/{family}.json"), SAMPLE_VALUES, keep=["IMAGE"]
    )
    return render(document, container_name=family, image=IMAGE)


def render(document: dict[str, Any], *, container_name: str, image: str) -> dict[str, Any]:
    """What aws-actions/amazon-ecs-render-task-definition does: set one container's image, by name."""
    containers = [c for c in document["containerDefinitions"] if c["name"] == container_name]
    if len(containers) != 1:
        raise AssertionError(f"no single container named {container_name!r} to render")
    containers[0]["image"] = image
    return document


def container(family: str) -> dict[str, Any]:
    definitions: list[dict[str, Any]] = task_definition(family)["containerDefinitions"]
    assert len(definitions) == 1, f"{family}: one container per task"
    return definitions[0]


def workflow(name: str) -> dict[str, Any]:
    data: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the bare key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def tool_path(name: str) -> str:
    """A command-line tool installed by the dev extra (next to this Python), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: `make venv` installs it with the dev extra"
    return found


def run_tool(
    args: list[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120, check=False
    )
