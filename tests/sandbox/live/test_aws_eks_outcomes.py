"""Patch 8 of sandbox/aws/patches.py against the running sandbox: queued EKS outcomes
(POST /_sandbox/eks-outcomes) make a node group end CREATE_FAILED or DELETE_FAILED, an update
end Failed or Cancelled, or either hang until released, as real EKS can."""

from __future__ import annotations

import contextlib

import pytest

from conftest_aws import *  # noqa: F401,F403 - the aws_* fixtures
from conftest_aws import SandboxApi

CLUSTER = "sandbox"


class Outcomes:
    def __init__(self, api: SandboxApi):
        self.api = api

    def queue(self, **spec: object) -> list[dict]:
        status, body = self.api.call("POST", "/_sandbox/eks-outcomes", spec)
        assert status == 201, body
        return body["queued"]

    def listing(self) -> dict:
        status, body = self.api.call("GET", "/_sandbox/eks-outcomes")
        assert status == 200, body
        return body

    def release(self) -> dict:
        status, body = self.api.call("DELETE", "/_sandbox/eks-outcomes")
        assert status == 200, body
        return body


@pytest.fixture
def outcomes(aws_env):
    book = Outcomes(SandboxApi(aws_env["endpoint"]))
    yield book
    book.release()


@pytest.fixture
def make_nodegroup(aws_client, aws_seed):
    eks = aws_client("eks")
    made = []

    def make(name: str, **kw: object) -> dict:
        kw.setdefault("labels", {"team": "a"})
        kw.setdefault("scalingConfig", {"minSize": 1, "maxSize": 3, "desiredSize": 1})
        made.append(name)
        return eks.create_nodegroup(clusterName=CLUSTER, nodegroupName=name,
                                    subnets=aws_seed["subnets"], nodeRole=aws_seed["node_role"],
                                    **kw)["nodegroup"]

    yield make
    for name in made:
        with contextlib.suppress(eks.exceptions.ResourceNotFoundException):
            eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=name)


def describe(eks, name: str) -> dict:
    return eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=name)["nodegroup"]


def asg(aws_client, nodegroup: dict) -> dict | None:
    name = nodegroup["resources"]["autoScalingGroups"][0]["name"]
    found = aws_client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[name])["AutoScalingGroups"]
    return found[0] if found else None


# -- node groups --------------------------------------------------------------------------------
def test_create_failed_reports_health_issues_and_can_be_deleted(aws_client, outcomes, make_nodegroup, aws_name):
    eks = aws_client("eks")
    outcomes.queue(nodegroup=aws_name, operation="CreateNodegroup", outcome="CREATE_FAILED",
                   issues=[{"code": "AsgInstanceLaunchFailures",
                            "message": "Could not launch On-Demand Instances. InsufficientInstanceCapacity"}])
    assert make_nodegroup(aws_name)["status"] == "CREATING"
    ng = describe(eks, aws_name)
    assert ng["status"] == "CREATE_FAILED"
    assert ng["health"]["issues"] == [{
        "code": "AsgInstanceLaunchFailures",
        "message": "Could not launch On-Demand Instances. InsufficientInstanceCapacity",
        "resourceIds": [ng["resources"]["autoScalingGroups"][0]["name"]]}]
    # EKS starts no update on a node group that is not ACTIVE.
    with pytest.raises(eks.exceptions.ResourceInUseException, match="not in Active State"):
        eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=aws_name,
                                    labels={"addOrUpdateLabels": {"x": "y"}})
    assert outcomes.listing()["queued"] == []
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=aws_name)
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        describe(eks, aws_name)


def test_create_hangs_in_creating_until_released(aws_client, outcomes, make_nodegroup, aws_name):
    eks = aws_client("eks")
    outcomes.queue(nodegroup=aws_name, operation="CreateNodegroup", outcome="hang")
    make_nodegroup(aws_name)
    assert [describe(eks, aws_name)["status"] for _ in range(3)] == ["CREATING"] * 3
    held = outcomes.listing()["held"]
    assert [(h["nodegroup"], h["operation"], h["status"]) for h in held] == [(aws_name, "CreateNodegroup", "CREATING")]
    assert outcomes.release() == {"cleared": 0, "released": 1}
    assert describe(eks, aws_name)["status"] == "ACTIVE"


def test_delete_failed_keeps_the_nodegroup_and_its_autoscaling_group(aws_client, outcomes, make_nodegroup, aws_name):
    eks = aws_client("eks")
    make_nodegroup(aws_name)
    outcomes.queue(nodegroup=aws_name, operation="DeleteNodegroup", outcome="DELETE_FAILED")
    assert eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=aws_name)["nodegroup"]["status"] == "DELETING"
    ng = describe(eks, aws_name)
    assert ng["status"] == "DELETE_FAILED"
    assert [i["code"] for i in ng["health"]["issues"]] == ["Ec2SecurityGroupDeletionFailure"]
    assert asg(aws_client, ng) is not None
    # A second DeleteNodegroup (nothing queued) deletes it, as retrying does on EKS.
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=aws_name)
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        describe(eks, aws_name)
    assert asg(aws_client, ng) is None


def test_delete_hangs_in_deleting_until_released(aws_client, outcomes, make_nodegroup, aws_name):
    eks = aws_client("eks")
    ng = make_nodegroup(aws_name)
    outcomes.queue(nodegroup=aws_name, operation="DeleteNodegroup", outcome="hang")
    eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=aws_name)
    assert [describe(eks, aws_name)["status"] for _ in range(2)] == ["DELETING"] * 2
    assert asg(aws_client, describe(eks, aws_name)) is not None
    assert outcomes.release()["released"] == 1
    with pytest.raises(eks.exceptions.ResourceNotFoundException):
        describe(eks, aws_name)
    assert asg(aws_client, ng) is None


# -- updates ------------------------------------------------------------------------------------
@pytest.mark.parametrize("end", ["Failed", "Cancelled"])
def test_config_update_that_fails_or_is_cancelled_changes_nothing(aws_client, outcomes, make_nodegroup, aws_name, end):
    eks = aws_client("eks")
    make_nodegroup(aws_name)
    errors = [{"errorCode": "AccessDenied", "errorMessage": "denied by an SCP", "resourceIds": ["i-0abc"]}]
    outcomes.queue(nodegroup=aws_name, operation="UpdateNodegroupConfig", outcome=end, errors=errors)
    update = eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=aws_name,
                                         labels={"addOrUpdateLabels": {"team": "b"}},
                                         scalingConfig={"minSize": 2, "maxSize": 3, "desiredSize": 2})["update"]
    assert update["status"] == end
    described = eks.describe_update(name=CLUSTER, nodegroupName=aws_name, updateId=update["id"])["update"]
    assert described["status"] == end and described["errors"] == errors
    assert {p["type"] for p in described["params"]} >= {"LabelsToAdd", "DesiredSize"}
    ng = describe(eks, aws_name)
    assert ng["status"] == "ACTIVE"
    assert ng["labels"] == {"team": "a"}
    assert ng["scalingConfig"] == {"minSize": 1, "maxSize": 3, "desiredSize": 1}
    assert asg(aws_client, ng)["DesiredCapacity"] == 1
    # Consumed: the same update again succeeds.
    again = eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=aws_name,
                                        labels={"addOrUpdateLabels": {"team": "b"}})["update"]
    assert again["status"] == "Successful"
    assert describe(eks, aws_name)["labels"] == {"team": "b"}


def test_version_update_failure_keeps_the_running_template_version(aws_client, outcomes, make_nodegroup, aws_name):
    eks, ec2 = aws_client("eks"), aws_client("ec2")
    template = ec2.create_launch_template(LaunchTemplateName=aws_name,
                                          LaunchTemplateData={"InstanceType": "g4dn.xlarge"})["LaunchTemplate"]
    try:
        ec2.create_launch_template_version(LaunchTemplateId=template["LaunchTemplateId"],
                                           LaunchTemplateData={"InstanceType": "g5.xlarge"})
        make_nodegroup(aws_name, launchTemplate={"id": template["LaunchTemplateId"], "version": "1"})
        outcomes.queue(nodegroup=aws_name, operation="UpdateNodegroupVersion", outcome="Failed")
        update = eks.update_nodegroup_version(clusterName=CLUSTER, nodegroupName=aws_name,
                                              launchTemplate={"id": template["LaunchTemplateId"], "version": "2"})["update"]
        described = eks.describe_update(name=CLUSTER, nodegroupName=aws_name, updateId=update["id"])["update"]
        ng = describe(eks, aws_name)
        assert described["status"] == "Failed"
        assert described["errors"] == [{
            "errorCode": "PodEvictionFailure",
            "errorMessage": f"Reached max retries while trying to evict pods from nodes in node group {aws_name}",
            "resourceIds": [ng["resources"]["autoScalingGroups"][0]["name"]]}]
        assert ng["launchTemplate"]["version"] == "1"
        assert ng["instanceTypes"] == ["g4dn.xlarge"]
        assert asg(aws_client, ng)["LaunchTemplate"]["Version"] == "1"
    finally:
        with contextlib.suppress(eks.exceptions.ResourceNotFoundException):
            eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName=aws_name)
        ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])


def test_update_hangs_in_progress_until_released(aws_client, outcomes, make_nodegroup, aws_name):
    eks = aws_client("eks")
    make_nodegroup(aws_name)
    outcomes.queue(nodegroup=aws_name, operation="UpdateNodegroupConfig", outcome="hang")
    update = eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=aws_name,
                                         labels={"addOrUpdateLabels": {"team": "b"}},
                                         scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 3})["update"]
    assert update["status"] == "InProgress"
    assert eks.describe_update(name=CLUSTER, nodegroupName=aws_name, updateId=update["id"])["update"]["status"] == "InProgress"
    ng = describe(eks, aws_name)
    # The node group shows its old configuration until the update ends.
    assert (ng["status"], ng["labels"], ng["scalingConfig"]["desiredSize"]) == ("UPDATING", {"team": "a"}, 1)
    with pytest.raises(eks.exceptions.ResourceInUseException, match="UPDATING"):
        eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=aws_name,
                                    labels={"addOrUpdateLabels": {"other": "c"}})
    assert [h["updateId"] for h in outcomes.listing()["held"]] == [update["id"]]
    assert outcomes.release()["released"] == 1
    assert eks.describe_update(name=CLUSTER, nodegroupName=aws_name, updateId=update["id"])["update"]["status"] == "Successful"
    ng = describe(eks, aws_name)
    assert (ng["status"], ng["labels"], ng["scalingConfig"]["desiredSize"]) == ("ACTIVE", {"team": "b"}, 3)
    assert asg(aws_client, ng)["DesiredCapacity"] == 3


def test_outcome_is_consumed_only_by_a_matching_call_that_succeeds(aws_client, outcomes, make_nodegroup, aws_name):
    eks = aws_client("eks")
    make_nodegroup(aws_name)
    outcomes.queue(nodegroup=aws_name, operation="UpdateNodegroupConfig", outcome="Failed")
    outcomes.queue(nodegroup="some-other-group", operation="UpdateNodegroupConfig", outcome="Failed")
    with pytest.raises(eks.exceptions.InvalidParameterException):
        eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=aws_name,
                                    scalingConfig={"minSize": 3, "maxSize": 2, "desiredSize": 2})
    assert len(outcomes.listing()["queued"]) == 2
    update = eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=aws_name,
                                         labels={"addOrUpdateLabels": {"team": "b"}})["update"]
    assert update["status"] == "Failed"
    assert [q["nodegroup"] for q in outcomes.listing()["queued"]] == ["some-other-group"]
    assert outcomes.release() == {"cleared": 1, "released": 0}


def test_refused_outcomes_are_answered_400(aws_env):
    api = SandboxApi(aws_env["endpoint"])
    status, body = api.call("POST", "/_sandbox/eks-outcomes",
                            {"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "Failed"})
    assert status == 400 and "CREATE_FAILED, hang" in body["error"]
    status, body = api.call("POST", "/_sandbox/eks-outcomes",
                            {"nodegroup": "n", "operation": "UpdateNodegroupConfig", "outcome": "Failed",
                             "errors": [{"errorCode": "NotAnEksCode"}]})
    assert status == 400 and "not one of EKS's" in body["error"]
    assert api.call("PATCH", "/_sandbox/eks-outcomes")[0] == 405
    assert api.call("GET", "/_sandbox/eks-outcomes")[1]["queued"] == []
