"""Unit tests of the sandbox's node agents (sandbox/cloudwatch/publisher.py) and of the instance
identity the node mirror gives every EKS Node (sandbox/kube/nodemirror.py: instance_identity,
INSTANCE_ANNOTATION). No network, no running sandbox: the emulator's clients and the apiserver
are in-memory fakes, the sandbox CloudWatch clock a file read at a fake wall time."""
import base64
import copy
import dataclasses
import datetime as dt
import json
import logging
import pathlib
import sys
import types

import pytest

from ansible_collections.genai.stack.plugins.module_utils import _userdata

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from sandbox.cloudwatch import agent, clock, publisher  # noqa: E402

nm = publisher.nodemirror  # the module the publisher reads Nodes with (test_nodemirror.py loads its own copy)

POLICY = json.loads((ROOT / "roles" / "cluster_gpu" / "files" / "cloudwatch-metrics-policy.json").read_text())
CLUSTER = {"name": "prod", "endpoint": "https://e", "certificateAuthority": {"data": "Q0E="},
           "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}}
# Sandbox time of the first tick's minute: a multiple of 60 and of 300.
T0 = 1_700_000_100
assert T0 % 60 == 0 and T0 % 300 == 0
WALL0 = 5_000.0


def _user_data(flavour="nodeadm", nodegroup="gpu-nodes", interval=60):
    text = _userdata.render(flavour, CLUSTER, nodegroup, "us-east-2", {"capability": "gpu"}, [], interval)
    return base64.b64encode(text.encode()).decode()


def _config(**kwargs):
    return publisher.nodeboot.agent_config(_user_data(**kwargs))


# --------------------------------------------------------------------------------------------
# node_load


def _pod(node, gpus=0, phase="Running", load=None, requests_only=False, containers=1):
    resources = {}
    if gpus:
        resources = {"requests": {"nvidia.com/gpu": str(gpus)}} if requests_only else \
            {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"nvidia.com/gpu": str(gpus)}}
    meta = {"name": "p", "annotations": {publisher.LOAD_ANNOTATION: load} if load is not None else {}}
    return {"metadata": meta, "spec": {"nodeName": node, "containers": [{"name": "c%d" % i, "resources": resources}
                                                                        for i in range(containers)]},
            "status": {"phase": phase}}


IDENT = {"cluster": "prod", "nodegroup": "gpu-nodes"}


def test_idle_node():
    load = publisher.node_load("n1", IDENT, 4, [], {})
    assert load.gpus == [0.0, 0.0, 0.0, 0.0]
    assert load.cpu == 2.0


def test_running_gpu_pod_makes_its_gpus_busy_at_default_load():
    load = publisher.node_load("n1", IDENT, 4, [_pod("n1", gpus=2)], {})
    assert load.gpus == [90.0, 90.0, 0.0, 0.0]
    assert load.cpu == 17.0


def test_pod_annotation_sets_the_load_and_is_clamped():
    pods = [_pod("n1", gpus=1, load="40"), _pod("n1", gpus=2, load="250", requests_only=True)]
    load = publisher.node_load("n1", IDENT, 4, pods, {})
    assert load.gpus == [40.0, 100.0, 100.0, 0.0]
    assert load.cpu == 32.0


def test_unparsable_annotation_falls_back_to_default():
    assert publisher.node_load("n1", IDENT, 1, [_pod("n1", gpus=1, load="busy")], {}).gpus == [90.0]


def test_limits_and_requests_are_not_counted_twice_but_containers_add_up():
    load = publisher.node_load("n1", IDENT, 4, [_pod("n1", gpus=1, containers=3)], {})
    assert load.gpus == [90.0, 90.0, 90.0, 0.0]
    assert load.cpu == 17.0  # one pod


def test_pods_elsewhere_not_running_or_without_gpus_do_not_count():
    pods = [_pod("n2", gpus=2), _pod("n1", gpus=2, phase="Pending"), _pod("n1", gpus=1, phase="Succeeded"),
            _pod("n1", gpus=0)]
    load = publisher.node_load("n1", IDENT, 2, pods, {})
    assert load.gpus == [0.0, 0.0]
    assert load.cpu == 2.0


def test_cpu_is_capped_at_100():
    pods = [_pod("n1", gpus=1) for _ in range(8)]
    load = publisher.node_load("n1", IDENT, 8, pods, {})
    assert load.cpu == 100.0  # 2 + 8 * 15 = 122
    assert load.gpus == [90.0] * 8


def test_more_gpus_held_than_the_node_has_are_ignored():
    assert publisher.node_load("n1", IDENT, 1, [_pod("n1", gpus=1, load="10"), _pod("n1", gpus=1, load="20")], {}).gpus == [10.0]


def test_load_file_group_entry_overrides():
    load = publisher.node_load("n1", IDENT, 2, [_pod("n1", gpus=1)], {"prod/gpu-nodes": {"gpu": 55, "cpu": 66}})
    assert load.gpus == [55.0, 55.0]
    assert load.cpu == 66.0


def test_load_file_node_entry_wins_and_missing_keys_keep_the_value():
    load_file = {"prod/gpu-nodes": {"gpu": 55, "cpu": 66}, "n1": {"gpu": 10}}
    load = publisher.node_load("n1", IDENT, 2, [], load_file)
    assert load.gpus == [10.0, 10.0]
    assert load.cpu == 66.0  # the node entry says nothing about cpu: the group's stays
    # an entry leaving out both keys keeps the computed values
    load = publisher.node_load("n1", IDENT, 2, [_pod("n1", gpus=1, load="30")], {"n1": {}, "prod/gpu-nodes": {"cpu": None}})
    assert load.gpus == [30.0, 0.0]
    assert load.cpu == 17.0


def test_load_file_star_entry_applies_to_every_node_below_group_and_node_entries():
    steady = {"*": {"gpu": 25, "cpu": 30}}
    assert publisher.node_load("n1", IDENT, 2, [_pod("n1", gpus=1)], steady) == publisher.NodeLoad([25.0, 25.0], 30.0)
    load = publisher.node_load("n1", IDENT, 1, [], dict(steady, **{"prod/gpu-nodes": {"gpu": 80}}))
    assert (load.gpus, load.cpu) == ([80.0], 30.0)
    load = publisher.node_load("n1", IDENT, 1, [], dict(steady, n1={"cpu": 1}))
    assert (load.gpus, load.cpu) == ([25.0], 1.0)


def test_load_file_entries_of_other_groups_and_nodes_are_ignored():
    load_file = {"prod/cpu-nodes": {"gpu": 55, "cpu": 66}, "n2": {"gpu": 1, "cpu": 1}, "other/gpu-nodes": {"cpu": 3}}
    load = publisher.node_load("n1", IDENT, 1, [], load_file)
    assert (load.gpus, load.cpu) == ([0.0], 2.0)


def test_load_file_values_are_clamped():
    load = publisher.node_load("n1", IDENT, 2, [], {"n1": {"gpu": 150, "cpu": -5}})
    assert (load.gpus, load.cpu) == ([100.0, 100.0], 0.0)
    load = publisher.node_load("n1", IDENT, 1, [], {"n1": {"gpu": "-1", "cpu": "101.5"}})
    assert (load.gpus, load.cpu) == ([0.0], 100.0)


def test_read_load_file(tmp_path):
    path = tmp_path / "cloudwatch" / "load.json"
    assert publisher.read_load_file(None) == {}
    assert publisher.read_load_file(str(path)) == {}
    publisher.write_load_file(str(path), {"n1": {"cpu": 5}})
    assert publisher.read_load_file(str(path)) == {"n1": {"cpu": 5}}
    path.write_text("{not json")
    assert publisher.read_load_file(str(path)) == {}
    path.write_text("[1, 2]")
    assert publisher.read_load_file(str(path)) == {}


# --------------------------------------------------------------------------------------------
# due_times


def test_first_call_gives_the_latest_multiple():
    assert publisher.due_times(None, T0 + 59.9, 60) == [float(T0)]
    assert publisher.due_times(None, T0, 60) == [float(T0)]
    assert publisher.due_times(None, T0 + 299, 300) == [float(T0)]
    assert publisher.due_times(None, T0 + 301, 300) == [float(T0 + 300)]


def test_later_calls_give_each_multiple_after_last():
    assert publisher.due_times(T0, T0 + 59, 60) == []
    assert publisher.due_times(T0, T0 + 60, 60) == [float(T0 + 60)]
    assert publisher.due_times(T0, T0 + 185, 60) == [float(T0 + 60), float(T0 + 120), float(T0 + 180)]
    assert publisher.due_times(T0, T0 + 299, 300) == []
    assert publisher.due_times(T0, T0 + 600, 300) == [float(T0 + 300), float(T0 + 600)]


def test_catch_up_is_bounded():
    assert publisher.MAX_CATCH_UP == 5
    times = publisher.due_times(T0, T0 + 3600 + 30, 60)
    assert times == [float(T0 + 3600 - 60 * k) for k in (4, 3, 2, 1, 0)]


def test_times_stay_multiples_when_the_interval_changes():
    # detailed monitoring turned off (60 s -> 300 s) after a collection at T0 + 60
    times = publisher.due_times(T0 + 60, T0 + 700, 300)
    assert times == [float(T0 + 300), float(T0 + 600)]


# --------------------------------------------------------------------------------------------
# cpu_data / group_cpu_data


def test_cpu_data():
    assert publisher.cpu_data({"instanceId": "i-1", "autoScalingGroup": "asg"}, 17) == [
        {"MetricName": "CPUUtilization", "Dimensions": [{"Name": "InstanceId", "Value": "i-1"}],
         "Value": 17.0, "Unit": "Percent"}]


def test_group_cpu_data():
    assert publisher.group_cpu_data("eks-gpu-1", [17.0, 2.0, 32.5]) == [
        {"MetricName": "CPUUtilization", "Dimensions": [{"Name": "AutoScalingGroupName", "Value": "eks-gpu-1"}],
         "StatisticValues": {"SampleCount": 3.0, "Sum": 51.5, "Minimum": 2.0, "Maximum": 32.5}, "Unit": "Percent"}]
    assert publisher.group_cpu_data("", [1.0]) == []
    assert publisher.group_cpu_data(None, [1.0]) == []
    assert publisher.group_cpu_data("eks-gpu-1", []) == []


# --------------------------------------------------------------------------------------------
# missing_permissions against the collection's node policy


def test_the_collections_policy_allows_what_its_agent_needs():
    assert publisher.missing_permissions(_config(), [POLICY]) == []
    assert publisher.missing_permissions(_config(flavour="bootstrap"), [POLICY]) == []


def test_a_policy_without_describe_tags_is_reported():
    policy = copy.deepcopy(POLICY)
    policy["Statement"] = [s for s in policy["Statement"] if s["Action"] != "ec2:DescribeTags"]
    missing = publisher.missing_permissions(_config(), [policy])
    assert len(missing) == 1 and missing[0].startswith("ec2:DescribeTags (AutoScalingGroupName")
    # without the AutoScalingGroupName dimension the agent does not need it
    config = _config()
    del config["metrics"]["append_dimensions"]["AutoScalingGroupName"]
    assert publisher.missing_permissions(config, [policy]) == []


def test_another_namespace_is_refused_by_the_namespace_condition():
    config = _config()
    config["metrics"]["namespace"] = "GenAI/GPU"
    missing = publisher.missing_permissions(config, [POLICY])
    assert [m.split(" ", 1)[0] for m in missing] == ["cloudwatch:PutMetricData"]


def test_no_policy_allows_nothing():
    assert [m.split(" ", 1)[0] for m in publisher.missing_permissions(_config(), [])] == [
        "cloudwatch:PutMetricData", "ec2:DescribeTags"]


# --------------------------------------------------------------------------------------------
# Publisher.tick with fake emulator clients and apiserver


class FakeEc2:
    def __init__(self, templates):
        self.templates = templates  # (id, version) -> base64 user data
        self.calls = 0

    def describe_launch_template_versions(self, Versions, LaunchTemplateId=None, LaunchTemplateName=None):
        self.calls += 1
        key = (LaunchTemplateId or LaunchTemplateName, Versions[0])
        if key not in self.templates:
            raise RuntimeError("InvalidLaunchTemplateId.NotFound %r" % (key,))
        return {"LaunchTemplateVersions": [{"LaunchTemplateData": {"UserData": self.templates[key]}}]}


class FakeIam:
    def __init__(self, roles):
        self.roles = roles  # role name -> {"inline": {name: doc}, "attached": {arn: doc}}

    def _role(self, name):
        if name not in self.roles:
            raise RuntimeError("NoSuchEntity: role %s" % name)
        return self.roles[name]

    def list_role_policies(self, RoleName):
        return {"PolicyNames": sorted(self._role(RoleName)["inline"])}

    def get_role_policy(self, RoleName, PolicyName):
        return {"PolicyDocument": self._role(RoleName)["inline"][PolicyName]}

    def list_attached_role_policies(self, RoleName):
        return {"AttachedPolicies": [{"PolicyArn": arn, "PolicyName": arn.rsplit("/", 1)[-1]}
                                     for arn in sorted(self._role(RoleName)["attached"])]}

    def get_policy(self, PolicyArn):
        return {"Policy": {"Arn": PolicyArn, "DefaultVersionId": "v2"}}

    def get_policy_version(self, PolicyArn, VersionId):
        assert VersionId == "v2"
        for role in self.roles.values():
            if PolicyArn in role["attached"]:
                return {"PolicyVersion": {"Document": role["attached"][PolicyArn], "VersionId": VersionId}}
        raise RuntimeError("NoSuchEntity: policy %s" % PolicyArn)


class FakeCloudWatch:
    def __init__(self):
        self.data = []  # (namespace, datum)

    def put_metric_data(self, Namespace, MetricData):
        assert len(MetricData) <= 500
        self.data += [(Namespace, d) for d in MetricData]


class FakeKube:
    def __init__(self, nodes, pods):
        self.nodes, self.pods = nodes, pods

    def eks_nodes(self):
        return copy.deepcopy(self.nodes)

    def running_pods(self):
        return copy.deepcopy(self.pods)


EKS_WORKER = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:DescribeInstances", "eks:DescribeCluster"],
                                                      "Resource": "*"}]}
ACCOUNT = "123456789012"
GPU_ROLE = "arn:aws:iam::%s:role/gpu-node-role" % ACCOUNT
BARE_ROLE = "arn:aws:iam::%s:role/bare-node-role" % ACCOUNT


def _nodegroup(name, role, template_id, asg, monitoring=True, version="3", user_data=None):
    ng = {"nodegroupName": name, "nodeRole": role, "subnets": ["subnet-a", "subnet-b"],
          "launchTemplate": {"id": template_id, "name": name, "version": version},
          "resources": {"autoScalingGroups": [{"name": asg}]}}
    lt_data = {"ImageId": "ami-0gpu", "UserData": user_data or _user_data(nodegroup=name),
               "Monitoring": {"Enabled": monitoring}}
    return ng, lt_data


class Sandbox:
    """The fake world: node groups mirrored as Nodes, the emulator's clients, the clock file."""

    def __init__(self, tmp_path, monkeypatch, groups, pods=(), roles=None, load=None):
        self.wall = WALL0 + 10  # sandbox time T0 + 10
        self.clock_path = str(tmp_path / "clock.json")
        with open(self.clock_path, "w", encoding="utf-8") as handle:
            json.dump({"wall": WALL0, "sandbox": float(T0), "speed": 1.0}, handle)
        monkeypatch.setattr(clock, "time", types.SimpleNamespace(time=lambda: self.wall))
        templates, self.specs, taken = {}, {}, set()
        for ng, lt_data, count in groups:
            templates[(ng["launchTemplate"]["id"], ng["launchTemplate"]["version"])] = lt_data["UserData"]
            self.specs[ng["nodegroupName"]] = nm.nodegroup_nodes("prod", ng, count, "us-east-2", "g4dn.12xlarge",
                                                                 taken, lt_data=lt_data)
        roles = roles if roles is not None else {
            "gpu-node-role": {"inline": {"cloudwatch-metrics": json.dumps(POLICY)},
                              "attached": {"arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy": EKS_WORKER}},
            "bare-node-role": {"inline": {}, "attached": {"arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy": EKS_WORKER}},
        }
        self.ec2, self.cloudwatch = FakeEc2(templates), FakeCloudWatch()
        aws = publisher.Aws.__new__(publisher.Aws)  # no boto3 session: the fake clients instead
        aws.ec2, aws.iam, aws.cloudwatch, aws._templates = self.ec2, FakeIam(roles), self.cloudwatch, {}
        nodes = [s.manifest() for specs in self.specs.values() for s in specs]
        self.load_path = str(tmp_path / "load.json")
        if load is not None:
            publisher.write_load_file(self.load_path, load)
        self.publisher = publisher.Publisher(aws, FakeKube(nodes, list(pods)), self.clock_path, self.load_path)

    def at(self, sandbox_time):
        self.wall = WALL0 + (sandbox_time - T0)
        return self

    def tick(self):
        return self.publisher.tick()

    def data(self, namespace, metric=None, stamp=None):
        return [d for ns, d in self.cloudwatch.data if ns == namespace and (metric is None or d["MetricName"] == metric)
                and (stamp is None or d["Timestamp"] == _stamp(stamp))]


def _stamp(when):
    return dt.datetime.fromtimestamp(when, dt.timezone.utc)


def _dims(datum):
    return {d["Name"]: d["Value"] for d in datum["Dimensions"]}


def _gpu_world(tmp_path, monkeypatch, **kwargs):
    ng, lt_data = _nodegroup("gpu-nodes", GPU_ROLE, "lt-0gpu", "eks-gpu-nodes-1")
    kwargs.setdefault("groups", [(ng, lt_data, 2)])
    world = Sandbox(tmp_path, monkeypatch, **kwargs)
    return world


def test_the_clock_fake_gives_sandbox_time(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch)
    assert clock.now(world.clock_path) == T0 + 10
    assert clock.now(world.at(T0 + 75).clock_path) == T0 + 75


def test_a_node_with_the_collections_user_data_publishes_gpu_series(tmp_path, monkeypatch):
    ng, lt_data = _nodegroup("gpu-nodes", GPU_ROLE, "lt-0gpu", "eks-gpu-nodes-1")
    probe = nm.nodegroup_nodes("prod", ng, 2, "us-east-2", "g4dn.12xlarge", set(), lt_data=lt_data)
    busy_node, idle_node = probe[0].name, probe[1].name
    world = Sandbox(tmp_path, monkeypatch, groups=[(ng, lt_data, 2)],
                    pods=[_pod(busy_node, gpus=2, load="70"), _pod(idle_node, gpus=1, phase="Pending")])
    busy, idle = world.specs["gpu-nodes"]
    assert (busy.name, idle.name) == (busy_node, idle_node)
    busy_id = busy.instance["instanceId"]

    # 2 nodes x (4 GPUs x 6 measurements + 6 aggregations) + 2 CPUUtilization + 1 ASG aggregate
    assert world.tick() == 2 * (4 * 6 + 6) + 2 + 1
    cwagent = world.data("CWAgent")
    assert len(cwagent) == 60
    assert {d["Timestamp"] for d in cwagent} == {_stamp(T0)}
    assert {d["MetricName"] for d in cwagent} == {
        "nvidia_smi_utilization_gpu", "nvidia_smi_utilization_memory", "nvidia_smi_memory_total",
        "nvidia_smi_memory_used", "nvidia_smi_memory_free", "nvidia_smi_power_draw"}
    per_gpu = {(_dims(d)["InstanceId"], _dims(d)["index"]): d for d in world.data("CWAgent", "nvidia_smi_utilization_gpu")
               if "Value" in d}
    assert len(per_gpu) == 8
    assert _dims(per_gpu[(busy_id, "0")]) == {
        "ClusterName": "prod", "NodegroupName": "gpu-nodes", "NodegroupType": "gpu",
        "AutoScalingGroupName": "eks-gpu-nodes-1", "InstanceId": busy_id, "InstanceType": "g4dn.12xlarge",
        "index": "0", "name": "Tesla T4", "host": busy.name}
    assert [per_gpu[(busy_id, str(i))]["Value"] for i in range(4)] == [70.0, 70.0, 0.0, 0.0]
    assert [per_gpu[(idle.instance["instanceId"], str(i))]["Value"] for i in range(4)] == [0.0] * 4
    rollups = [d for d in world.data("CWAgent", "nvidia_smi_utilization_gpu") if "StatisticValues" in d]
    assert [_dims(r) for r in rollups] == [{"ClusterName": "prod", "NodegroupName": "gpu-nodes", "NodegroupType": "gpu"}] * 2
    assert sorted(r["StatisticValues"]["Sum"] for r in rollups) == [0.0, 140.0]

    cpu = {_dims(d).get("InstanceId"): d for d in world.data("AWS/EC2", "CPUUtilization") if "Value" in d}
    assert {k: d["Value"] for k, d in cpu.items()} == {busy_id: 17.0, idle.instance["instanceId"]: 2.0}
    assert all(d["Timestamp"] == _stamp(T0) and d["Unit"] == "Percent" for d in cpu.values())
    group = [d for d in world.data("AWS/EC2") if "StatisticValues" in d]
    assert len(group) == 1
    assert _dims(group[0]) == {"AutoScalingGroupName": "eks-gpu-nodes-1"}
    assert group[0]["StatisticValues"] == {"SampleCount": 2.0, "Sum": 19.0, "Minimum": 2.0, "Maximum": 17.0}
    assert group[0]["Timestamp"] == _stamp(T0)


def test_a_second_tick_in_the_same_minute_writes_nothing(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch)
    first = world.tick()
    assert first == 63
    assert world.at(T0 + 59).tick() == 0
    assert len(world.cloudwatch.data) == 63
    # the next minute: everything once more, stamped with it
    assert world.at(T0 + 61).tick() == 63
    assert len(world.data("CWAgent", stamp=T0 + 60)) == 60
    assert len(world.data("AWS/EC2", stamp=T0 + 60)) == 3
    # numbered launch template versions are read once
    assert world.ec2.calls == 1


def test_after_a_pause_at_most_max_catch_up_collections_are_made_up(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch)
    world.tick()
    world.cloudwatch.data.clear()
    assert world.at(T0 + 3600 + 5).tick() == 5 * 63
    stamps = sorted({d["Timestamp"] for _, d in world.cloudwatch.data})
    assert stamps == [_stamp(T0 + 3600 - 60 * k) for k in (4, 3, 2, 1, 0)]


@pytest.mark.parametrize("documents,missing", [
    ({"inline": {}, "attached": {"arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy": EKS_WORKER}},
     "cloudwatch:PutMetricData"),
    ({"inline": {"m": {"Version": "2012-10-17", "Statement": [POLICY["Statement"][0]]}}, "attached": {}},
     "ec2:DescribeTags"),
])
def test_a_node_role_lacking_a_permission_publishes_no_gpu_data_but_ec2_cpu(tmp_path, monkeypatch, caplog, documents, missing):
    ng, lt_data = _nodegroup("gpu-nodes", BARE_ROLE, "lt-0gpu", "eks-gpu-nodes-1")
    world = Sandbox(tmp_path, monkeypatch, groups=[(ng, lt_data, 2)], roles={"bare-node-role": documents})
    with caplog.at_level(logging.INFO, logger="sandbox-agents"):
        assert world.tick() == 3
        assert world.at(T0 + 70).tick() == 3
    assert world.data("CWAgent") == []
    assert len(world.data("AWS/EC2", "CPUUtilization")) == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # once per node, not once per tick
    assert all(missing in w and "bare-node-role" in w for w in warnings)


def test_a_role_that_is_gone_allows_nothing(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch, roles={})
    assert world.tick() == 3
    assert world.data("CWAgent") == []


def test_mixed_roles_only_the_permitted_group_publishes_gpu_data(tmp_path, monkeypatch):
    good = _nodegroup("gpu-nodes", GPU_ROLE, "lt-0gpu", "eks-gpu-nodes-1")
    bare = _nodegroup("gpu-bare", BARE_ROLE, "lt-0bare", "eks-gpu-bare-1")
    world = Sandbox(tmp_path, monkeypatch, groups=[(*good, 1), (*bare, 1)])
    assert world.tick() == 30 + 2 + 2
    assert {_dims(d)["NodegroupName"] for d in world.data("CWAgent")} == {"gpu-nodes"}
    groups = sorted(_dims(d)["AutoScalingGroupName"] for d in world.data("AWS/EC2") if "StatisticValues" in d)
    assert groups == ["eks-gpu-bare-1", "eks-gpu-nodes-1"]


def test_no_agent_in_the_user_data_no_gpu_data(tmp_path, monkeypatch):
    ng, lt_data = _nodegroup("gpu-nodes", GPU_ROLE, "lt-0gpu", "eks-gpu-nodes-1",
                             user_data=_user_data(flavour="bottlerocket"))
    world = Sandbox(tmp_path, monkeypatch, groups=[(ng, lt_data, 1)])
    assert world.tick() == 2
    assert world.data("CWAgent") == []


def test_cpu_every_minute_with_detailed_monitoring(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch, roles={})  # CPU only
    assert world.specs["gpu-nodes"][0].instance["detailedMonitoring"] is True
    world.tick()
    world.at(T0 + 130).tick()
    stamps = sorted({d["Timestamp"] for d in world.data("AWS/EC2")})
    assert stamps == [_stamp(T0), _stamp(T0 + 60), _stamp(T0 + 120)]
    assert len(world.data("AWS/EC2")) == 3 * 3


def test_cpu_every_five_minutes_without_detailed_monitoring(tmp_path, monkeypatch):
    ng, lt_data = _nodegroup("gpu-nodes", GPU_ROLE, "lt-0gpu", "eks-gpu-nodes-1", monitoring=False)
    world = Sandbox(tmp_path, monkeypatch, groups=[(ng, lt_data, 2)], roles={})
    assert world.specs["gpu-nodes"][0].instance["detailedMonitoring"] is False
    assert world.tick() == 3
    assert world.at(T0 + 130).tick() == 0
    assert world.at(T0 + 299).tick() == 0
    assert world.at(T0 + 301).tick() == 3
    stamps = sorted({d["Timestamp"] for d in world.data("AWS/EC2")})
    assert stamps == [_stamp(T0), _stamp(T0 + 300)]


def test_asg_aggregate_once_per_group_and_time(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch, groups=[(*_nodegroup("gpu-nodes", GPU_ROLE, "lt-0gpu", "eks-gpu-nodes-1"), 3)],
                       roles={})
    world.tick()
    world.at(T0 + 190).tick()
    aggregates = [d for d in world.data("AWS/EC2") if "StatisticValues" in d]
    assert [d["Timestamp"] for d in aggregates] == [_stamp(T0 + 60 * k) for k in range(4)]
    assert all(d["StatisticValues"] == {"SampleCount": 3.0, "Sum": 6.0, "Minimum": 2.0, "Maximum": 2.0}
               for d in aggregates)


def test_the_load_file_drives_the_published_values(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch, load={"prod/gpu-nodes": {"gpu": 80, "cpu": 40}})
    node = world.specs["gpu-nodes"][1]
    publisher.write_load_file(world.load_path, {"prod/gpu-nodes": {"gpu": 80, "cpu": 40}, node.name: {"cpu": 95}})
    world.tick()
    gpu = [d["Value"] for d in world.data("CWAgent", "nvidia_smi_utilization_gpu") if "Value" in d]
    assert gpu == [80.0] * 8
    cpu = {_dims(d)["InstanceId"]: d["Value"] for d in world.data("AWS/EC2") if "Value" in d}
    assert cpu == {world.specs["gpu-nodes"][0].instance["instanceId"]: 40.0, node.instance["instanceId"]: 95.0}


def test_nodes_without_an_instance_are_skipped(tmp_path, monkeypatch):
    world = _gpu_world(tmp_path, monkeypatch)
    bare = dataclasses.replace(world.specs["gpu-nodes"][0], name="ip-10-0-9-9.us-east-2.compute.internal", instance={})
    world.publisher.kube.nodes.append(bare.manifest())
    assert world.tick() == 63


# --------------------------------------------------------------------------------------------
# nodemirror: instance_identity and INSTANCE_ANNOTATION


NG = {"nodegroupName": "gpu-nodes", "nodeRole": GPU_ROLE, "subnets": ["subnet-a", "subnet-b"],
      "launchTemplate": {"id": "lt-0abc", "name": "gpu-nodes-lt", "version": 3},
      "resources": {"autoScalingGroups": [{"name": "eks-gpu-nodes-4ec9"}]}}
LT_DATA = {"ImageId": "ami-0gpu", "Monitoring": {"Enabled": True}, "UserData": _user_data()}


def test_instance_annotation_name():
    assert nm.INSTANCE_ANNOTATION == "sandbox.genai.stack/instance"


def test_instance_identity_with_launch_template_and_monitoring():
    assert nm.instance_identity("prod", NG, "i-0123", "g4dn.12xlarge", "us-east-2b", LT_DATA) == {
        "instanceId": "i-0123", "instanceType": "g4dn.12xlarge", "imageId": "ami-0gpu",
        "availabilityZone": "us-east-2b", "autoScalingGroup": "eks-gpu-nodes-4ec9",
        "launchTemplate": {"id": "lt-0abc", "name": "gpu-nodes-lt", "version": "3"},
        "detailedMonitoring": True, "nodeRole": GPU_ROLE, "cluster": "prod", "nodegroup": "gpu-nodes"}


def test_instance_identity_without_launch_template_or_monitoring():
    ng = {"nodegroupName": "plain"}
    assert nm.instance_identity("prod", ng, "i-1", "t3.large", "us-east-2a", None) == {
        "instanceId": "i-1", "instanceType": "t3.large", "imageId": "", "availabilityZone": "us-east-2a",
        "autoScalingGroup": "", "launchTemplate": {}, "detailedMonitoring": False, "nodeRole": "",
        "cluster": "prod", "nodegroup": "plain"}
    lt = dict(LT_DATA, Monitoring={"Enabled": False})
    assert nm.instance_identity("prod", NG, "i-1", "t3.large", "us-east-2a", lt)["detailedMonitoring"] is False


def test_nodegroup_nodes_carry_the_instance_annotation():
    specs = nm.nodegroup_nodes("prod", NG, 2, "us-east-2", "g4dn.12xlarge", set(), lt_data=LT_DATA)
    for spec in specs:
        identity = json.loads(spec.manifest()["metadata"]["annotations"][nm.INSTANCE_ANNOTATION])
        assert identity == spec.instance
        assert spec.provider_id == "aws:///%s/%s" % (identity["availabilityZone"], identity["instanceId"])
        assert identity["launchTemplate"] == {"id": "lt-0abc", "name": "gpu-nodes-lt", "version": "3"}
        assert identity["autoScalingGroup"] == "eks-gpu-nodes-4ec9"
        assert identity["detailedMonitoring"] is True
    assert specs[0].instance["instanceId"] != specs[1].instance["instanceId"]


def test_node_patch_leaves_the_same_annotation_alone():
    spec = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g4dn.12xlarge", set(), lt_data=LT_DATA)[0]
    assert nm.node_patch(spec.manifest(), spec) == (None, None)


def test_node_patch_patches_a_changed_annotation():
    old = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g4dn.12xlarge", set(), lt_data=LT_DATA)[0]
    ng = dict(NG, launchTemplate=dict(NG["launchTemplate"], version=4))
    new = nm.nodegroup_nodes("prod", ng, 1, "us-east-2", "g4dn.12xlarge", set(),
                             lt_data=dict(LT_DATA, Monitoring={"Enabled": False}))[0]
    assert new.name == old.name
    patch, status = nm.node_patch(old.manifest(), new)
    assert status is None
    written = json.loads(patch["metadata"]["annotations"][nm.INSTANCE_ANNOTATION])
    assert written["launchTemplate"]["version"] == "4"
    assert written["detailedMonitoring"] is False
    assert patch["metadata"]["annotations"][nm.INSTANCE_ANNOTATION] == json.dumps(new.instance, sort_keys=True)


def test_node_patch_removes_a_stale_annotation():
    spec = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g4dn.12xlarge", set(), lt_data=LT_DATA)[0]
    current = spec.manifest()
    without = dataclasses.replace(spec, instance={})
    assert nm.INSTANCE_ANNOTATION not in without.manifest()["metadata"]["annotations"]
    patch, status = nm.node_patch(current, without)
    assert status is None
    assert nm.INSTANCE_ANNOTATION in patch["metadata"]["annotations"]
    assert patch["metadata"]["annotations"][nm.INSTANCE_ANNOTATION] is None
    # and once it is gone, nothing more to do
    assert nm.node_patch(without.manifest(), without) == (None, None)


def test_tpu_nodes_carry_no_instance():
    spec = nm.tpu_nodes([{"name": "tpu", "accelerator": "tpu-v5-lite-podslice", "topology": "2x4", "chips": 4,
                          "count": 1}])[0]
    assert spec.instance == {}
    assert nm.INSTANCE_ANNOTATION not in spec.manifest()["metadata"]["annotations"]


def test_the_publisher_reads_what_the_mirror_writes():
    spec = nm.nodegroup_nodes("prod", NG, 1, "us-east-2", "g4dn.12xlarge", set(), lt_data=LT_DATA)[0]
    identity = json.loads(spec.manifest()["metadata"]["annotations"][nm.INSTANCE_ANNOTATION])
    config = publisher.nodeboot.agent_config(LT_DATA["UserData"])
    instance = agent.Instance(identity["instanceId"], identity["instanceType"], identity["imageId"], spec.name,
                              identity["autoScalingGroup"], nm.instance_resources(identity["instanceType"])[2])
    dims = _dims(agent.gpu_series(config, instance, [50.0] * 4)[0])
    assert dims["AutoScalingGroupName"] == "eks-gpu-nodes-4ec9"
    assert dims["InstanceId"] == identity["instanceId"]


def test_a_fleet_reads_every_clusters_nodes_and_pods():
    one = FakeKube([{"metadata": {"name": "a"}}], [{"metadata": {"name": "p"}, "spec": {"nodeName": "a"}}])
    two = FakeKube([{"metadata": {"name": "b"}}], [])
    fleet = publisher.Fleet([one, two])
    assert [n["metadata"]["name"] for n in fleet.eks_nodes()] == ["a", "b"]
    assert [p["metadata"]["name"] for p in fleet.running_pods()] == ["p"]
