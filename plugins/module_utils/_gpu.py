# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. NVIDIA GPU instance types and EKS AMI parameters.

The tables here answer without a request for what they know; what they do not know is asked from
AWS: the GPUs of other instance types (EC2 DescribeInstanceTypes, GpuInfo) and whether an AMI is
published for a Kubernetes version (the AMI family's SSM public parameter).
"""

from __future__ import annotations

import collections
import re

# NVIDIA GPUs per instance (public EC2 instance type specifications), known without asking. AMD (g4ad) and
# Inferentia/Trainium types are deliberately absent: the NVIDIA AMIs and nvidia_gpu metrics do
# not apply to them.
NVIDIA_GPUS = {
    'g4dn.xlarge': 1, 'g4dn.2xlarge': 1, 'g4dn.4xlarge': 1, 'g4dn.8xlarge': 1,
    'g4dn.12xlarge': 4, 'g4dn.16xlarge': 1, 'g4dn.metal': 8,
    'g5.xlarge': 1, 'g5.2xlarge': 1, 'g5.4xlarge': 1, 'g5.8xlarge': 1, 'g5.16xlarge': 1,
    'g5.12xlarge': 4, 'g5.24xlarge': 4, 'g5.48xlarge': 8,
    'g6.xlarge': 1, 'g6.2xlarge': 1, 'g6.4xlarge': 1, 'g6.8xlarge': 1, 'g6.16xlarge': 1,
    'g6.12xlarge': 4, 'g6.24xlarge': 4, 'g6.48xlarge': 8,
    'g6e.xlarge': 1, 'g6e.2xlarge': 1, 'g6e.4xlarge': 1, 'g6e.8xlarge': 1, 'g6e.16xlarge': 1,
    'g6e.12xlarge': 4, 'g6e.24xlarge': 4, 'g6e.48xlarge': 8,
    'p3.2xlarge': 1, 'p3.8xlarge': 4, 'p3.16xlarge': 8, 'p3dn.24xlarge': 8,
    'p4d.24xlarge': 8, 'p4de.24xlarge': 8, 'p5.48xlarge': 8, 'p5e.48xlarge': 8,
}

# Instance families that exist but carry no NVIDIA GPU: named in the error so a typo and a
# wrong family read differently.
_KNOWN_NON_GPU_FAMILIES = (
    't2', 't3', 't3a', 't4g', 'm5', 'm5a', 'm6i', 'm6a', 'm7i', 'm7g', 'c5', 'c6i', 'c7i', 'r5', 'r6i',
    'r7i', 'g4ad', 'inf1', 'inf2', 'trn1', 'x2idn', 'i3', 'i4i', 'm6g', 'c6g', 'c7g',
)

# An AMI family: where AWS publishes the AMI id of a Kubernetes version (an SSM public parameter),
# which user data the nodes take (_userdata.render's flavour), and whether the family keeps
# containers and images on a data volume of its own, besides the root volume (Bottlerocket: the OS on
# the root device, /dev/xvda; images, pods and host containers on the data device, /dev/xvdb).
AmiFamily = collections.namedtuple('AmiFamily', 'ssm_parameter user_data data_volume')

AMI_TYPES = {
    # Keyed by the EKS amiType name.
    'AL2023_x86_64_NVIDIA': AmiFamily('/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/x86_64/nvidia/recommended/image_id',
                                      'nodeadm', False),
    'AL2_x86_64_GPU': AmiFamily('/aws/service/eks/optimized-ami/{version}/amazon-linux-2-gpu/recommended/image_id', 'bootstrap', False),
    # Published by the Bottlerocket project, per variant (one per Kubernetes minor) and architecture.
    'BOTTLEROCKET_x86_64_NVIDIA': AmiFamily('/aws/service/bottlerocket/aws-k8s-{version}-nvidia/x86_64/latest/image_id',
                                            'bottlerocket', True),
}

# The oldest Kubernetes minor version accepted. There is no newest: a version is usable once AWS
# publishes its AMI parameter, which the module reads before any write.
OLDEST_KUBERNETES_VERSION = (1, 29)
_KUBERNETES_VERSION = re.compile(r'^(\d+)\.(\d+)$')
_INSTANCE_TYPE = re.compile(r'^[a-z][a-z0-9-]*\.[a-z0-9-]+$')


# The dimensions the CloudWatch agent of a GPU node appends to its nvidia_gpu metrics (_userdata),
# in this order; the GPU scaling alarm's query filters on them (scaling_alarm).
GPU_METRIC_DIMENSIONS = ('ClusterName', 'NodegroupName', 'NodegroupType')
GPU_NODEGROUP_TYPE = 'gpu'


def gpu_metric_dimensions(cluster_name, nodegroup_name):
    """The GPU_METRIC_DIMENSIONS of one node group's nvidia_gpu metrics, with their values."""
    return dict(zip(GPU_METRIC_DIMENSIONS, (cluster_name, nodegroup_name, GPU_NODEGROUP_TYPE)))


def gpu_count(instance_type):
    """NVIDIA GPUs of an instance type the table knows, or None (ask AWS: gpus_from_type_info)."""
    return NVIDIA_GPUS.get(instance_type)


def gpus_from_type_info(info):
    """Whole NVIDIA GPUs of an instance type, from its DescribeInstanceTypes entry (GpuInfo)."""
    gpus = ((info or {}).get('GpuInfo') or {}).get('Gpus') or []
    return sum(int(g.get('Count') or 0) for g in gpus if str(g.get('Manufacturer') or '').upper() == 'NVIDIA')


def describe_instance_type_problem(instance_type):
    """Why an instance type cannot back a GPU node group, when that is known without asking AWS;
    None when it can, or when only DescribeInstanceTypes can tell (a type the table does not list)."""
    if instance_type in NVIDIA_GPUS:
        return None
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.match(instance_type):
        return '%r is not an EC2 instance type (family.size, for example g5.xlarge)' % (instance_type,)
    if instance_type.split('.', 1)[0] in _KNOWN_NON_GPU_FAMILIES:
        return '%r has no NVIDIA GPU; use a g4dn, g5, g6, g6e, p4d, p5 or newer NVIDIA size' % instance_type
    return None


def kubernetes_version_problem(version):
    """Why `version` cannot be asked for (format, or older than OLDEST_KUBERNETES_VERSION), or None."""
    match = _KUBERNETES_VERSION.match(version) if isinstance(version, str) else None
    oldest = '%d.%d' % OLDEST_KUBERNETES_VERSION
    if not match:
        return '%r is not supported: give MAJOR.MINOR, %s or newer' % (version, oldest)
    if (int(match.group(1)), int(match.group(2))) < OLDEST_KUBERNETES_VERSION:
        return '%r is not supported: older than %s' % (version, oldest)
    return None


def ssm_parameter_for(ami_type, kubernetes_version):
    """The SSM public parameter that holds the AMI id of `ami_type` for a Kubernetes version."""
    return AMI_TYPES[ami_type].ssm_parameter.format(version=kubernetes_version)
