"""The two ECS services, the api's target group and autoscaling: valid AWS inputs, safe rollouts.

Each JSON under ecs/services, ecs/load-balancer and ecs/autoscaling is the --cli-input-json of
one AWS call; filled with sample values it must pass botocore's input validation for that call.
"""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.deploy.support import ECS, FAMILIES, SAMPLE_VALUES, container, filled

# file under ecs/ → (botocore service, operation)
INPUTS = {
    "services/api.json": ("ecs", "CreateService"),
    "services/syncer.json": ("ecs", "CreateService"),
    "load-balancer/api-target-group.json": ("elbv2", "CreateTargetGroup"),
    "load-balancer/api-target-group-attributes.json": ("elbv2", "ModifyTargetGroupAttributes"),
    "autoscaling/api-scalable-target.json": ("application-autoscaling", "RegisterScalableTarget"),
    "autoscaling/api-cpu-policy.json": ("application-autoscaling", "PutScalingPolicy"),
    "autoscaling/api-requests-policy.json": ("application-autoscaling", "PutScalingPolicy"),
}


def service(family: str) -> dict[str, Any]:
    document: dict[str, Any] = filled(f"services/{family}.json")
    return document


def test_every_input_file_is_listed() -> None:
    """No JSON under ecs/services, load-balancer or autoscaling escapes validation."""
    present = {
        str(path.relative_to(ECS))
        for folder in ("services", "load-balancer", "autoscaling")
        for path in (ECS / folder).glob("*.json")
    }
    assert present == set(INPUTS)


@pytest.mark.parametrize("relative", sorted(INPUTS))
def test_valid_aws_input(relative: str) -> None:
    """Filled with sample values, the file is valid input for its AWS call (botocore, offline)."""
    service_name, operation = INPUTS[relative]
    model = botocore.session.get_session().get_service_model(service_name)
    report = ParamValidator().validate(filled(relative), model.operation_model(operation).input_shape)
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize("family", FAMILIES)
def test_service_runs_its_family_on_fargate_privately(family: str) -> None:
    """Each service runs its own family on Fargate, in private subnets, without ECS Exec."""
    spec = service(family)
    assert spec["serviceName"] == f"customers-mngr-{family}"
    assert spec["taskDefinition"] == f"customers-mngr-{family}"
    assert spec["launchType"] == "FARGATE"
    assert spec["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "DISABLED"
    assert spec["enableExecuteCommand"] is False, "no shell into a task that holds the keys"
    assert spec["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}


def test_both_services_share_the_cluster_but_not_the_security_group() -> None:
    """Same cluster; separate security groups (only the api takes traffic from the load balancer)."""
    api, syncer = service("api"), service("syncer")
    assert api["cluster"] == syncer["cluster"]
    groups = [s["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] for s in (api, syncer)]
    assert not set(groups[0]) & set(groups[1])


def test_syncer_is_a_single_task_without_overlap_on_deploy() -> None:
    """desiredCount 1, and a deploy stops the old task before starting the new one (max 100%)."""
    spec = service("syncer")
    assert spec["desiredCount"] == 1
    assert spec["deploymentConfiguration"]["maximumPercent"] == 100
    assert spec["deploymentConfiguration"]["minimumHealthyPercent"] == 0
    assert "loadBalancers" not in spec


def test_api_is_behind_the_target_group_on_ready() -> None:
    """The api registers its container port with the target group, whose health check is /ready."""
    spec = service("api")
    assert spec["desiredCount"] >= 2
    assert spec["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    (binding,) = spec["loadBalancers"]
    assert binding["targetGroupArn"] == SAMPLE_VALUES["API_TARGET_GROUP_ARN"]
    assert binding["containerName"] == container("api")["name"]
    assert binding["containerPort"] == container("api")["portMappings"][0]["containerPort"]
    group = filled("load-balancer/api-target-group.json")
    assert group["HealthCheckPath"] == "/ready"
    assert group["TargetType"] == "ip", "awsvpc tasks register by IP"
    assert group["Port"] == binding["containerPort"]
    assert spec["healthCheckGracePeriodSeconds"] >= container("api")["healthCheck"]["startPeriod"]


def test_deregistration_delay_fits_in_the_stop_timeout() -> None:
    """The target group drains a task faster than ECS would kill it, so deploys stay quick."""
    attributes = {a["Key"]: a["Value"] for a in filled("load-balancer/api-target-group-attributes.json")["Attributes"]}
    assert int(attributes["deregistration_delay.timeout_seconds"]) <= container("api")["stopTimeout"]


def test_api_autoscaling_targets_the_api_service_only() -> None:
    """Autoscaling keeps 2+ api tasks and tracks CPU and request count; the syncer never scales."""
    target = filled("autoscaling/api-scalable-target.json")
    spec = service("api")
    resource = f"service/{spec['cluster']}/{spec['serviceName']}"
    assert target["ResourceId"] == resource
    assert target["MinCapacity"] == spec["desiredCount"] <= target["MaxCapacity"]
    metrics = set()
    for name in ("api-cpu-policy.json", "api-requests-policy.json"):
        policy = filled(f"autoscaling/{name}")
        assert policy["ResourceId"] == resource
        assert policy["PolicyType"] == "TargetTrackingScaling"
        metrics.add(
            policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]["PredefinedMetricType"]
        )
    assert metrics == {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"}
    assert not [p for p in (ECS / "autoscaling").glob("*.json") if "syncer" in p.read_text(encoding="utf-8")]
