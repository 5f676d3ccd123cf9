"""The sandbox's play of the CloudWatch agent (sandbox/cloudwatch/agent.py) on the agent
configuration the collection's user data starts (read back by sandbox/kube/nodeboot.py): the
series the GPU alarm's query selects exist exactly when the configuration's dimensions and the
alarm's agree, and the permissions the agent needs are the node role's."""
import base64
import importlib.util
import json
import pathlib
import sys

import pytest

from ansible_collections.genai.stack.plugins.module_utils import _userdata
from ansible_collections.genai.stack.plugins.modules import scaling_alarm

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from sandbox.aws.iam_policy_eval import evaluate  # noqa: E402
from sandbox.cloudwatch import agent, insights  # noqa: E402

_spec = importlib.util.spec_from_file_location("nodeboot", ROOT / "sandbox" / "kube" / "nodeboot.py")
nodeboot = importlib.util.module_from_spec(_spec)
sys.modules["nodeboot"] = nodeboot  # dataclasses look their module up
_spec.loader.exec_module(nodeboot)

CLUSTER = {"name": "prod", "endpoint": "https://e", "certificateAuthority": {"data": "Q0E="},
           "kubernetesNetworkConfig": {"serviceIpv4Cidr": "172.20.0.0/16"}}
NODE = agent.Instance("i-0abc", "g4dn.12xlarge", "ami-1", "ip-10-0-1-2.us-east-2.compute.internal", "eks-gpu-nodes-1", 4)


def _config(flavour="nodeadm", interval=60):
    user_data = _userdata.render(flavour, CLUSTER, "gpu-nodes", "us-east-2", {"capability": "gpu"}, [], interval)
    return nodeboot.agent_config(base64.b64encode(user_data.encode()).decode())


def _selected(query_text, config, data):
    query = insights.parse(query_text)
    return [d for d in data if query.matches(dict(d, Namespace=agent.namespace(config)))]


@pytest.mark.parametrize("flavour", ["nodeadm", "bootstrap"])
def test_the_user_datas_agent_config_is_found(flavour):
    config = _config(flavour, interval=30)
    assert agent.namespace(config) == "CWAgent"
    assert agent.interval(config) == 30


def test_bottlerocket_starts_no_agent():
    assert _config("bottlerocket") is None


def test_gpu_series_carry_the_dimensions_the_gpu_alarm_selects():
    config = _config()
    data = agent.gpu_series(config, NODE, agent.gpu_utilisation(4, [100, 100]))
    per_gpu = [d for d in data if "Value" in d and d["MetricName"] == "nvidia_smi_utilization_gpu"]
    assert len(per_gpu) == 4
    dims = {x["Name"]: x["Value"] for x in per_gpu[0]["Dimensions"]}
    assert dims == {"ClusterName": "prod", "NodegroupName": "gpu-nodes", "NodegroupType": "gpu", "AutoScalingGroupName": "eks-gpu-nodes-1",
                    "InstanceId": "i-0abc", "InstanceType": "g4dn.12xlarge", "index": "0", "name": "Tesla T4",
                    "host": NODE.hostname}
    rollups = [d for d in data if "StatisticValues" in d and d["MetricName"] == "nvidia_smi_utilization_gpu"]
    assert [{x["Name"] for x in r["Dimensions"]} for r in rollups] == [{"ClusterName", "NodegroupName", "NodegroupType"}]
    assert rollups[0]["StatisticValues"] == {"SampleCount": 4.0, "Sum": 200.0, "Minimum": 0.0, "Maximum": 100.0}

    query = scaling_alarm.render_query("gpu", dimensions=scaling_alarm.default_dimensions("prod", "gpu-nodes"))
    selected = _selected(query, config, data)
    statistics = [d.get("StatisticValues") or {"SampleCount": 1.0, "Sum": d["Value"], "Minimum": d["Value"], "Maximum": d["Value"]}
                  for d in selected]
    assert len(selected) == 5 and insights.aggregate("AVG", statistics) == 50.0


def test_a_wrong_dimension_leaves_the_alarm_without_data():
    config = _config()
    plugin = agent.gpu_plugin(config)
    plugin["append_dimensions"] = {"ClusterName": "prod", "Nodegroup": "gpu-nodes", "NodegroupType": "gpu"}
    data = agent.gpu_series(config, NODE, [100.0] * 4)
    query = scaling_alarm.render_query("gpu", dimensions=scaling_alarm.default_dimensions("prod", "gpu-nodes"))
    assert data and _selected(query, config, data) == []


def test_only_the_four_ec2_keys_with_their_own_values_are_appended():
    config = {"metrics": {"append_dimensions": {"InstanceId": "${aws:InstanceId}", "InstanceType": "${aws:ImageId}",
                                                "Team": "${aws:InstanceId}"}}}
    assert agent.ec2_dimensions(config, NODE) == {"InstanceId": "i-0abc"}
    assert [a for a, _ in agent.permissions_needed(config)] == ["cloudwatch:PutMetricData"]


def test_the_node_role_policy_allows_what_the_agent_needs():
    config = _config()
    policy = json.loads((ROOT / "roles" / "cluster_gpu" / "files" / "cloudwatch-metrics-policy.json").read_text())
    context = {"cloudwatch:namespace": agent.namespace(config)}
    needed = [action for action, _why in agent.permissions_needed(config)]
    assert needed == ["cloudwatch:PutMetricData", "ec2:DescribeTags"]
    for action in needed:
        assert evaluate([policy], action, "*", context) == "Allow", action
    assert evaluate([policy], "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Other"}) != "Allow"


def test_utilisation_is_clamped_and_padded():
    assert agent.gpu_utilisation(4, [150, -3]) == [100.0, 0.0, 0.0, 0.0]
    assert agent.gpu_utilisation(1, [40, 50]) == [40.0]
