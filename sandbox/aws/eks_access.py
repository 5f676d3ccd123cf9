"""EKS cluster access in the emulator: access entries (stored on moto's clusters by
patches.patch_eks_access_entries), the control plane the sandbox's kube-apiserver serves for a
cluster, and the token webhook that apiserver asks (``/_sandbox/eks/...``, served by the middleware
in server.py, not journaled). The token checks themselves are eks_auth.py's pure functions.

    POST /_sandbox/eks/clusters/<name>/control-plane  {"endpoint", "certificateAuthority"[, "region"]}
    GET  /_sandbox/eks/clusters/<name>/control-plane
    POST /_sandbox/eks/clusters/<name>/tokenreview    a TokenReview (authentication.k8s.io/v1)
    GET  /_sandbox/eks/clusters/<name>/tokenreview    {"accepted": n, "refused": {reason: n}}
"""

from __future__ import annotations

import datetime
import json
import os
import re
import threading
from collections import Counter, OrderedDict
from typing import Any, Callable

from . import eks_auth

ACCOUNT = "123456789012"
# The secret of the sandbox's root keys (SANDBOX_AWS_ROOT_KEYS): every sandbox client signs with it.
ROOT_SECRET = "testing"
# The access policies EKS offers (ListAccessPolicies); the sandbox binds four of them (eks_auth).
ACCESS_POLICIES = ("AmazonEKSAdminPolicy", "AmazonEKSAdminViewPolicy", "AmazonEKSClusterAdminPolicy",
                   "AmazonEKSEditPolicy", "AmazonEKSViewPolicy", "AmazonEKSAutoNodePolicy",
                   "AmazonEKSBlockStoragePolicy", "AmazonEKSComputePolicy", "AmazonEKSLoadBalancingPolicy",
                   "AmazonEKSNetworkingPolicy")
ENTRY_TYPES = ("STANDARD", "FARGATE_LINUX", "EC2_LINUX", "EC2_WINDOWS", "EC2", "HYBRID_LINUX",
               "HYPERPOD_LINUX")
# The username EKS gives an entry of a node type (the caller may not choose one).
NODE_USERNAMES = {"FARGATE_LINUX": "system:node:{{SessionName}}", "HYBRID_LINUX": "system:node:{{SessionName}}",
                  "EC2_LINUX": "system:node:{{EC2PrivateDNSName}}",
                  "EC2_WINDOWS": "system:node:{{EC2PrivateDNSName}}", "EC2": "system:node:{{EC2PrivateDNSName}}",
                  "HYPERPOD_LINUX": "system:node:hyperpod-{{SessionName}}"}
# Prefixes EKS refuses in a STANDARD entry's username and groups (the sandbox adds its own group prefix,
# which would otherwise let an entry name the groups its access-policy bindings use).
RESERVED_PREFIXES = ("system:", "eks:", "aws:", "amazon:", "iam:")

_lock = threading.Lock()
CONTROL_PLANES: dict[tuple[str, str], dict[str, str]] = {}
COUNTS: dict[str, Counter] = {}


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION", "us-east-2")


def _log(message: str) -> None:
    print(f"sandbox eks-auth: {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Access entries (the store on moto's Cluster objects)
# --------------------------------------------------------------------------------------------
def entries(cluster: Any) -> "OrderedDict[str, dict]":
    """principalArn -> entry (AccessEntry's fields, plus ``_policies``: policyArn -> association)."""
    return cluster.__dict__.setdefault("_sandbox_access_entries", OrderedDict())


def principal_kind(arn: str) -> tuple[str, str, str] | None:
    """(type, account, name) of an IAM principal ARN: ("user"|"role"|"root", ...); None otherwise."""
    m = re.fullmatch(r"arn:aws:iam::(\d{12}):(user|role)/(?:.*/)?([^/]+)", arn or "")
    if m:
        return m.group(2), m.group(1), m.group(3)
    m = re.fullmatch(r"arn:aws:iam::(\d{12}):root", arn or "")
    return ("root", m.group(1), "root") if m else None


def default_username(arn: str, entry_type: str) -> str:
    """What EKS names a principal when the entry gives no username: an IAM user's ARN; for a role,
    its session ARN arn:aws:sts::ACCOUNT:assumed-role/ROLE/{{SessionName}}; node types their own."""
    if entry_type != "STANDARD":
        return NODE_USERNAMES[entry_type]
    kind, account, name = principal_kind(arn) or ("", "", "")
    if kind == "role":
        return f"arn:aws:sts::{account}:assumed-role/{name}/{{{{SessionName}}}}"
    return arn


def entry_arn(region: str, cluster: str, principal: str, uid: str) -> str:
    kind, account, name = principal_kind(principal) or ("unknown", ACCOUNT, "unknown")
    return f"arn:aws:eks:{region}:{ACCOUNT}:access-entry/{cluster}/{kind}/{account}/{name}/{uid}"


# --------------------------------------------------------------------------------------------
# Control planes (where a cluster's API server is)
# --------------------------------------------------------------------------------------------
def register_control_plane(name: str, spec: Any) -> dict[str, str]:
    if not isinstance(spec, dict) or not str(spec.get("endpoint", "")).startswith("https://") \
            or not spec.get("certificateAuthority"):
        raise ValueError('expected {"endpoint": "https://...", "certificateAuthority": "<base64 PEM>"}')
    plane = {"endpoint": spec["endpoint"], "certificateAuthority": spec["certificateAuthority"],
             "region": spec.get("region") or _region()}
    with _lock:
        CONTROL_PLANES[(plane["region"], name)] = plane
    _log(f"cluster {name} ({plane['region']}) is served by {plane['endpoint']}")
    return plane


def apply_control_plane(cluster: Any, region: str) -> Any:
    """A moto Cluster with the registered endpoint and CA, when there are (moto's made-up ones otherwise)."""
    plane = CONTROL_PLANES.get((region, cluster.name))
    if plane:
        cluster.endpoint = plane["endpoint"]
        cluster.certificate_authority = {"data": plane["certificateAuthority"]}
    return cluster


# --------------------------------------------------------------------------------------------
# Who signed a token (moto's IAM and STS backends)
# --------------------------------------------------------------------------------------------
def _iam() -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT]["aws"]


def _assumed_role(key: str) -> Any:
    from moto.sts.models import sts_backends

    return next((r for r in sts_backends[ACCOUNT]["aws"].assumed_roles if r.access_key_id == key), None)


def _role_identity(p: eks_auth.Presigned, role: Any, now: datetime.datetime) -> tuple[str, eks_auth.Identity]:
    if p.security_token != role.session_token:
        raise eks_auth.TokenError("unknown-key", f"{p.access_key} is a role session's key and the token's "
                                                 "X-Amz-Security-Token is not that session's")
    if role.expiration.replace(tzinfo=datetime.timezone.utc) < now:
        raise eks_auth.TokenError("unknown-key", f"the role session of {p.access_key} has expired")
    name = role.role_arn.rsplit("/", 1)[-1]
    try:
        iam_role = _iam().get_role_by_arn(role.role_arn)
        role_id, full_arn = iam_role.id, iam_role.arn
    except Exception:  # noqa: BLE001 - a role that does not exist (moto lets one assume it)
        raise eks_auth.TokenError("unknown-key", f"{p.access_key} is a session of {role.role_arn}, "
                                                 "which does not exist") from None
    short = f"arn:aws:iam::{ACCOUNT}:role/{name}"
    return role.secret_access_key, eks_auth.Identity(
        arn=role.arn, account=ACCOUNT, user_id=f"{role_id}:{role.session_name}", access_key=p.access_key,
        principal_arns=[short] + ([full_arn] if full_arn != short else []), session_name=role.session_name)


def caller(p: eks_auth.Presigned, is_root_key: Callable[[str], bool],
           now: datetime.datetime) -> tuple[str, eks_auth.Identity]:
    """(secret, identity) of the key that signed ``p``: an IAM user's key, an assumed role's session,
    or one of the sandbox's root keys (secret ``testing``). TokenError("unknown-key") otherwise."""
    role = _assumed_role(p.access_key)
    if role is not None:
        return _role_identity(p, role, now)
    key = _iam().access_keys.get(p.access_key)
    if key is not None and key.user_name:
        if key.status != "Active":
            raise eks_auth.TokenError("unknown-key", f"access key {p.access_key} is {key.status}")
        user = _iam().get_user(key.user_name)
        return key.secret_access_key, eks_auth.Identity(
            arn=user.arn, account=ACCOUNT, user_id=user.id, access_key=p.access_key, principal_arns=[user.arn])
    if key is None and is_root_key(p.access_key):
        root = f"arn:aws:iam::{ACCOUNT}:root"
        return ROOT_SECRET, eks_auth.Identity(arn=root, account=ACCOUNT, user_id=ACCOUNT,
                                              access_key=p.access_key, principal_arns=[root])
    raise eks_auth.TokenError("unknown-key", f"access key {p.access_key} is no IAM user's, role session's "
                                             "or sandbox root key's")


# --------------------------------------------------------------------------------------------
# The webhook
# --------------------------------------------------------------------------------------------
def _cluster(name: str, region: str) -> Any:
    from moto.eks.models import eks_backends

    return eks_backends[ACCOUNT][region].clusters.get(name)


def _entry_for(name: str, region: str, identity: eks_auth.Identity) -> dict:
    cluster = _cluster(name, region)
    if cluster is None:
        raise eks_auth.TokenError("no-cluster", f"there is no EKS cluster {name} in {region}")
    if "API" not in access_config(cluster)["authenticationMode"]:
        raise eks_auth.TokenError("no-access-entry", f"cluster {name}'s authentication mode is CONFIG_MAP: "
                                                     "the sandbox reads no aws-auth ConfigMap")
    store = entries(cluster)
    entry = next((store[a] for a in identity.principal_arns if a in store), None)
    if entry is None:
        raise eks_auth.TokenError("no-access-entry", f"{identity.arn} has no access entry on cluster {name}")
    if entry["type"] != "STANDARD":
        raise eks_auth.TokenError("no-access-entry", f"the access entry of {entry['principalArn']} is "
                                                     f"{entry['type']}; the sandbox authenticates STANDARD ones only")
    if entry.get("_principalId") not in (None, identity.user_id.split(":", 1)[0]):
        raise eks_auth.TokenError("no-access-entry", f"the access entry of {entry['principalArn']} was made "
                                                     "for a principal since deleted and created again")
    return entry


def access_config(cluster: Any) -> dict:
    return cluster.__dict__.setdefault("access_config", {"authenticationMode": "CONFIG_MAP",
                                                         "bootstrapClusterCreatorAdminPermissions": True})


def authenticate(name: str, request: Any, own_hosts: set[str], is_root_key: Callable[[str], bool],
                 now: datetime.datetime | None = None) -> dict:
    """The user a TokenReview's token names on cluster ``name`` (TokenError says why not)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    region = next((r for (r, n) in CONTROL_PLANES if n == name), _region())
    found: dict[str, eks_auth.Identity] = {}

    def secret_for(p: eks_auth.Presigned) -> str:
        secret, found["identity"] = caller(p, is_root_key, now)
        return secret

    eks_auth.verify(eks_auth.token_of(request), name, own_hosts, secret_for, now)
    identity = found["identity"]
    entry = _entry_for(name, region, identity)
    associations = list(entry["_policies"].values())
    _groups, ignored = eks_auth.policy_groups(associations)
    if ignored:
        _log(f"cluster {name}: {identity.arn}: associations not applied: {'; '.join(ignored)}")
    return eks_auth.user_info(entry, associations, identity)


def tokenreview(name: str, body: bytes, own_hosts: set[str], is_root_key: Callable[[str], bool]) -> dict:
    """The answer to the apiserver's TokenReview: authenticated, or not with the reason (counted, logged)."""
    try:
        request = json.loads(body or b"null")
    except ValueError:
        request = None
    counts = COUNTS.setdefault(name, Counter())
    try:
        user = authenticate(name, request, own_hosts, is_root_key)
    except eks_auth.TokenError as exc:
        with _lock:
            counts["refused:" + exc.reason] += 1
        _log(f"cluster {name}: refused ({exc.reason}): {exc}")
        return eks_auth.review(request, error=f"{exc.reason}: {exc}")
    with _lock:
        counts["accepted"] += 1
    return eks_auth.review(request, user=user)


def counts(name: str) -> dict:
    c = COUNTS.get(name, Counter())
    return {"accepted": c["accepted"],
            "refused": {k.split(":", 1)[1]: v for k, v in sorted(c.items()) if k.startswith("refused:")}}


def own_hosts(environ: dict[str, Any]) -> set[str]:
    """This emulator's host:port as its clients write it (what a token made against it names)."""
    port = environ.get("SERVER_PORT", "")
    hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
    if environ.get("HTTP_HOST"):
        hosts.add(environ["HTTP_HOST"].lower())
    return hosts


def handle(path: str, method: str, body: bytes, environ: dict[str, Any],
           is_root_key: Callable[[str], bool]) -> tuple[int, Any]:
    """(status, JSON payload) for a /_sandbox/eks/... request."""
    m = re.fullmatch(r"/_sandbox/eks/clusters/([^/]+)/(control-plane|tokenreview)", path)
    if not m:
        return 404, {"error": f"no such sandbox endpoint: {path}"}
    name, what = m.groups()
    if what == "tokenreview":
        if method == "POST":
            return 200, tokenreview(name, body, own_hosts(environ), is_root_key)
        return (200, counts(name)) if method == "GET" else (405, {"error": "GET or POST"})
    if method == "GET":
        found = [p for (_r, n), p in CONTROL_PLANES.items() if n == name]
        return (200, found[0]) if found else (404, {"error": f"no control plane registered for {name}"})
    if method in ("POST", "PUT"):
        try:
            return 200, register_control_plane(name, json.loads(body or b"null"))
        except ValueError as exc:
            return 400, {"error": str(exc)}
    return 405, {"error": "GET or POST"}
