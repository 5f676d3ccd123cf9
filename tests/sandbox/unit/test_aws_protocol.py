"""Pure functions of the AWS emulator: operation detection, mutating classification, error
formats, fault queue. No server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sandbox.aws import protocol  # noqa: E402
from sandbox.aws.faults import FaultError, FaultQueue  # noqa: E402

AUTH = ("AWS4-HMAC-SHA256 Credential=testing/20261123/us-east-2/{}/aws4_request, "
        "SignedHeaders=host, Signature=abc")


def hdrs(service, **extra):
    h = {"authorization": AUTH.format(service)}
    h.update({k.replace("_", "-"): v for k, v in extra.items()})
    return h


@pytest.mark.parametrize("signing,service", [("eks", "eks"), ("monitoring", "cloudwatch"),
                                             ("ec2", "ec2"), ("autoscaling", "autoscaling")])
def test_service_from_signature(signing, service):
    assert protocol.service_from_headers(hdrs(signing)) == service
    assert protocol.region_from_headers(hdrs(signing)) == "us-east-2"


def test_service_from_target_when_unsigned():
    assert protocol.service_from_headers({"x-amz-target": "AmazonSSM.GetParameter"}) == "ssm"


EKS_CASES = [
    ("POST", "/clusters/c/node-groups", "CreateNodegroup"),
    ("GET", "/clusters/c/node-groups/n", "DescribeNodegroup"),
    ("GET", "/clusters/c/node-groups", "ListNodegroups"),
    ("POST", "/clusters/c/node-groups/n/update-config", "UpdateNodegroupConfig"),
    ("POST", "/clusters/c/node-groups/n/update-version", "UpdateNodegroupVersion"),
    ("GET", "/clusters/c/updates/1234-abcd", "DescribeUpdate"),
    ("GET", "/clusters/c/updates", "ListUpdates"),
    ("DELETE", "/clusters/c/node-groups/n", "DeleteNodegroup"),
    ("GET", "/clusters/c", "DescribeCluster"),
    ("GET", "/clusters", "ListClusters"),
    ("POST", "/tags/arn%3Aaws%3Aeks%3Aus-east-2%3A1%3Anodegroup%2Fc%2Fn%2Fu", "TagResource"),
    ("DELETE", "/tags/arn:aws:eks:us-east-2:1:nodegroup/c/n/u", "UntagResource"),
    ("GET", "/tags/arn:aws:eks:us-east-2:1:cluster/c", "ListTagsForResource"),
    # Access entries: botocore sends the principal's ARN with its slashes %2F-encoded.
    ("POST", "/clusters/c/access-entries", "CreateAccessEntry"),
    ("GET", "/clusters/c/access-entries", "ListAccessEntries"),
    ("GET", "/clusters/c/access-entries/arn:aws:iam::1:role%2Fpath%2Fr", "DescribeAccessEntry"),
    ("POST", "/clusters/c/access-entries/arn:aws:iam::1:user%2Fu", "UpdateAccessEntry"),
    ("DELETE", "/clusters/c/access-entries/arn:aws:iam::1:user%2Fu", "DeleteAccessEntry"),
    ("POST", "/clusters/c/access-entries/arn:aws:iam::1:role%2Fpath%2Fr/access-policies", "AssociateAccessPolicy"),
    ("GET", "/clusters/c/access-entries/arn:aws:iam::1:user%2Fu/access-policies", "ListAssociatedAccessPolicies"),
    ("DELETE", "/clusters/c/access-entries/arn:aws:iam::1:user%2Fu/access-policies/"
               "arn:aws:eks::aws:cluster-access-policy%2FAmazonEKSViewPolicy", "DisassociateAccessPolicy"),
    ("GET", "/access-policies", "ListAccessPolicies"),
]


@pytest.mark.parametrize("method,path,operation", EKS_CASES)
def test_eks_rest_json_routes(method, path, operation):
    assert protocol.detect_operation("eks", method, path, hdrs("eks"), b"") == operation


def test_eks_routes_agree_with_botocore_model():
    botocore = pytest.importorskip("botocore.session")
    model = botocore.get_session().get_service_model("eks")
    for _, _, operation in protocol.EKS_ROUTES:
        http = model.operation_model(operation).http
        path = http["requestUri"].split("?")[0]
        for name in ("{name}", "{nodegroupName}", "{updateId}", "{fargateProfileName}"):
            path = path.replace(name, "x")
        path = path.replace("{resourceArn}", "arn:aws:eks:us-east-2:1:cluster/x")
        assert protocol.detect_operation("eks", http["method"], path, {}, b"") == operation


def test_query_action_from_form_body_and_query_string():
    h = hdrs("autoscaling", content_type="application/x-www-form-urlencoded; charset=utf-8")
    body = b"Action=PutScalingPolicy&Version=2011-01-01&AutoScalingGroupName=g"
    assert protocol.detect_operation("autoscaling", "POST", "/", h, body) == "PutScalingPolicy"
    assert protocol.detect_operation("ec2", "GET", "/", hdrs("ec2"), b"",
                                     "Action=DescribeImages&Version=2016-11-15") == "DescribeImages"


def test_json_target():
    h = hdrs("monitoring", x_amz_target="GraniteServiceVersion20100801.PutMetricAlarm",
             content_type="application/x-amz-json-1.0")
    assert protocol.detect_operation("cloudwatch", "POST", "/", h, b"{}") == "PutMetricAlarm"
    assert protocol.detect_protocol("cloudwatch", "POST", "/", h, b"{}") == "json"


def test_cbor_path():
    h = hdrs("monitoring", smithy_protocol="rpc-v2-cbor", content_type="application/cbor")
    path = "/service/GraniteServiceVersion20100801/operation/DescribeAlarms"
    assert protocol.detect_operation("cloudwatch", "POST", path, h, b"\xa0") == "DescribeAlarms"
    assert protocol.detect_protocol("cloudwatch", "POST", path, h, b"\xa0") == "cbor"


@pytest.mark.parametrize("operation,mutating", [
    ("DescribeNodegroup", False), ("ListUpdates", False), ("GetParameter", False),
    ("CreateNodegroup", True), ("UpdateNodegroupConfig", True), ("PutMetricAlarm", True),
    ("TagResource", True), ("DeleteAlarms", True), (None, True)])
def test_mutating(operation, mutating):
    assert protocol.is_mutating(operation) is mutating


def test_cbor_encoder_known_bytes():
    assert protocol.cbor_encode({"a": 1}) == bytes.fromhex("a1616101")
    assert protocol.cbor_encode("x" * 24) == b"\x78\x18" + b"x" * 24
    assert protocol.cbor_encode([True, None, -1, 500]) == bytes.fromhex("84f5f6201901f4")


@pytest.mark.parametrize("proto", ["json", "rest-json", "query", "ec2", "cbor", "rest-xml"])
def test_error_responses_parse_in_botocore(proto):
    parsers = pytest.importorskip("botocore.parsers")
    name = {"cbor": "smithy-rpc-v2-cbor"}.get(proto, proto)
    status, headers, body = protocol.error_response(proto, "ThrottlingException", "slow", 400,
                                                    "application/x-amz-json-1.1")
    parser = parsers.create_parser(name)
    parsed = parser.parse({"status_code": status, "body": body,
                          "headers": {k.lower(): v for k, v in headers}},
                          None)
    assert parsed["Error"]["Code"] == "ThrottlingException"
    assert parsed["Error"]["Message"] == "slow"


def test_fault_queue_consumes_times_and_matches_service():
    q = FaultQueue()
    q.add({"operation": "CreateNodegroup", "code": "ThrottlingException", "times": 2,
           "service": "eks"})
    assert q.take("ec2", "CreateNodegroup") is None
    assert q.take("eks", "DescribeNodegroup") is None
    assert q.take("eks", "CreateNodegroup")["status"] == 400
    assert q.list()[0]["times"] == 1
    assert q.take("eks", "CreateNodegroup")["code"] == "ThrottlingException"
    assert q.take("eks", "CreateNodegroup") is None and q.list() == []


@pytest.mark.parametrize("spec", [{"code": "X"}, {"operation": "Y"}, "text",
                                  {"operation": "Y", "code": "X", "status": 200},
                                  {"operation": "Y", "code": "X", "times": 0},
                                  {"operation": "Y", "code": "X", "colour": "red"}])
def test_fault_queue_rejects_bad_specs(spec):
    with pytest.raises(FaultError):
        FaultQueue().add(spec)


def test_journal_line(tmp_path):
    from sandbox.aws.journal import Journal

    path = tmp_path / "j.jsonl"
    Journal(str(path)).record("eks", "CreateNodegroup", True, 200)
    entry = json.loads(path.read_text())
    assert entry["service"] == "eks" and entry["operation"] == "CreateNodegroup"
    assert entry["mutating"] is True and entry["status"] == 200 and entry["ts"] > 0


def test_access_key_id_is_read_from_the_sigv4_authorization_header():
    from sandbox.aws import protocol as proto
    auth = ('AWS4-HMAC-SHA256 Credential=sandbox-nodemirror/20261123/us-east-2/eks/aws4_request, '
            'SignedHeaders=host;x-amz-date, Signature=abc')
    assert proto.access_key_id({'authorization': auth}) == 'sandbox-nodemirror'
    assert proto.access_key_id({}) is None
    assert proto.access_key_id({'authorization': 'Bearer x'}) is None
