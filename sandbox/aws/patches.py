"""The project's patches to moto 5.2.5: what a GPU node group needs and moto lacks.

Each patch is one function; its docstring names the moto behaviour it corrects. They are
documented in sandbox/README.md ("AWS emulator patches") and each has a test in
tests/sandbox/live/test_aws_patches.py (the queued outcomes of patch 8: test_aws_eks_outcomes.py; the access
entries of patch 10: test_eks_token_auth.py). ``apply_all()`` applies them once, before moto's WSGI
app is built (the EKS routes are read when the app for a service is first created).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import unquote

# --------------------------------------------------------------------------------------------
# The EKS optimized AMI catalogue (patch 1); also used for the node groups' release versions.
# --------------------------------------------------------------------------------------------
EKS_AMI_OWNER = "602401143452"
EKS_SSM_PREFIX = "/aws/service/eks/optimized-ami"
# Kubernetes minor -> (patch release, AMI build date) of the "recommended" AMIs we publish.
EKS_AMI_RELEASES = {
    "1.29": ("1.29.15", "20250519"),
    "1.30": ("1.30.11", "20250519"),
    "1.31": ("1.31.7", "20250519"),
    "1.32": ("1.32.3", "20250519"),
    "1.33": ("1.33.0", "20250519"),
}
# AMI variant: (SSM path below /<version>/, AMI name pattern, amiType, last minor published).
# AWS publishes no Amazon Linux 2 AMIs from Kubernetes 1.33 on; neither do we.
EKS_AMI_VARIANTS = {
    "al2": ("amazon-linux-2", "amazon-eks-node-{v}-v{d}", "AL2_x86_64", "1.32"),
    "al2-gpu": ("amazon-linux-2-gpu", "amazon-eks-gpu-node-{v}-v{d}", "AL2_x86_64_GPU", "1.32"),
    "al2023": ("amazon-linux-2023/x86_64/standard",
               "amazon-eks-node-al2023-x86_64-standard-{v}-v{d}", "AL2023_x86_64_STANDARD", None),
    "al2023-nvidia": ("amazon-linux-2023/x86_64/nvidia",
                      "amazon-eks-node-al2023-x86_64-nvidia-{v}-v{d}", "AL2023_x86_64_NVIDIA",
                      None),
}
# Bottlerocket's AMIs are published by the Bottlerocket project under a prefix of its own, one
# variant per Kubernetes minor (aws-k8s-<minor>-nvidia), each arch with a ``latest`` and a
# per-release path: /aws/service/bottlerocket/<variant>/<arch>/{latest,<image_version>}/
# {image_id,image_version}. The AMIs are owned by the Bottlerocket account and map two devices:
# the OS on /dev/xvda, images and pods on the data device /dev/xvdb.
BOTTLEROCKET_AMI_OWNER = "092701018921"
BOTTLEROCKET_SSM_PREFIX = "/aws/service/bottlerocket"
# The Bottlerocket release (image_version) published for every minor of EKS_AMI_RELEASES.
BOTTLEROCKET_IMAGE_VERSION = "1.40.0-c3a4e8f1"
# AMI variant: (Bottlerocket variant, architecture, AMI name pattern, amiType).
BOTTLEROCKET_VARIANTS = {
    "bottlerocket-nvidia": ("aws-k8s-{v}-nvidia", "x86_64",
                            "bottlerocket-aws-k8s-{v}-nvidia-x86_64-v{r}", "BOTTLEROCKET_x86_64_NVIDIA"),
}
# (device, GiB) of a Bottlerocket AMI: root (the OS) first, then the data volume.
BOTTLEROCKET_DEVICES = (("/dev/xvda", 4), ("/dev/xvdb", 20))
AMI_TYPE_TO_VARIANT = {spec[2]: key for key, spec in EKS_AMI_VARIANTS.items()}
AMI_TYPE_TO_VARIANT.update({spec[3]: key for key, spec in BOTTLEROCKET_VARIANTS.items()})
GPU_INSTANCE_FAMILY = re.compile(r"^(p\d|g\d)[a-z0-9-]*\.", re.IGNORECASE)


def _minor(version: str | None) -> tuple[int, int]:
    try:
        major, minor = str(version).split(".")[:2]
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return (0, 0)


def eks_ami_catalog(region: str) -> list[dict[str, str]]:
    """Every EKS node AMI the sandbox publishes in ``region`` (deterministic ids): the EKS
    optimized ones (family ``eks``) and Bottlerocket's (family ``bottlerocket``, whose
    release_version is the Bottlerocket image_version, as EKS reports it)."""
    out = []
    for version, (patch, date) in EKS_AMI_RELEASES.items():
        for variant, (ssm_path, name_tpl, ami_type, last) in EKS_AMI_VARIANTS.items():
            if last and _minor(version) > _minor(last):
                continue
            digest = hashlib.sha256(f"{region}/{version}/{variant}".encode()).hexdigest()
            out.append({
                "family": "eks",
                "version": version,
                "variant": variant,
                "ami_type": ami_type,
                "image_id": "ami-0" + digest[:16],
                "image_name": name_tpl.format(v=version, d=date),
                "release_version": f"{patch}-{date}",
                "ssm_path": f"{EKS_SSM_PREFIX}/{version}/{ssm_path}/recommended",
            })
        for variant, (br_variant, arch, name_tpl, ami_type) in BOTTLEROCKET_VARIANTS.items():
            digest = hashlib.sha256(f"{region}/{version}/{variant}".encode()).hexdigest()
            release = BOTTLEROCKET_IMAGE_VERSION
            out.append({
                "family": "bottlerocket",
                "version": version,
                "variant": variant,
                "ami_type": ami_type,
                "image_id": "ami-0" + digest[:16],
                "image_name": name_tpl.format(v=version, r=release),
                "release_version": release,
                "ssm_path": f"{BOTTLEROCKET_SSM_PREFIX}/{br_variant.format(v=version)}/{arch}",
            })
    return out


def eks_ami(region: str, version: str, ami_type: str) -> dict[str, str] | None:
    variant = AMI_TYPE_TO_VARIANT.get(ami_type)
    for ami in eks_ami_catalog(region):
        if ami["version"] == version and ami["variant"] == variant:
            return ami
    return None


def eks_ssm_parameters(region: str) -> dict[str, str]:
    params = {}
    for ami in eks_ami_catalog(region):
        base = ami["ssm_path"]
        if ami["family"] == "bottlerocket":
            for release in ("latest", ami["release_version"]):
                params[f"{base}/{release}/image_id"] = ami["image_id"]
                params[f"{base}/{release}/image_version"] = ami["release_version"]
            continue
        params[base] = json.dumps({
            "schema_version": "2", "image_id": ami["image_id"], "image_name": ami["image_name"],
            "release_version": ami["release_version"]})
        params[f"{base}/image_id"] = ami["image_id"]
        params[f"{base}/image_name"] = ami["image_name"]
        params[f"{base}/release_version"] = ami["release_version"]
    return params


# --------------------------------------------------------------------------------------------
# Small helpers over moto's backends
# --------------------------------------------------------------------------------------------
def _ec2(account_id: str, region: str) -> Any:
    from moto.ec2.models import ec2_backends

    return ec2_backends[account_id][region]


def _autoscaling(account_id: str, region: str) -> Any:
    from moto.autoscaling.models import autoscaling_backends

    return autoscaling_backends[account_id][region]


def _invalid(message: str) -> Exception:
    from moto.eks.exceptions import InvalidParameterException

    return InvalidParameterException(clusterName=None, nodegroupName=None,
                                     fargateProfileName=None, addonName=None, message=message)


def _not_found(message: str, **names: Any) -> Exception:
    from moto.eks.exceptions import ResourceNotFoundException

    kw = {"clusterName": None, "nodegroupName": None, "fargateProfileName": None,
          "addonName": None}
    kw.update(names)
    return ResourceNotFoundException(message=message, **kw)


def _launch_template(ec2: Any, spec: dict[str, Any]) -> tuple[Any, Any]:
    """(template, version) for an EKS launchTemplate spec {id|name, version?}."""
    from moto.ec2.exceptions import EC2ClientError

    try:
        if spec.get("id"):
            template = ec2.get_launch_template(spec["id"])
        elif spec.get("name"):
            template = ec2.get_launch_template_by_name(spec["name"])
        else:
            raise _invalid("Either launch template ID or name must be specified.")
        version = template.get_version(spec.get("version") or "$Default")
    except EC2ClientError:
        ident = spec.get("id") or spec.get("name")
        raise _invalid(f"The specified launch template, or version, does not exist: {ident} "
                       f"version {spec.get('version') or '$Default'}") from None
    return template, version


def _nodegroup(backend: Any, cluster_name: str, nodegroup_name: str) -> Any:
    cluster = backend.clusters.get(cluster_name)
    if cluster is None:
        raise _not_found(f"No cluster found for name: {cluster_name}.", clusterName=cluster_name)
    ng = cluster.nodegroups.get(nodegroup_name)
    if ng is None:
        raise _not_found(f"No node group found for name: {nodegroup_name}.",
                         clusterName=cluster_name, nodegroupName=nodegroup_name)
    return ng


def _asg_name(ng: Any) -> str | None:
    groups = (ng.resources or {}).get("autoScalingGroups") or []
    return groups[0]["name"] if groups else None


def _updates(backend: Any, cluster_name: str, nodegroup_name: str | None) -> OrderedDict:
    store = backend.__dict__.setdefault("_sandbox_updates", {})
    return store.setdefault((cluster_name, nodegroup_name), OrderedDict())


def _record_update(backend: Any, cluster_name: str, nodegroup_name: str | None,
                   update_type: str, params: list[dict[str, str]]) -> dict[str, Any]:
    from moto.core.utils import utcnow

    update = {"id": str(uuid.uuid4()), "status": "Successful", "type": update_type,
              "params": params, "createdAt": utcnow(), "errors": []}
    _updates(backend, cluster_name, nodegroup_name)[update["id"]] = update
    return update


# --------------------------------------------------------------------------------------------
# 1. EKS optimized AMI public parameters and their AMIs
# --------------------------------------------------------------------------------------------
def patch_eks_optimized_ami_parameters() -> None:
    """moto's SSM has no ``/aws/service/eks/optimized-ami/...`` nor ``/aws/service/bottlerocket/...``
    public parameters (and refuses ``put_parameter`` under ``/aws/``), and its EC2 has no EKS
    optimized or Bottlerocket AMIs. Publish, per region, the ``recommended`` parameters
    (``image_id``, ``image_name``, ``release_version`` and the JSON parent) for Kubernetes
    1.29-1.33: AL2 and AL2 GPU (to 1.32, as AWS), AL2023 x86_64 standard and nvidia; and
    Bottlerocket's ``aws-k8s-<minor>-nvidia/x86_64/{latest,<image_version>}/{image_id,
    image_version}`` for the same minors. Register matching AMIs so DescribeImages finds them:
    owner 602401143452 with the root device /dev/xvda; Bottlerocket's owned by its account with
    the root device /dev/xvda and the data device /dev/xvdb. Loaded lazily like moto's own ECS
    parameters."""
    from collections import defaultdict

    from moto.core.utils import utcnow
    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ssm.models import Parameter, ParameterDict

    orig_check = ParameterDict._check_loading_status

    def _check_loading_status(self: Any, key: str) -> None:
        orig_check(self, key)
        k = str(key or "").rstrip("/")
        wanted = any(k.startswith(prefix) or (len(k) > 1 and prefix.startswith(k))
                     for prefix in ("/aws/service/eks", BOTTLEROCKET_SSM_PREFIX))
        if wanted and not getattr(self, "_sandbox_eks_loaded", False):
            self._sandbox_eks_loaded = True
            for name, value in eks_ssm_parameters(self.region_name).items():
                defaultdict.__getitem__(self, name).append(Parameter(
                    account_id=self.account_id, name=name, value=value,
                    parameter_type="String", description=None, allowed_pattern=None,
                    keyid=None, last_modified_date=utcnow(), version=1,
                    data_type="aws:ec2:image" if name.endswith("/image_id") else "text"))

    ParameterDict._check_loading_status = _check_loading_status

    class BottlerocketAmi(Ami):
        """An AMI with Bottlerocket's two devices (moto's Ami maps its root device only)."""

        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            (_root, root_size), (data, data_size) = BOTTLEROCKET_DEVICES
            volume = self.ec2_backend.create_volume(size=data_size, zone_name=kw["region_name"])
            self.data_snapshot = self.ec2_backend.create_snapshot(
                volume.id, f"Data volume of AMI {self.id}", self.owner_id, from_ami=self.id)
            self.ec2_backend.delete_volume(volume.id)
            self.data_device = (data, data_size)
            self.root_size = root_size

        @property
        def block_device_mappings(self) -> list[dict[str, Any]]:
            root = super().block_device_mappings
            root[0]["Ebs"].update(VolumeSize=self.root_size, VolumeType="gp2")
            data, size = self.data_device
            return root + [{"DeviceName": data, "Ebs": {
                "SnapshotId": self.data_snapshot.id, "VolumeSize": size,
                "DeleteOnTermination": True, "VolumeType": "gp2"}}]

    orig_load = AmiBackend._load_amis

    def _load_amis(self: Any) -> None:
        orig_load(self)
        for ami in eks_ami_catalog(self.region_name):
            if ami["family"] == "bottlerocket":
                self.amis[ami["image_id"]] = BottlerocketAmi(
                    self, ami_id=ami["image_id"], name=ami["image_name"],
                    description=f"Bottlerocket OS {ami['release_version']} "
                                f"({ami['ami_type']}, Kubernetes {ami['version']})",
                    owner_id=BOTTLEROCKET_AMI_OWNER, owner_alias="amazon", public=True,
                    virtualization_type="hvm", architecture="x86_64", root_device_type="ebs",
                    root_device_name=BOTTLEROCKET_DEVICES[0][0], region_name=self.region_name,
                    boot_mode="uefi-preferred")
                continue
            self.amis[ami["image_id"]] = Ami(
                self, ami_id=ami["image_id"], name=ami["image_name"],
                description=f"EKS Kubernetes Worker AMI ({ami['ami_type']}) "
                            f"release {ami['release_version']}",
                owner_id=EKS_AMI_OWNER, public=True, virtualization_type="hvm",
                architecture="x86_64", root_device_type="ebs", root_device_name="/dev/xvda",
                region_name=self.region_name, boot_mode="uefi-preferred")

    AmiBackend._load_amis = _load_amis


# --------------------------------------------------------------------------------------------
# 6. Node group defaults from the cluster and the launch template
# --------------------------------------------------------------------------------------------
def patch_eks_nodegroup_defaults() -> None:
    """moto's node groups report Kubernetes 1.19, t3.medium, AL2_x86_64 and release
    1.19.8-20210414 whatever was asked, a disk size and an ``eksKeypair`` remote access that
    were never given, no updateConfig, and share one scaling-config dict between node groups
    (an update of one changes the defaults of all). Take the version from the cluster, the
    instance type from the launch template when none is given, amiType CUSTOM (releaseVersion
    = the AMI id) when the template names an ImageId, otherwise the default AMI type of the
    version (AL2023 from 1.30; the NVIDIA/GPU variant for g*/p* instance types) and its
    release version; refuse launch templates that do not exist."""
    from moto.eks.models import EKSBackend

    orig = EKSBackend.create_nodegroup

    @functools.wraps(orig)
    def create_nodegroup(self: Any, **kw: Any) -> Any:
        cluster = self.clusters.get(kw.get("cluster_name"))
        if cluster is None or kw.get("nodegroup_name") in cluster.nodegroups:
            return orig(self, **kw)  # moto's own errors
        lt_data: dict[str, Any] = {}
        lt_version = None
        if kw.get("launch_template"):
            _, lt_version = _launch_template(_ec2(self.account_id, self.region_name),
                                             kw["launch_template"])
            lt_data = lt_version.data or {}
        version = kw.get("version") or cluster.version
        if _minor(version) > _minor(cluster.version):
            raise _invalid(f"Requested Nodegroup Kubernetes Version {version} is greater than "
                           f"the cluster version {cluster.version}")
        kw["version"] = version
        from_template = False
        if not kw.get("instance_types"):
            if lt_data.get("InstanceType"):
                kw["instance_types"] = [lt_data["InstanceType"]]
                from_template = True
            else:
                kw["instance_types"] = ["t3.medium"]
        if lt_data.get("ImageId"):
            kw["ami_type"] = "CUSTOM"
            kw["release_version"] = kw.get("release_version") or lt_data["ImageId"]
        if not kw.get("ami_type"):
            gpu = any(GPU_INSTANCE_FAMILY.match(t) for t in kw["instance_types"])
            if _minor(version) >= (1, 30):
                kw["ami_type"] = "AL2023_x86_64_NVIDIA" if gpu else "AL2023_x86_64_STANDARD"
            else:
                kw["ami_type"] = "AL2_x86_64_GPU" if gpu else "AL2_x86_64"
        if not kw.get("release_version"):
            ami = eks_ami(self.region_name, version, kw["ami_type"])
            if ami is None and kw["ami_type"] != "CUSTOM":
                raise _invalid(f"Requested AMI type {kw['ami_type']} is not supported for "
                               f"Kubernetes version {version}")
            kw["release_version"] = ami["release_version"] if ami else None
        kw["scaling_config"] = dict(kw.get("scaling_config")
                                    or {"minSize": 2, "maxSize": 2, "desiredSize": 2})
        ng = orig(self, **kw)
        ng.health = {"issues": []}
        ng.resources = dict(ng.resources)
        if not kw.get("remote_access"):
            ng.remote_access = None
            ng.resources["remoteAccessSecurityGroup"] = None
        if kw.get("launch_template"):
            ng.disk_size = None
            ng.launch_template = dict(ng.launch_template)
            ng.launch_template["version"] = str(lt_version.number)
        ng.update_config = ng.update_config or {"maxUnavailable": 1}
        ng._sandbox_instance_type_from_template = from_template
        return ng

    EKSBackend.create_nodegroup = create_nodegroup


# --------------------------------------------------------------------------------------------
# 2. A real Auto Scaling group behind each node group
# --------------------------------------------------------------------------------------------
ASG_TAGS = (
    ("eks:cluster-name", "{cluster}"),
    ("eks:nodegroup-name", "{nodegroup}"),
    ("k8s.io/cluster-autoscaler/enabled", "true"),
    ("k8s.io/cluster-autoscaler/{cluster}", "owned"),
    ("kubernetes.io/cluster/{cluster}", "owned"),
)


def _validate_scaling(sc: dict[str, int]) -> None:
    lo, hi, want = sc.get("minSize"), sc.get("maxSize"), sc.get("desiredSize")
    if hi is not None and hi < 1:
        raise _invalid("Maximum capacity must be greater than or equal to 1")
    if lo is not None and hi is not None and lo > hi:
        raise _invalid(f"Minimum capacity {lo} can't be greater than maximum capacity {hi}")
    if want is not None and lo is not None and want < lo:
        raise _invalid(f"Desired capacity {want} can't be lower than minimum capacity {lo}")
    if want is not None and hi is not None and want > hi:
        raise _invalid(f"Desired capacity {want} can't be greater than maximum capacity {hi}")


def patch_eks_nodegroup_autoscaling_group() -> None:
    """moto's describe_nodegroup names an Auto Scaling group ``eks-<uuid>`` that does not
    exist, and scaling a node group changes nothing else. Create the group in moto's
    autoscaling backend as EKS does: ``eks-<nodegroup>-<uuid>``, the node group's
    min/max/desired, its launch template (or one generated from the EKS AMI of its version and
    amiType), its subnets, and EKS's tags (eks:cluster-name, eks:nodegroup-name,
    k8s.io/cluster-autoscaler/enabled, k8s.io/cluster-autoscaler/<cluster>,
    kubernetes.io/cluster/<cluster>; like EKS, node group tags are not propagated). Scaling
    config updates resize it (validated min <= desired <= max as EKS does); DeleteNodegroup
    deletes it and the generated launch template and answers status DELETING. The Auto Scaling
    group's desired capacity, changed by a scaling policy or a Cluster Autoscaler, shows in the
    node group's scalingConfig.desiredSize, as EKS documents for NodegroupScalingConfig."""
    from moto.eks.models import EKSBackend

    orig_create = EKSBackend.create_nodegroup
    orig_describe = EKSBackend.describe_nodegroup
    orig_update = EKSBackend.update_nodegroup_config
    orig_delete = EKSBackend.delete_nodegroup

    @functools.wraps(orig_create)
    def create_nodegroup(self: Any, **kw: Any) -> Any:
        if kw.get("scaling_config"):
            full = {"minSize": 2, "maxSize": 2, "desiredSize": 2}
            full.update(kw["scaling_config"])
            _validate_scaling(full)
        ng = orig_create(self, **kw)
        try:
            _create_asg(self, ng)
        except Exception as exc:  # roll back: EKS would not have created the node group
            cluster = self.clusters[ng.cluster_name]
            cluster.nodegroups.pop(ng.nodegroup_name, None)
            cluster.nodegroup_count -= 1
            if getattr(exc, "code", None) == 400 and hasattr(exc, "description"):
                raise
            raise _invalid(f"Could not create the node group's Auto Scaling group: {exc}")
        return ng

    @functools.wraps(orig_update)
    def update_nodegroup_config(self: Any, cluster_name: str, nodegroup_name: str,
                                **kw: Any) -> Any:
        ng = _nodegroup(self, cluster_name, nodegroup_name)
        _sync_desired_size(self, ng)
        if kw.get("scaling_config"):
            merged = dict(ng.scaling_config)
            merged.update(kw["scaling_config"])
            _validate_scaling(merged)
        update = orig_update(self, cluster_name, nodegroup_name, **kw)
        name = _asg_name(ng)
        if kw.get("scaling_config") and name:
            sc = ng.scaling_config
            asg = _autoscaling(self.account_id, self.region_name)
            if name in asg.autoscaling_groups:
                asg.update_auto_scaling_group(
                    name=name, availability_zones=[], desired_capacity=sc.get("desiredSize"),
                    max_size=sc.get("maxSize"), min_size=sc.get("minSize"),
                    launch_config_name=None, launch_template={},
                    vpc_zone_identifier=None, health_check_period=None, health_check_type=None)
        return update

    @functools.wraps(orig_delete)
    def delete_nodegroup(self: Any, cluster_name: str, nodegroup_name: str) -> Any:
        ng = orig_delete(self, cluster_name, nodegroup_name)
        asg = _autoscaling(self.account_id, self.region_name)
        name = _asg_name(ng)
        if name and name in asg.autoscaling_groups:
            asg.delete_auto_scaling_group(name)
        generated = getattr(ng, "_sandbox_generated_launch_template", None)
        if generated:
            ec2 = _ec2(self.account_id, self.region_name)
            if generated in ec2.launch_templates:
                ec2.delete_launch_template(None, generated)
        ng.status = "DELETING"
        return ng

    @functools.wraps(orig_describe)
    def describe_nodegroup(self: Any, cluster_name: str, nodegroup_name: str) -> Any:
        ng = orig_describe(self, cluster_name, nodegroup_name)
        _sync_desired_size(self, ng)
        return ng

    EKSBackend.create_nodegroup = create_nodegroup
    EKSBackend.describe_nodegroup = describe_nodegroup
    EKSBackend.update_nodegroup_config = update_nodegroup_config
    EKSBackend.delete_nodegroup = delete_nodegroup


def _sync_desired_size(backend: Any, ng: Any) -> None:
    """The node group's desiredSize follows its Auto Scaling group's desired capacity."""
    name = _asg_name(ng)
    groups = _autoscaling(backend.account_id, backend.region_name).autoscaling_groups
    if name in groups and ng.scaling_config:
        ng.scaling_config = dict(ng.scaling_config, desiredSize=groups[name].desired_capacity)


def _create_asg(backend: Any, ng: Any) -> None:
    ec2 = _ec2(backend.account_id, backend.region_name)
    asg = _autoscaling(backend.account_id, backend.region_name)
    names = {"cluster": ng.cluster_name, "nodegroup": ng.nodegroup_name}
    tags = {k.format(**names): v.format(**names) for k, v in ASG_TAGS}
    if not ng.launch_template:
        ami = eks_ami(backend.region_name, ng.version, ng.ami_type)
        data: dict[str, Any] = {"InstanceType": ng.instance_types[0]}
        if ami:
            data["ImageId"] = ami["image_id"]
        if ng.labels or ng.taints:
            data["TagSpecifications"] = [{"ResourceType": "instance", "Tags": [
                {"Key": k, "Value": v} for k, v in tags.items()]}]
        template = ec2.create_launch_template(
            f"eks-{ng.uuid}", "Generated by the sandbox's EKS for a node group", data,
            {"launch-template": {"eks:cluster-name": ng.cluster_name,
                                 "eks:nodegroup-name": ng.nodegroup_name}})
        ng._sandbox_generated_launch_template = template.id
        ng._sandbox_launch_template = {"id": template.id, "name": template.name, "version": "1"}
    spec = ng.launch_template or ng._sandbox_launch_template
    name = f"eks-{ng.nodegroup_name}-{ng.uuid}"
    sc = ng.scaling_config
    asg.create_auto_scaling_group(
        name=name, availability_zones=[], desired_capacity=sc.get("desiredSize"),
        max_size=sc.get("maxSize"), min_size=sc.get("minSize"), launch_config_name=None,
        launch_template={"LaunchTemplateId": spec["id"], "Version": str(spec.get("version"))},
        vpc_zone_identifier=",".join(ng.subnets), default_cooldown=None,
        health_check_period=None, health_check_type="EC2", load_balancers=[],
        target_group_arns=[], placement_group=None, termination_policies=[],
        tags=[{"ResourceId": name, "ResourceType": "auto-scaling-group", "Key": k, "Value": v,
               "PropagateAtLaunch": True} for k, v in tags.items()],
    )
    ng.resources["autoScalingGroups"] = [{"name": name}]


# --------------------------------------------------------------------------------------------
# 3. UpdateNodegroupVersion, ListUpdates, DescribeUpdate
# --------------------------------------------------------------------------------------------
def patch_eks_nodegroup_updates() -> None:
    """moto has no routes for UpdateNodegroupVersion, ListUpdates and DescribeUpdate, and the
    update UpdateNodegroupConfig returns is neither kept nor shaped like EKS's (its params use
    types such as ``Labels`` that EKS does not have). Add the three routes; record every node
    group update (VersionUpdate / ConfigUpdate, status Successful at once, params typed
    LabelsToAdd, TaintsToRemove, MinSize, LaunchTemplateVersion, ...). UpdateNodegroupVersion
    applies a launch template {id|name, version} to the node group and its Auto Scaling group,
    or a Kubernetes version / releaseVersion (a node group on a generated template gets a new
    template version with the matching EKS AMI)."""
    from moto.core.responses import ActionResult
    from moto.eks import urls
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    orig_update_config = EKSBackend.update_nodegroup_config

    @functools.wraps(orig_update_config)
    def update_nodegroup_config(self: Any, cluster_name: str, nodegroup_name: str,
                                **kw: Any) -> dict[str, Any]:
        orig_update_config(self, cluster_name, nodegroup_name, **kw)
        params: list[dict[str, str]] = []
        labels, taints = kw.get("labels") or {}, kw.get("taints") or {}
        if labels.get("addOrUpdateLabels"):
            params.append({"type": "LabelsToAdd", "value": json.dumps(labels["addOrUpdateLabels"])})
        if labels.get("removeLabels"):
            params.append({"type": "LabelsToRemove", "value": json.dumps(labels["removeLabels"])})
        if taints.get("addOrUpdateTaints"):
            params.append({"type": "TaintsToAdd", "value": json.dumps(taints["addOrUpdateTaints"])})
        if taints.get("removeTaints"):
            params.append({"type": "TaintsToRemove", "value": json.dumps(taints["removeTaints"])})
        for key, ptype in (("minSize", "MinSize"), ("maxSize", "MaxSize"),
                           ("desiredSize", "DesiredSize")):
            if (kw.get("scaling_config") or {}).get(key) is not None:
                params.append({"type": ptype, "value": str(kw["scaling_config"][key])})
        for key, ptype in (("maxUnavailable", "MaxUnavailable"),
                           ("maxUnavailablePercentage", "MaxUnavailablePercentage")):
            if (kw.get("update_config") or {}).get(key) is not None:
                params.append({"type": ptype, "value": str(kw["update_config"][key])})
        if kw.get("node_repair_config"):
            params.append({"type": "NodeRepairEnabled",
                           "value": str(kw["node_repair_config"].get("enabled")).lower()})
        return _record_update(self, cluster_name, nodegroup_name, "ConfigUpdate", params)

    def update_nodegroup_version(self: Any, cluster_name: str, nodegroup_name: str,
                                 version: str | None = None, release_version: str | None = None,
                                 launch_template: dict[str, Any] | None = None,
                                 force: bool | None = None) -> dict[str, Any]:
        from moto.core.utils import utcnow

        ng = _nodegroup(self, cluster_name, nodegroup_name)
        cluster = self.clusters[cluster_name]
        ec2 = _ec2(self.account_id, self.region_name)
        asg = _autoscaling(self.account_id, self.region_name)
        params: list[dict[str, str]] = []
        if launch_template:
            if not ng.launch_template:
                raise _invalid("You cannot specify a launch template for a node group that was "
                               "not created with one.")
            if version or release_version:
                raise _invalid("You cannot specify version or releaseVersion together with a "
                               "launch template.")
            template, lt_version = _launch_template(ec2, launch_template)
            if template.id != ng.launch_template.get("id"):
                raise _invalid("The launch template must be the one the node group uses: "
                               f"{ng.launch_template.get('id')}")
            ng.launch_template = {"id": template.id, "name": template.name,
                                  "version": str(lt_version.number)}
            data = lt_version.data or {}
            if getattr(ng, "_sandbox_instance_type_from_template", False) and \
                    data.get("InstanceType"):
                ng.instance_types = [data["InstanceType"]]
            if data.get("ImageId"):
                ng.ami_type = "CUSTOM"
                ng.release_version = data["ImageId"]
            params += [{"type": "LaunchTemplateName", "value": template.name},
                       {"type": "LaunchTemplateVersion", "value": str(lt_version.number)}]
        else:
            target = version or cluster.version
            if _minor(target) > _minor(cluster.version):
                raise _invalid(f"Requested Nodegroup Kubernetes Version {target} is greater "
                               f"than the cluster version {cluster.version}")
            if ng.ami_type == "CUSTOM":
                raise _invalid("You cannot update the version of a node group with a custom "
                               "AMI; update its launch template instead.")
            ami = eks_ami(self.region_name, target, ng.ami_type)
            if ami is None:
                raise _invalid(f"Requested AMI type {ng.ami_type} is not supported for "
                               f"Kubernetes version {target}")
            new_release = release_version or ami["release_version"]
            ng.version = target
            ng.release_version = new_release
            params += [{"type": "Version", "value": target},
                       {"type": "ReleaseVersion", "value": new_release}]
            generated = getattr(ng, "_sandbox_generated_launch_template", None)
            if generated and generated in ec2.launch_templates:
                template = ec2.launch_templates[generated]
                data = copy.deepcopy(template.latest_version().data)
                data["ImageId"] = ami["image_id"]
                new = template.create_version(data, f"Kubernetes {target}")
                template.default_version_number = new.number
                ng._sandbox_launch_template["version"] = str(new.number)
        name = _asg_name(ng)
        if name and name in asg.autoscaling_groups:
            spec = ng.launch_template or getattr(ng, "_sandbox_launch_template", None)
            if spec:
                group = asg.autoscaling_groups[name]
                group._set_launch_configuration(
                    None, {"LaunchTemplateId": spec["id"], "Version": str(spec["version"])},
                    mixed_instances_policy=None)
        ng.modified_at = utcnow()
        return _record_update(self, cluster_name, nodegroup_name, "VersionUpdate", params)

    def list_updates(self: Any, cluster_name: str, nodegroup_name: str | None = None,
                     max_results: int = 100, next_token: str | None = None) -> tuple:
        if nodegroup_name:
            _nodegroup(self, cluster_name, nodegroup_name)
        elif cluster_name not in self.clusters:
            raise _not_found(f"No cluster found for name: {cluster_name}.")
        ids = list(_updates(self, cluster_name, nodegroup_name).keys())
        start = ids.index(next_token) if next_token in ids else 0
        end = start + max_results
        return ids[start:end], (ids[end] if end < len(ids) else None)

    def describe_update(self: Any, cluster_name: str, update_id: str,
                        nodegroup_name: str | None = None) -> dict[str, Any]:
        if cluster_name not in self.clusters:
            raise _not_found(f"No cluster found for name: {cluster_name}.")
        update = _updates(self, cluster_name, nodegroup_name).get(update_id)
        if update is None:
            raise _not_found(f"No update found for ID: {update_id}")
        return update

    EKSBackend.update_nodegroup_config = update_nodegroup_config
    EKSBackend.update_nodegroup_version = update_nodegroup_version
    EKSBackend.list_updates = list_updates
    EKSBackend.describe_update = describe_update

    def r_update_nodegroup_version(self: Any) -> ActionResult:
        update = self.eks_backend.update_nodegroup_version(
            cluster_name=self._get_param("name"),
            nodegroup_name=self._get_param("nodegroupName"),
            version=self._get_param("version"),
            release_version=self._get_param("releaseVersion"),
            launch_template=self._get_param("launchTemplate"),
            force=self._get_param("force"))
        return ActionResult({"update": update})

    def r_list_updates(self: Any) -> ActionResult:
        ids, token = self.eks_backend.list_updates(
            cluster_name=self._get_param("name"),
            nodegroup_name=self._get_param("nodegroupName"),
            max_results=self._get_int_param("maxResults", 100),
            next_token=self._get_param("nextToken"))
        return ActionResult({"updateIds": ids, "nextToken": token})

    def r_describe_update(self: Any) -> ActionResult:
        update = self.eks_backend.describe_update(
            cluster_name=self._get_param("name"), update_id=self._get_param("updateId"),
            nodegroup_name=self._get_param("nodegroupName"))
        return ActionResult({"update": update})

    EKSResponse.update_nodegroup_version = r_update_nodegroup_version
    EKSResponse.list_updates = r_list_updates
    EKSResponse.describe_update = r_describe_update

    dispatch = urls.response.dispatch
    urls.url_paths.update({
        "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$":
            dispatch,
        "{0}/clusters/(?P<name>[^/]+)/updates$": dispatch,
        "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$": dispatch,
    })


# --------------------------------------------------------------------------------------------
# 4. PutScalingPolicy's PolicyARN (and policies scoped per Auto Scaling group)
# --------------------------------------------------------------------------------------------
def patch_autoscaling_policy_arn() -> None:
    """moto's PutScalingPolicy answers ``PolicyArn`` where the API says ``PolicyARN``, so
    botocore drops it and callers get no ARN. Answer ``PolicyARN`` (and ``Alarms``: [])."""
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    orig = AutoScalingResponse.put_scaling_policy

    @functools.wraps(orig)
    def put_scaling_policy(self: Any) -> ActionResult:
        result = orig(self).result
        arn = result.get("PolicyARN") or result.get("PolicyArn")
        return ActionResult({"PolicyARN": arn, "Alarms": []})

    AutoScalingResponse.put_scaling_policy = put_scaling_policy


def patch_autoscaling_policies_per_group() -> None:
    """moto keys scaling policies by name alone: a policy ``scale-out`` on a second Auto
    Scaling group replaces the first group's, and DeletePolicy deletes by name whatever the
    group. Key them by (group, name) as AWS does; DeletePolicy and ExecutePolicy honour
    AutoScalingGroupName; deleting a group deletes its policies."""
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

    orig_put = AutoScalingBackend.put_scaling_policy
    orig_delete_group = AutoScalingBackend.delete_auto_scaling_group

    @functools.wraps(orig_put)
    def put_scaling_policy(self: Any, name: str, *args: Any, **kw: Any) -> Any:
        policy = orig_put(self, name, *args, **kw)
        self.policies.pop(name, None)
        self.policies[f"{policy.auto_scaling_group_name}\0{name}"] = policy
        return policy

    def _find(self: Any, group: str | None, name: str) -> str | None:
        for key, policy in self.policies.items():
            if policy.name == name and (not group or policy.auto_scaling_group_name == group):
                return key
        return None

    def delete_policy(self: Any) -> EmptyResult:
        key = _find(self.autoscaling_backend, self._get_param("AutoScalingGroupName"),
                    self._get_param("PolicyName"))
        if key:
            self.autoscaling_backend.policies.pop(key, None)
        return EmptyResult()

    def execute_policy(self: Any) -> EmptyResult:
        key = _find(self.autoscaling_backend, self._get_param("AutoScalingGroupName"),
                    self._get_param("PolicyName"))
        if key:
            self.autoscaling_backend.policies[key].execute()
        return EmptyResult()

    @functools.wraps(orig_delete_group)
    def delete_auto_scaling_group(self: Any, group_name: str) -> None:
        orig_delete_group(self, group_name)
        for key in [k for k, p in self.policies.items()
                    if p.auto_scaling_group_name == group_name]:
            self.policies.pop(key, None)

    AutoScalingBackend.put_scaling_policy = put_scaling_policy
    AutoScalingBackend.delete_auto_scaling_group = delete_auto_scaling_group
    AutoScalingResponse.delete_policy = delete_policy
    AutoScalingResponse.execute_policy = execute_policy


# --------------------------------------------------------------------------------------------
# 5. CreateLaunchTemplateVersion with SourceVersion
# --------------------------------------------------------------------------------------------
def patch_launch_template_source_version() -> None:
    """moto's CreateLaunchTemplateVersion ignores SourceVersion: the new version holds only
    the LaunchTemplateData given. As AWS does, start from the source version's data and
    overlay the given LaunchTemplateData (top-level keys replace). moto also keeps a new
    version's UserData as text where CreateLaunchTemplate stores its base64 type, so an Auto
    Scaling group launching an instance from version 2 or later failed (500): store it as
    CreateLaunchTemplate does."""
    from moto.ec2.responses.launch_templates import LaunchTemplates
    from moto.ec2.utils import parse_user_data

    orig = LaunchTemplates.create_launch_template_version

    @functools.wraps(orig)
    def create_launch_template_version(self: Any) -> Any:
        source = self._get_param("SourceVersion")
        data = dict(self._get_param("LaunchTemplateData", {}) or {})
        if source:
            name = self._get_param("LaunchTemplateName")
            tid = self._get_param("LaunchTemplateId")
            template = (self.ec2_backend.get_launch_template(tid) if tid
                        else self.ec2_backend.get_launch_template_by_name(name))
            data = dict(copy.deepcopy(template.get_version(source).data), **data)
        if data.get("UserData") is not None:
            data["UserData"] = parse_user_data(str(data["UserData"]))
        self.params["LaunchTemplateData"] = data
        return orig(self)

    LaunchTemplates.create_launch_template_version = create_launch_template_version


# --------------------------------------------------------------------------------------------
# 7. Tags on node groups
# --------------------------------------------------------------------------------------------
def patch_eks_nodegroup_tags() -> None:
    """moto's EKS TagResource, UntagResource and ListTagsForResource know clusters only: on a
    node group (or Fargate profile) ARN they answer ResourceNotFoundException. Find the
    resource by ARN among clusters, node groups and Fargate profiles."""
    from moto.eks.models import EKSBackend

    def _resource(self: Any, arn: str, operation: str) -> Any:
        for cluster in self.clusters.values():
            if cluster.arn == arn:
                return cluster
            for ng in cluster.nodegroups.values():
                if ng.arn == arn:
                    return ng
            for fp in cluster.fargate_profiles.values():
                if fp.fargate_profile_arn == arn:
                    return fp
        raise _not_found(f"Resource was not found: {arn}")

    def tag_resource(self: Any, resource_arn: str, tags: dict[str, str]) -> None:
        res = _resource(self, resource_arn, "TagResource")
        if res.tags is None:
            res.tags = {}
        res.tags.update(tags or {})

    def untag_resource(self: Any, resource_arn: str, tag_keys: list[str]) -> None:
        res = _resource(self, resource_arn, "UntagResource")
        for key in tag_keys if isinstance(tag_keys, list) else [tag_keys]:
            (res.tags or {}).pop(key, None)

    def list_tags_for_resource(self: Any, resource_arn: str) -> dict[str, str]:
        return dict(_resource(self, resource_arn, "ListTagsForResource").tags or {})

    EKSBackend.tag_resource = tag_resource
    EKSBackend.untag_resource = untag_resource
    EKSBackend.list_tags_for_resource = list_tags_for_resource


# --------------------------------------------------------------------------------------------
# 8. Queued outcomes: CREATE_FAILED, DELETE_FAILED, Failed / Cancelled updates, hangs
# --------------------------------------------------------------------------------------------
# What an update may change, on the node group and on its Auto Scaling group.
_UPDATE_STATE = ("labels", "taints", "scaling_config", "update_config", "node_repair_config",
                 "launch_template", "version", "release_version", "instance_types", "ami_type",
                 "modified_at", "_sandbox_launch_template", "_sandbox_instance_type_from_template")
# EKS starts an update only on a node group that is ACTIVE (or DEGRADED).
_UPDATABLE = ("ACTIVE", "DEGRADED")


def _update_state(backend: Any, ng: Any) -> dict[str, Any]:
    state = {attr: copy.deepcopy(getattr(ng, attr, None)) for attr in _UPDATE_STATE}
    name = _asg_name(ng)
    groups = _autoscaling(backend.account_id, backend.region_name).autoscaling_groups
    if name in groups:
        group = groups[name]
        template = getattr(group, "ec2_launch_template", None)
        state["_asg"] = {"min": group.min_size, "max": group.max_size,
                         "desired": group.desired_capacity,
                         "template": {"LaunchTemplateId": template.id,
                                      "Version": group.provided_launch_template_version}
                         if template is not None else None}
    generated = getattr(ng, "_sandbox_generated_launch_template", None)
    templates = _ec2(backend.account_id, backend.region_name).launch_templates
    if generated in templates:
        state["_generated_default"] = templates[generated].default_version_number
    return state


def _restore_state(backend: Any, ng: Any, state: dict[str, Any]) -> None:
    for attr in _UPDATE_STATE:
        setattr(ng, attr, copy.deepcopy(state[attr]))
    name = _asg_name(ng)
    asg = _autoscaling(backend.account_id, backend.region_name)
    if state.get("_asg") and name in asg.autoscaling_groups:
        saved = state["_asg"]
        asg.update_auto_scaling_group(
            name=name, availability_zones=[], desired_capacity=saved["desired"],
            max_size=saved["max"], min_size=saved["min"], launch_config_name=None,
            launch_template={}, vpc_zone_identifier=None, health_check_period=None,
            health_check_type=None)
        if saved["template"]:
            asg.autoscaling_groups[name]._set_launch_configuration(
                None, saved["template"], mixed_instances_policy=None)
    templates = _ec2(backend.account_id, backend.region_name).launch_templates
    generated = getattr(ng, "_sandbox_generated_launch_template", None)
    if "_generated_default" in state and generated in templates:
        templates[generated].default_version_number = state["_generated_default"]


def _still_there(backend: Any, ng: Any) -> bool:
    cluster = backend.clusters.get(ng.cluster_name)
    return cluster is not None and cluster.nodegroups.get(ng.nodegroup_name) is ng


def patch_eks_outcomes() -> None:
    """moto ends every node group creation, deletion and update at once and successfully, so a
    caller's failure and timeout paths are never reached. Real EKS is asynchronous: CreateNodegroup
    answers CREATING and the node group may end CREATE_FAILED with ``health.issues`` ({code,
    message, resourceIds}); DeleteNodegroup answers DELETING and may end DELETE_FAILED (the node
    group stays, with its issues); an update may end ``Failed`` with ``errors`` ({errorCode,
    errorMessage, resourceIds}) or ``Cancelled``, leaving the node group's configuration as it
    was; and any of them may run longer than the caller waits (node group CREATING / UPDATING /
    DELETING, update InProgress). A test queues the outcome of the next matching call
    (``POST /_sandbox/eks-outcomes``, see sandbox/aws/outcomes.py); a hang holds the work, with
    the node group showing its old configuration, until ``DELETE /_sandbox/eks-outcomes``, which
    completes it. As EKS does, an update of a node group that is not ACTIVE or DEGRADED is
    refused (ResourceInUseException)."""
    from moto.eks.exceptions import ResourceInUseException
    from moto.eks.models import EKSBackend

    from .outcomes import BOOK, fill_detail

    orig_create = EKSBackend.create_nodegroup
    orig_delete = EKSBackend.delete_nodegroup
    orig_describe = EKSBackend.describe_nodegroup

    def settle(ng: Any) -> None:
        """A queued failure shows from the first read after the call that started it, as the
        call itself answered CREATING / DELETING."""
        pending = ng.__dict__.pop("_sandbox_settle", None)
        if pending:
            ng.status, issues = pending
            ng.health = {"issues": issues}

    @functools.wraps(orig_describe)
    def describe_nodegroup(self: Any, cluster_name: str, nodegroup_name: str) -> Any:
        ng = orig_describe(self, cluster_name, nodegroup_name)
        settle(ng)
        return ng

    @functools.wraps(orig_create)
    def create_nodegroup(self: Any, **kw: Any) -> Any:
        ng = orig_create(self, **kw)
        outcome = BOOK.take(ng.cluster_name, ng.nodegroup_name, "CreateNodegroup")
        if outcome is None:
            return ng
        ng.status = "CREATING"
        if outcome["outcome"] == "CREATE_FAILED":
            ng._sandbox_settle = ("CREATE_FAILED", fill_detail(
                outcome["issues"], ng.nodegroup_name, [_asg_name(ng)] if _asg_name(ng) else []))
        else:
            def complete() -> None:
                if _still_there(self, ng) and ng.status == "CREATING":
                    ng.status = "ACTIVE"
            BOOK.hold({"cluster": ng.cluster_name, "nodegroup": ng.nodegroup_name,
                       "operation": "CreateNodegroup", "status": "CREATING"}, complete)
        return ng

    @functools.wraps(orig_delete)
    def delete_nodegroup(self: Any, cluster_name: str, nodegroup_name: str) -> Any:
        ng = _nodegroup(self, cluster_name, nodegroup_name)
        outcome = BOOK.take(cluster_name, nodegroup_name, "DeleteNodegroup")
        if outcome is None:
            return orig_delete(self, cluster_name, nodegroup_name)
        ng.status = "DELETING"
        if outcome["outcome"] == "DELETE_FAILED":
            ng._sandbox_settle = ("DELETE_FAILED", fill_detail(
                outcome["issues"], nodegroup_name, [_asg_name(ng)] if _asg_name(ng) else []))
        else:
            def complete() -> None:
                if _still_there(self, ng):
                    orig_delete(self, cluster_name, nodegroup_name)
            BOOK.hold({"cluster": cluster_name, "nodegroup": nodegroup_name,
                       "operation": "DeleteNodegroup", "status": "DELETING"}, complete)
        return ng

    def with_outcome(orig: Any, operation: str) -> Any:
        @functools.wraps(orig)
        def update(self: Any, cluster_name: str, nodegroup_name: str, **kw: Any) -> Any:
            ng = _nodegroup(self, cluster_name, nodegroup_name)
            settle(ng)
            if ng.status not in _UPDATABLE:
                raise ResourceInUseException(
                    clusterName=cluster_name, nodegroupName=nodegroup_name,
                    fargateProfileName=None, addonName=None,
                    message=f"Nodegroup {nodegroup_name} cannot be updated as it is currently "
                            f"not in Active State ({ng.status})")
            before = _update_state(self, ng)
            record = orig(self, cluster_name, nodegroup_name, **kw)
            outcome = BOOK.take(cluster_name, nodegroup_name, operation)
            if outcome is None:
                return record
            after = _update_state(self, ng)
            _restore_state(self, ng, before)
            if outcome["outcome"] == "hang":
                record["status"] = "InProgress"
                ng.status = "UPDATING"

                def complete() -> None:
                    if _still_there(self, ng):
                        _restore_state(self, ng, after)
                        ng.status = "ACTIVE"
                    record["status"] = "Successful"
                BOOK.hold({"cluster": cluster_name, "nodegroup": nodegroup_name,
                           "operation": operation, "updateId": record["id"],
                           "status": "InProgress"}, complete)
            else:
                record["status"] = outcome["outcome"]
                record["errors"] = fill_detail(outcome["errors"], nodegroup_name,
                                               [_asg_name(ng)] if _asg_name(ng) else [])
            return record
        return update

    EKSBackend.describe_nodegroup = describe_nodegroup
    EKSBackend.create_nodegroup = create_nodegroup
    EKSBackend.delete_nodegroup = delete_nodegroup
    EKSBackend.update_nodegroup_config = with_outcome(EKSBackend.update_nodegroup_config,
                                                      "UpdateNodegroupConfig")
    EKSBackend.update_nodegroup_version = with_outcome(EKSBackend.update_nodegroup_version,
                                                       "UpdateNodegroupVersion")


# Order matters where patches wrap the same method: defaults first (innermost), then the Auto
# Scaling group, then the update records, then the queued outcomes (outermost).
# --------------------------------------------------------------------------------------------
# 9. ListMetrics in linear time
# --------------------------------------------------------------------------------------------
def patch_cloudwatch_list_metrics() -> None:
    """moto's ListMetrics compares every stored datapoint with every metric found so far
    (quadratic: 10 s for 9,000 metrics over some 50,000 datapoints, measured), and returns a
    metric without dimensions once per datapoint. The sandbox's node agents publish every minute
    for every GPU Node and the alarm evaluator lists metrics on every evaluation, so a sandbox used
    for an afternoon slowed both to a crawl. The same filter, with metrics told apart by a set of
    (namespace, name, dimensions) keys: each metric once, as CloudWatch answers."""
    from moto.cloudwatch.models import CloudWatchBackend

    def get_filtered_metrics(self: Any, metric_name: str, namespace: str, dimensions: list[dict[str, str]]) -> list[Any]:
        seen: set[tuple] = set()
        found = []
        for datum in self.get_all_metrics():
            if not datum.filter(namespace=namespace, name=metric_name, dimensions=dimensions):
                continue
            key = (datum.namespace, datum.name, tuple(sorted((d.name, d.value) for d in datum.dimensions)))
            if key not in seen:
                seen.add(key)
                found.append(datum)
        return found

    CloudWatchBackend.get_filtered_metrics = get_filtered_metrics


# --------------------------------------------------------------------------------------------
# 10. EKS access entries, the cluster creator's entry, the sandbox apiserver's endpoint and CA
# --------------------------------------------------------------------------------------------
def _eks_error(kind: str, message: str, **names: Any) -> Exception:
    from moto.eks import exceptions

    kw = {"clusterName": None, "nodegroupName": None, "fargateProfileName": None, "addonName": None}
    kw.update(names)
    return getattr(exceptions, kind)(message=message, **kw)


def _entry_cluster(backend: Any, cluster_name: str) -> Any:
    """The cluster, refusing as EKS does when it has no access entries (CONFIG_MAP mode)."""
    from .eks_access import access_config

    cluster = backend.clusters.get(cluster_name)
    if cluster is None:
        raise _not_found(f"No cluster found for name: {cluster_name}.", clusterName=cluster_name)
    if "API" not in access_config(cluster)["authenticationMode"]:
        raise _eks_error("InvalidRequestException", "The cluster's authentication mode must be set to one of "
                         "[API, API_AND_CONFIG_MAP] to perform this operation.", clusterName=cluster_name)
    return cluster


def _entry(backend: Any, cluster_name: str, principal_arn: str) -> dict[str, Any]:
    from .eks_access import entries

    found = entries(_entry_cluster(backend, cluster_name)).get(principal_arn)
    if found is None:
        raise _not_found(f"The specified principalArn could not be found: {principal_arn}. You can view "
                         "your available access entries with 'list-access-entries'.", clusterName=cluster_name)
    return found


def _principal_id(backend: Any, arn: str) -> str:
    """The IAM id EKS keeps with an entry (a principal deleted and created again does not match);
    InvalidParameterException when the ARN names no IAM user, role or the account root."""
    from .eks_access import principal_kind

    kind = principal_kind(arn)
    iam = _iam_backend(backend.account_id)
    try:
        if kind and kind[0] == "root" and kind[1] == backend.account_id:
            return backend.account_id
        if kind and kind[0] == "user":
            return next(u.id for u in iam.users.values() if u.arn == arn)
        if kind and kind[0] == "role":
            return iam.get_role_by_arn(arn).id
    except Exception:  # noqa: BLE001 - no such user or role
        pass
    raise _invalid(f"The specified principalArn is invalid: {arn} is no IAM user or role of this account "
                   "(STS session ARNs cannot have access entries)")


def _iam_backend(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["aws"]


def _check_names(username: str | None, groups: list[str] | None) -> None:
    from .eks_access import RESERVED_PREFIXES
    from .eks_auth import POLICY_GROUP_PREFIX

    for value, what in [(username, "username")] + [(g, "kubernetesGroups") for g in groups or []]:
        if value and value.startswith(RESERVED_PREFIXES + (POLICY_GROUP_PREFIX,)):
            raise _invalid(f"The {what} {value!r} is not allowed: it can't start with "
                           f"{', '.join(RESERVED_PREFIXES)} (nor, in the sandbox, {POLICY_GROUP_PREFIX})")


def _page(items: list[Any], max_results: int | None, token: str | None) -> tuple[list[Any], str | None]:
    if max_results is not None and not 1 <= int(max_results) <= 100:
        raise _invalid("maxResults must be between 1 and 100")
    start = int(token) if token and str(token).isdigit() else 0
    end = start + int(max_results or 100)
    return items[start:end], (str(end) if end < len(items) else None)


def create_access_entry(backend: Any, cluster_name: str, principal_arn: str, kubernetes_groups: list[str] | None = None,
                        tags: dict[str, str] | None = None, username: str | None = None,
                        entry_type: str | None = None) -> dict[str, Any]:
    """An access entry as EKS makes one: the principal must exist; STANDARD by default, whose
    username defaults to EKS's (eks_access.default_username); node types take no username or groups."""
    from moto.core.utils import utcnow

    from .eks_access import ENTRY_TYPES, default_username, entries, entry_arn

    cluster = _entry_cluster(backend, cluster_name)
    entry_type = entry_type or "STANDARD"
    if entry_type not in ENTRY_TYPES:
        raise _invalid(f"The type {entry_type} is invalid; valid types: {', '.join(ENTRY_TYPES)}")
    if entry_type != "STANDARD" and (username or kubernetes_groups):
        raise _invalid(f"username and kubernetesGroups cannot be specified for an access entry of type {entry_type}")
    _check_names(username, kubernetes_groups)
    store = entries(cluster)
    if principal_arn in store:
        raise _eks_error("ResourceInUseException", "The specified access entry resource is already in use on "
                         f"this cluster: {principal_arn}", clusterName=cluster_name)
    principal_id = _principal_id(backend, principal_arn)
    now = utcnow()
    store[principal_arn] = {
        "clusterName": cluster_name, "principalArn": principal_arn, "kubernetesGroups": list(kubernetes_groups or []),
        "accessEntryArn": entry_arn(backend.region_name, cluster_name, principal_arn, str(uuid.uuid4())),
        "createdAt": now, "modifiedAt": now, "tags": dict(tags or {}), "type": entry_type,
        "username": username or default_username(principal_arn, entry_type),
        "_principalId": principal_id, "_policies": OrderedDict()}
    return store[principal_arn]


def associate_access_policy(backend: Any, cluster_name: str, principal_arn: str, policy_arn: str,
                            access_scope: dict[str, Any]) -> dict[str, Any]:
    """Associate (or re-scope) an access policy: EKS's own policies only, STANDARD entries only, a
    namespace scope with namespaces and a cluster scope without."""
    from moto.core.utils import utcnow

    from .eks_access import ACCESS_POLICIES
    from .eks_auth import POLICY_ARN_PREFIX

    entry = _entry(backend, cluster_name, principal_arn)
    if policy_arn not in [POLICY_ARN_PREFIX + p for p in ACCESS_POLICIES]:
        raise _not_found(f"The specified policyArn could not be found: {policy_arn}", clusterName=cluster_name)
    if entry["type"] != "STANDARD":
        raise _invalid(f"Access policies can only be associated with STANDARD access entries, not {entry['type']}")
    scope = dict(access_scope or {})
    namespaces = list(scope.get("namespaces") or [])
    if scope.get("type") not in ("cluster", "namespace"):
        raise _invalid("accessScope.type must be cluster or namespace")
    if (scope["type"] == "namespace") != bool(namespaces):
        raise _invalid("accessScope.namespaces is required for a namespace scope and not allowed for a cluster scope")
    now = utcnow()
    old = entry["_policies"].get(policy_arn)
    entry["_policies"][policy_arn] = {
        "policyArn": policy_arn, "accessScope": {"type": scope["type"], "namespaces": namespaces},
        "associatedAt": old["associatedAt"] if old else now, "modifiedAt": now}
    return entry["_policies"][policy_arn]


def _creator_arn(account_id: str, access_key: str) -> str:
    """The IAM principal an access key belongs to, as EKS names a cluster's creator: the user's ARN, the
    role's ARN for a role session, the account root for any other key (the sandbox's root keys)."""
    from moto.sts.models import sts_backends

    iam = _iam_backend(account_id)
    for session in sts_backends[account_id]["aws"].assumed_roles:
        if session.access_key_id == access_key:
            try:
                return iam.get_role_by_arn(session.role_arn).arn
            except Exception:  # noqa: BLE001 - a role that does not exist: name it as assumed
                return session.role_arn
    key = iam.access_keys.get(access_key)
    if key is not None and key.user_name:
        return iam.get_user(key.user_name).arn
    return f"arn:aws:iam::{account_id}:root"


def patch_eks_access_entries() -> None:
    """moto 5.2.5 has no EKS access entries and no accessConfig; its clusters' endpoint and CA are
    made up. Add CreateAccessEntry, DescribeAccessEntry, ListAccessEntries, UpdateAccessEntry,
    DeleteAccessEntry, AssociateAccessPolicy, DisassociateAccessPolicy, ListAssociatedAccessPolicies and
    ListAccessPolicies with EKS's shapes and errors (kept on the cluster, gone with it). CreateCluster
    keeps accessConfig (authenticationMode defaults to CONFIG_MAP, as EKS's API documents;
    bootstrapClusterCreatorAdminPermissions to true) and, when the mode allows access entries and
    bootstrap is on, gives the creating principal an entry with AmazonEKSClusterAdminPolicy on the
    cluster. DescribeCluster answers the endpoint and CA registered for the cluster by the sandbox's
    kube-apiserver (eks_access.register_control_plane), moto's otherwise."""
    from moto.core.responses import ActionResult, EmptyResult
    from moto.eks import urls
    from moto.eks.models import EKSBackend
    from moto.eks.responses import EKSResponse

    from . import eks_access

    orig_create_cluster = EKSResponse.create_cluster
    orig_describe = EKSBackend.describe_cluster

    @functools.wraps(orig_create_cluster)
    def r_create_cluster(self: Any) -> ActionResult:
        config = dict(self._get_param("accessConfig") or {})
        mode = config.get("authenticationMode") or "CONFIG_MAP"
        if mode not in ("API", "API_AND_CONFIG_MAP", "CONFIG_MAP"):
            raise _invalid(f"authenticationMode {mode} is invalid")
        result = orig_create_cluster(self)
        cluster = self.eks_backend.clusters[self._get_param("name")]
        bootstrap = config.get("bootstrapClusterCreatorAdminPermissions")
        cluster.access_config = {"authenticationMode": mode,
                                 "bootstrapClusterCreatorAdminPermissions": bootstrap is not False}
        if "API" in mode and bootstrap is not False:
            creator = _creator_arn(self.eks_backend.account_id, self.get_access_key())
            create_access_entry(self.eks_backend, cluster.name, creator)
            associate_access_policy(self.eks_backend, cluster.name, creator,
                                    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
                                    {"type": "cluster"})
        eks_access.apply_control_plane(cluster, self.eks_backend.region_name)
        return result

    @functools.wraps(orig_describe)
    def describe_cluster(self: Any, name: str) -> Any:
        cluster = orig_describe(self, name)
        eks_access.access_config(cluster)
        return eks_access.apply_control_plane(cluster, self.region_name)

    EKSResponse.create_cluster = r_create_cluster
    EKSBackend.describe_cluster = describe_cluster
    _access_entry_responses(EKSResponse, ActionResult, EmptyResult)

    dispatch = urls.response.dispatch
    entry = "{0}/clusters/(?P<name>[^/]+)/access-entries"
    urls.url_paths.update({
        entry + "$": dispatch,
        entry + "/(?P<principalArn>.+)/access-policies/(?P<policyArn>.+)$": dispatch,
        entry + "/(?P<principalArn>.+)/access-policies$": dispatch,
        entry + "/(?P<principalArn>.+)$": dispatch,
        "{0}/access-policies$": dispatch,
    })


def _access_entry_responses(EKSResponse: Any, ActionResult: Any, EmptyResult: Any) -> None:  # noqa: N803
    """The operations' request parsing and answers (the logic is in the functions above)."""
    from moto.core.utils import utcnow

    from .eks_access import ACCESS_POLICIES, entries
    from .eks_auth import POLICY_ARN_PREFIX

    def names(self: Any) -> tuple[str, str]:
        return self._get_param("name"), unquote(self._get_param("principalArn") or "")

    def r_create(self: Any) -> ActionResult:
        return ActionResult({"accessEntry": create_access_entry(
            self.eks_backend, self._get_param("name"), self._get_param("principalArn"),
            self._get_param("kubernetesGroups"), self._get_param("tags"), self._get_param("username"),
            self._get_param("type"))})

    def r_describe(self: Any) -> ActionResult:
        return ActionResult({"accessEntry": _entry(self.eks_backend, *names(self))})

    def r_list(self: Any) -> ActionResult:
        cluster = _entry_cluster(self.eks_backend, self._get_param("name"))
        policy = self._get_param("associatedPolicyArn")
        arns = [a for a, e in entries(cluster).items() if not policy or policy in e["_policies"]]
        page, token = _page(arns, self._get_param("maxResults"), self._get_param("nextToken"))
        return ActionResult({"accessEntries": page, "nextToken": token})

    def r_update(self: Any) -> ActionResult:
        entry = _entry(self.eks_backend, *names(self))
        groups, username = self._get_param("kubernetesGroups"), self._get_param("username")
        if entry["type"] != "STANDARD" and (groups is not None or username):
            raise _invalid("username and kubernetesGroups cannot be updated on an access entry of type "
                           f"{entry['type']}")
        _check_names(username, groups)
        if groups is not None:
            entry["kubernetesGroups"] = list(groups)
        if username:
            entry["username"] = username
        entry["modifiedAt"] = utcnow()
        return ActionResult({"accessEntry": entry})

    def r_delete(self: Any) -> EmptyResult:
        cluster_name, principal = names(self)
        _entry(self.eks_backend, cluster_name, principal)
        entries(self.eks_backend.clusters[cluster_name]).pop(principal)
        return EmptyResult()

    def r_associate(self: Any) -> ActionResult:
        cluster_name, principal = names(self)
        assoc = associate_access_policy(self.eks_backend, cluster_name, principal, self._get_param("policyArn"),
                                        self._get_param("accessScope"))
        return ActionResult({"clusterName": cluster_name, "principalArn": principal, "associatedAccessPolicy": assoc})

    def r_disassociate(self: Any) -> EmptyResult:
        cluster_name, principal = names(self)
        policy = unquote(self._get_param("policyArn") or "")
        if _entry(self.eks_backend, cluster_name, principal)["_policies"].pop(policy, None) is None:
            raise _not_found(f"The access policy {policy} is not associated with {principal}", clusterName=cluster_name)
        return EmptyResult()

    def r_list_associated(self: Any) -> ActionResult:
        cluster_name, principal = names(self)
        assocs = list(_entry(self.eks_backend, cluster_name, principal)["_policies"].values())
        page, token = _page(assocs, self._get_param("maxResults"), self._get_param("nextToken"))
        return ActionResult({"clusterName": cluster_name, "principalArn": principal,
                             "associatedAccessPolicies": page, "nextToken": token})

    def r_list_policies(self: Any) -> ActionResult:
        policies = [{"name": p, "arn": POLICY_ARN_PREFIX + p} for p in ACCESS_POLICIES]
        page, token = _page(policies, self._get_param("maxResults"), self._get_param("nextToken"))
        return ActionResult({"accessPolicies": page, "nextToken": token})

    EKSResponse.create_access_entry = r_create
    EKSResponse.describe_access_entry = r_describe
    EKSResponse.list_access_entries = r_list
    EKSResponse.update_access_entry = r_update
    EKSResponse.delete_access_entry = r_delete
    EKSResponse.associate_access_policy = r_associate
    EKSResponse.disassociate_access_policy = r_disassociate
    EKSResponse.list_associated_access_policies = r_list_associated
    EKSResponse.list_access_policies = r_list_policies


PATCHES = (
    patch_eks_optimized_ami_parameters,
    patch_eks_nodegroup_defaults,
    patch_eks_nodegroup_autoscaling_group,
    patch_eks_nodegroup_updates,
    patch_autoscaling_policy_arn,
    patch_autoscaling_policies_per_group,
    patch_launch_template_source_version,
    patch_eks_nodegroup_tags,
    patch_eks_outcomes,
    patch_cloudwatch_list_metrics,
    patch_eks_access_entries,
)

_applied = False


def apply_all() -> None:
    global _applied
    if _applied:
        return
    for patch in PATCHES:
        patch()
    _applied = True
