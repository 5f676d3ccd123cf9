"""Queued EKS outcomes: how the next creation, deletion or update of one node group ends.

moto finishes every EKS operation at once and successfully. Real EKS works asynchronously: a
node group can end CREATE_FAILED or DELETE_FAILED with health issues, an update can end Failed
(with errors) or Cancelled, and either can take longer than a caller is willing to wait. A test
queues the outcome here (``POST /_sandbox/eks-outcomes``); ``patches.patch_eks_outcomes`` consumes
it when the matching call succeeds. A ``hang`` is held until released (``DELETE``), which
completes the held work as a success.

This module is pure (no moto import): the book and the validation of what a test asks for.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

# Operation -> the outcomes EKS can give it. "hang": still CREATING / DELETING / InProgress.
OPERATIONS = {
    "CreateNodegroup": ("CREATE_FAILED", "hang"),
    "DeleteNodegroup": ("DELETE_FAILED", "hang"),
    "UpdateNodegroupConfig": ("Failed", "Cancelled", "hang"),
    "UpdateNodegroupVersion": ("Failed", "Cancelled", "hang"),
}
NODEGROUP_OPERATIONS = ("CreateNodegroup", "DeleteNodegroup")

# botocore's EKS model: ErrorCode (an update's errors) and NodegroupIssueCode (health issues).
# tests/sandbox/unit/test_aws_outcomes.py checks these against the installed botocore.
UPDATE_ERROR_CODES = (
    "SubnetNotFound", "SecurityGroupNotFound", "EniLimitReached", "IpNotAvailable", "AccessDenied",
    "OperationNotPermitted", "VpcIdNotFound", "Unknown", "NodeCreationFailure", "PodEvictionFailure",
    "InsufficientFreeAddresses", "ClusterUnreachable", "InsufficientNumberOfReplicas",
    "ConfigurationConflict", "AdmissionRequestDenied", "UnsupportedAddonModification",
    "K8sResourceNotFound",
)
NODEGROUP_ISSUE_CODES = (
    "AutoScalingGroupNotFound", "AutoScalingGroupInvalidConfiguration", "Ec2SecurityGroupNotFound",
    "Ec2SecurityGroupDeletionFailure", "Ec2LaunchTemplateNotFound", "Ec2LaunchTemplateVersionMismatch",
    "Ec2SubnetNotFound", "Ec2SubnetInvalidConfiguration", "IamInstanceProfileNotFound",
    "Ec2SubnetMissingIpv6Assignment", "IamLimitExceeded", "IamNodeRoleNotFound", "NodeCreationFailure",
    "AsgInstanceLaunchFailures", "InstanceLimitExceeded", "InsufficientFreeAddresses", "AccessDenied",
    "InternalFailure", "ClusterUnreachable", "AmiIdNotFound", "AutoScalingGroupOptInRequired",
    "AutoScalingGroupRateLimitExceeded", "Ec2LaunchTemplateDeletionFailure",
    "Ec2LaunchTemplateInvalidConfiguration", "Ec2LaunchTemplateMaxLimitExceeded",
    "Ec2SubnetListTooLong", "IamThrottling", "NodeTerminationFailure", "PodEvictionFailure",
    "SourceEc2LaunchTemplateNotFound", "LimitExceeded", "Unknown",
    "AutoScalingGroupInstanceRefreshActive", "KubernetesLabelInvalid",
    "Ec2LaunchTemplateVersionMaxLimitExceeded", "Ec2InstanceTypeDoesNotExist",
)

# What EKS reports most often for each failure, when the test gives no errors / issues of its own.
# resourceIds None: filled in with the node group's Auto Scaling group when the outcome happens.
DEFAULT_DETAIL = {
    ("CreateNodegroup", "CREATE_FAILED"): [
        {"code": "NodeCreationFailure", "message": "Instances failed to join the kubernetes cluster",
         "resourceIds": None}],
    ("DeleteNodegroup", "DELETE_FAILED"): [
        {"code": "Ec2SecurityGroupDeletionFailure",
         "message": "DependencyViolation - resource has a dependent object", "resourceIds": None}],
    ("UpdateNodegroupVersion", "Failed"): [
        {"errorCode": "PodEvictionFailure",
         "errorMessage": "Reached max retries while trying to evict pods from nodes in node group "
                         "{nodegroup}", "resourceIds": None}],
    ("UpdateNodegroupConfig", "Failed"): [
        {"errorCode": "NodeCreationFailure",
         "errorMessage": "Instances failed to join the kubernetes cluster", "resourceIds": None}],
}


class OutcomeError(ValueError):
    pass


def _detail(spec: dict[str, Any], operation: str, outcome: str) -> list[dict[str, Any]]:
    """The errors (updates) or health issues (node groups) the outcome reports."""
    nodegroup_op = operation in NODEGROUP_OPERATIONS
    key, wrong = ("issues", "errors") if nodegroup_op else ("errors", "issues")
    if wrong in spec:
        raise OutcomeError(f"{operation} reports '{key}', not '{wrong}'")
    given = spec.get(key)
    if given is None:
        return [dict(d) for d in DEFAULT_DETAIL.get((operation, outcome), [])]
    if outcome in ("hang",):
        raise OutcomeError(f"a hang reports no {key}")
    if not isinstance(given, list) or not all(isinstance(d, dict) for d in given):
        raise OutcomeError(f"'{key}' is a list of objects")
    code_key, message_key, codes = (("code", "message", NODEGROUP_ISSUE_CODES) if nodegroup_op
                                    else ("errorCode", "errorMessage", UPDATE_ERROR_CODES))
    out = []
    for item in given:
        unknown = set(item) - {code_key, message_key, "resourceIds"}
        if unknown:
            raise OutcomeError(f"unknown keys in {key}: {sorted(unknown)} "
                               f"(use {code_key}, {message_key}, resourceIds)")
        if item.get(code_key) not in codes:
            raise OutcomeError(f"{code_key} {item.get(code_key)!r} is not one of EKS's: "
                               f"{', '.join(codes)}")
        ids = item.get("resourceIds")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            raise OutcomeError("resourceIds is a list of strings")
        out.append({code_key: item[code_key], message_key: str(item.get(message_key) or ""),
                    "resourceIds": ids})
    return out


def normalize(spec: Any) -> dict[str, Any]:
    """``{"cluster": "sandbox", "nodegroup": "gpu", "operation": "UpdateNodegroupVersion",
    "outcome": "Failed", "times": 1, "errors": [...]}``: nodegroup, operation and outcome are
    required; cluster defaults to ``sandbox``, times to 1; ``errors`` (updates) or ``issues``
    (node groups) default to what EKS reports most often for that failure."""
    if not isinstance(spec, dict):
        raise OutcomeError("an outcome is a JSON object")
    unknown = set(spec) - {"cluster", "nodegroup", "operation", "outcome", "times", "errors",
                           "issues"}
    if unknown:
        raise OutcomeError(f"unknown outcome keys: {sorted(unknown)}")
    operation, outcome = spec.get("operation"), spec.get("outcome")
    if operation not in OPERATIONS:
        raise OutcomeError(f"operation must be one of {', '.join(OPERATIONS)}")
    if outcome not in OPERATIONS[operation]:
        raise OutcomeError(f"{operation} can end {', '.join(OPERATIONS[operation])}, "
                           f"not {outcome!r}")
    if not spec.get("nodegroup") or not isinstance(spec["nodegroup"], str):
        raise OutcomeError("an outcome needs 'nodegroup' (the node group's name)")
    try:
        times = int(spec.get("times", 1))
    except (TypeError, ValueError):
        raise OutcomeError("times must be an integer") from None
    if times < 1:
        raise OutcomeError("times must be >= 1")
    detail = _detail(spec, operation, outcome)
    return {
        "cluster": str(spec.get("cluster") or "sandbox"),
        "nodegroup": spec["nodegroup"],
        "operation": operation,
        "outcome": outcome,
        "times": times,
        "issues" if operation in NODEGROUP_OPERATIONS else "errors": detail,
    }


def fill_detail(detail: list[dict[str, Any]], nodegroup: str,
                resource_ids: list[str]) -> list[dict[str, Any]]:
    """The reported errors / issues with the node group's name and resources filled in."""
    out = []
    for item in detail:
        item = dict(item)
        for key in ("message", "errorMessage"):
            if key in item:
                item[key] = item[key].replace("{nodegroup}", nodegroup)
        if item.get("resourceIds") is None:
            item["resourceIds"] = list(resource_ids)
        out.append(item)
    return out


class OutcomeBook:
    """Queued outcomes, and the work held by a ``hang`` until ``release()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[dict[str, Any]] = []
        self._held: list[tuple[dict[str, Any], Callable[[], None]]] = []

    def add(self, spec: Any) -> list[dict[str, Any]]:
        specs = spec if isinstance(spec, list) else [spec]
        outcomes = [normalize(s) for s in specs]
        with self._lock:
            self._queued.extend(outcomes)
        return self.list()["queued"]

    def take(self, cluster: str, nodegroup: str, operation: str) -> dict[str, Any] | None:
        """The first queued outcome for this call, consuming one of its ``times``."""
        with self._lock:
            for outcome in self._queued:
                if (outcome["cluster"], outcome["nodegroup"], outcome["operation"]) == \
                        (cluster, nodegroup, operation):
                    outcome["times"] -= 1
                    if outcome["times"] <= 0:
                        self._queued.remove(outcome)
                    return dict(outcome)
        return None

    def hold(self, what: dict[str, Any], complete: Callable[[], None]) -> None:
        """Keep ``complete`` (which finishes the work successfully) until release."""
        with self._lock:
            self._held.append((dict(what), complete))

    def list(self) -> dict[str, list[dict[str, Any]]]:
        with self._lock:
            return {"queued": [dict(o) for o in self._queued],
                    "held": [dict(w) for w, _ in self._held]}

    def release(self) -> dict[str, int]:
        """Drop what is queued and let every held operation finish, in the order it started."""
        with self._lock:
            queued, held = len(self._queued), list(self._held)
            self._queued.clear()
            self._held.clear()
        for _, complete in held:
            complete()
        return {"cleared": queued, "released": len(held)}


# One book per emulator process: the middleware serves it, the EKS patch consumes it.
BOOK = OutcomeBook()
