"""EKS bearer tokens, checked the way EKS's authenticator checks them: pure functions, no moto, no
I/O (the emulator's glue is eks_access.py). Unit-tested in tests/sandbox/unit/test_eks_auth.py.

A token is ``k8s-aws-v1.`` followed by the URL-safe base64 (padding left out) of a presigned STS
GetCallerIdentity URL whose SigV4 query signature also covers the header ``x-k8s-aws-id`` = the
cluster's name. EKS replays the URL to STS with its own cluster's name in that header, so STS
answers with the caller's identity only if the signature holds for that cluster. The sandbox has no
STS to replay to: it recomputes the signature itself with the secret of the signing key. EKS takes
a token for 15 minutes after X-Amz-Date, whatever X-Amz-Expires says.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl, quote, urlsplit

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_ID_HEADER = "x-k8s-aws-id"
ALGORITHM = "AWS4-HMAC-SHA256"
# How long after X-Amz-Date EKS accepts a token, and how far ahead of our clock a date may be.
MAX_AGE = datetime.timedelta(minutes=15)
MAX_SKEW = datetime.timedelta(minutes=5)
# The query parameters a presigned GetCallerIdentity URL has; anything else is refused.
REQUIRED_PARAMS = ("Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date",
                   "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature")
OPTIONAL_PARAMS = ("X-Amz-Security-Token",)
# STS's public endpoints (global and regional, China's partition too), always https.
STS_HOST = re.compile(r"^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# The group an access policy's cluster-scoped association puts a user in. EKS enforces access
# policies with an authorizer of its own, ahead of RBAC; the sandbox approximates it with RBAC
# ClusterRoleBindings of these groups to Kubernetes' default ClusterRoles (20-kube.sh rbac()).
POLICY_GROUP_PREFIX = "sandbox:eks-access-policy:"
POLICY_CLUSTER_ROLES = {
    "AmazonEKSClusterAdminPolicy": "cluster-admin",
    "AmazonEKSAdminPolicy": "admin",
    "AmazonEKSEditPolicy": "edit",
    "AmazonEKSViewPolicy": "view",
}
POLICY_ARN_PREFIX = "arn:aws:eks::aws:cluster-access-policy/"


class TokenError(Exception):
    """A refused token: ``reason`` is a short code (counted), the message says why."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class Presigned:
    """What a token's presigned URL says."""

    url: str
    scheme: str
    host: str
    path: str
    params: list[tuple[str, str]]
    access_key: str
    scope_date: str
    region: str
    service: str
    date: datetime.datetime
    signed_headers: list[str]
    signature: str
    security_token: str | None = None


@dataclass
class Identity:
    """The caller a valid token names, as STS would answer GetCallerIdentity (plus the ARN access
    entries are matched on: the user's, or the role's for an assumed role)."""

    arn: str
    account: str
    user_id: str
    access_key: str
    principal_arns: list[str] = field(default_factory=list)
    session_name: str | None = None


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
def decode_token(token: str) -> str:
    """The presigned URL inside a token; TokenError("format") when it is not a token."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
        raise TokenError("format", f"not an EKS token: it does not start with {TOKEN_PREFIX}")
    body = token[len(TOKEN_PREFIX):]
    if not body or not re.fullmatch(r"[A-Za-z0-9_-]+", body):
        raise TokenError("format", "the token's body is not unpadded URL-safe base64")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise TokenError("format", "the token's body does not decode (base64url of a URL)") from None


def _one_each(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """The query's parameters, each once, only the known ones."""
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key not in REQUIRED_PARAMS + OPTIONAL_PARAMS:
            raise TokenError("format", f"unexpected query parameter {key!r} in the presigned URL")
        if key in seen:
            raise TokenError("format", f"query parameter {key} given twice")
        seen[key] = value
    missing = [k for k in REQUIRED_PARAMS if k not in seen]
    if missing:
        raise TokenError("format", f"the presigned URL lacks {', '.join(missing)}")
    return seen


def _check_host(scheme: str, host: str, own_hosts: set[str]) -> None:
    if host in own_hosts and scheme in ("http", "https"):
        return
    if STS_HOST.match(host) and scheme == "https":
        return
    raise TokenError("format", f"the presigned URL is for {scheme}://{host}, which is neither this "
                               f"emulator ({', '.join(sorted(own_hosts)) or 'unknown'}) nor an STS endpoint")


def _date(stamp: str) -> datetime.datetime:
    try:
        return datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise TokenError("format", f"X-Amz-Date {stamp!r} is not YYYYMMDDTHHMMSSZ") from None


def parse(token: str, own_hosts: set[str]) -> Presigned:
    """The token's presigned URL, checked for shape: GET / on STS (or this emulator),
    Action=GetCallerIdentity, Version=2011-06-15, SigV4 query parameters, the header
    x-k8s-aws-id signed. Raises TokenError("format") saying what is wrong."""
    url = decode_token(token)
    parts = urlsplit(url)
    host = (parts.netloc or "").lower()
    _check_host(parts.scheme, host, own_hosts)
    if parts.path not in ("/", ""):
        raise TokenError("format", f"the presigned URL's path is {parts.path!r}, not /")
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    q = _one_each(pairs)
    if q["Action"] != "GetCallerIdentity" or q["Version"] != "2011-06-15":
        raise TokenError("format", f"the presigned URL is {q['Action']} version {q['Version']}, "
                                   "not GetCallerIdentity 2011-06-15")
    if q["X-Amz-Algorithm"] != ALGORITHM:
        raise TokenError("format", f"X-Amz-Algorithm is {q['X-Amz-Algorithm']!r}, not {ALGORITHM}")
    if not re.fullmatch(r"\d+", q["X-Amz-Expires"]) or int(q["X-Amz-Expires"]) < 1:
        raise TokenError("format", f"X-Amz-Expires {q['X-Amz-Expires']!r} is not a positive number of seconds")
    cred = q["X-Amz-Credential"].split("/")
    if len(cred) != 5 or cred[4] != "aws4_request" or not cred[0]:
        raise TokenError("format", "X-Amz-Credential is not KEY/DATE/REGION/SERVICE/aws4_request")
    if cred[3] != "sts":
        raise TokenError("format", f"the credential scope's service is {cred[3]!r}, not sts")
    date = _date(q["X-Amz-Date"])
    if cred[1] != q["X-Amz-Date"][:8]:
        raise TokenError("format", "the credential scope's date is not X-Amz-Date's")
    signed = q["X-Amz-SignedHeaders"].split(";")
    if CLUSTER_ID_HEADER not in signed or "host" not in signed:
        raise TokenError("format", f"X-Amz-SignedHeaders ({q['X-Amz-SignedHeaders']}) must contain host "
                                   f"and {CLUSTER_ID_HEADER}: the token is not bound to a cluster")
    extra = sorted(set(signed) - {"host", CLUSTER_ID_HEADER})
    if extra:
        raise TokenError("format", f"X-Amz-SignedHeaders signs {', '.join(extra)}, which a token cannot carry")
    return Presigned(url=url, scheme=parts.scheme, host=host, path=parts.path or "/", params=pairs,
                     access_key=cred[0], scope_date=cred[1], region=cred[2], service=cred[3], date=date,
                     signed_headers=signed, signature=q["X-Amz-Signature"],
                     security_token=q.get("X-Amz-Security-Token"))


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------
def check_time(p: Presigned, now: datetime.datetime) -> None:
    """TokenError("expired") when X-Amz-Date is over 15 minutes old, ("future") when too far ahead."""
    if now - p.date > MAX_AGE:
        raise TokenError("expired", f"the token expired: signed at {p.date:%Y-%m-%dT%H:%M:%SZ}, "
                                    f"{int((now - p.date).total_seconds())} s ago (EKS accepts 15 min)")
    if p.date - now > MAX_SKEW:
        raise TokenError("future", f"the token is signed at {p.date:%Y-%m-%dT%H:%M:%SZ}, "
                                   f"{int((p.date - now).total_seconds())} s in the future")


# --------------------------------------------------------------------------------------------
# SigV4 (query signing), written from AWS's "Signature Version 4 signing process"
# --------------------------------------------------------------------------------------------
def _uri_encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _canonical_host(scheme: str, host: str) -> str:
    """The Host header a client sends: the URL's host, without the scheme's default port."""
    default = {"http": ":80", "https": ":443"}.get(scheme)
    return host[: -len(default)] if default and host.endswith(default) else host


def canonical_request(p: Presigned, cluster: str) -> str:
    """GET, path, the query without X-Amz-Signature (encoded, sorted), the signed headers with
    x-k8s-aws-id = ``cluster``, and the empty body's hash."""
    query = sorted((_uri_encode(k), _uri_encode(v)) for k, v in p.params if k != "X-Amz-Signature")
    values = {"host": _canonical_host(p.scheme, p.host), CLUSTER_ID_HEADER: cluster}
    names = sorted(p.signed_headers)
    headers = "".join(f"{name}:{values[name].strip()}\n" for name in names)
    return "\n".join(["GET", _uri_encode(p.path).replace("%2F", "/") or "/",
                      "&".join(f"{k}={v}" for k, v in query), headers, ";".join(names), EMPTY_SHA256])


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signature(p: Presigned, secret: str, cluster: str) -> str:
    """The signature the URL would carry if signed with ``secret`` for ``cluster``."""
    scope = f"{p.scope_date}/{p.region}/{p.service}/aws4_request"
    digest = hashlib.sha256(canonical_request(p, cluster).encode("utf-8")).hexdigest()
    to_sign = "\n".join([ALGORITHM, p.date.strftime("%Y%m%dT%H%M%SZ"), scope, digest])
    key = _hmac(("AWS4" + secret).encode("utf-8"), p.scope_date)
    for part in (p.region, p.service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def check_signature(p: Presigned, secret: str, cluster: str) -> None:
    if not hmac.compare_digest(signature(p, secret, cluster), p.signature.lower()):
        raise TokenError("signature", f"the signature does not match: the token was not signed by the "
                                      f"secret of {p.access_key}, or not for cluster {cluster!r} "
                                      f"({CLUSTER_ID_HEADER}), or was altered")


def verify(token: str, cluster: str, own_hosts: set[str], secret_for: Callable[[Presigned], str],
           now: datetime.datetime) -> Presigned:
    """All the checks, cheapest first: shape, time, then the signature with the secret
    ``secret_for`` gives for the signing key (it raises TokenError("unknown-key") itself)."""
    p = parse(token, own_hosts)
    check_time(p, now)
    check_signature(p, secret_for(p), cluster)
    return p


# --------------------------------------------------------------------------------------------
# The user the answer names
# --------------------------------------------------------------------------------------------
def username(template: str, identity: Identity) -> str:
    """An access entry's username with EKS's placeholders filled: {{SessionName}} (``@`` written
    ``-``), {{SessionNameRaw}}, {{AccessKeyID}}, {{AccountID}}. TokenError("username") when a
    placeholder needs a session the identity does not have."""
    session = identity.session_name
    if session is None and "{{SessionName" in template:
        raise TokenError("username", f"the access entry's username {template!r} needs a role session, "
                                     f"and {identity.arn} is not one")
    out = template.replace("{{SessionNameRaw}}", session or "")
    out = out.replace("{{SessionName}}", (session or "").replace("@", "-"))
    out = out.replace("{{AccessKeyID}}", identity.access_key).replace("{{AccountID}}", identity.account)
    if "{{" in out:
        raise TokenError("username", f"the access entry's username {template!r} has a placeholder the "
                                     "sandbox cannot fill")
    return out


def policy_groups(associations: list[dict]) -> tuple[list[str], list[str]]:
    """(groups, ignored): a group per cluster-scoped association of a policy the sandbox binds;
    the associations left out (namespace-scoped ones, policies with no binding), described."""
    groups, ignored = [], []
    for assoc in associations:
        arn = assoc.get("policyArn", "")
        name = arn[len(POLICY_ARN_PREFIX):] if arn.startswith(POLICY_ARN_PREFIX) else arn
        scope = (assoc.get("accessScope") or {}).get("type", "cluster")
        if scope != "cluster":
            ignored.append(f"{name} (scoped to namespaces {assoc['accessScope'].get('namespaces')}: not applied)")
        elif name not in POLICY_CLUSTER_ROLES:
            ignored.append(f"{name} (no binding in the sandbox)")
        else:
            groups.append(POLICY_GROUP_PREFIX + name)
    return groups, ignored


def user_info(entry: dict, associations: list[dict], identity: Identity) -> dict:
    """The TokenReview ``status.user`` for an identity with ``entry``, as EKS's authenticator
    answers: username, uid aws-iam-authenticator:ACCOUNT:USERID, groups, and extra keys."""
    groups, _ignored = policy_groups(associations)
    extra = {"arn": [identity.arn], "canonicalArn": [identity.principal_arns[0]],
             "accessKeyId": [identity.access_key], "principalId": [identity.user_id]}
    if identity.session_name is not None:
        extra["sessionName"] = [identity.session_name]
    return {"username": username(entry["username"], identity),
            "uid": f"aws-iam-authenticator:{identity.account}:{identity.user_id}",
            "groups": list(entry.get("kubernetesGroups") or []) + groups, "extra": extra}


def review(request: object, user: dict | None = None, error: str | None = None) -> dict:
    """A TokenReview answer to ``request`` (its apiVersion echoed): authenticated with ``user``, or
    not, with ``error``."""
    api = request.get("apiVersion") if isinstance(request, dict) else None
    status: dict = {"authenticated": user is not None}
    if user is not None:
        status["user"] = user
    if error:
        status["error"] = error
    return {"apiVersion": api or "authentication.k8s.io/v1", "kind": "TokenReview", "status": status}


def token_of(request: object) -> str:
    """spec.token of a TokenReview; TokenError("format") when the request is not one."""
    if not isinstance(request, dict) or request.get("kind") != "TokenReview":
        raise TokenError("format", "the request is not a TokenReview")
    token = (request.get("spec") or {}).get("token")
    if not isinstance(token, str) or not token:
        raise TokenError("format", "the TokenReview has no spec.token")
    return token
