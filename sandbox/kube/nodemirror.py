#!/usr/bin/env python3
"""Mirror the AWS emulator's EKS node groups as Kubernetes Nodes (run by sandbox component 40-nodes).

Every couple of seconds: list EKS clusters and node groups in the emulator (boto3 against
AWS_ENDPOINT_URL), compute the Nodes they stand for and make the apiserver agree:

* one Node per desired instance of each node group, named like a real EC2 private DNS name
  (``ip-10-0-x-y.<region>.compute.internal``), deterministic per cluster/node group/index;
* labels: the node group's labels plus the ones EKS and kubelet set (nodegroup, instance type,
  os, arch, zone, capacity type) and ``type=kwok``; the kwok annotation ``kwok.x-k8s.io/node``
  so the kwok controller plays its kubelet (Ready, heartbeats, pods become Running);
* taints of the node group (EKS effect names mapped to Kubernetes ones);
* as EKS does with a launch template that names an AMI (a custom AMI: EKS merges nothing into its
  user data), the Node's own labels are only those its kubelet registers with, read from the
  template version's user data (nodeboot.py: NodeConfig, bootstrap.sh, Bottlerocket settings),
  plus what the kubelet and the cloud provider set on every Node; no ``eks.amazonaws.com/*``
  label and no node group label unless the user data passes it. Taints are the node group's
  (EKS applies them itself) and the user data's;
* a launch template that names security groups without the cluster security group (EKS then
  attaches no other group) makes Nodes that never become Ready: registered without the kwok
  annotation, condition Ready=False with the reason, so nothing ever runs on them;
* capacity/allocatable cpu, memory, pods, ephemeral-storage and ``nvidia.com/gpu`` by
  instance type.

TPU Nodes (GKE-style, ``google.com/tpu``) can be declared in ``$SANDBOX_DIR/tpu-nodes.json``
or the env var ``SANDBOX_TPU_NODES`` (same JSON): a list of objects
``{"name", "accelerator", "topology", "chips", "labels", "taints", "count"}``.

When a node group shrinks or goes, its Nodes are deleted and so are the Pods bound to them (at
once, grace period 0): the instance and what ran on it are gone. EKS drains a managed node
group's Nodes before it terminates them; without this, Kubernetes' pod garbage collector would
remove those Pods only some 40 s after their Node, and a namespace holding one (an add-on
scheduled on a GPU Node, removed after the GPU node group) would take that long to go.

Only Nodes labelled ``sandbox.genai.stack/managed=true`` are ever changed or deleted, and only
Pods bound to such a Node when it is deleted.
The apiserver is reached with plain HTTPS (requests + client certificate of the kubeconfig
given with --kubeconfig, user ``sandbox-nodemirror``), so no Kubernetes client library is needed.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodeboot  # noqa: E402 - beside this file

MANAGED_LABEL = "sandbox.genai.stack/managed"
SOURCE_LABEL = "sandbox.genai.stack/source"
CLUSTER_LABEL = "sandbox.genai.stack/eks-cluster"
INDEX_LABEL = "sandbox.genai.stack/index"
OWNED_LABELS_ANNOTATION = "sandbox.genai.stack/owned-labels"
OWNED_TAINTS_ANNOTATION = "sandbox.genai.stack/owned-taints"
# What the instance behind an EKS Node is, as its instance metadata and tags would say (JSON):
# the sandbox's CloudWatch agent (sandbox/cloudwatch/publisher.py) publishes from it.
INSTANCE_ANNOTATION = "sandbox.genai.stack/instance"
# Where metrics-server reads the Node's resource metrics (metrics-server honours this annotation in place
# of the kubelet's /metrics/resource): kwok's server emulates each Node's under this path (20-kube).
METRICS_PATH_ANNOTATION = "metrics.k8s.io/resource-metrics-path"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"

GIB = 1024**3

EKS_TAINT_EFFECTS = {
    "NO_SCHEDULE": "NoSchedule",
    "NO_EXECUTE": "NoExecute",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
}

# instance type -> (vCPU, memory GiB, GPUs, EKS max pods)
INSTANCE_TYPES: dict[str, tuple[int, float, int, int]] = {
    "t3.small": (2, 2, 0, 11),
    "t3.medium": (2, 4, 0, 17),
    "t3.large": (2, 8, 0, 35),
    "t3.xlarge": (4, 16, 0, 58),
    "t3.2xlarge": (8, 32, 0, 58),
    "m5.large": (2, 8, 0, 29),
    "m5.xlarge": (4, 16, 0, 58),
    "m5.2xlarge": (8, 32, 0, 58),
    "m5.4xlarge": (16, 64, 0, 234),
    "m5.8xlarge": (32, 128, 0, 234),
    "m6i.large": (2, 8, 0, 29),
    "m6i.xlarge": (4, 16, 0, 58),
    "m6i.2xlarge": (8, 32, 0, 58),
    "c5.large": (2, 4, 0, 29),
    "c5.xlarge": (4, 8, 0, 58),
    "c5.2xlarge": (8, 16, 0, 58),
    "r5.large": (2, 16, 0, 29),
    "r5.xlarge": (4, 32, 0, 58),
    "g4dn.xlarge": (4, 16, 1, 29),
    "g4dn.2xlarge": (8, 32, 1, 29),
    "g4dn.4xlarge": (16, 64, 1, 29),
    "g4dn.8xlarge": (32, 128, 1, 58),
    "g4dn.12xlarge": (48, 192, 4, 234),
    "g4dn.16xlarge": (64, 256, 1, 58),
    "g4dn.metal": (96, 384, 8, 737),
    "g5.xlarge": (4, 16, 1, 58),
    "g5.2xlarge": (8, 32, 1, 58),
    "g5.4xlarge": (16, 64, 1, 234),
    "g5.8xlarge": (32, 128, 1, 234),
    "g5.12xlarge": (48, 192, 4, 737),
    "g5.16xlarge": (64, 256, 1, 234),
    "g5.24xlarge": (96, 384, 4, 737),
    "g5.48xlarge": (192, 768, 8, 345),
    "g6.xlarge": (4, 16, 1, 58),
    "g6.2xlarge": (8, 32, 1, 58),
    "g6.4xlarge": (16, 64, 1, 234),
    "g6.8xlarge": (32, 128, 1, 234),
    "g6.12xlarge": (48, 192, 4, 234),
    "g6.48xlarge": (192, 768, 8, 737),
    "p3.2xlarge": (8, 61, 1, 58),
    "p3.8xlarge": (32, 244, 4, 234),
    "p3.16xlarge": (64, 488, 8, 234),
    "p4d.24xlarge": (96, 1152, 8, 737),
    "p5.48xlarge": (192, 2048, 8, 100),
}

_SIZE = re.compile(r"^(?:(\d+)xlarge|xlarge|large|medium|small|micro|nano|metal)$")


def instance_resources(instance_type: str) -> tuple[int, float, int, int]:
    """(vCPU, memory GiB, GPUs, max pods) of an instance type; a size-based guess if unknown."""
    if instance_type in INSTANCE_TYPES:
        return INSTANCE_TYPES[instance_type]
    _family, _, size = instance_type.partition(".")
    m = _SIZE.match(size)
    if size == "metal":
        vcpu = 96
    elif m and m.group(1):
        vcpu = 4 * int(m.group(1))
    else:
        vcpu = {"xlarge": 4, "large": 2, "medium": 2, "small": 2, "micro": 2, "nano": 2}.get(size, 2)
    return vcpu, 4.0 * vcpu, 0, 110


def node_resources(instance_type: str, disk_gib: int = 20) -> tuple[dict, dict]:
    """capacity and allocatable of a Node of this instance type (EKS-style reservations)."""
    vcpu, mem_gib, gpus, max_pods = instance_resources(instance_type)
    mem_ki = int(mem_gib * 1024 * 1024)
    # EKS AMI bootstrap: kube-reserved memory 255Mi + 11Mi per pod, cpu ~6% of the first core
    # and less after it; eviction threshold 100Mi. Close enough for scheduling tests.
    reserved_mem_ki = (255 + 11 * max_pods + 100) * 1024
    reserved_cpu_m = 60 + 10 * min(vcpu - 1, 1) + 5 * max(min(vcpu - 2, 2), 0) + int(2.5 * max(vcpu - 4, 0))
    capacity = {
        "cpu": str(vcpu),
        "memory": f"{mem_ki}Ki",
        "pods": str(max_pods),
        "ephemeral-storage": f"{disk_gib * 1024 * 1024}Ki",
    }
    allocatable = {
        "cpu": f"{vcpu * 1000 - reserved_cpu_m}m",
        "memory": f"{max(mem_ki - reserved_mem_ki, 256 * 1024)}Ki",
        "pods": str(max_pods),
        "ephemeral-storage": f"{int(disk_gib * 1024 * 1024 * 0.9)}Ki",
    }
    if gpus:
        capacity["nvidia.com/gpu"] = allocatable["nvidia.com/gpu"] = str(gpus)
    return capacity, allocatable


def eks_taint(t: dict) -> dict:
    """An EKS node group taint (effect NO_SCHEDULE ...) as a Kubernetes taint (NoSchedule ...)."""
    effect = t.get("effect", "")
    if effect not in EKS_TAINT_EFFECTS:
        raise ValueError(f"unknown EKS taint effect {effect!r}")
    out = {"key": t["key"], "effect": EKS_TAINT_EFFECTS[effect]}
    if t.get("value"):
        out["value"] = t["value"]
    return out


def _ip_octets(seed: str) -> tuple[int, int]:
    h = hashlib.sha256(seed.encode()).digest()
    n = int.from_bytes(h[:4], "big") % (254 * 254)
    return 1 + n // 254, 1 + n % 254


def node_name(cluster: str, nodegroup: str, index: int, region: str, taken: set[str] | None = None) -> str:
    """Deterministic EC2-style private DNS name for instance `index` of a node group.

    The address is 10.0.x.y with x, y from a hash of cluster/nodegroup/index; on a collision with
    a name in `taken`, the next hash (salted with an attempt counter) is used.
    """
    taken = taken or set()
    attempt = 0
    while True:
        seed = f"{cluster}/{nodegroup}/{index}" + (f"#{attempt}" if attempt else "")
        x, y = _ip_octets(seed)
        name = f"ip-10-0-{x}-{y}.{region}.compute.internal"
        if name not in taken:
            return name
        attempt += 1


def node_ip(name: str) -> str:
    m = re.match(r"^ip-(\d+)-(\d+)-(\d+)-(\d+)\.", name)
    return ".".join(m.groups()) if m else "127.0.0.1"


@dataclass
class NodeSpec:
    """What one mirrored Node must look like."""

    name: str
    labels: dict[str, str]
    taints: list[dict]
    capacity: dict[str, str]
    allocatable: dict[str, str]
    addresses: list[dict] = field(default_factory=list)
    provider_id: str = ""
    kubelet_version: str = "v1.31.0"
    os_image: str = "Amazon Linux 2"
    # Why the Node can never become Ready ('' when it can): kwok does not play its kubelet.
    unreachable: str = ""
    # The instance behind the Node (INSTANCE_ANNOTATION), {} for Nodes without one.
    instance: dict = field(default_factory=dict)

    def owned_annotations(self) -> dict[str, str]:
        owned = {
            OWNED_LABELS_ANNOTATION: json.dumps(sorted(self.labels)),
            OWNED_TAINTS_ANNOTATION: json.dumps(sorted({t["key"] for t in self.taints})),
            METRICS_PATH_ANNOTATION: f"/metrics/nodes/{self.name}/metrics/resource",
        }
        if self.instance:
            owned[INSTANCE_ANNOTATION] = json.dumps(self.instance, sort_keys=True)
        return owned

    def manifest(self) -> dict:
        annotations = {"node.alpha.kubernetes.io/ttl": "0", **self.owned_annotations()}
        status = {
            "capacity": self.capacity,
            "allocatable": self.allocatable,
            "addresses": self.addresses,
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "osImage": self.os_image,
                         "kubeletVersion": self.kubelet_version, "kubeProxyVersion": self.kubelet_version,
                         "containerRuntimeVersion": "containerd://1.7.27", "kernelVersion": "5.10.0-fake"},
            "phase": "Running",
        }
        if self.unreachable:
            status["conditions"] = [not_ready_condition(self.unreachable)]
        else:
            annotations[KWOK_ANNOTATION] = "fake"
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": self.labels, "annotations": annotations},
            "spec": {"taints": self.taints, **({"providerID": self.provider_id} if self.provider_id else {})},
            "status": status,
        }


NOT_READY_REASON = "ControlPlaneUnreachable"


def not_ready_condition(message: str) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"type": "Ready", "status": "False", "reason": NOT_READY_REASON, "message": message,
            "lastHeartbeatTime": now, "lastTransitionTime": now}


def launch_template_groups(lt_data: dict) -> list[str]:
    """Security groups a launch template version gives its instances (its own list, or its network
    interfaces')."""
    groups = list(lt_data.get("SecurityGroupIds") or [])
    for nic in lt_data.get("NetworkInterfaces") or []:
        groups += nic.get("Groups") or []
    return groups


def unreachable_reason(lt_data: dict | None, cluster_sg: str | None) -> str:
    """Why instances of this launch template version cannot join the cluster, or ''. EKS attaches
    the cluster security group only when the template names no group."""
    groups = launch_template_groups(lt_data or {})
    if not groups or not cluster_sg or cluster_sg in groups:
        return ""
    return (f"launch template security groups {', '.join(sorted(groups))} lack the cluster security group "
            f"{cluster_sg}: EKS attaches no other group, so the kubelet cannot reach the control plane")


# Labels the kubelet and the cloud provider set on every Node, whatever the user data says.
def _kubelet_labels(nname: str, instance_type: str, region: str, zone: str) -> dict[str, str]:
    return {
        "node.kubernetes.io/instance-type": instance_type,
        "beta.kubernetes.io/instance-type": instance_type,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": nname,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
    }


def _merge_taints(*lists: list[dict]) -> list[dict]:
    out: list[dict] = []
    seen = set()
    for taints in lists:
        for t in taints:
            if (t["key"], t["effect"]) not in seen:
                seen.add((t["key"], t["effect"]))
                out.append(t)
    return out


def nodegroup_nodes(cluster: str, ng: dict, desired: int, region: str, instance_type: str,
                    taken: set[str], lt_data: dict | None = None, cluster_sg: str | None = None) -> list[NodeSpec]:
    """NodeSpecs for `desired` instances of the EKS node group description `ng`; `lt_data` is the
    LaunchTemplateData of the template version it runs, `cluster_sg` the cluster security group."""
    name = ng["nodegroupName"]
    capacity, allocatable = node_resources(instance_type, int(ng.get("diskSize") or 20))
    subnets = ng.get("subnets") or []
    zones = "abc"
    taints = [eks_taint(t) for t in ng.get("taints") or []]
    custom_ami = bool((lt_data or {}).get("ImageId"))
    if custom_ami:
        boot = nodeboot.read(lt_data.get("UserData"))
        own_labels = dict(boot.labels)
        taints = _merge_taints(taints, boot.taints)
    else:
        own_labels = dict(ng.get("labels") or {})
        own_labels.update({
            "eks.amazonaws.com/nodegroup": name,
            "eks.amazonaws.com/capacityType": ng.get("capacityType") or "ON_DEMAND",
        })
    unreachable = unreachable_reason(lt_data, cluster_sg)
    out = []
    for i in range(desired):
        nname = node_name(cluster, name, i, region, taken)
        taken.add(nname)
        zone = f"{region}{zones[i % len(zones)] if not subnets else zones[i % min(len(subnets), 3)]}"
        labels = dict(own_labels)
        labels.update(_kubelet_labels(nname, instance_type, region, zone))
        labels.update({
            MANAGED_LABEL: "true",
            SOURCE_LABEL: "eks",
            CLUSTER_LABEL: cluster,
            INDEX_LABEL: str(i),
            "type": "kwok",
        })
        addresses = [
            {"type": "InternalIP", "address": node_ip(nname)},
            {"type": "Hostname", "address": nname},
            {"type": "InternalDNS", "address": nname},
        ]
        iid = "i-" + hashlib.sha256(nname.encode()).hexdigest()[:17]
        out.append(NodeSpec(nname, labels, list(taints), dict(capacity), dict(allocatable), addresses,
                            f"aws:///{zone}/{iid}", unreachable=unreachable,
                            instance=instance_identity(cluster, ng, iid, instance_type, zone, lt_data)))
    return out


def instance_identity(cluster: str, ng: dict, instance_id: str, instance_type: str, zone: str,
                      lt_data: dict | None) -> dict:
    """INSTANCE_ANNOTATION's content: the instance's metadata (id, type, image, zone), the Auto
    Scaling group its tags name, the launch template version it was launched from (whose user data
    starts its CloudWatch agent), whether detailed monitoring is on, and the node role."""
    groups = [a["name"] for a in (ng.get("resources") or {}).get("autoScalingGroups") or [] if a.get("name")]
    template = ng.get("launchTemplate") or {}
    return {
        "instanceId": instance_id,
        "instanceType": instance_type,
        "imageId": (lt_data or {}).get("ImageId") or "",
        "availabilityZone": zone,
        "autoScalingGroup": groups[0] if groups else "",
        "launchTemplate": {"id": template.get("id") or "", "name": template.get("name") or "",
                           "version": str(template.get("version") or "")} if template else {},
        "detailedMonitoring": bool(((lt_data or {}).get("Monitoring") or {}).get("Enabled")),
        "nodeRole": ng.get("nodeRole") or "",
        "cluster": cluster,
        "nodegroup": ng["nodegroupName"],
    }


def tpu_nodes(decls: list[dict]) -> list[NodeSpec]:
    """NodeSpecs for declared GKE TPU nodes."""
    out = []
    for d in decls:
        count = int(d.get("count", 1))
        for i in range(count):
            name = d["name"] if count == 1 else f"{d['name']}-{i}"
            chips = int(d.get("chips", 4))
            labels = dict(d.get("labels") or {})
            labels.update({
                MANAGED_LABEL: "true",
                SOURCE_LABEL: "tpu",
                INDEX_LABEL: str(i),
                "cloud.google.com/gke-tpu-accelerator": d.get("accelerator", "tpu-v5-lite-podslice"),
                "cloud.google.com/gke-tpu-topology": d.get("topology", "2x2"),
                "node.kubernetes.io/instance-type": d.get("machineType", "ct5lp-hightpu-4t"),
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/hostname": name,
                "type": "kwok",
            })
            taints = d.get("taints")
            if taints is None:
                taints = [{"key": "google.com/tpu", "value": "present", "effect": "NoSchedule"}]
            cpu, mem = int(d.get("cpu", 24)), int(d.get("memoryGiB", 48))
            capacity = {"cpu": str(cpu), "memory": f"{mem * 1024 * 1024}Ki", "pods": "110",
                        "ephemeral-storage": f"{100 * 1024 * 1024}Ki", "google.com/tpu": str(chips)}
            out.append(NodeSpec(name, labels, taints, capacity, dict(capacity),
                                [{"type": "Hostname", "address": name}]))
    return out


_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DEC = {"n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
        "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def parse_quantity(q: str) -> Fraction:
    """A Kubernetes resource quantity ("192Gi", "47880m", "1e3") as an exact number."""
    m = re.fullmatch(r"([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)", str(q).strip())
    if not m:
        raise ValueError(f"bad quantity {q!r}")
    num, suffix = Fraction(m.group(1)), m.group(2)
    if suffix in _BIN:
        return num * _BIN[suffix]
    if suffix[:1] in ("e", "E"):
        return num * Fraction(10) ** int(suffix[1:])
    return num * _DEC[suffix]


def same_resources(a: dict | None, b: dict | None) -> bool:
    """Equal resource lists, whatever the quantities' spelling (the apiserver canonicalizes)."""
    a, b = a or {}, b or {}
    if set(a) != set(b):
        return False
    try:
        return all(parse_quantity(a[k]) == parse_quantity(b[k]) for k in a)
    except ValueError:
        return a == b


def node_patch(current: dict, spec: NodeSpec) -> tuple[dict | None, dict | None]:
    """(metadata/spec merge patch, status merge patch) to turn `current` into `spec`, or None.

    Labels and taints this mirror did not set (e.g. a cordon's or the node lifecycle
    controller's) are left alone.
    """
    meta = current.get("metadata", {})
    ann = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    owned_labels = set(json.loads(ann.get(OWNED_LABELS_ANNOTATION, "[]")))
    owned_taints = set(json.loads(ann.get(OWNED_TAINTS_ANNOTATION, "[]")))
    patch: dict = {}
    label_patch = {k: v for k, v in spec.labels.items() if labels.get(k) != v}
    for k in owned_labels - set(spec.labels):
        if k in labels:
            label_patch[k] = None
    if label_patch:
        patch.setdefault("metadata", {})["labels"] = label_patch
    cur_taints = (current.get("spec") or {}).get("taints") or []
    foreign = [t for t in cur_taints if t["key"] not in owned_taints and t["key"] not in {x["key"] for x in spec.taints}]
    want_taints = foreign + spec.taints

    def norm(ts):
        return sorted((t["key"], t.get("value", ""), t["effect"]) for t in ts)

    if norm(cur_taints) != norm(want_taints):
        patch.setdefault("spec", {})["taints"] = want_taints
    new_ann = spec.owned_annotations()
    if not spec.instance and INSTANCE_ANNOTATION in ann:
        new_ann[INSTANCE_ANNOTATION] = None
    want_kwok = None if spec.unreachable else "fake"
    if any(ann.get(k) != v for k, v in new_ann.items()) or ann.get(KWOK_ANNOTATION) != want_kwok:
        patch.setdefault("metadata", {})["annotations"] = {**new_ann, KWOK_ANNOTATION: want_kwok}
    status = current.get("status") or {}
    status_patch = None
    if not same_resources(status.get("capacity"), spec.capacity) or \
            not same_resources(status.get("allocatable"), spec.allocatable):
        status_patch = {"status": {"capacity": spec.capacity, "allocatable": spec.allocatable}}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    # Not Ready is left alone whether it says False (ours) or Unknown (the node lifecycle
    # controller's, once no kubelet renews the lease): only a Ready or silent Node is told.
    if spec.unreachable and (ready is None or ready.get("status") == "True"):
        status_patch = status_patch or {"status": {}}
        others = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
        status_patch["status"]["conditions"] = others + [not_ready_condition(spec.unreachable)]
    return (patch or None), status_patch


# --------------------------------------------------------------------------------------------
# I/O: the AWS emulator and the apiserver


class Kube:
    """Just enough of the Kubernetes API over HTTPS with a kubeconfig's client certificate."""

    def __init__(self, kubeconfig: str):
        import requests
        import yaml

        with open(kubeconfig) as f:
            kc = yaml.safe_load(f)
        ctx_name = kc.get("current-context")
        ctx = next(c["context"] for c in kc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in kc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in kc["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        self._tmp = tempfile.mkdtemp(prefix="nodemirror-")

        def material(data_key, file_key, name, src):
            if src.get(data_key):
                path = os.path.join(self._tmp, name)
                with open(path, "wb") as f:
                    f.write(base64.b64decode(src[data_key]))
                os.chmod(path, 0o600)
                return path
            return src.get(file_key)

        self.session = requests.Session()
        # Not trust_env: REQUESTS_CA_BUNDLE would replace the cluster CA, and proxies must not
        # see loopback traffic.
        self.session.trust_env = False
        self.verify = material("certificate-authority-data", "certificate-authority", "ca.crt", cluster)
        cert = material("client-certificate-data", "client-certificate", "client.crt", user)
        key = material("client-key-data", "client-key", "client.key", user)
        if cert and key:
            self.session.cert = (cert, key)
        if user.get("token"):
            self.session.headers["Authorization"] = f"Bearer {user['token']}"
        self.session.headers["User-Agent"] = "sandbox-nodemirror"

    def _req(self, method, path, **kw):
        r = self.session.request(method, self.server + path, timeout=10, verify=self.verify, **kw)
        if r.status_code >= 400 and not (method == "DELETE" and r.status_code == 404):
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else {}

    def version(self) -> str:
        return self._req("GET", "/version")["gitVersion"]

    def managed_nodes(self) -> dict[str, dict]:
        items = self._req("GET", "/api/v1/nodes", params={"labelSelector": f"{MANAGED_LABEL}=true"})["items"]
        return {n["metadata"]["name"]: n for n in items}

    def create_node(self, manifest: dict):
        self._req("POST", "/api/v1/nodes", json=manifest)

    def patch_node(self, name: str, patch: dict, status: bool = False):
        self._req("PATCH", f"/api/v1/nodes/{name}" + ("/status" if status else ""), data=json.dumps(patch),
                  headers={"Content-Type": "application/merge-patch+json"})

    def delete_node(self, name: str):
        self._req("DELETE", f"/api/v1/nodes/{name}")

    def pods_on(self, node: str) -> list[dict]:
        return self._req("GET", "/api/v1/pods", params={"fieldSelector": f"spec.nodeName={node}"})["items"]

    def delete_pod(self, namespace: str, name: str):
        self._req("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", json={"gracePeriodSeconds": 0})


AWS_CLIENT_ID = "sandbox-nodemirror"
INTERNAL_HEADER = "x-sandbox-internal"  # sandbox/aws/server.py: such requests are not journaled


def _mark_internal(request, **_):
    request.headers[INTERNAL_HEADER] = AWS_CLIENT_ID


class Aws:
    """Reads what the mirror needs from the emulator's EKS, Auto Scaling and EC2 APIs."""

    def __init__(self, region: str):
        import boto3.session

        self.region = region
        # The emulator tells the mirror apart from the code under test: it signs as
        # `sandbox-nodemirror` and marks its requests internal (not journaled, never given an
        # injected fault meant for the code under test).
        session = boto3.session.Session(aws_access_key_id=AWS_CLIENT_ID, aws_secret_access_key=AWS_CLIENT_ID,
                                        region_name=region)
        self.eks = session.client("eks")
        self.asg = session.client("autoscaling")
        self.ec2 = session.client("ec2")
        for c in (self.eks, self.asg, self.ec2):
            c.meta.events.register("before-sign.*.*", _mark_internal)
        self._lt_cache: dict[tuple, dict | None] = {}
        # Desired size: whichever of the node group's scalingConfig and its Auto Scaling group
        # changed last wins (they agree when the emulator keeps them in sync).
        self._last_seen: dict[tuple, tuple[int | None, int | None, int]] = {}

    def _pages(self, method, key, **kw):
        token = None
        while True:
            args = dict(kw, **({"nextToken": token} if token else {}))
            page = method(**args)
            yield from page.get(key, [])
            token = page.get("nextToken")
            if not token:
                return

    def launch_template_data(self, ng: dict) -> dict | None:
        """LaunchTemplateData of the template version the node group runs, or None (no template, or
        one the emulator no longer has). Numbered versions never change, so they are remembered."""
        lt = ng.get("launchTemplate")
        if not lt:
            return None
        version = str(lt.get("version") or "$Default")
        key = (lt.get("id") or lt.get("name"), version)
        if key in self._lt_cache:
            return self._lt_cache[key]
        args = {"Versions": [version]}
        if lt.get("id"):
            args["LaunchTemplateId"] = lt["id"]
        else:
            args["LaunchTemplateName"] = lt["name"]
        try:
            versions = self.ec2.describe_launch_template_versions(**args)["LaunchTemplateVersions"]
            data = versions[0]["LaunchTemplateData"] if versions else None
        except Exception:  # noqa: BLE001 - a missing template just means nothing is known from it
            data = None
        if version.isdigit():
            self._lt_cache[key] = data
        return data

    def cluster_security_group(self, cluster: str) -> str | None:
        try:
            described = self.eks.describe_cluster(name=cluster)["cluster"]
        except self.eks.exceptions.ResourceNotFoundException:
            return None
        return (described.get("resourcesVpcConfig") or {}).get("clusterSecurityGroupId")

    def _asg_desired(self, ng: dict) -> int | None:
        names = [a["name"] for a in (ng.get("resources") or {}).get("autoScalingGroups") or [] if a.get("name")]
        if not names:
            return None
        groups = self.asg.describe_auto_scaling_groups(AutoScalingGroupNames=names)["AutoScalingGroups"]
        if not groups:
            return None
        return sum(g["DesiredCapacity"] for g in groups)

    def desired_size(self, cluster: str, ng: dict) -> int:
        cfg = (ng.get("scalingConfig") or {}).get("desiredSize")
        asg = self._asg_desired(ng)
        key = (cluster, ng["nodegroupName"])
        prev = self._last_seen.get(key)
        if prev is None:
            choice = asg if asg is not None else (cfg or 0)
        else:
            pcfg, pasg, pchoice = prev
            if asg is not None and asg != pasg and cfg == pcfg:
                choice = asg
            elif cfg != pcfg:
                choice = cfg or 0
            elif asg is not None and asg != pasg:
                choice = asg
            else:
                choice = pchoice
        self._last_seen[key] = (cfg, asg, choice)
        return int(choice or 0)

    @staticmethod
    def instance_type(ng: dict, lt_data: dict | None) -> str:
        # With a launch template naming an instance type, EKS forbids instanceTypes: the
        # template's type is the truth (and a template version change can change it).
        if (lt_data or {}).get("InstanceType"):
            return lt_data["InstanceType"]
        types = ng.get("instanceTypes") or []
        return types[0] if types else "t3.medium"

    def nodegroups(self, clusters: list[str] | None = None):
        """Yield (cluster, nodegroup description) for every node group of every cluster (of
        `clusters` only, when given: a fleet's mirror writes one cluster's Nodes to its API server)."""
        for cluster in self._pages(self.eks.list_clusters, "clusters"):
            if clusters and cluster not in clusters:
                continue
            for ng_name in self._pages(self.eks.list_nodegroups, "nodegroups", clusterName=cluster):
                try:
                    ng = self.eks.describe_nodegroup(clusterName=cluster, nodegroupName=ng_name)["nodegroup"]
                except self.eks.exceptions.ResourceNotFoundException:
                    continue
                if ng.get("status") in ("DELETING", "DELETED", "CREATE_FAILED"):
                    continue
                yield cluster, ng


def load_tpu_decls(sandbox_dir: str | None) -> list[dict]:
    raw = os.environ.get("SANDBOX_TPU_NODES")
    if not raw and sandbox_dir:
        path = os.path.join(sandbox_dir, "tpu-nodes.json")
        if os.path.exists(path):
            with open(path) as f:
                raw = f.read()
    if not raw:
        return []
    data = json.loads(raw)
    return data if isinstance(data, list) else [data]


def desired_specs(aws: Aws, region: str, sandbox_dir: str | None, clusters: list[str] | None = None,
                  tpu: bool = True) -> list[NodeSpec]:
    taken: set[str] = set()
    specs: list[NodeSpec] = []
    cluster_groups: dict[str, str | None] = {}
    for cluster, ng in sorted(aws.nodegroups(clusters), key=lambda x: (x[0], x[1]["nodegroupName"])):
        lt_data = aws.launch_template_data(ng)
        if lt_data and cluster not in cluster_groups:
            cluster_groups[cluster] = aws.cluster_security_group(cluster)
        specs += nodegroup_nodes(cluster, ng, aws.desired_size(cluster, ng), region, aws.instance_type(ng, lt_data),
                                 taken, lt_data, cluster_groups.get(cluster))
    if tpu:
        specs += tpu_nodes(load_tpu_decls(sandbox_dir))
    return specs


def reconcile(kube: Kube, specs: list[NodeSpec], log: logging.Logger, kubelet_version: str | None = None) -> int:
    """Make the managed Nodes equal `specs`; returns the number of writes."""
    if kubelet_version:
        for s in specs:
            s.kubelet_version = kubelet_version
            if s.labels.get(SOURCE_LABEL) == "tpu":
                s.kubelet_version = kubelet_version.split("-")[0] + "-gke.sandbox"
                s.os_image = "Container-Optimized OS from Google"
    current = kube.managed_nodes()
    want = {s.name: s for s in specs}
    writes = 0
    for name, spec in want.items():
        if name not in current:
            kube.create_node(spec.manifest())
            log.info("created node %s", name)
            writes += 1
            continue
        patch, status = node_patch(current[name], spec)
        if patch:
            kube.patch_node(name, patch)
            log.info("patched node %s: %s", name, json.dumps(patch)[:300])
            writes += 1
        if status:
            kube.patch_node(name, status, status=True)
            log.info("patched node %s status", name)
            writes += 1
    for name in current:
        if name not in want:
            kube.delete_node(name)
            log.info("deleted node %s", name)
            writes += 1
            # Its instance is gone, and what ran there with it (see the module's docstring).
            for pod in kube.pods_on(name):
                meta = pod["metadata"]
                kube.delete_pod(meta["namespace"], meta["name"])
                log.info("deleted pod %s/%s of deleted node %s", meta["namespace"], meta["name"], name)
                writes += 1
    return writes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-2")
    ap.add_argument("--sandbox-dir", default=os.environ.get("SANDBOX_DIR"))
    ap.add_argument("--once", action="store_true", help="reconcile once and exit")
    ap.add_argument("--cluster", action="append",
                    help="mirror only this EKS cluster's node groups (repeatable; default: every cluster)")
    ap.add_argument("--no-tpu", action="store_true", help="leave the declared TPU Nodes to another mirror")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s nodemirror %(levelname)s %(message)s")
    log = logging.getLogger("nodemirror")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    kube = Kube(args.kubeconfig)
    aws = Aws(args.region)
    stop = False

    def _stop(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    last_err = None
    kubelet_version = None
    while not stop:
        t0 = time.monotonic()
        try:
            if kubelet_version is None:
                # Like an EKS node's: the control plane's version with an -eks suffix.
                kubelet_version = kube.version().split("+")[0] + "-eks-sandbox"
            specs = desired_specs(aws, args.region, args.sandbox_dir, args.cluster, tpu=not args.no_tpu)
            reconcile(kube, specs, log, kubelet_version)
            if last_err:
                log.info("recovered")
            last_err = None
        except Exception as e:  # noqa: BLE001 - keep mirroring through emulator/apiserver restarts
            msg = f"{type(e).__name__}: {e}"
            if msg != last_err:
                log.warning("reconcile failed: %s", msg)
            last_err = msg
            if args.once:
                return 1
        if args.once:
            return 0
        time.sleep(max(0.1, args.interval - (time.monotonic() - t0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
