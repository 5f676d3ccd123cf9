"""IAM enforcement for the sandbox's AWS emulator, in place of moto's own.

moto 5.2.5's enforcement (``POST /moto-api/reset-auth``) checks actions only (every request is
evaluated against Resource ``*``), treats an Allow whose condition fails as a Deny, evaluates no
condition keys but a role's trust policy, and fails EKS's body-less requests on their signature.
This module authorises every AWS request the middleware sees instead, as AWS documents it:

- the caller is the IAM user (or assumed role) whose access key signed the request; its
  identity-based policies (inline, attached, its groups') are evaluated by iam_policy_eval for
  the request's action, its resource ARN(s) and the condition keys below;
- what AWS checks on other actions for one request is checked too (the Service Authorization
  Reference's "dependent actions", and EKS's documented checks):
  * EKS CreateNodegroup: ``iam:PassRole`` on the node role (``iam:PassedToService`` =
    eks.amazonaws.com); ``ec2:RunInstances`` when the launch template version has
    TagSpecifications; ``iam:CreateServiceLinkedRole`` (``iam:AWSServiceName`` =
    eks-nodegroup.amazonaws.com) while the account has no AWSServiceRoleForAmazonEKSNodegroup,
    which the emulator then creates, as EKS does;
  * EKS UpdateNodegroupVersion with a tagged launch template version: ``ec2:RunInstances`` and
    ``iam:PassRole`` on the node group's role;
  * EC2 CreateLaunchTemplate with TagSpecifications: ``ec2:CreateTags`` with
    ``ec2:CreateAction`` = CreateLaunchTemplate and the request's tags;
- EKS access entries: CreateAccessEntry and ListAccessEntries act on the cluster's ARN, the other
  access-entry operations on the entry's ARN (``access-entry/<cluster>/<type>/<account>/<name>/<uuid>``,
  the Service Authorization Reference's resource), with its tags; the ``eks:`` condition keys of
  these actions (eks:principalArn, eks:policyArn, ...) are not filled;
- condition keys the emulator fills: ``aws:RequestTag/<k>``, ``aws:TagKeys`` (EKS, EC2 and
  CloudWatch requests that carry tags), ``aws:ResourceTag/<k>`` (EKS clusters and node groups,
  EC2 launch templates, Auto Scaling groups, also as ``autoscaling:ResourceTag/<k>``, Secrets
  Manager secrets), ``ec2:CreateAction``, ``ec2:LaunchTemplate``, ``iam:PassedToService``,
  ``iam:AWSServiceName``, ``aws:PrincipalArn``, ``aws:username``, ``aws:RequestedRegion``.
  Any other key is absent from the context (so a condition on it is false unless negated or
  ``IfExists``); an operator the evaluator does not know fails the request naming it.

A refusal answers as the service does (EC2 ``UnauthorizedOperation``; EKS, SSM and Secrets
Manager ``AccessDeniedException``; IAM, Auto Scaling and CloudWatch ``AccessDenied``), 403, with
AWS's message: "User: <arn> is not authorized to perform: <action> on resource: <arn> ...".

Modes (``SANDBOX_AWS_IAM``, or ``POST /_sandbox/iam {"mode": ...}`` at run time):
- ``strict`` (default): requests signed by an IAM user's (or assumed role's) key are authorised,
  and a key that is no IAM user's is refused (``InvalidClientTokenId``) unless it is one of the
  sandbox's own (``SANDBOX_AWS_ROOT_KEYS``: comma-separated keys, ``PREFIX*`` for every key with
  that prefix; default ``testing``), which act as the account's root user;
- ``users``: as ``strict``, but any key that is no IAM user's acts as the account's root user, as
  moto does without enforcement;
- ``off``: nothing is checked.
Signatures are not verified (the key id names the caller; the secret is not checked). Requests
marked internal (seeding, the node mirror) are not checked.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any
from urllib.parse import parse_qs, unquote

from . import iam_policy_eval, protocol

MODES = ("off", "users", "strict")
ACCOUNT = "123456789012"
NODEGROUP_SLR_SERVICE = "eks-nodegroup.amazonaws.com"
NODEGROUP_SLR_NAME = "AWSServiceRoleForAmazonEKSNodegroup"
# Service name -> the service-linked role AWS names for it (the ones the collection may cause).
SERVICE_LINKED_ROLES = {
    NODEGROUP_SLR_SERVICE: NODEGROUP_SLR_NAME,
    "eks.amazonaws.com": "AWSServiceRoleForAmazonEKS",
    "autoscaling.amazonaws.com": "AWSServiceRoleForAutoScaling",
}
# The code a service answers a refused request with.
DENIED_CODE = {"ec2": "UnauthorizedOperation", "eks": "AccessDeniedException", "ssm": "AccessDeniedException",
               "secretsmanager": "AccessDeniedException", "sts": "AccessDenied"}


class Check:
    """One authorisation AWS makes for a request: an action on a resource, with its context."""

    def __init__(self, action: str, resource: str, context: dict[str, Any] | None = None, why: str = ""):
        self.action, self.resource, self.context, self.why = action, resource, dict(context or {}), why

    def __repr__(self) -> str:  # for test failures
        return "Check(%s on %s%s)" % (self.action, self.resource, " (%s)" % self.why if self.why else "")


class Denied(Exception):
    def __init__(self, code: str, message: str, status: int = 403, action: str | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.action = code, message, status, action


# --------------------------------------------------------------------------------------------
# Request parameters
# --------------------------------------------------------------------------------------------
def _form(query: str, headers: dict[str, str], body: bytes) -> dict[str, list[str]]:
    params = parse_qs(query, keep_blank_values=True)
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") and body:
        for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items():
            params.setdefault(k, []).extend(v)
    return params


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _query_tags(form: dict[str, list[str]], resource_type: str | None = None) -> dict[str, str]:
    """Tags of EC2 ``TagSpecification.N`` entries for one resource type (or ``Tag.N`` if None)."""
    tags: dict[str, str] = {}
    if resource_type is None:
        for key in form:
            if key.startswith("Tag.") and key.endswith(".Key"):
                tags[form[key][0]] = form.get(key[:-4] + ".Value", [""])[0]
        return tags
    for key in form:
        if key.startswith("TagSpecification.") and key.endswith(".ResourceType") and form[key][0] == resource_type:
            prefix = key[: -len("ResourceType")]
            for tkey in form:
                if tkey.startswith(prefix + "Tag.") and tkey.endswith(".Key"):
                    tags[form[tkey][0]] = form.get(tkey[:-4] + ".Value", [""])[0]
    return tags


def _tag_context(tags: dict[str, str], kind: str) -> dict[str, Any]:
    """``aws:RequestTag/<k>`` (kind "Request") or ``aws:ResourceTag/<k>`` for each tag."""
    context: dict[str, Any] = {"aws:%sTag/%s" % (kind, k): v for k, v in (tags or {}).items()}
    if kind == "Request" and tags:
        context["aws:TagKeys"] = sorted(tags)
    return context


# --------------------------------------------------------------------------------------------
# moto's backends (looked up lazily: the module is imported before moto's app is built)
# --------------------------------------------------------------------------------------------
def _backend(name: str, account: str, region: str) -> Any:
    try:
        if name == "eks":
            from moto.eks.models import eks_backends as backends
        elif name == "ec2":
            from moto.ec2.models import ec2_backends as backends
        elif name == "autoscaling":
            from moto.autoscaling.models import autoscaling_backends as backends
        elif name == "secretsmanager":
            from moto.secretsmanager.models import secretsmanager_backends as backends
        elif name == "iam":
            from moto.iam.models import iam_backends as backends
            return backends[account]["aws"]
        else:
            return None
        return backends[account][region]
    except Exception:  # noqa: BLE001 - an unknown region: nothing to look up
        return None


def _launch_template(account: str, region: str, ident: str | None = None, name: str | None = None) -> Any:
    ec2 = _backend("ec2", account, region)
    if ec2 is None:
        return None
    try:
        return ec2.get_launch_template(ident) if ident else ec2.get_launch_template_by_name(name) if name else None
    except Exception:  # noqa: BLE001 - no such template: the operation itself will say so
        return None


def _template_tags(template: Any) -> dict[str, str]:
    return {t["key"]: t["value"] for t in (getattr(template, "tags", None) or [])}


def _template_arn(region: str, account: str, template: Any, fallback: str = "*") -> str:
    return "arn:aws:ec2:%s:%s:launch-template/%s" % (region, account, template.id if template is not None else fallback)


def _nodegroup(account: str, region: str, cluster: str, name: str) -> Any:
    eks = _backend("eks", account, region)
    found = eks.clusters.get(cluster) if eks is not None else None
    return found.nodegroups.get(name) if found is not None else None


# --------------------------------------------------------------------------------------------
# Per-service checks
# --------------------------------------------------------------------------------------------
def _eks_checks(op: str, method: str, path: str, query: str, body: bytes, account: str, region: str) -> list[Check]:
    parts = [unquote(p) for p in path.strip("/").split("/")]
    action = "eks:" + op
    cluster_arn = lambda name: "arn:aws:eks:%s:%s:cluster/%s" % (region, account, name)  # noqa: E731

    def nodegroup_resource(cluster: str, name: str) -> tuple[str, dict[str, Any], Any]:
        ng = _nodegroup(account, region, cluster, name)
        if ng is not None:
            return ng.arn, _tag_context(ng.tags or {}, "Resource"), ng
        # Not there (yet): the ARN with its unknown id left as `*`, which only a pattern matches.
        return "arn:aws:eks:%s:%s:nodegroup/%s/%s/*" % (region, account, cluster, name), {}, None

    if op in ("TagResource", "UntagResource", "ListTagsForResource"):
        arn = unquote(path.split("/tags/", 1)[1])
        context: dict[str, Any] = {}
        if op == "TagResource":
            context = _tag_context(_json(body).get("tags") or {}, "Request")
        elif op == "UntagResource":
            context = {"aws:TagKeys": parse_qs(query).get("tagKeys", [])}
        return [Check(action, arn, context)]
    entry = _ACCESS_ENTRY_PATH.fullmatch(unquote(path).rstrip("/"))
    if entry:
        return [_access_entry_check(action, account, region, *entry.groups())]
    if len(parts) >= 2 and parts[0] == "clusters":
        cluster = parts[1]
        if op == "CreateAccessEntry":
            return [Check(action, cluster_arn(cluster), _tag_context(_json(body).get("tags") or {}, "Request"))]
        if len(parts) >= 4 and parts[2] == "node-groups":
            arn, context, ng = nodegroup_resource(cluster, parts[3])
            checks = [Check(action, arn, context)]
            if op == "UpdateNodegroupVersion":
                checks += _template_checks(_json(body).get("launchTemplate") or
                                           (getattr(ng, "launch_template", None) or {}), account, region,
                                           getattr(ng, "node_role", None), "UpdateNodegroupVersion")
            return checks
        if op == "CreateNodegroup":
            request = _json(body)
            checks = [Check(action, cluster_arn(cluster), _tag_context(request.get("tags") or {}, "Request"))]
            checks += _template_checks(request.get("launchTemplate") or {}, account, region, request.get("nodeRole"),
                                       "CreateNodegroup", pass_role_always=True)
            if _service_linked_role(account, NODEGROUP_SLR_SERVICE) is None:
                checks.append(Check("iam:CreateServiceLinkedRole", _slr_arn(account, NODEGROUP_SLR_SERVICE),
                                    {"iam:AWSServiceName": NODEGROUP_SLR_SERVICE},
                                    "EKS creates its node group service-linked role with the caller's permissions"))
            return checks
        if op == "DescribeUpdate":
            ng_name = parse_qs(query).get("nodegroupName", [None])[0]
            if ng_name:
                arn, context, _ng = nodegroup_resource(cluster, ng_name)
                return [Check(action, arn, context)]
        eks = _backend("eks", account, region)
        found = eks.clusters.get(cluster) if eks is not None else None
        return [Check(action, cluster_arn(cluster), _tag_context(getattr(found, "tags", None) or {}, "Resource"))]
    return [Check(action, "*")]


# /clusters/<cluster>/access-entries/<principal ARN>[/access-policies[/<policy ARN>]], decoded.
_ACCESS_ENTRY_PATH = re.compile(r"/clusters/([^/]+)/access-entries/(.+?)(?:/access-policies(?:/.+)?)?")


def _access_entry_check(action: str, account: str, region: str, cluster: str, principal: str) -> Check:
    """The per-entry operations act on the access entry's ARN (Service Authorization Reference:
    access-entry/<cluster>/<type>/<account>/<name>/<uuid>), with its tags; one not there (yet) has
    its unknown uuid left as `*`, which only a pattern matches."""
    from .eks_access import entries, principal_kind

    eks = _backend("eks", account, region)
    found = eks.clusters.get(cluster) if eks is not None else None
    entry = entries(found).get(principal) if found is not None else None
    if entry is not None:
        return Check(action, entry["accessEntryArn"], _tag_context(entry.get("tags") or {}, "Resource"))
    kind, owner, name = principal_kind(principal) or ("*", "*", "*")
    return Check(action, "arn:aws:eks:%s:%s:access-entry/%s/%s/%s/%s/*" % (region, account, cluster, kind, owner, name))


def _template_checks(spec: dict[str, Any], account: str, region: str, node_role: str | None, operation: str,
                     pass_role_always: bool = False) -> list[Check]:
    """What EKS checks about the launch template and the node role on Create/UpdateNodegroupVersion."""
    checks = []
    template = _launch_template(account, region, spec.get("id"), spec.get("name")) if spec else None
    tagged = False
    if template is not None:
        try:
            data = template.get_version(str(spec.get("version") or "$Default")).data or {}
        except Exception:  # noqa: BLE001 - no such version: EKS refuses it anyway
            data = {}
        tagged = bool(data.get("TagSpecifications"))
    if tagged:
        arn = _template_arn(region, account, template)
        checks.append(Check("ec2:RunInstances", arn, dict(_tag_context(_template_tags(template), "Resource"),
                                                           **{"ec2:LaunchTemplate": arn}),
                            "%s with a launch template that has tag specifications" % operation))
    if node_role and (tagged or pass_role_always):
        checks.append(Check("iam:PassRole", node_role, {"iam:PassedToService": "eks.amazonaws.com"},
                            "%s passes the node role to EKS" % operation))
    return checks


def _ec2_checks(op: str, form: dict[str, list[str]], account: str, region: str) -> list[Check]:
    action = "ec2:" + op
    first = lambda key: (form.get(key) or [None])[0]  # noqa: E731
    if op == "CreateLaunchTemplate":
        tags = _query_tags(form, "launch-template")
        arn = _template_arn(region, account, None)
        checks = [Check(action, arn, _tag_context(tags, "Request"))]
        if tags:
            checks.append(Check("ec2:CreateTags", arn, dict(_tag_context(tags, "Request"), **{"ec2:CreateAction": op}),
                                "tags given at creation are authorised as CreateTags"))
        return checks
    if op in ("CreateLaunchTemplateVersion", "ModifyLaunchTemplate", "DeleteLaunchTemplate", "DeleteLaunchTemplateVersions"):
        template = _launch_template(account, region, first("LaunchTemplateId"), first("LaunchTemplateName"))
        return [Check(action, _template_arn(region, account, template, first("LaunchTemplateId") or "*"),
                      _tag_context(_template_tags(template), "Resource"))]
    if op == "CreateTags":
        tags = _query_tags(form)
        checks = []
        for key in sorted(k for k in form if k.startswith("ResourceId.")):
            ident = form[key][0]
            kind = {"lt": "launch-template", "i": "instance", "vol": "volume", "sg": "security-group",
                    "subnet": "subnet", "vpc": "vpc", "eni": "network-interface"}.get(ident.split("-", 1)[0], "resource")
            checks.append(Check(action, "arn:aws:ec2:%s:%s:%s/%s" % (region, account, kind, ident), _tag_context(tags, "Request")))
        return checks or [Check(action, "*")]
    return [Check(action, "*")]


def _iam_checks(op: str, form: dict[str, list[str]], account: str) -> list[Check]:
    action = "iam:" + op
    first = lambda key: (form.get(key) or [None])[0]  # noqa: E731
    if op == "CreateServiceLinkedRole":
        service = first("AWSServiceName") or ""
        return [Check(action, _slr_arn(account, service), {"iam:AWSServiceName": service})]
    if first("RoleName"):
        iam = _backend("iam", account, "")
        role = None
        try:
            role = iam.get_role(first("RoleName")) if iam is not None else None
        except Exception:  # noqa: BLE001 - no such role
            role = None
        return [Check(action, role.arn if role is not None else "arn:aws:iam::%s:role/%s" % (account, first("RoleName")))]
    if first("UserName"):
        return [Check(action, "arn:aws:iam::%s:user/%s" % (account, first("UserName")))]
    if first("PolicyArn"):
        return [Check(action, first("PolicyArn"))]
    return [Check(action, "*")]


def _autoscaling_checks(op: str, form: dict[str, list[str]], account: str, region: str) -> list[Check]:
    action = "autoscaling:" + op
    group = (form.get("AutoScalingGroupName") or [None])[0]
    policy = (form.get("PolicyName") or [""])[0]
    if not group and ":autoScalingGroupName/" in policy:
        group = policy.split(":autoScalingGroupName/", 1)[1].split(":", 1)[0]
    if not group or op.startswith("Describe"):
        return [Check(action, "*")]
    backend = _backend("autoscaling", account, region)
    asg = getattr(backend, "autoscaling_groups", {}).get(group) if backend is not None else None
    if asg is None:
        return [Check(action, "arn:aws:autoscaling:%s:%s:autoScalingGroup:*:autoScalingGroupName/%s" % (region, account, group))]
    tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in (asg.tags or [])}
    context = _tag_context(tags, "Resource")
    context.update({"autoscaling:ResourceTag/%s" % k: v for k, v in tags.items()})
    return [Check(action, asg.arn, context)]


def _cloudwatch_checks(op: str, request: dict[str, Any], form: dict[str, list[str]], account: str, region: str) -> list[Check]:
    action = "cloudwatch:" + op
    alarm = "arn:aws:cloudwatch:%s:%s:alarm:%%s" % (region, account)
    names = list(request.get("AlarmNames") or []) or [v[0] for k, v in sorted(form.items()) if k.startswith("AlarmNames.member.")]
    if op == "PutMetricAlarm":
        name = request.get("AlarmName") or (form.get("AlarmName") or [""])[0]
        tags = {t.get("Key"): t.get("Value") for t in request.get("Tags") or []}
        return [Check(action, alarm % name, _tag_context(tags, "Request"))]
    if op in ("DescribeAlarms", "DeleteAlarms"):
        if names:
            return [Check(action, alarm % n) for n in names]
        prefix = request.get("AlarmNamePrefix") or (form.get("AlarmNamePrefix") or [""])[0]
        return [Check(action, alarm % (prefix + "*"))]
    return [Check(action, "*")]


def _ssm_checks(op: str, request: dict[str, Any], account: str, region: str) -> list[Check]:
    names = [request["Name"]] if request.get("Name") else list(request.get("Names") or [])
    if not names:
        return [Check("ssm:" + op, "*")]
    checks = []
    for name in names:
        # Public parameters (/aws/service/...) belong to no account: their ARN has none.
        owner = "" if name.startswith("/aws/") else account
        checks.append(Check("ssm:" + op, "arn:aws:ssm:%s:%s:parameter/%s" % (region, owner, name.lstrip("/"))))
    return checks


def _secretsmanager_checks(op: str, request: dict[str, Any], account: str, region: str) -> list[Check]:
    ident = request.get("SecretId")
    if not ident:
        return [Check("secretsmanager:" + op, "*")]
    backend = _backend("secretsmanager", account, region)
    secret = None
    try:
        secret = backend.get_secret(ident) if backend is not None and hasattr(backend, "get_secret") else None
    except Exception:  # noqa: BLE001 - no such secret
        secret = None
    if secret is None and backend is not None:
        secret = getattr(backend, "secrets", {}).get(ident) if hasattr(getattr(backend, "secrets", None), "get") else None
    if secret is not None:
        tags = {t["Key"]: t["Value"] for t in (getattr(secret, "tags", None) or [])}
        return [Check("secretsmanager:" + op, secret.arn, _tag_context(tags, "Resource"))]
    arn = ident if ident.startswith("arn:") else "arn:aws:secretsmanager:%s:%s:secret:%s-??????" % (region, account, ident)
    return [Check("secretsmanager:" + op, arn)]


def checks_for(service: str | None, operation: str | None, method: str, path: str, query: str,
               headers: dict[str, str], body: bytes, account: str = ACCOUNT) -> list[Check]:
    """Every authorisation AWS makes for one request (pure but for lookups in moto's backends)."""
    region = protocol.region_from_headers(headers) or os.environ.get("AWS_DEFAULT_REGION", "us-east-2")
    op = operation or "Unknown"
    if service == "eks":
        checks = _eks_checks(op, method, path, query, body, account, region)
    elif service == "ec2":
        checks = _ec2_checks(op, _form(query, headers, body), account, region)
    elif service == "iam":
        checks = _iam_checks(op, _form(query, headers, body), account)
    elif service == "autoscaling":
        checks = _autoscaling_checks(op, _form(query, headers, body), account, region)
    elif service == "cloudwatch":
        checks = _cloudwatch_checks(op, _json(body), _form(query, headers, body), account, region)
    elif service == "ssm":
        checks = _ssm_checks(op, _json(body), account, region)
    elif service == "secretsmanager":
        checks = _secretsmanager_checks(op, _json(body), account, region)
    else:
        checks = [Check("%s:%s" % (service or "unknown", op), "*")]
    for check in checks:
        check.context.setdefault("aws:RequestedRegion", region)
    return checks


# --------------------------------------------------------------------------------------------
# Service-linked roles
# --------------------------------------------------------------------------------------------
def _slr_arn(account: str, service: str) -> str:
    name = SERVICE_LINKED_ROLES.get(service, "AWSServiceRoleFor" + service.split(".", 1)[0])
    return "arn:aws:iam::%s:role/aws-service-role/%s/%s" % (account, service, name)


def _service_linked_role(account: str, service: str) -> Any:
    iam = _backend("iam", account, "")
    if iam is None:
        return None
    try:
        return iam.get_role(SERVICE_LINKED_ROLES.get(service, ""))
    except Exception:  # noqa: BLE001 - not there
        return None


def ensure_service_linked_role(account: str, service: str) -> None:
    """Create the service's role as AWS does on the service's first use (idempotent)."""
    iam = _backend("iam", account, "")
    if iam is None or _service_linked_role(account, service) is not None:
        return
    # moto's own CreateServiceLinkedRole names eks-nodegroup's role AWSServiceRoleForeks-nodegroup;
    # AWS names it AWSServiceRoleForAmazonEKSNodegroup, under /aws-service-role/<service>/.
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": [service]},
                                                      "Action": ["sts:AssumeRole"]}]}
    iam.create_role(role_name=SERVICE_LINKED_ROLES[service], assume_role_policy_document=json.dumps(trust),
                    path="/aws-service-role/%s/" % service, permissions_boundary=None,
                    description="Created by the sandbox's EKS on the account's first managed node group", tags=[],
                    max_session_duration="3600", linked_service=service)


# --------------------------------------------------------------------------------------------
# The caller
# --------------------------------------------------------------------------------------------
class Principal:
    def __init__(self, arn: str, name: str, documents: list[Any]):
        self.arn, self.name, self.documents = arn, name, documents


def principal_for(access_key_id: str, headers: dict[str, str], account: str = ACCOUNT) -> Principal | None:
    """The IAM user or assumed role whose key this is, with its policy documents; None if none."""
    from moto.iam.access_control import CreateAccessKeyFailure, IAMPolicy, create_access_key

    iam = _backend("iam", account, "")
    if iam is None:
        return None
    is_session = "x-amz-security-token" in headers
    if not is_session and access_key_id not in getattr(iam, "access_keys", {}):
        return None
    moto_headers = {"X-Amz-Security-Token": headers["x-amz-security-token"]} if is_session else {}
    try:
        key = create_access_key(account_id=account, partition="aws", access_key_id=access_key_id, headers=moto_headers)
    except CreateAccessKeyFailure:
        return None
    documents = [IAMPolicy(policy)._policy_json for policy in key.collect_policies()]
    name = key.arn.rsplit("/", 1)[-1]
    return Principal(key.arn, name, documents)


# --------------------------------------------------------------------------------------------
# The authoriser the middleware calls
# --------------------------------------------------------------------------------------------
class Enforcer:
    def __init__(self, mode: str | None = None, root_keys: str | None = None):
        self._lock = threading.Lock()
        self.mode = "users"
        self.set_mode(mode or os.environ.get("SANDBOX_AWS_IAM") or "strict")
        keys = root_keys if root_keys is not None else os.environ.get("SANDBOX_AWS_ROOT_KEYS", "testing")
        self.root_keys = {k.strip() for k in keys.split(",") if k.strip()}
        self.denials = 0

    def is_root_key(self, key: str | None) -> bool:
        """A key the sandbox lets act as the account root in strict mode (exact, or PREFIX*)."""
        if not key:
            return False
        return any(key == k or (k.endswith("*") and len(k) > 1 and key.startswith(k[:-1])) for k in self.root_keys)

    def set_mode(self, mode: str) -> str:
        if mode not in MODES:
            raise ValueError("mode must be one of %s, got %r" % (", ".join(MODES), mode))
        with self._lock:
            self.mode = mode
        return mode

    def state(self) -> dict[str, Any]:
        return {"mode": self.mode, "denials": self.denials}

    def authorize(self, service: str | None, operation: str | None, method: str, path: str, query: str,
                  headers: dict[str, str], body: bytes) -> Principal | None:
        """Raise Denied, or return the principal (None: the account root / not checked)."""
        if self.mode == "off" or service is None:
            return None
        key = protocol.access_key_id(headers)
        principal = principal_for(key, headers) if key else None
        if principal is None:
            if self.mode == "strict" and not self.is_root_key(key):
                self.denials += 1
                raise Denied("InvalidClientTokenId", "The security token included in the request is invalid "
                             "(access key %s is no IAM user's, and the emulator runs with SANDBOX_AWS_IAM=strict)" % key)
            return None
        if service == "sts" and operation == "GetCallerIdentity":
            return principal
        for check in checks_for(service, operation, method, path, query, headers, body):
            context = dict(check.context, **{"aws:PrincipalArn": principal.arn, "aws:username": principal.name})
            try:
                decision = iam_policy_eval.evaluate(principal.documents, check.action, check.resource, context)
            except iam_policy_eval.UnsupportedCondition as exc:
                self.denials += 1
                raise Denied(DENIED_CODE.get(service, "AccessDenied"), "User: %s: the sandbox cannot authorise %s on "
                             "resource: %s: %s" % (principal.arn, check.action, check.resource, exc), action=check.action) from None
            if decision != "Allow":
                self.denials += 1
                kind = "with an explicit deny in an identity-based policy" if decision == "ExplicitDeny" else \
                    "because no identity-based policy allows the %s action" % check.action
                also = " (%s)" % check.why if check.why else ""
                raise Denied(DENIED_CODE.get(service, "AccessDenied"), "User: %s is not authorized to perform: %s on resource: "
                             "%s%s %s" % (principal.arn, check.action, check.resource, also, kind), action=check.action)
        return principal

    def after(self, service: str | None, operation: str | None, status: int) -> None:
        """Side effects AWS has on success: EKS's first node group creates its service-linked role."""
        if service == "eks" and operation == "CreateNodegroup" and 200 <= status < 300:
            try:
                ensure_service_linked_role(ACCOUNT, NODEGROUP_SLR_SERVICE)
            except Exception:  # noqa: BLE001 - best effort, like the role's own creation on AWS
                pass
