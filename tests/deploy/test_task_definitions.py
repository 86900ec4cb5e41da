"""The two ECS task definitions: valid RegisterTaskDefinition input, and what production needs.

Each family is filled with sample values and rendered exactly as deploy.yml does, then checked
against botocore's ECS model (offline) and against the daemon itself: its CLI parser, its
declared variables and their secrecy, its shutdown budget, and `load_settings` in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from daemon.cli import build_parser
from daemon.config import ALL_VARS, load_settings
from daemon.config.process import SHUTDOWN_TIMEOUT_S
from tests.deploy.support import FAMILIES, IMAGE, SAMPLE_VALUES, container, task_definition, template

VARS = {var.name: var for var in ALL_VARS}
SECRET_VARS = {name for name, var in VARS.items() if var.secret}
SECRET_LIKE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY|AUTH|CREDENTIAL|PRIVATE", re.IGNORECASE)
SECRET_ARN = re.compile(
    r"^arn:aws:secretsmanager:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):secret:(?P<name>[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6})"
    r":(?P<key>[A-Za-z0-9_]+)::$"
)
# Least privilege: what each family's process gets, and nothing more. The api decrypts for
# admin requests and looks cards up through the blind index, but never writes, so it has no
# active key; only the syncer talks to the provider; only the api checks tokens.
EXPECTED_SECRETS = {
    "api": {"DB_USER", "DB_PASSWORD", "ENCRYPTION_KEYS", "INDEX_KEY", "API_TOKENS"},
    "syncer": {
        "DB_USER",
        "DB_PASSWORD",
        "ENCRYPTION_KEYS",
        "ENCRYPTION_ACTIVE_KEY",
        "INDEX_KEY",
        "PROVIDER_AUTH_HEADER",
    },
}
MODES = {"api": "api", "syncer": "syncer"}
PORT_VAR = {"api": "API_PORT", "syncer": "METRICS_PORT"}
DB_ENDPOINT = {"api": "DB_READER_HOST", "syncer": "DB_WRITER_HOST"}
# Fargate's valid task sizes (CPU units → memory MiB), for the sizes worth considering here.
FARGATE_SIZES = {
    "256": {512, 1024, 2048},
    "512": set(range(1024, 4097, 1024)),
    "1024": set(range(2048, 8193, 1024)),
    "2048": set(range(4096, 16385, 1024)),
}


def env_of(definition: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in definition.get("environment", [])}


def secrets_of(definition: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["valueFrom"] for item in definition.get("secrets", [])}


@pytest.mark.parametrize("family", FAMILIES)
def test_valid_register_task_definition_input(family: str) -> None:
    """The rendered task definition passes botocore's RegisterTaskDefinition input validation."""
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(task_definition(family), shape)
    assert not report.has_errors(), report.generate_report()


def test_validation_catches_a_broken_definition() -> None:
    """The botocore validation is real: an unknown key and a wrong type are reported."""
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    broken = task_definition("api")
    broken["containerDefinitions"][0]["stopTimeout"] = "30"
    broken["containerDefinitions"][0]["readOnlyRootFilesystem"] = True
    report = ParamValidator().validate(broken, shape).generate_report()
    assert "stopTimeout" in report
    assert "readOnlyRootFilesystem" in report


def test_both_families_run_the_same_image_through_a_placeholder() -> None:
    """One image for both families: the templates hold a placeholder, rendering sets the same URI."""
    for family in FAMILIES:
        assert template(f"task-definitions/{family}.json")["containerDefinitions"][0]["image"] == "<IMAGE>"
    assert {container(family)["image"] for family in FAMILIES} == {IMAGE}


@pytest.mark.parametrize("family", FAMILIES)
def test_fargate_awsvpc_x86_64_and_a_valid_size(family: str) -> None:
    """Fargate, awsvpc, Linux x86_64 (the binary is built for linux/x86_64), a valid CPU/memory pair."""
    definition = task_definition(family)
    assert definition["family"] == f"customers-mngr-{family}"
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    assert definition["networkMode"] == "awsvpc"
    assert definition["runtimePlatform"] == {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"}
    assert int(definition["memory"]) in FARGATE_SIZES[definition["cpu"]]


def test_each_family_has_its_own_task_and_execution_roles() -> None:
    """Four distinct roles: a task role and an execution role per family."""
    roles = [task_definition(f)[key] for f in FAMILIES for key in ("taskRoleArn", "executionRoleArn")]
    assert len(set(roles)) == 4
    for family in FAMILIES:
        definition = task_definition(family)
        assert definition["taskRoleArn"].endswith(f":role/customers-mngr-{family}-task")
        assert definition["executionRoleArn"].endswith(f":role/customers-mngr-{family}-execution")


@pytest.mark.parametrize("family", FAMILIES)
def test_command_is_a_valid_invocation_of_the_binary(family: str) -> None:
    """The command parses with the daemon's own CLI parser as `run --mode <family>`."""
    args = build_parser().parse_args(container(family)["command"])
    assert args.command == "run"
    assert args.mode == MODES[family]
    # MODE too, so the image's own HEALTHCHECK (and `healthcheck` without --url) probes the right port.
    assert env_of(container(family))["MODE"] == MODES[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_health_check_calls_the_binary_on_the_served_port(family: str) -> None:
    """healthCheck execs the binary's `healthcheck` (no shell, no curl) against the container's own port."""
    definition = container(family)
    command = definition["healthCheck"]["command"]
    assert command[0] == "CMD", "exec form: the image has no shell"
    assert command[1].startswith("/") and command[1].endswith("/customers-mngr")
    args = build_parser().parse_args(command[2:])
    assert args.command == "healthcheck"
    port = int(env_of(definition).get(PORT_VAR[family], VARS[PORT_VAR[family]].default or "0"))
    assert args.url == f"http://127.0.0.1:{port}/health"
    assert [m["containerPort"] for m in definition["portMappings"]] == [port]
    check = definition["healthCheck"]
    assert 5 <= check["interval"] <= 300 and 2 <= check["timeout"] <= 60 and 1 <= check["retries"] <= 10
    assert check["timeout"] > args.timeout, "the probe's own timeout must end before ECS gives up on it"
    assert 0 <= check["startPeriod"] <= 300


@pytest.mark.parametrize("family", FAMILIES)
def test_stop_timeout_exceeds_the_shutdown_budget(family: str) -> None:
    """stopTimeout (SIGTERM → SIGKILL) is above the daemon's SHUTDOWN_TIMEOUT_S, and within Fargate's 120 s."""
    definition = container(family)
    budget = float(env_of(definition).get("SHUTDOWN_TIMEOUT_S", SHUTDOWN_TIMEOUT_S.default or "nan"))
    assert definition["stopTimeout"] > budget
    assert definition["stopTimeout"] <= 120


@pytest.mark.parametrize("family", FAMILIES)
def test_hardened_container(family: str) -> None:
    """Read-only root, non-root numeric user, init process, no capabilities, essential."""
    definition = container(family)
    assert definition["essential"] is True
    assert definition["readonlyRootFilesystem"] is True
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", definition["user"]), "numeric, non-root uid:gid"
    assert definition["linuxParameters"]["initProcessEnabled"] is True
    assert definition["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert "mountPoints" not in definition, "the one-dir binary needs no writable path"
    assert "privileged" not in definition


@pytest.mark.parametrize("family", FAMILIES)
def test_logs_go_to_the_familys_own_log_group(family: str) -> None:
    """awslogs to /ecs/customers-mngr-<family>; the api (audit events) never drops a line."""
    options = container(family)["logConfiguration"]["options"]
    assert container(family)["logConfiguration"]["logDriver"] == "awslogs"
    assert options["awslogs-group"] == f"/ecs/customers-mngr-{family}"
    assert options["awslogs-region"] == SAMPLE_VALUES["AWS_REGION"]
    assert options["awslogs-stream-prefix"] == family
    assert "awslogs-create-group" not in options, "log groups are created beforehand, with retention"
    if family == "api":
        assert options["mode"] == "blocking", "audit events (PCI DSS 10.2) are never dropped"


@pytest.mark.parametrize("family", FAMILIES)
def test_environment_names_are_declared_variables_and_hold_no_secret(family: str) -> None:
    """Every environment name is a real, non-secret variable of the daemon; nothing secret-like."""
    environment = env_of(container(family))
    assert environment["APP_ENV"] == "production"
    unknown = set(environment) - set(VARS)
    assert not unknown, f"not variables of the daemon: {unknown}"
    assert not set(environment) & SECRET_VARS
    assert not [name for name in environment if SECRET_LIKE.search(name)]
    assert not [v for v in environment.values() if SECRET_LIKE.search(v) and "://" not in v]


@pytest.mark.parametrize("family", FAMILIES)
def test_secrets_come_from_secrets_manager_json_keys(family: str) -> None:
    """Every secret is a complete Secrets Manager ARN with a JSON key; the set is the family's least privilege."""
    secrets = secrets_of(container(family))
    assert set(secrets) == EXPECTED_SECRETS[family]
    assert set(secrets) <= set(VARS), "every secret name is a variable of the daemon"
    assert SECRET_VARS & {"DB_SECRET", "DATABASE_URL"}, "the daemon still declares them (sanity)"
    assert not {"DB_SECRET", "DATABASE_URL"} & set(secrets), "one credential source: the JSON keys"
    for name, value_from in secrets.items():
        match = SECRET_ARN.match(value_from)
        assert match, f"{name}: {value_from} is not <complete secret ARN>:<json key>::"
        assert match["region"] == SAMPLE_VALUES["AWS_REGION"] and match["account"] == SAMPLE_VALUES["AWS_ACCOUNT_ID"]
        expected_key = {"DB_USER": "username", "DB_PASSWORD": "password"}.get(name, name)
        assert match["key"] == expected_key, f"{name} reads JSON key {match['key']}"


def test_every_secret_variable_a_family_sets_comes_from_secrets() -> None:
    """No declared secret variable of the daemon is set in `environment` by either family."""
    for family in FAMILIES:
        definition = container(family)
        assert not SECRET_VARS & set(env_of(definition))
        assert SECRET_VARS & set(secrets_of(definition)), family


@pytest.mark.parametrize("family", FAMILIES)
def test_db_endpoint_per_family(family: str) -> None:
    """The api reads from the Aurora reader endpoint, the syncer writes through the writer endpoint."""
    assert env_of(container(family))["DB_HOST"] == SAMPLE_VALUES[DB_ENDPOINT[family]]
    raw = template(f"task-definitions/{family}.json")["containerDefinitions"][0]
    assert env_of(raw)["DB_HOST"] == f"<{DB_ENDPOINT[family]}>"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_daemon_starts_in_production_with_exactly_this_configuration(family: str, tmp_path: Path) -> None:
    """load_settings accepts the family's environment plus its secrets (as ECS would inject them) in production."""
    definition = container(family)
    injected = {name: _fake_secret(name) for name in secrets_of(definition)}
    args = build_parser().parse_args(definition["command"])
    environment = env_of(definition)
    # TLS to Aurora is verified against the RDS bundle the image carries (packaging/db-ca/README.md);
    # the file only exists in a deployed image, so a stand-in file takes its place here.
    assert environment["DB_TLS"] == "verify_identity"
    assert environment["DB_TLS_CA"].startswith("/opt/customers-mngr/db-ca/")
    stand_in = tmp_path / "ca.pem"
    stand_in.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings({**environment, **injected, "DB_TLS_CA": str(stand_in)}, mode=args.mode)
    assert settings.production
    assert settings.db.tls == "verify_identity"
    assert settings.mode == MODES[family]
    assert settings.db.host == SAMPLE_VALUES[DB_ENDPOINT[family]]
    assert settings.crypto.keys is not None and settings.crypto.index_key is not None
    if family == "api":
        assert settings.api.tokens, "an api without tokens would answer 401 to everyone"
        assert settings.crypto.active_key_id is None
    else:
        assert settings.crypto.active_key_id == "k1"
        assert settings.provider.url == SAMPLE_VALUES["PROVIDER_URL"]


def _fake_secret(name: str) -> str:
    """A well-formed value of the kind each secret holds (never a real one)."""
    key = base64.b64encode(hashlib.sha256(name.encode()).digest()).decode()
    values = {
        "DB_USER": f"customers_{name.lower()}",
        "DB_PASSWORD": "not-a-real-password",
        "ENCRYPTION_KEYS": json.dumps({"k1": key}),
        "ENCRYPTION_ACTIVE_KEY": "k1",
        "INDEX_KEY": key,
        "API_TOKENS": json.dumps(
            [{"name": "reporting", "role": "analyst", "sha256": hashlib.sha256(b"x").hexdigest()}]
        ),
        "PROVIDER_AUTH_HEADER": "Bearer not-a-real-token",
    }
    return values[name]


@pytest.mark.parametrize("family", FAMILIES)
def test_db_ca_bundle_path_is_what_the_image_and_the_deploy_provide(family: str) -> None:
    """DB_TLS_CA names the file deploy.yml downloads into packaging/db-ca/, which the Dockerfile copies."""
    root = Path(__file__).resolve().parents[2]
    bundle = env_of(container(family))["DB_TLS_CA"]
    name = bundle.rsplit("/", 1)[1]
    assert "COPY packaging/db-ca/ /opt/customers-mngr/db-ca/" in (root / "docker/Dockerfile").read_text()
    assert bundle == f"/opt/customers-mngr/db-ca/{name}"
    assert (
        f"-o packaging/db-ca/{name} https://truststore.pki.rds.amazonaws.com/"
        in (root / ".github/workflows/deploy.yml").read_text()
    )
