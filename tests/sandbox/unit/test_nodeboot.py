"""Unit tests of the sandbox's reader of node user data (sandbox/kube/nodeboot.py) and of what the
node mirror makes of a custom-AMI launch template: labels only from the kubelet's flags, Nodes that
cannot join when the template's security groups lack the cluster's."""
import base64
import importlib.util
import pathlib
import sys

import pytest

_KUBE = pathlib.Path(__file__).resolve().parents[3] / "sandbox" / "kube"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, _KUBE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


nodeboot = _load("nodeboot")
nm = _load("nodemirror")


def b64(text):
    return base64.b64encode(text.encode()).decode()


MIME_NODEADM = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BOUND"

--BOUND
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: prod
  kubelet:
    flags:
      - "--node-labels=capability=gpu,eks.amazonaws.com/nodegroup=gpu-nodes"
      - "--register-with-taints=nvidia.com/gpu=true:NoSchedule,dedicated:NoExecute"

--BOUND
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash
echo hello
--BOUND--
"""

MIME_BOOTSTRAP = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/x-shellscript

#!/bin/bash
set -e
# /etc/eks/bootstrap.sh in a comment is not a call
/etc/eks/bootstrap.sh prod \\
  --b64-cluster-ca Q0E= \\
  --apiserver-endpoint https://example \\
  --kubelet-extra-args '--node-labels=team=ml,tier=gpu --max-pods=29 --register-with-taints=gpu=yes:PreferNoSchedule'
--B--
"""

BOTTLEROCKET = """[settings.kubernetes]
cluster-name = "prod"
api-server = "https://example"

[settings.kubernetes.node-labels]
"capability" = "gpu"
"eks.amazonaws.com/nodegroup" = "gpu-nodes"

[settings.kubernetes.node-taints]
"nvidia.com/gpu" = ["true:NoSchedule", "other:NoExecute"]
"dedicated" = ":PreferNoSchedule"
"""


def test_nodeadm_flags_give_labels_and_taints():
    boot = nodeboot.read(b64(MIME_NODEADM))
    assert boot.flavour == "nodeadm"
    assert boot.labels == {"capability": "gpu", "eks.amazonaws.com/nodegroup": "gpu-nodes"}
    assert boot.taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"},
                           {"key": "dedicated", "effect": "NoExecute"}]
    assert boot.problems == []


def test_bootstrap_kubelet_extra_args():
    boot = nodeboot.read(b64(MIME_BOOTSTRAP))
    assert boot.flavour == "bootstrap"
    assert boot.labels == {"team": "ml", "tier": "gpu"}
    assert boot.taints == [{"key": "gpu", "value": "yes", "effect": "PreferNoSchedule"}]


def test_bottlerocket_settings():
    boot = nodeboot.read(b64(BOTTLEROCKET))
    assert boot.flavour == "bottlerocket"
    assert boot.labels == {"capability": "gpu", "eks.amazonaws.com/nodegroup": "gpu-nodes"}
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in boot.taints
    assert {"key": "nvidia.com/gpu", "value": "other", "effect": "NoExecute"} in boot.taints
    assert {"key": "dedicated", "effect": "PreferNoSchedule"} in boot.taints


@pytest.mark.parametrize("text", ["", "#!/bin/bash\necho no bootstrap here\n", "not base64 at all!"])
def test_user_data_without_kubelet_flags_registers_nothing(text):
    boot = nodeboot.read(b64(text) if text != "not base64 at all!" else text)
    assert boot.labels == {} and boot.taints == []


def test_bad_taint_effect_is_a_problem_not_a_taint():
    boot = nodeboot.read(b64("#!/bin/bash\n/etc/eks/bootstrap.sh c --kubelet-extra-args '--register-with-taints=a=b:Never'\n"))
    assert boot.taints == [] and "Never" in boot.problems[0]


def test_collection_renderer_round_trips():
    """The collection's own user data, read by the sandbox's independent reader."""
    from ansible_collections.genai.stack.plugins.module_utils import _userdata

    cluster = {"name": "prod", "endpoint": "https://e", "certificateAuthority": {"data": "Q0E="},
               "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}}
    labels = {"capability": "gpu", "team": "ml"}
    taints = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    for flavour in ("nodeadm", "bootstrap"):
        boot = nodeboot.read(b64(_userdata.render(flavour, cluster, "gpu-nodes", "us-east-2", labels, taints)))
        assert boot.flavour == flavour
        assert {k: boot.labels[k] for k in labels} == labels
        assert boot.taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]


NG = {"nodegroupName": "gpu-nodes", "labels": {"capability": "gpu", "from-api": "yes"},
      "taints": [{"key": "api-taint", "effect": "NO_SCHEDULE"}], "subnets": ["s1", "s2"]}


def test_custom_ami_nodes_take_labels_only_from_user_data():
    lt = {"ImageId": "ami-1", "InstanceType": "g5.xlarge", "UserData": b64(MIME_BOOTSTRAP)}
    node = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g5.xlarge", set(), lt, "sg-cluster")[0]
    assert node.labels["team"] == "ml" and node.labels["tier"] == "gpu"
    assert "from-api" not in node.labels and "capability" not in node.labels
    assert "eks.amazonaws.com/nodegroup" not in node.labels
    assert node.labels["kubernetes.io/hostname"] == node.name
    assert node.labels["node.kubernetes.io/instance-type"] == "g5.xlarge"
    assert {"key": "api-taint", "effect": "NoSchedule"} in node.taints
    assert {"key": "gpu", "value": "yes", "effect": "PreferNoSchedule"} in node.taints
    assert node.unreachable == ""
    assert nm.KWOK_ANNOTATION in node.manifest()["metadata"]["annotations"]


def test_eks_ami_nodes_take_node_group_labels():
    lt = {"InstanceType": "g5.xlarge", "UserData": b64(MIME_BOOTSTRAP)}
    node = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g5.xlarge", set(), lt, "sg-cluster")[0]
    assert node.labels["from-api"] == "yes" and node.labels["eks.amazonaws.com/nodegroup"] == "gpu-nodes"
    assert "team" not in node.labels


@pytest.mark.parametrize("lt,unreachable", [
    ({"ImageId": "ami-1", "SecurityGroupIds": ["sg-extra"]}, True),
    ({"ImageId": "ami-1", "NetworkInterfaces": [{"Groups": ["sg-extra"]}]}, True),
    ({"ImageId": "ami-1", "SecurityGroupIds": ["sg-extra", "sg-cluster"]}, False),
    ({"ImageId": "ami-1"}, False),
    (None, False),
])
def test_security_groups_without_the_cluster_group_never_join(lt, unreachable):
    node = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g5.xlarge", set(), lt, "sg-cluster")[0]
    manifest = node.manifest()
    assert bool(node.unreachable) is unreachable
    assert (nm.KWOK_ANNOTATION in manifest["metadata"]["annotations"]) is not unreachable
    if unreachable:
        assert "sg-cluster" in node.unreachable and "sg-extra" in node.unreachable
        assert manifest["status"]["conditions"][0]["status"] == "False"


def test_node_patch_turns_a_ready_node_unreachable_and_leaves_unknown_alone():
    reachable = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g5.xlarge", set(), {"ImageId": "a"}, "sg-c")[0]
    current = reachable.manifest()
    current["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    blocked = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g5.xlarge", set(),
                                 {"ImageId": "a", "SecurityGroupIds": ["sg-x"]}, "sg-c")[0]
    patch, status = nm.node_patch(current, blocked)
    assert patch["metadata"]["annotations"][nm.KWOK_ANNOTATION] is None
    assert status["status"]["conditions"][-1]["status"] == "False"
    # Once the lifecycle controller says Unknown, the mirror does not fight it every cycle.
    current["metadata"]["annotations"].pop(nm.KWOK_ANNOTATION)
    current["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    assert nm.node_patch(current, blocked) == (None, None)
    # And a template version with the cluster group brings kwok back.
    patch, _ = nm.node_patch(current, reachable)
    assert patch["metadata"]["annotations"][nm.KWOK_ANNOTATION] == "fake"
