# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. NVIDIA GPU instance types and EKS AMI parameters."""

from __future__ import annotations

# NVIDIA GPUs per instance (public EC2 instance type specifications). AMD (g4ad) and
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

AMI_TYPES = {
    # EKS amiType name: (SSM public parameter template, user data flavour)
    'AL2023_x86_64_NVIDIA': ('/aws/service/eks/optimized-ami/{version}/amazon-linux-2023/x86_64/nvidia/recommended/image_id', 'nodeadm'),
    'AL2_x86_64_GPU': ('/aws/service/eks/optimized-ami/{version}/amazon-linux-2-gpu/recommended/image_id', 'bootstrap'),
}

SUPPORTED_KUBERNETES_VERSIONS = ('1.29', '1.30', '1.31', '1.32', '1.33')


def gpu_count(instance_type):
    """NVIDIA GPUs of an instance type, or None when it has none or is unknown."""
    return NVIDIA_GPUS.get(instance_type)


def describe_instance_type_problem(instance_type):
    """Why an instance type cannot back a GPU node group, or None when it can."""
    if instance_type in NVIDIA_GPUS:
        return None
    family = instance_type.split('.', 1)[0] if isinstance(instance_type, str) else ''
    sizes = sorted(k for k in NVIDIA_GPUS if k.split('.', 1)[0] == family)
    if sizes:
        return '%r is not a known size of the %s family (known: %s)' % (instance_type, family, ', '.join(sizes))
    if family in _KNOWN_NON_GPU_FAMILIES:
        return '%r has no NVIDIA GPU; use a g4dn, g5, g6, g6e, p3, p4d or p5 size' % instance_type
    return '%r is not a known EC2 instance type with NVIDIA GPUs' % instance_type


def ssm_parameter_for(ami_type, kubernetes_version):
    return AMI_TYPES[ami_type][0].format(version=kubernetes_version)
