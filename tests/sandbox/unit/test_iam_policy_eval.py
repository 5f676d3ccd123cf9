"""The emulator's IAM policy evaluation (sandbox/aws/iam_policy_eval.py), against the rules AWS
documents, and the checks it derives from requests (sandbox/aws/iam_enforce.py), without moto."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sandbox.aws import iam_enforce  # noqa: E402
from sandbox.aws.iam_policy_eval import UnsupportedCondition, evaluate  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/node"
TEMPLATES = "arn:aws:ec2:us-east-2:123456789012:launch-template/*"


def _policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_allow_needs_action_and_resource():
    doc = _policy({"Effect": "Allow", "Action": ["iam:GetRole", "iam:PutRolePolicy"], "Resource": ROLE})
    assert evaluate([doc], "iam:PutRolePolicy", ROLE) == "Allow"
    assert evaluate([doc], "IAM:putrolepolicy", ROLE) == "Allow"  # actions are case-insensitive
    assert evaluate([doc], "iam:PutRolePolicy", "arn:aws:iam::123456789012:role/admin") == "ImplicitDeny"
    assert evaluate([doc], "iam:DeleteRole", ROLE) == "ImplicitDeny"


def test_explicit_deny_wins_and_wildcards():
    doc = _policy({"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
                  {"Effect": "Deny", "Action": "ec2:Delete?aunchTemplate", "Resource": TEMPLATES})
    assert evaluate([doc], "ec2:CreateLaunchTemplate", "arn:aws:ec2:us-east-2:123456789012:launch-template/lt-1") == "Allow"
    assert evaluate([doc], "ec2:DeleteLaunchTemplate", "arn:aws:ec2:us-east-2:123456789012:launch-template/lt-1") == "ExplicitDeny"


def test_string_equals_on_request_tags_and_missing_keys():
    statement = {"Effect": "Allow", "Action": "ec2:CreateLaunchTemplate", "Resource": TEMPLATES,
                 "Condition": {"StringEquals": {"aws:RequestTag/owner": "owned"}}}
    doc = _policy(statement)
    arn = TEMPLATES.replace("*", "lt-1")
    assert evaluate([doc], "ec2:CreateLaunchTemplate", arn, {"aws:RequestTag/owner": "owned"}) == "Allow"
    assert evaluate([doc], "ec2:CreateLaunchTemplate", arn, {"aws:RequestTag/owner": "other"}) == "ImplicitDeny"
    # A missing key makes a positive condition false (not a Deny, as moto 5.2.5 has it).
    assert evaluate([doc], "ec2:CreateLaunchTemplate", arn, {}) == "ImplicitDeny"
    negated = _policy(dict(statement, Condition={"StringNotEquals": {"aws:RequestTag/owner": "x"}}))
    assert evaluate([negated], "ec2:CreateLaunchTemplate", arn, {}) == "Allow"
    if_exists = _policy(dict(statement, Condition={"StringEqualsIfExists": {"aws:RequestTag/owner": "owned"}}))
    assert evaluate([if_exists], "ec2:CreateLaunchTemplate", arn, {}) == "Allow"


def test_list_values_are_alternatives_and_keys_all_hold():
    doc = _policy({"Effect": "Allow", "Action": "autoscaling:PutScalingPolicy", "Resource": "*",
                   "Condition": {"StringEquals": {"aws:ResourceTag/eks:cluster-name": "sandbox",
                                                  "aws:ResourceTag/eks:nodegroup-name": ["gpu", "cpu"]}}})
    tags = {"aws:ResourceTag/eks:cluster-name": "sandbox", "aws:ResourceTag/eks:nodegroup-name": "cpu"}
    assert evaluate([doc], "autoscaling:PutScalingPolicy", "x", tags) == "Allow"
    assert evaluate([doc], "autoscaling:PutScalingPolicy", "x", dict(tags, **{"aws:ResourceTag/eks:cluster-name": "prod"})) == "ImplicitDeny"


def test_arn_like_and_for_all_values_and_null():
    doc = _policy({"Effect": "Allow", "Action": "ec2:RunInstances", "Resource": "*", "Condition": {"ArnLike": {"ec2:LaunchTemplate": TEMPLATES}}})
    assert evaluate([doc], "ec2:RunInstances", "x", {"ec2:LaunchTemplate": TEMPLATES.replace("*", "lt-9")}) == "Allow"
    assert evaluate([doc], "ec2:RunInstances", "x", {}) == "ImplicitDeny"
    keys = _policy({"Effect": "Allow", "Action": "eks:TagResource", "Resource": "*",
                    "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}})
    assert evaluate([keys], "eks:TagResource", "x", {"aws:TagKeys": ["team"]}) == "Allow"
    assert evaluate([keys], "eks:TagResource", "x", {"aws:TagKeys": ["team", "owner"]}) == "ImplicitDeny"
    null = _policy({"Effect": "Allow", "Action": "eks:TagResource", "Resource": "*", "Condition": {"Null": {"aws:RequestTag/owner": "false"}}})
    assert evaluate([null], "eks:TagResource", "x", {"aws:RequestTag/owner": "a"}) == "Allow"
    assert evaluate([null], "eks:TagResource", "x", {}) == "ImplicitDeny"


def test_an_operator_it_cannot_evaluate_is_named():
    doc = _policy({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}})
    with pytest.raises(UnsupportedCondition, match="IpAddress"):
        evaluate([doc], "ec2:DescribeVpcs", "*", {"aws:SourceIp": "10.1.1.1"})


def _auth(service, region="us-east-2", key="AKIA"):
    return {"authorization": "AWS4-HMAC-SHA256 Credential=%s/20261205/%s/%s/aws4_request, SignedHeaders=host, Signature=x" % (key, region, service),
            "content-type": "application/x-www-form-urlencoded"}


def test_create_launch_template_checks_create_tags_with_the_request_tags():
    body = ("Action=CreateLaunchTemplate&LaunchTemplateName=t&TagSpecification.1.ResourceType=launch-template"
            "&TagSpecification.1.Tag.1.Key=owner&TagSpecification.1.Tag.1.Value=owned").encode()
    checks = iam_enforce.checks_for("ec2", "CreateLaunchTemplate", "POST", "/", "", _auth("ec2"), body)
    assert [c.action for c in checks] == ["ec2:CreateLaunchTemplate", "ec2:CreateTags"]
    assert checks[0].resource == TEMPLATES
    assert checks[1].context["ec2:CreateAction"] == "CreateLaunchTemplate"
    assert checks[1].context["aws:RequestTag/owner"] == "owned" and checks[1].context["aws:TagKeys"] == ["owner"]


def test_public_ssm_parameters_have_no_account_in_their_arn():
    body = json.dumps({"Name": "/aws/service/eks/optimized-ami/1.31/x"}).encode()
    checks = iam_enforce.checks_for("ssm", "GetParameter", "POST", "/", "", _auth("ssm"), body)
    assert checks[0].resource == "arn:aws:ssm:us-east-2::parameter/aws/service/eks/optimized-ami/1.31/x"


def test_alarm_checks_name_each_alarm():
    body = json.dumps({"AlarmNames": ["a", "b"]}).encode()
    checks = iam_enforce.checks_for("cloudwatch", "DeleteAlarms", "POST", "/", "", _auth("monitoring"), body)
    assert [c.resource for c in checks] == ["arn:aws:cloudwatch:us-east-2:123456789012:alarm:a", "arn:aws:cloudwatch:us-east-2:123456789012:alarm:b"]


def test_modes_are_checked():
    with pytest.raises(ValueError, match="mode must be one of"):
        iam_enforce.Enforcer(mode="on")
    assert iam_enforce.Enforcer(mode="off").authorize("eks", "DescribeCluster", "GET", "/clusters/x", "", _auth("eks"), b"") is None


def test_strict_is_the_default_and_refuses_keys_that_are_no_users_but_the_sandboxs_own(monkeypatch):
    monkeypatch.delenv("SANDBOX_AWS_IAM", raising=False)
    enforcer = iam_enforce.Enforcer(root_keys="testing,AKIAREL*,*")
    assert enforcer.mode == "strict"
    # Exact keys and PREFIX* act as the account root; a lone '*' is no wildcard for every key.
    for key in ("testing", "AKIARELIABILITYSUITE", "AKIARELSECRETS"):
        assert enforcer.authorize("eks", "DescribeCluster", "GET", "/clusters/x", "", _auth("eks", key=key), b"") is None
    for key in ("AKIAMADEUP", "test", "AKIARE"):
        with pytest.raises(iam_enforce.Denied, match="no IAM user's"):
            enforcer.authorize("eks", "DescribeCluster", "GET", "/clusters/x", "", _auth("eks", key=key), b"")
    assert enforcer.state()["denials"] == 3
