"""Unit tests of the node mirror's pure mapping logic (sandbox/kube/nodemirror.py)."""
import importlib.util
import json
import logging
import pathlib
import re
import sys

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[3] / "sandbox" / "kube" / "nodemirror.py"
_spec = importlib.util.spec_from_file_location("nodemirror", _PATH)
nm = importlib.util.module_from_spec(_spec)
sys.modules["nodemirror"] = nm  # dataclasses look their module up
_spec.loader.exec_module(nm)


@pytest.mark.parametrize(
    "itype,gpus",
    [
        ("g4dn.xlarge", 1), ("g4dn.2xlarge", 1), ("g4dn.4xlarge", 1), ("g4dn.8xlarge", 1),
        ("g5.xlarge", 1), ("g5.2xlarge", 1), ("g5.4xlarge", 1), ("g5.8xlarge", 1),
        ("g4dn.12xlarge", 4), ("g5.12xlarge", 4),
        ("g5.48xlarge", 8), ("p4d.24xlarge", 8), ("p5.48xlarge", 8),
    ],
)
def test_gpu_capacity_by_instance_type(itype, gpus):
    capacity, allocatable = nm.node_resources(itype)
    assert capacity["nvidia.com/gpu"] == str(gpus)
    assert allocatable["nvidia.com/gpu"] == str(gpus)


def test_cpu_instance_has_no_gpu_and_sane_allocatable():
    capacity, allocatable = nm.node_resources("t3.medium")
    assert "nvidia.com/gpu" not in capacity
    assert capacity["cpu"] == "2"
    assert capacity["memory"] == f"{4 * 1024 * 1024}Ki"
    assert capacity["pods"] == "17"
    assert int(allocatable["cpu"].rstrip("m")) < 2000
    assert int(allocatable["memory"].rstrip("Ki")) < 4 * 1024 * 1024


def test_g4dn_12xlarge_shape():
    capacity = nm.node_resources("g4dn.12xlarge")[0]
    assert capacity["cpu"] == "48"
    assert capacity["memory"] == f"{192 * 1024 * 1024}Ki"


def test_unknown_instance_type_is_guessed_from_size():
    vcpu, mem, gpus, pods = nm.instance_resources("z9.4xlarge")
    assert (vcpu, mem, gpus, pods) == (16, 64.0, 0, 110)
    assert nm.instance_resources("z9.large")[0] == 2


@pytest.mark.parametrize(
    "eks,k8s",
    [("NO_SCHEDULE", "NoSchedule"), ("NO_EXECUTE", "NoExecute"), ("PREFER_NO_SCHEDULE", "PreferNoSchedule")],
)
def test_eks_taint_effects(eks, k8s):
    assert nm.eks_taint({"key": "nvidia.com/gpu", "value": "true", "effect": eks}) == {
        "key": "nvidia.com/gpu", "value": "true", "effect": k8s}


def test_eks_taint_without_value_and_unknown_effect():
    assert nm.eks_taint({"key": "dedicated", "effect": "NO_SCHEDULE"}) == {"key": "dedicated", "effect": "NoSchedule"}
    with pytest.raises(ValueError):
        nm.eks_taint({"key": "k", "effect": "NoSchedule"})


def test_node_names_are_ec2_like_and_deterministic():
    a = nm.node_name("sandbox", "gpu", 0, "us-east-2")
    assert re.fullmatch(r"ip-10-0-\d{1,3}-\d{1,3}\.us-east-2\.compute\.internal", a)
    assert a == nm.node_name("sandbox", "gpu", 0, "us-east-2")
    assert a != nm.node_name("sandbox", "gpu", 1, "us-east-2")
    assert a != nm.node_name("sandbox", "cpu", 0, "us-east-2")
    x, y = (int(p) for p in a.split(".")[0].split("-")[3:5])
    assert 1 <= x <= 254 and 1 <= y <= 254
    assert nm.node_ip(a) == f"10.0.{x}.{y}"


def test_node_name_collision_is_resolved():
    a = nm.node_name("sandbox", "gpu", 0, "us-east-2")
    b = nm.node_name("sandbox", "gpu", 0, "us-east-2", taken={a})
    assert b != a and b.endswith(".us-east-2.compute.internal")


NG = {
    "nodegroupName": "gpu",
    "labels": {"workload": "inference"},
    "taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
    "capacityType": "ON_DEMAND",
    "subnets": ["subnet-a", "subnet-b", "subnet-c"],
}


def test_nodegroup_nodes_labels_taints_capacity():
    specs = nm.nodegroup_nodes("sandbox", NG, 2, "us-east-2", "g4dn.12xlarge", set())
    assert len(specs) == 2 and len({s.name for s in specs}) == 2
    s = specs[0]
    assert s.labels["workload"] == "inference"
    assert s.labels["eks.amazonaws.com/nodegroup"] == "gpu"
    assert s.labels["node.kubernetes.io/instance-type"] == "g4dn.12xlarge"
    assert s.labels["kubernetes.io/os"] == "linux"
    assert s.labels["kubernetes.io/arch"] == "amd64"
    assert s.labels["type"] == "kwok"
    assert s.labels[nm.MANAGED_LABEL] == "true"
    assert s.taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert s.allocatable["nvidia.com/gpu"] == "4"
    m = s.manifest()
    assert m["metadata"]["annotations"][nm.KWOK_ANNOTATION] == "fake"
    assert m["status"]["addresses"][0] == {"type": "InternalIP", "address": nm.node_ip(s.name)}


def test_node_patch_noop_when_equal():
    spec = nm.nodegroup_nodes("sandbox", NG, 1, "us-east-2", "g4dn.xlarge", set())[0]
    assert nm.node_patch(spec.manifest(), spec) == (None, None)


def test_node_patch_labels_taints_and_foreign_taints_kept():
    old = nm.nodegroup_nodes("sandbox", NG, 1, "us-east-2", "g4dn.xlarge", set())[0]
    current = old.manifest()
    current["spec"]["taints"].append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    current["metadata"]["labels"]["someone-else"] = "x"
    ng2 = dict(NG, labels={"tier": "gold"}, taints=[{"key": "gpu", "effect": "NO_EXECUTE"}])
    new = nm.nodegroup_nodes("sandbox", ng2, 1, "us-east-2", "g4dn.xlarge", set())[0]
    patch, status = nm.node_patch(current, new)
    assert status is None
    assert patch["metadata"]["labels"]["tier"] == "gold"
    assert patch["metadata"]["labels"]["workload"] is None  # removed: it was ours
    assert "someone-else" not in patch["metadata"]["labels"]  # not ours: left alone
    keys = {(t["key"], t["effect"]) for t in patch["spec"]["taints"]}
    assert keys == {("node.kubernetes.io/unschedulable", "NoSchedule"), ("gpu", "NoExecute")}
    assert json.loads(patch["metadata"]["annotations"][nm.OWNED_TAINTS_ANNOTATION]) == ["gpu"]


def test_node_patch_status_on_instance_type_change():
    old = nm.nodegroup_nodes("sandbox", NG, 1, "us-east-2", "g4dn.xlarge", set())[0]
    new = nm.nodegroup_nodes("sandbox", NG, 1, "us-east-2", "g4dn.12xlarge", set())[0]
    status = nm.node_patch(old.manifest(), new)[1]
    assert status["status"]["allocatable"]["nvidia.com/gpu"] == "4"


def test_tpu_nodes():
    specs = nm.tpu_nodes([{"name": "tpu", "accelerator": "tpu-v5-lite-podslice", "topology": "2x4", "chips": 4,
                           "count": 2}])
    assert [s.name for s in specs] == ["tpu-0", "tpu-1"]
    s = specs[0]
    assert s.capacity["google.com/tpu"] == "4"
    assert s.labels["cloud.google.com/gke-tpu-accelerator"] == "tpu-v5-lite-podslice"
    assert s.labels["cloud.google.com/gke-tpu-topology"] == "2x4"
    assert s.taints == [{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}]


class _FakeAws(nm.Aws):
    def __init__(self, asg_values):
        self._last_seen = {}
        self._asg = iter(asg_values)

    def _asg_desired(self, ng):
        return next(self._asg)


def test_desired_size_last_changed_source_wins():
    aws = _FakeAws([2, 2, 2, 3, 3])
    ng = {"nodegroupName": "gpu", "scalingConfig": {"desiredSize": 2}}
    assert aws.desired_size("c", ng) == 2
    ng["scalingConfig"]["desiredSize"] = 1  # UpdateNodegroupConfig not (yet) reflected in the ASG
    assert aws.desired_size("c", ng) == 1
    assert aws.desired_size("c", ng) == 1
    assert aws.desired_size("c", ng) == 3  # the ASG was scaled directly
    assert aws.desired_size("c", ng) == 3


@pytest.mark.parametrize("a,b", [("192Gi", f"{192 * 1024 * 1024}Ki"), ("47880m", "47.88"), ("1k", "1000"),
                                 ("1e3", "1000"), ("4", "4")])
def test_quantities_compare_by_value(a, b):
    assert nm.parse_quantity(a) == nm.parse_quantity(b)


def test_node_patch_ignores_canonicalized_quantities():
    spec = nm.nodegroup_nodes("sandbox", NG, 1, "us-east-2", "g4dn.12xlarge", set())[0]
    current = spec.manifest()
    current["status"]["capacity"]["memory"] = "192Gi"  # how the apiserver writes 201326592Ki
    assert nm.node_patch(current, spec) == (None, None)


class _TwoClusters(nm.Aws):
    """Two clusters with one CPU node group each; node groups and sizes as ListNodegroups gives them."""

    def __init__(self):
        self._last_seen = {}

    def _pages(self, call, key, **kw):
        return {"clusters": ["sandbox", "sandbox-2"], "nodegroups": [kw.get("clusterName", "") + "-cpu"]}[key]

    @property
    def eks(self):
        aws = self

        class _Eks:
            class exceptions:  # noqa: N801 - botocore's spelling
                ResourceNotFoundException = KeyError

            list_clusters = list_nodegroups = None

            @staticmethod
            def describe_nodegroup(clusterName, nodegroupName):  # noqa: N803 - boto3's names
                return {"nodegroup": {"nodegroupName": nodegroupName, "status": "ACTIVE", "instanceTypes": ["m5.xlarge"],
                                      "scalingConfig": {"desiredSize": 2}, "labels": {}}}
        del aws
        return _Eks

    def launch_template_data(self, ng):
        return None

    def _asg_desired(self, ng):
        return 2


def test_a_fleet_mirror_writes_only_its_clusters_nodes(tmp_path):
    (tmp_path / "tpu-nodes.json").write_text('{"name": "tpu", "accelerator": "tpu-v5-lite-podslice", "count": 1}')
    everything = nm.desired_specs(_TwoClusters(), "us-east-2", str(tmp_path))
    assert sorted({s.labels.get(nm.CLUSTER_LABEL) for s in everything}, key=str) == [None, "sandbox", "sandbox-2"]
    second = nm.desired_specs(_TwoClusters(), "us-east-2", str(tmp_path), ["sandbox-2"], tpu=False)
    assert len(second) == 2 and {s.labels[nm.CLUSTER_LABEL] for s in second} == {"sandbox-2"}
    first = nm.desired_specs(_TwoClusters(), "us-east-2", str(tmp_path), ["sandbox"])
    assert {s.labels.get(nm.CLUSTER_LABEL) for s in first} == {"sandbox", None}  # its Nodes and the TPU Node


class _RecordingKube:
    """The Kube calls reconcile makes, against Nodes and Pods held in memory."""

    def __init__(self, nodes, pods):
        self.nodes = set(nodes)
        self.pods = pods  # (namespace, name, node)
        self.calls = []

    def managed_nodes(self):
        return {n: {"metadata": {"name": n}} for n in self.nodes}

    def create_node(self, manifest):
        self.calls.append(("create node", manifest["metadata"]["name"]))

    def patch_node(self, name, patch, status=False):
        self.calls.append(("patch node", name))

    def delete_node(self, name):
        self.calls.append(("delete node", name))
        self.nodes.discard(name)

    def pods_on(self, node):
        return [{"metadata": {"namespace": ns, "name": name}} for ns, name, on in self.pods if on == node]

    def delete_pod(self, namespace, name):
        self.calls.append(("delete pod", namespace, name))
        self.pods = [p for p in self.pods if p[:2] != (namespace, name)]


def test_pods_of_a_deleted_node_go_with_it_and_no_others(monkeypatch):
    kept = nm.nodegroup_nodes("sandbox", {"nodegroupName": "cpu", "labels": {}}, 1, "us-east-2", "m5.xlarge", set())
    pods = [("cert-manager", "cainjector", "gone-1"), ("kube-system", "dp", "gone-1"), ("arthur", "engine", kept[0].name)]
    kube = _RecordingKube([kept[0].name, "gone-1"], pods)
    monkeypatch.setattr(nm, "node_patch", lambda current, spec: (None, None))  # the kept Node is as it should be
    writes = nm.reconcile(kube, kept, logging.getLogger("test"))
    # The Node goes first, then each Pod bound to it; the Pod on the Node that stays is left alone.
    assert kube.calls == [("delete node", "gone-1"), ("delete pod", "cert-manager", "cainjector"),
                          ("delete pod", "kube-system", "dp")], kube.calls
    assert writes == 3
    assert kube.pods == [("arthur", "engine", kept[0].name)]
