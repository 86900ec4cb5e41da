"""IAM documents under ecs/iam: the OIDC trust pinned to this repository, least privilege per family."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy.support import ECS, FAMILIES, REPOSITORY, SAMPLE_VALUES, container, filled, task_definition

POLICIES = sorted(path.name for path in (ECS / "iam").glob("*.json"))


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["Statement"]
    return found


def as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def secret_arns(family: str) -> set[str]:
    """The secrets a family's task definition reads: `valueFrom` less its `:json-key::` tail."""
    return {":".join(item["valueFrom"].split(":")[:7]) for item in container(family)["secrets"]}


def grants(document: dict[str, Any], action: str) -> set[str]:
    """The resources an Allow statement gives `action` on."""
    return {
        resource
        for statement in statements(document)
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


@pytest.mark.parametrize("name", POLICIES)
def test_policy_documents_are_well_formed(name: str) -> None:
    """Version 2012-10-17, Allow statements with a Sid, no wildcard actions, no NotAction."""
    document = filled(f"iam/{name}")
    assert document["Version"] == "2012-10-17"
    for statement in statements(document):
        assert statement["Effect"] == "Allow"
        assert re.fullmatch(r"[A-Za-z0-9]+", statement["Sid"])
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in as_list(statement["Action"]):
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z]+", action), f"{name}: {action} is a wildcard or malformed"


def test_github_oidc_trust_is_pinned_to_this_repository_and_environment() -> None:
    """Only this repository's `production` environment (deploy.yml's job) may assume the deploy role."""
    (statement,) = statements(filled("iam/github-oidc-trust-policy.json"))
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    account = SAMPLE_VALUES["AWS_ACCOUNT_ID"]
    assert statement["Principal"] == {
        "Federated": f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"
    }
    assert set(statement["Condition"]) == {"StringEquals"}, "exact match only: no StringLike wildcards"
    condition = statement["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert condition["token.actions.githubusercontent.com:sub"] == f"repo:{REPOSITORY}:environment:production"


def test_task_roles_trust_only_ecs_tasks_of_this_account() -> None:
    """The task and execution roles' trust: ecs-tasks, with SourceAccount and SourceArn conditions."""
    (statement,) = statements(filled("iam/ecs-tasks-trust-policy.json"))
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == SAMPLE_VALUES["AWS_ACCOUNT_ID"]
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"].startswith("arn:aws:ecs:")


@pytest.mark.parametrize("family", FAMILIES)
def test_execution_role_reads_exactly_its_familys_secrets(family: str) -> None:
    """GetSecretValue on the secrets the family's task definition references, and on no other."""
    policy = filled(f"iam/{family}-execution-role-policy.json")
    referenced = secret_arns(family)
    assert grants(policy, "secretsmanager:GetSecretValue") == referenced
    other = "syncer" if family == "api" else "api"
    assert secret_arns(other) - referenced, "the families do not share every secret (sanity)"
    (decrypt,) = [s for s in statements(policy) if "kms:Decrypt" in as_list(s["Action"])]
    assert (
        decrypt["Condition"]["StringEquals"]["kms:ViaService"]
        == f"secretsmanager.{SAMPLE_VALUES['AWS_REGION']}.amazonaws.com"
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_execution_role_writes_only_its_log_group_and_pulls_only_the_image(family: str) -> None:
    """Log writes are scoped to the family's log group; image pulls to the one ECR repository."""
    policy = filled(f"iam/{family}-execution-role-policy.json")
    group = container(family)["logConfiguration"]["options"]["awslogs-group"]
    region, account = SAMPLE_VALUES["AWS_REGION"], SAMPLE_VALUES["AWS_ACCOUNT_ID"]
    assert grants(policy, "logs:PutLogEvents") == {f"arn:aws:logs:{region}:{account}:log-group:{group}:*"}
    assert grants(policy, "ecr:BatchGetImage") == {f"arn:aws:ecr:{region}:{account}:repository/customers-mngr"}


def test_deploy_role_passes_only_the_four_task_roles_to_ecs_tasks() -> None:
    """iam:PassRole is limited to the roles the task definitions name, and only towards ecs-tasks."""
    policy = filled("iam/deploy-role-policy.json")
    roles = {task_definition(f)[key] for f in FAMILIES for key in ("taskRoleArn", "executionRoleArn")}
    assert grants(policy, "iam:PassRole") == roles
    (passing,) = [s for s in statements(policy) if "iam:PassRole" in as_list(s["Action"])]
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_deploy_role_updates_only_the_two_services_and_pushes_only_the_repository() -> None:
    """UpdateService on the two services; image push and scan reads on the one repository."""
    policy = filled("iam/deploy-role-policy.json")
    region, account = SAMPLE_VALUES["AWS_REGION"], SAMPLE_VALUES["AWS_ACCOUNT_ID"]
    services = {filled(f"services/{f}.json")["serviceName"] for f in FAMILIES}
    cluster = filled("services/api.json")["cluster"]
    assert grants(policy, "ecs:UpdateService") == {
        f"arn:aws:ecs:{region}:{account}:service/{cluster}/{name}" for name in services
    }
    repository = {f"arn:aws:ecr:{region}:{account}:repository/customers-mngr"}
    for action in ("ecr:PutImage", "ecr:DescribeImageScanFindings", "ecr:DescribeImages"):
        assert grants(policy, action) == repository, action
    assert not grants(policy, "secretsmanager:GetSecretValue"), "the deploy role never reads a secret"
