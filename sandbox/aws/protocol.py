"""Pure functions about AWS wire protocols: which service and operation a request is, whether it
mutates, and how an error looks in each protocol. No moto, no I/O; unit-tested in
tests/sandbox/unit/test_aws_protocol.py.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import parse_qs, unquote

# SigV4 signing name -> the service name the journal uses (boto3 client name).
SIGNING_NAME_TO_SERVICE = {
    "monitoring": "cloudwatch",
    "email": "ses",
    "states": "stepfunctions",
}

# X-Amz-Target prefixes (json protocol) -> service, for unsigned requests.
TARGET_PREFIX_TO_SERVICE = {
    "AmazonSSM": "ssm",
    "GraniteServiceVersion20100801": "cloudwatch",
    "AWSSecurityTokenServiceV20110615": "sts",
}

# EKS is rest-json: the operation is the method and the path. Every route the collection uses,
# checked against botocore's model in the unit tests.
_NAME = r"[^/]+"
EKS_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p), op)
    for m, p, op in [
        ("POST", r"/clusters", "CreateCluster"),
        ("GET", r"/clusters", "ListClusters"),
        ("GET", rf"/clusters/{_NAME}", "DescribeCluster"),
        ("DELETE", rf"/clusters/{_NAME}", "DeleteCluster"),
        ("POST", rf"/clusters/{_NAME}/update-config", "UpdateClusterConfig"),
        ("POST", rf"/clusters/{_NAME}/updates", "UpdateClusterVersion"),
        ("GET", rf"/clusters/{_NAME}/updates", "ListUpdates"),
        ("GET", rf"/clusters/{_NAME}/updates/{_NAME}", "DescribeUpdate"),
        ("POST", rf"/clusters/{_NAME}/node-groups", "CreateNodegroup"),
        ("GET", rf"/clusters/{_NAME}/node-groups", "ListNodegroups"),
        ("GET", rf"/clusters/{_NAME}/node-groups/{_NAME}", "DescribeNodegroup"),
        ("DELETE", rf"/clusters/{_NAME}/node-groups/{_NAME}", "DeleteNodegroup"),
        ("POST", rf"/clusters/{_NAME}/node-groups/{_NAME}/update-config", "UpdateNodegroupConfig"),
        ("POST", rf"/clusters/{_NAME}/node-groups/{_NAME}/update-version", "UpdateNodegroupVersion"),
        ("POST", rf"/clusters/{_NAME}/fargate-profiles", "CreateFargateProfile"),
        ("GET", rf"/clusters/{_NAME}/fargate-profiles", "ListFargateProfiles"),
        ("GET", rf"/clusters/{_NAME}/fargate-profiles/{_NAME}", "DescribeFargateProfile"),
        ("DELETE", rf"/clusters/{_NAME}/fargate-profiles/{_NAME}", "DeleteFargateProfile"),
        # Access entries: the principal's and the policy's ARNs hold slashes (sent %2F-encoded); the
        # longer paths come first.
        ("POST", rf"/clusters/{_NAME}/access-entries", "CreateAccessEntry"),
        ("GET", rf"/clusters/{_NAME}/access-entries", "ListAccessEntries"),
        ("POST", rf"/clusters/{_NAME}/access-entries/.+/access-policies", "AssociateAccessPolicy"),
        ("GET", rf"/clusters/{_NAME}/access-entries/.+/access-policies", "ListAssociatedAccessPolicies"),
        ("DELETE", rf"/clusters/{_NAME}/access-entries/.+/access-policies/.+", "DisassociateAccessPolicy"),
        ("GET", rf"/clusters/{_NAME}/access-entries/.+", "DescribeAccessEntry"),
        ("POST", rf"/clusters/{_NAME}/access-entries/.+", "UpdateAccessEntry"),
        ("DELETE", rf"/clusters/{_NAME}/access-entries/.+", "DeleteAccessEntry"),
        ("GET", r"/access-policies", "ListAccessPolicies"),
        ("POST", r"/tags/.+", "TagResource"),
        ("DELETE", r"/tags/.+", "UntagResource"),
        ("GET", r"/tags/.+", "ListTagsForResource"),
    ]
]

REST_ROUTES = {"eks": EKS_ROUTES}

READ_ONLY_PREFIXES = ("Describe", "List", "Get")


def is_mutating(operation: str | None) -> bool:
    """Everything but Describe*/List*/Get* mutates (an unknown operation counts as mutating)."""
    return not (operation or "").startswith(READ_ONLY_PREFIXES)


def service_from_headers(headers: dict[str, str]) -> str | None:
    """The service from the SigV4 credential scope (or the X-Amz-Target prefix if unsigned).

    ``headers`` has lower-case keys.
    """
    auth = headers.get("authorization", "")
    m = re.search(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request", auth)
    if m:
        name = m.group(1).lower()
        return SIGNING_NAME_TO_SERVICE.get(name, name)
    target = headers.get("x-amz-target")
    if target:
        return TARGET_PREFIX_TO_SERVICE.get(target.split(".", 1)[0])
    return None


def region_from_headers(headers: dict[str, str]) -> str | None:
    m = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", headers.get("authorization", ""))
    return m.group(1) if m else None


def detect_protocol(service: str | None, method: str, path: str, headers: dict[str, str],
                    body: bytes, query: str = "") -> str:
    """One of: cbor, json, ec2, query, rest-xml, rest-json."""
    ctype = headers.get("content-type", "")
    if headers.get("smithy-protocol") == "rpc-v2-cbor" or ctype.startswith("application/cbor"):
        return "cbor"
    if headers.get("x-amz-target"):
        return "json"
    if service == "ec2":
        return "ec2"
    if ctype.startswith("application/x-www-form-urlencoded") or "Action=" in query:
        return "query"
    if service in ("s3", "route53", "cloudfront"):
        return "rest-xml"
    return "rest-json"


def detect_operation(service: str | None, method: str, path: str, headers: dict[str, str],
                     body: bytes, query: str = "") -> str | None:
    """The operation name of a request, for the protocols the collection's services speak.

    - json / json 1.0 (SSM, CloudWatch in botocore >= 1.40): ``X-Amz-Target: Prefix.Operation``
    - smithy-rpc-v2-cbor (CloudWatch in some botocore releases):
      ``POST /service/<ServiceName>/operation/<Operation>``
    - query / ec2 (IAM, Auto Scaling, EC2, STS, CloudWatch in older botocore): ``Action=``
      in the form body or the query string
    - rest-json (EKS): method and path, see EKS_ROUTES
    """
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    m = re.fullmatch(r"/service/[^/]+/operation/([^/?]+)", path)
    if m:
        return m.group(1)
    for source in (query, _form_body(headers, body)):
        if source:
            action = parse_qs(source).get("Action")
            if action:
                return action[0]
    routes = REST_ROUTES.get(service or "")
    if routes:
        p = unquote(path).rstrip("/") or "/"
        for rmethod, pattern, op in routes:
            if rmethod == method and pattern.fullmatch(p):
                return op
    return None


def _form_body(headers: dict[str, str], body: bytes) -> str:
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") and body:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return ""
    return ""


def cbor_encode(value: object) -> bytes:
    """A minimal CBOR encoder (maps, lists, text, ints, bools, None) for error bodies."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([(major << 5) | n])
        for add, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if n < 1 << (8 * size):
                return bytes([(major << 5) | add]) + n.to_bytes(size, "big")
        raise ValueError("integer too large")

    if value is None:
        return b"\xf6"
    if value is True:
        return b"\xf5"
    if value is False:
        return b"\xf4"
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return head(3, len(raw)) + raw
    if isinstance(value, (list, tuple)):
        return head(4, len(value)) + b"".join(cbor_encode(v) for v in value)
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(
            cbor_encode(k) + cbor_encode(v) for k, v in value.items()
        )
    raise TypeError(f"cannot CBOR-encode {type(value).__name__}")


def error_response(protocol: str, code: str, message: str, status: int,
                   request_content_type: str = "") -> tuple[int, list[tuple[str, str]], bytes]:
    """An error in the wire format of ``protocol`` that botocore parses into ``code``."""
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    if protocol == "cbor":
        body = cbor_encode({"__type": code, "message": message})
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif protocol == "json":
        ctype = request_content_type or "application/x-amz-json-1.1"
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [("Content-Type", ctype), ("x-amzn-query-error", f"{code};Sender")]
    elif protocol == "rest-json":
        body = json.dumps({"message": message}).encode()
        headers += [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)]
    elif protocol == "ec2":
        body = (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            f"<Response><Errors><Error><Code>{_xml(code)}</Code><Message>{_xml(message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ).encode()
        headers += [("Content-Type", "text/xml")]
    elif protocol == "rest-xml":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{_xml(code)}</Code>"
            f"<Message>{_xml(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers += [("Content-Type", "application/xml")]
    else:  # query
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{_xml(code)}</Code>"
            f"<Message>{_xml(message)}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        ).encode()
        headers += [("Content-Type", "text/xml")]
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def access_key_id(headers: dict) -> str | None:
    """The access key id a SigV4-signed request names in its Authorization header."""
    match = _CREDENTIAL.search(headers.get("authorization", "") or "")
    return match.group(1) if match else None
