"""The book of queued EKS outcomes (sandbox/aws/outcomes.py): what a test may ask for, what is
refused, and how queued and held outcomes are consumed and released. No server; the behaviour
of the emulator under each outcome is tested live in tests/sandbox/live/test_aws_eks_outcomes.py."""

from __future__ import annotations

import sys
from pathlib import Path

import botocore.session
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sandbox.aws import outcomes  # noqa: E402
from sandbox.aws.outcomes import OutcomeBook, OutcomeError, normalize  # noqa: E402


def test_codes_are_the_ones_botocore_knows():
    # A code EKS cannot send would let a caller's handling be tested against fiction.
    model = botocore.session.get_session().get_service_model("eks")
    assert set(outcomes.UPDATE_ERROR_CODES) == set(model.shape_for("ErrorCode").enum)
    assert set(outcomes.NODEGROUP_ISSUE_CODES) == set(model.shape_for("NodegroupIssueCode").enum)
    for (operation, _), detail in outcomes.DEFAULT_DETAIL.items():
        codes = (outcomes.NODEGROUP_ISSUE_CODES if operation in outcomes.NODEGROUP_OPERATIONS
                 else outcomes.UPDATE_ERROR_CODES)
        assert all((d.get("code") or d.get("errorCode")) in codes for d in detail)


def test_statuses_are_the_ones_botocore_knows():
    model = botocore.session.get_session().get_service_model("eks")
    update_statuses = set(model.shape_for("UpdateStatus").enum)
    nodegroup_statuses = set(model.shape_for("NodegroupStatus").enum)
    for operation, ends in outcomes.OPERATIONS.items():
        known = nodegroup_statuses if operation in outcomes.NODEGROUP_OPERATIONS else update_statuses
        assert set(ends) - {"hang"} <= known, operation
        assert operation in model.operation_names


def test_defaults():
    spec = normalize({"nodegroup": "gpu", "operation": "UpdateNodegroupVersion", "outcome": "Failed"})
    assert spec["cluster"] == "sandbox" and spec["times"] == 1
    assert spec["errors"][0]["errorCode"] == "PodEvictionFailure"
    assert "issues" not in spec
    created = normalize({"nodegroup": "gpu", "operation": "CreateNodegroup", "outcome": "CREATE_FAILED"})
    assert created["issues"][0]["code"] == "NodeCreationFailure"
    assert normalize({"nodegroup": "gpu", "operation": "UpdateNodegroupConfig",
                      "outcome": "Cancelled"})["errors"] == []


def test_given_detail_is_kept():
    spec = normalize({"cluster": "c", "nodegroup": "gpu", "operation": "UpdateNodegroupConfig",
                      "outcome": "Failed", "times": 2,
                      "errors": [{"errorCode": "AccessDenied", "errorMessage": "no", "resourceIds": ["i-1"]}]})
    assert spec["errors"] == [{"errorCode": "AccessDenied", "errorMessage": "no", "resourceIds": ["i-1"]}]
    assert (spec["cluster"], spec["times"]) == ("c", 2)


@pytest.mark.parametrize("spec,words", [
    ("x", "JSON object"),
    ({"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "Failed"}, "CREATE_FAILED, hang"),
    ({"nodegroup": "n", "operation": "UpdateNodegroupConfig", "outcome": "CREATE_FAILED"}, "Failed, Cancelled, hang"),
    ({"nodegroup": "n", "operation": "DeleteNodegroup", "outcome": "CREATE_FAILED"}, "DELETE_FAILED"),
    ({"nodegroup": "n", "operation": "UpdateClusterVersion", "outcome": "Failed"}, "operation must be one of"),
    ({"operation": "CreateNodegroup", "outcome": "hang"}, "needs 'nodegroup'"),
    ({"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "hang", "times": 0}, "times must be >= 1"),
    ({"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "hang", "colour": 1}, "unknown outcome keys"),
    ({"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "CREATE_FAILED",
      "errors": [{"errorCode": "Unknown"}]}, "reports 'issues', not 'errors'"),
    ({"nodegroup": "n", "operation": "UpdateNodegroupConfig", "outcome": "Failed",
      "issues": [{"code": "Unknown"}]}, "reports 'errors', not 'issues'"),
    ({"nodegroup": "n", "operation": "UpdateNodegroupConfig", "outcome": "Failed",
      "errors": [{"errorCode": "Boom"}]}, "is not one of EKS's"),
    ({"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "CREATE_FAILED",
      "issues": [{"code": "NodeCreationFailure", "reason": "x"}]}, "unknown keys in issues"),
    ({"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "CREATE_FAILED",
      "issues": [{"code": "NodeCreationFailure", "resourceIds": "i-1"}]}, "list of strings"),
    ({"nodegroup": "n", "operation": "CreateNodegroup", "outcome": "hang",
      "issues": [{"code": "NodeCreationFailure"}]}, "a hang reports no issues"),
])
def test_refused_specs_say_why(spec, words):
    with pytest.raises(OutcomeError, match=words.replace("(", r"\(")):
        normalize(spec)


def test_take_matches_cluster_nodegroup_and_operation_and_counts_times():
    book = OutcomeBook()
    book.add([{"nodegroup": "a", "operation": "UpdateNodegroupConfig", "outcome": "Failed", "times": 2},
              {"cluster": "other", "nodegroup": "a", "operation": "UpdateNodegroupConfig", "outcome": "Cancelled"}])
    assert book.take("sandbox", "a", "UpdateNodegroupVersion") is None
    assert book.take("sandbox", "b", "UpdateNodegroupConfig") is None
    assert book.take("sandbox", "a", "UpdateNodegroupConfig")["outcome"] == "Failed"
    assert book.take("sandbox", "a", "UpdateNodegroupConfig")["outcome"] == "Failed"
    assert book.take("sandbox", "a", "UpdateNodegroupConfig") is None
    assert book.take("other", "a", "UpdateNodegroupConfig")["outcome"] == "Cancelled"
    assert book.list() == {"queued": [], "held": []}


def test_a_refused_list_queues_nothing():
    book = OutcomeBook()
    with pytest.raises(OutcomeError):
        book.add([{"nodegroup": "a", "operation": "CreateNodegroup", "outcome": "hang"}, {"nodegroup": "a"}])
    assert book.list()["queued"] == []


def test_release_completes_held_work_in_order_and_clears_the_queue():
    book = OutcomeBook()
    done = []
    book.add({"nodegroup": "a", "operation": "CreateNodegroup", "outcome": "hang"})
    book.hold({"nodegroup": "a", "operation": "CreateNodegroup"}, lambda: done.append("create"))
    book.hold({"nodegroup": "b", "operation": "UpdateNodegroupConfig"}, lambda: done.append("update"))
    assert [h["nodegroup"] for h in book.list()["held"]] == ["a", "b"]
    assert book.release() == {"cleared": 1, "released": 2}
    assert done == ["create", "update"]
    assert book.list() == {"queued": [], "held": []}
    assert book.release() == {"cleared": 0, "released": 0}


def test_fill_detail_names_the_nodegroup_and_its_resources():
    detail = normalize({"nodegroup": "gpu", "operation": "UpdateNodegroupVersion", "outcome": "Failed"})["errors"]
    filled = outcomes.fill_detail(detail, "gpu", ["eks-gpu-1"])
    assert filled[0]["errorMessage"].endswith("in node group gpu")
    assert filled[0]["resourceIds"] == ["eks-gpu-1"]
    given = [{"code": "AccessDenied", "message": "m", "resourceIds": []}]
    assert outcomes.fill_detail(given, "gpu", ["eks-gpu-1"])[0]["resourceIds"] == []
