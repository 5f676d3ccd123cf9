"""playbooks/iam_policy.yml: docs/iam/minimal-policy.json is its output for the documented example
names (so the documented policy never drifts from the generator), and bad names fail before
anything is written, naming the variables."""

import json
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")
# The names docs/iam/README.md says minimal-policy.json was generated for.
EXAMPLE = {"iam_policy_account_id": "123456789012", "iam_policy_region": "us-east-2", "iam_policy_cluster_name": "sandbox",
           "iam_policy_node_role_arns": ["arn:aws:iam::123456789012:role/sandbox-eks-node-role"],
           "iam_policy_nodegroup_names": ["gpu-nodes", "sandbox-cpu"], "iam_policy_secret_name_prefixes": ["genai-stack/"]}


def _run(tmp_path, **extra):
    dest = tmp_path / "policy.json"
    variables = dict(EXAMPLE, iam_policy_dest=str(dest), **extra)
    done = subprocess.run([PLAYBOOK, "playbooks/iam_policy.yml", "-e", json.dumps(variables)], cwd=ROOT, capture_output=True, text=True)
    return done, dest


@pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no .venv/bin/ansible-playbook (make venv)")
def test_documented_policy_is_the_generated_one(tmp_path):
    done, dest = _run(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(os.path.join(ROOT, "docs", "iam", "minimal-policy.json"), encoding="utf-8") as handle:
        documented = json.load(handle)
    generated = json.loads(dest.read_text())
    assert documented == generated, "regenerate docs/iam/minimal-policy.json with the names of docs/iam/README.md"
    statements = generated["Statement"]
    assert (len(statements), sum(len(s["Action"]) for s in statements)) == (16, 35)
    # IAM actions only ever on the node role or EKS's service-linked role, never on a wildcard role.
    for statement in statements:
        if any(a.startswith("iam:") for a in statement["Action"]):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all("*" not in r for r in resources), statement


@pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no .venv/bin/ansible-playbook (make venv)")
@pytest.mark.parametrize("bad", [{"iam_policy_node_role_arns": ["arn:aws:iam::123456789012:role/*"]},
                                 {"iam_policy_nodegroup_names": ["*"]}])
def test_bad_names_fail_before_writing(tmp_path, bad):
    done, dest = _run(tmp_path, **bad)
    assert done.returncode != 0
    assert "iam_policy_" in done.stdout + done.stderr
    assert not dest.exists()


# The add-ons' controller policies (iam_policy_addons), documented as docs/iam/addon-<add-on>-policy.json.
ADDONS = {"aws-load-balancer-controller": (9, 82), "cluster-autoscaler": (3, 12)}


@pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no .venv/bin/ansible-playbook (make venv)")
def test_documented_addon_policies_are_the_generated_ones(tmp_path):
    done, dest = _run(tmp_path, iam_policy_addons=sorted(ADDONS))
    assert done.returncode == 0, done.stdout + done.stderr
    # The operator's policy is unchanged by them: the controllers' calls are made by their own roles.
    with open(os.path.join(ROOT, "docs", "iam", "minimal-policy.json"), encoding="utf-8") as handle:
        assert json.loads(dest.read_text()) == json.load(handle)
    for addon, counts in ADDONS.items():
        generated = json.loads((tmp_path / ("policy-%s.json" % addon)).read_text())
        with open(os.path.join(ROOT, "docs", "iam", "addon-%s-policy.json" % addon), encoding="utf-8") as handle:
            assert json.load(handle) == generated, "regenerate docs/iam/addon-%s-policy.json (docs/iam/README.md)" % addon
        statements = generated["Statement"]
        assert (len(statements), sum(len(s["Action"]) for s in statements)) == counts
        # Every change is on the cluster's own resources: a condition, or resource ARNs of the account, never "*" alone.
        for statement in statements:
            writes = [a for a in statement["Action"] if not a.split(":")[1].startswith(("Describe", "Get", "List"))]
            if writes and statement["Resource"] == "*":
                assert statement["Sid"] in ("AlbControllerWafAndShieldOnItsBalancers",), statement
    autoscaler = json.loads((tmp_path / "policy-cluster-autoscaler.json").read_text())["Statement"]
    (sizing,) = [s for s in autoscaler if "autoscaling:SetDesiredCapacity" in s["Action"]]
    assert sizing["Condition"]["StringEquals"] == {"aws:ResourceTag/k8s.io/cluster-autoscaler/sandbox": "owned",
                                                   "aws:ResourceTag/eks:nodegroup-name": ["gpu-nodes"]}


@pytest.mark.skipif(not os.path.exists(PLAYBOOK), reason="no .venv/bin/ansible-playbook (make venv)")
def test_unknown_addon_fails_before_writing(tmp_path):
    done, dest = _run(tmp_path, iam_policy_addons=["external-dns"])
    assert done.returncode != 0 and "iam_policy_addons" in done.stdout + done.stderr
    assert not dest.exists()
