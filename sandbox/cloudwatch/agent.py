"""What the CloudWatch agent on one GPU node would publish, from the agent configuration its user
data starts it with (sandbox/kube/nodeboot.py: agent_config) and what the node runs.

Only what the collection's alarms depend on is played, as AWS documents the agent
(CloudWatch user guide, "Collect NVIDIA GPU metrics" and the configuration file reference):

- `metrics_collected.nvidia_gpu.measurement` M gives the metric `nvidia_smi_<M>` per GPU, with
  the dimensions `index`, `name` (the GPU model) and `host`, no unit;
- the plugin's `append_dimensions` are literal values added to its series;
- the global `metrics.append_dimensions` accept only four EC2 keys, each with its own
  `${aws:...}` value (anything else is ignored); `AutoScalingGroupName` is read from the
  instance's tags with ec2:DescribeTags, and until that succeeds the agent passes no metric on;
- `metrics.aggregation_dimensions` adds, per listed set of dimension names, the series of every
  metric aggregated over the node's series that carry all of those dimensions, with exactly them;
- everything is written with cloudwatch:PutMetricData to `metrics.namespace` (CWAgent when not
  set) every `metrics_collection_interval` seconds (the plugin's, else the agent's, else 60).

A configuration that needs a permission the node role lacks publishes nothing, as the agent does
(the caller evaluates the role's policies: `permissions_needed`).
"""
from __future__ import annotations

from dataclasses import dataclass

EC2_DIMENSIONS = {
    "ImageId": "${aws:ImageId}",
    "InstanceId": "${aws:InstanceId}",
    "InstanceType": "${aws:InstanceType}",
    "AutoScalingGroupName": "${aws:AutoScalingGroupName}",
}
DEFAULT_NAMESPACE = "CWAgent"
DEFAULT_INTERVAL = 60

# GPU model (nvidia-smi's name) and memory in MB by instance family: public EC2 specifications.
GPU_MODELS = {
    "g4dn": ("Tesla T4", 15360), "g5": ("NVIDIA A10G", 23028), "g6": ("NVIDIA L4", 23034),
    "g6e": ("NVIDIA L40S", 46068), "p3": ("Tesla V100-SXM2-16GB", 16384), "p3dn": ("Tesla V100-SXM2-32GB", 32768),
    "p4d": ("NVIDIA A100-SXM4-40GB", 40960), "p4de": ("NVIDIA A100-SXM4-80GB", 81920),
    "p5": ("NVIDIA H100 80GB HBM3", 81559), "p5e": ("NVIDIA H200", 143771),
}
IDLE_WATTS, BUSY_WATTS = 25.0, 250.0


@dataclass
class Instance:
    """One node as the agent sees it through instance metadata and its tags."""

    instance_id: str
    instance_type: str
    image_id: str
    hostname: str
    autoscaling_group: str
    gpus: int


def gpu_plugin(config: dict) -> dict | None:
    return ((config or {}).get("metrics") or {}).get("metrics_collected", {}).get("nvidia_gpu")


def namespace(config: dict) -> str:
    return ((config or {}).get("metrics") or {}).get("namespace") or DEFAULT_NAMESPACE


def interval(config: dict) -> int:
    """Seconds between two collections of the GPU plugin."""
    plugin = gpu_plugin(config) or {}
    agent = (config or {}).get("agent") or {}
    return int(plugin.get("metrics_collection_interval") or agent.get("metrics_collection_interval") or DEFAULT_INTERVAL)


def ec2_dimensions(config: dict, instance: Instance) -> dict[str, str]:
    """The global append_dimensions the agent resolves (the four EC2 keys with their own value)."""
    values = {"ImageId": instance.image_id, "InstanceId": instance.instance_id,
              "InstanceType": instance.instance_type, "AutoScalingGroupName": instance.autoscaling_group}
    wanted = ((config or {}).get("metrics") or {}).get("append_dimensions") or {}
    return {key: values[key] for key, value in wanted.items() if EC2_DIMENSIONS.get(key) == value}


def permissions_needed(config: dict) -> list[tuple[str, str]]:
    """(IAM action, why) the node role must allow for the agent to publish anything."""
    needed = [("cloudwatch:PutMetricData", "the agent writes every series with PutMetricData")]
    wanted = ((config or {}).get("metrics") or {}).get("append_dimensions") or {}
    if wanted.get("AutoScalingGroupName") == EC2_DIMENSIONS["AutoScalingGroupName"]:
        needed.append(("ec2:DescribeTags", "AutoScalingGroupName comes from the instance's tags; the agent "
                                           "passes on no metric until it can read them"))
    return needed


def _gpu_values(measurement: str, utilisation: float, memory_mb: int):
    """A measurement's value on one GPU at `utilisation` percent (the rest follows it plausibly)."""
    used = round(memory_mb * (0.05 + 0.85 * utilisation / 100.0))
    return {
        "utilization_gpu": utilisation,
        "utilization_memory": round(utilisation * 0.6, 1),
        "memory_total": memory_mb,
        "memory_used": used,
        "memory_free": memory_mb - used,
        "power_draw": round(IDLE_WATTS + (BUSY_WATTS - IDLE_WATTS) * utilisation / 100.0, 1),
        "temperature_gpu": round(30 + 50 * utilisation / 100.0),
    }.get(measurement)


def gpu_series(config: dict, instance: Instance, utilisation: list[float]) -> list[dict]:
    """PutMetricData entries (without Timestamp) of one collection: a series per GPU and
    measurement, then the aggregations. `utilisation` holds each GPU's percentage."""
    plugin = gpu_plugin(config)
    if not plugin or not instance.gpus:
        return []
    model, memory_mb = GPU_MODELS.get(instance.instance_type.split(".", 1)[0], ("NVIDIA GPU", 16384))
    common = dict(ec2_dimensions(config, instance))
    common.update({str(k): str(v) for k, v in (plugin.get("append_dimensions") or {}).items()})
    per_gpu = []
    for index in range(instance.gpus):
        dimensions = dict(common, index=str(index), name=model, host=instance.hostname)
        load = float(utilisation[index] if index < len(utilisation) else 0.0)
        for measurement in plugin.get("measurement") or []:
            name = measurement if isinstance(measurement, str) else (measurement or {}).get("name")
            value = _gpu_values(name, load, memory_mb)
            if value is not None:
                per_gpu.append({"MetricName": "nvidia_smi_" + name, "Dimensions": dimensions, "Value": float(value)})
    return [_datum(s["MetricName"], s["Dimensions"], value=s["Value"]) for s in per_gpu] + _aggregations(config, per_gpu)


def _aggregations(config: dict, series: list[dict]) -> list[dict]:
    out = []
    for names in ((config or {}).get("metrics") or {}).get("aggregation_dimensions") or []:
        groups: dict[tuple, list[float]] = {}
        for s in series:
            if all(n in s["Dimensions"] for n in names):
                key = (s["MetricName"], tuple((n, s["Dimensions"][n]) for n in names))
                groups.setdefault(key, []).append(s["Value"])
        for (metric, dims), values in sorted(groups.items()):
            out.append(_datum(metric, dict(dims), statistics={"SampleCount": float(len(values)), "Sum": float(sum(values)),
                                                              "Minimum": float(min(values)), "Maximum": float(max(values))}))
    return out


def _datum(metric: str, dimensions: dict, value: float | None = None, statistics: dict | None = None) -> dict:
    entry = {"MetricName": metric, "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(dimensions.items())]}
    if statistics is not None:
        entry["StatisticValues"] = statistics
    else:
        entry["Value"] = value
    return entry


def gpu_utilisation(gpus: int, busy: list[float]) -> list[float]:
    """Each GPU's utilisation: the GPUs pods hold, at the load each pod declares, the others idle.
    `busy` lists, per GPU held by a running pod, that pod's load in percent."""
    loads = [max(0.0, min(100.0, float(x))) for x in busy][:gpus]
    return loads + [0.0] * (gpus - len(loads))
