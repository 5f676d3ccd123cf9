"""The emulator's request journal and fault injection, against the running sandbox."""

from __future__ import annotations


import pytest
from botocore.exceptions import ClientError

from conftest_aws import *  # noqa: F401,F403 - the aws_* fixtures


def test_journal_records_each_protocol(aws_client, aws_journal, aws_seed):
    aws_client("eks").describe_cluster(name="sandbox")             # rest-json
    aws_client("eks").list_nodegroups(clusterName="sandbox")
    aws_client("ec2").describe_vpcs()                              # ec2
    aws_client("autoscaling").describe_auto_scaling_groups()       # query
    aws_client("iam").get_role(RoleName="sandbox-eks-node-role")   # query
    aws_client("ssm").get_parameter(                               # json 1.1
        Name="/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/"
             "recommended/image_id")
    aws_client("cloudwatch").describe_alarms()                     # json 1.0 (botocore 1.44)
    ops = {(e["service"], e["operation"]) for e in aws_journal.entries(status=200)}
    assert {("eks", "DescribeCluster"), ("eks", "ListNodegroups"), ("ec2", "DescribeVpcs"),
            ("autoscaling", "DescribeAutoScalingGroups"), ("iam", "GetRole"),
            ("ssm", "GetParameter"), ("cloudwatch", "DescribeAlarms")} <= ops
    for entry in aws_journal.entries():
        assert set(entry) >= {"ts", "service", "operation", "mutating", "status"}
        assert entry["mutating"] is False or not entry["operation"].startswith(
            ("Describe", "List", "Get"))


def test_journal_marks_mutating_calls(aws_client, aws_journal, aws_seed):
    ec2 = aws_client("ec2")
    vpc = aws_seed["cluster"]["resourcesVpcConfig"]["vpcId"] if aws_seed["cluster"][
        "resourcesVpcConfig"].get("vpcId") else ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    ec2.create_tags(Resources=[vpc], Tags=[{"Key": "journal-test", "Value": "1"}])
    ec2.delete_tags(Resources=[vpc], Tags=[{"Key": "journal-test"}])
    entries = aws_journal.entries(service="ec2")
    assert [e["mutating"] for e in entries if e["operation"] in ("CreateTags", "DeleteTags")] \
        == [True, True]


def test_sandbox_and_moto_api_are_not_journaled(aws_sandbox, aws_journal):
    assert aws_sandbox.call("GET", "/_sandbox/health")[0] == 200
    assert aws_sandbox.call("GET", "/_sandbox/faults")[0] == 200
    # moto's dashboard page: any /moto-api/ path shows the same, and data.json (moto's whole state,
    # about 17 MB from its default AMIs, snapshots and managed policies) took over the call's 10 s
    # on a busy two-core machine.
    assert aws_sandbox.call("GET", "/moto-api/", raw=True)[0] == 200
    assert aws_journal.entries() == [] or all(
        e["operation"] for e in aws_journal.entries())  # only other users' AWS calls
    assert not [e for e in aws_journal.entries() if e["operation"] in (None, "health")]


# A rarely used read per protocol, so that concurrent users do not take the queued faults.
PROTOCOL_CASES = [
    ("eks", "ListUpdates", lambda c: c.list_updates(name="sandbox")),
    ("ec2", "DescribeKeyPairs", lambda c: c.describe_key_pairs()),
    ("autoscaling", "DescribeScheduledActions", lambda c: c.describe_scheduled_actions()),
    ("iam", "ListAccountAliases", lambda c: c.list_account_aliases()),
    ("ssm", "DescribeParameters", lambda c: c.describe_parameters()),
    ("cloudwatch", "ListDashboards", lambda c: c.list_dashboards()),
]


@pytest.mark.parametrize("service,operation,call", PROTOCOL_CASES,
                         ids=[c[0] for c in PROTOCOL_CASES])
def test_throttling_is_retried_by_standard_retries(aws_client, aws_sandbox, aws_journal,
                                                   service, operation, call):
    aws_sandbox.fault(service=service, operation=operation, code="ThrottlingException",
                      status=400, times=2)
    resp = call(aws_client(service, retries="standard"))
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["ResponseMetadata"]["RetryAttempts"] == 2
    statuses = [(e["status"], e.get("fault")) for e in
                aws_journal.entries(service=service, operation=operation)]
    assert statuses[:3] == [(400, "ThrottlingException"), (400, "ThrottlingException"),
                            (200, None)]


def test_create_nodegroup_throttled_twice_then_created(aws_client, aws_sandbox, aws_journal,
                                                       aws_seed, aws_name):
    eks = aws_client("eks", retries="standard")
    aws_sandbox.fault(operation="CreateNodegroup", code="ThrottlingException", status=400,
                      times=2)
    try:
        resp = eks.create_nodegroup(clusterName="sandbox", nodegroupName=aws_name,
                                    subnets=aws_seed["subnets"], nodeRole=aws_seed["node_role"])
        assert resp["ResponseMetadata"]["RetryAttempts"] == 2
        entries = aws_journal.entries(service="eks", operation="CreateNodegroup")
        assert [e["status"] for e in entries][:3] == [400, 400, 200]
        assert all(e["mutating"] for e in entries)
    finally:
        eks.delete_nodegroup(clusterName="sandbox", nodegroupName=aws_name)


def test_fault_code_reaches_the_caller(aws_client, aws_sandbox, aws_journal):
    aws_sandbox.fault(service="eks", operation="ListUpdates", code="AccessDeniedException",
                      status=403, message="not allowed")
    with pytest.raises(ClientError) as err:
        aws_client("eks").list_updates(name="sandbox")
    assert err.value.response["Error"]["Code"] == "AccessDeniedException"
    assert err.value.response["Error"]["Message"] == "not allowed"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    aws_sandbox.fault(service="autoscaling", operation="DescribeScheduledActions",
                      code="ValidationError", status=400, message="bad")
    with pytest.raises(ClientError) as err:
        aws_client("autoscaling").describe_scheduled_actions()
    assert err.value.response["Error"]["Code"] == "ValidationError"


def test_fault_api_lists_and_clears(aws_sandbox):
    aws_sandbox.clear()
    aws_sandbox.fault(operation="NoSuchOperationForTest", code="Boom", status=500, times=3)
    status, body = aws_sandbox.call("GET", "/_sandbox/faults")
    assert status == 200
    assert [(f["operation"], f["code"], f["status"], f["times"]) for f in body["faults"]] == [
        ("NoSuchOperationForTest", "Boom", 500, 3)]
    assert aws_sandbox.call("DELETE", "/_sandbox/faults") == (200, {"cleared": 1})
    assert aws_sandbox.call("GET", "/_sandbox/faults")[1] == {"faults": []}
    status, body = aws_sandbox.call("POST", "/_sandbox/faults", {"code": "X"})
    assert status == 400 and "operation" in body["error"]
