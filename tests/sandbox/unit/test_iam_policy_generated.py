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
