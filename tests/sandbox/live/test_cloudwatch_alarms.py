"""Live test of the sandbox's alarm evaluation (component 45-alarms): alarms on a Metrics Insights
query evaluate against the stored datapoints, fire the step-scaling policies they name, the Auto
Scaling group's desired capacity follows within its bounds, and the node mirror's Nodes follow it;
a query outside the evaluated subset is refused loudly, and a query whose dimension matches no
series stays in INSUFFICIENT_DATA. The sandbox CloudWatch clock runs 60 times faster here, so
two-minute periods take two seconds."""
import datetime as dt
import json
import threading
import time
import uuid

import pytest

from _kube import kubectl, wait

REQUIRED = ("KUBECONFIG", "KUBECTL_BIN", "AWS_ENDPOINT_URL", "AWS_REGION", "SANDBOX_CLOUDWATCH_CLOCK", "SANDBOX_CLOUDWATCH_HISTORY",
            "SANDBOX_CLOUDWATCH_LOG")
SPEED = 60
PERIOD = 120


@pytest.fixture(scope="module")
def aws(env):
    import boto3

    return {name: boto3.client(name, region_name=env["AWS_REGION"]) for name in ("eks", "autoscaling", "cloudwatch")}


@pytest.fixture
def fast_clock(env):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from sandbox.cloudwatch import clock  # pylint: disable=import-outside-toplevel

    path = env["SANDBOX_CLOUDWATCH_CLOCK"]
    clock.set_speed(path, SPEED)
    try:
        yield lambda: clock.now(path)
    finally:
        clock.set_speed(path, 1)


@pytest.fixture
def nodegroup(env, aws):
    eks = aws["eks"]
    cluster = "sandbox" if "sandbox" in eks.list_clusters()["clusters"] else eks.list_clusters()["clusters"][0]
    ref = eks.describe_nodegroup(clusterName=cluster, nodegroupName=eks.list_nodegroups(clusterName=cluster)["nodegroups"][0])["nodegroup"]
    name = f"test-alarms-{uuid.uuid4().hex[:8]}"
    eks.create_nodegroup(clusterName=cluster, nodegroupName=name, nodeRole=ref["nodeRole"], subnets=ref["subnets"],
                         instanceTypes=["g5.xlarge"], amiType="AL2_x86_64_GPU",
                         scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1}, labels={"sandbox-test": name})
    group = wait(lambda: (eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
                          .get("resources", {}).get("autoScalingGroups") or [{}])[0].get("name"), 30, "the node group's Auto Scaling group")
    alarms = []
    try:
        yield cluster, name, group, alarms
    finally:
        if alarms:
            aws["cloudwatch"].delete_alarms(AlarmNames=alarms)
        for policy in aws["autoscaling"].describe_policies(AutoScalingGroupName=group).get("ScalingPolicies", []):
            aws["autoscaling"].delete_policy(AutoScalingGroupName=group, PolicyName=policy["PolicyName"])
        eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)


def _policy(aws, group, name, adjustment, lower=None, upper=None):
    step = {"ScalingAdjustment": adjustment}
    if lower is not None:
        step["MetricIntervalLowerBound"] = lower
    if upper is not None:
        step["MetricIntervalUpperBound"] = upper
    return aws["autoscaling"].put_scaling_policy(AutoScalingGroupName=group, PolicyName=name, PolicyType="StepScaling",
                                                 AdjustmentType="ChangeInCapacity", StepAdjustments=[step])["PolicyARN"]


def _alarm(aws, alarms, name, query, operator, threshold, actions):
    aws["cloudwatch"].put_metric_alarm(
        AlarmName=name, ComparisonOperator=operator, Threshold=threshold, EvaluationPeriods=1, TreatMissingData="missing",
        Metrics=[{"Id": "q", "Expression": query, "Period": PERIOD, "ReturnData": True}], AlarmActions=actions)
    alarms.append(name)


def _state(aws, name):
    return aws["cloudwatch"].describe_alarms(AlarmNames=[name])["MetricAlarms"][0]


class Load:
    """Publishes a GPU utilisation datapoint per Node of the group every half second, at sandbox time."""

    def __init__(self, aws, namespace, nodegroup, now):
        self.aws, self.namespace, self.nodegroup, self.now = aws, namespace, nodegroup, now
        self.value = 0.0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            stamp = dt.datetime.fromtimestamp(self.now(), dt.timezone.utc)
            self.aws["cloudwatch"].put_metric_data(Namespace=self.namespace, MetricData=[
                {"MetricName": "nvidia_smi_utilization_gpu", "Timestamp": stamp, "Value": self.value,
                 "Dimensions": [{"Name": "NodegroupName", "Value": self.nodegroup}, {"Name": "InstanceId", "Value": "i-%d" % i}]}
                for i in range(2)])
            self.stop.wait(0.5)


def test_gpu_load_grows_the_group_to_its_maximum_and_idle_shrinks_it(env, aws, fast_clock, nodegroup):
    _cluster, name, group, alarms = nodegroup
    namespace = f"SandboxTest/{name}"
    out = _policy(aws, group, "out", 1, lower=0)
    scale_in = _policy(aws, group, "in", -1, upper=0)
    query = f"SELECT AVG(nvidia_smi_utilization_gpu) FROM \"{namespace}\" WHERE NodegroupName = '{name}'"
    _alarm(aws, alarms, f"{name}-out", query, "GreaterThanThreshold", 40, [out])
    _alarm(aws, alarms, f"{name}-in", query, "LessThanThreshold", 10, [scale_in])
    # Nothing published yet: no data, no action (CloudWatch's INSUFFICIENT_DATA, not moto's initial OK).
    wait(lambda: _state(aws, f"{name}-out")["StateValue"] == "INSUFFICIENT_DATA", 30, "the new alarm to have no data")

    load = Load(aws, namespace, name, fast_clock)
    load.value = 90.0
    load.thread.start()
    try:
        wait(lambda: _state(aws, f"{name}-out")["StateValue"] == "ALARM", 60, "the scale-out alarm")
        wait(lambda: aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group])
             ["AutoScalingGroups"][0]["DesiredCapacity"] == 3, 60, "the group at its maximum (3)")
        nodes = wait(lambda: (n := json.loads(kubectl(env, "get", "nodes", "-l", f"eks.amazonaws.com/nodegroup={name}", "-o", "json").stdout)["items"])
                     and len(n) == 3 and n, 60, "3 Nodes of the group")
        assert len(nodes) == 3
        # Never beyond the maximum, however long the alarm stays in ALARM.
        time.sleep(3)
        assert aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["DesiredCapacity"] == 3

        load.value = 2.0
        wait(lambda: _state(aws, f"{name}-in")["StateValue"] == "ALARM", 60, "the scale-in alarm")
        wait(lambda: aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group])
             ["AutoScalingGroups"][0]["DesiredCapacity"] == 1, 60, "the group at its minimum (1)")
        assert _state(aws, f"{name}-out")["StateValue"] == "OK"
    finally:
        load.stop.set()
        load.thread.join(5)
    with open(env["SANDBOX_CLOUDWATCH_HISTORY"], encoding="utf-8") as handle:
        history = [json.loads(line) for line in handle if name in line]
    changes = [h["desired"] for h in history if h.get("group") == group]
    assert changes[:2] == [[1, 2], [2, 3]] and [3, 2] in changes and changes[-1] == [2, 1], changes


def test_unsupported_query_is_refused_loudly_and_a_wrong_dimension_has_no_data(env, aws, fast_clock, nodegroup):
    _cluster, name, group, alarms = nodegroup
    namespace = f"SandboxTest/{name}"
    out = _policy(aws, group, "out", 1, lower=0)
    _alarm(aws, alarms, f"{name}-grouped", f"SELECT AVG(nvidia_smi_utilization_gpu) FROM \"{namespace}\" GROUP BY InstanceId",
           "GreaterThanThreshold", 40, [out])
    _alarm(aws, alarms, f"{name}-wrong", f"SELECT AVG(nvidia_smi_utilization_gpu) FROM \"{namespace}\" WHERE NodegroupName = 'not-{name}'",
           "GreaterThanThreshold", 40, [out])
    load = Load(aws, namespace, name, fast_clock)
    load.value = 90.0
    load.thread.start()
    try:
        refused = wait(lambda: (a := _state(aws, f"{name}-grouped"))["StateValue"] == "INSUFFICIENT_DATA"
                       and a["StateReason"].startswith("sandbox cannot evaluate") and a, 30, "the refusal")
        assert "GROUP BY" in refused["StateReason"]
        time.sleep(4)  # two periods of sandbox time with data published
        wrong = _state(aws, f"{name}-wrong")
        assert wrong["StateValue"] == "INSUFFICIENT_DATA" and "no datapoint" in wrong["StateReason"], wrong
        assert aws["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["DesiredCapacity"] == 1
    finally:
        load.stop.set()
        load.thread.join(5)
    with open(env["SANDBOX_CLOUDWATCH_LOG"], encoding="utf-8") as handle:
        assert f"alarm {name}-grouped: sandbox cannot evaluate" in handle.read()
