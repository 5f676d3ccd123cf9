# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: eks_gpu_ami
short_description: The NVIDIA GPU AMI id of an EKS node AMI family for a Kubernetes version
version_added: 0.1.0
author:
  - genai.stack maintainers (@genai-stack)
description:
  - Reads the public SSM parameter that AWS publishes for the GPU AMI of a Kubernetes version and an AMI
    family (the EKS optimized Amazon Linux AMIs, or Bottlerocket's NVIDIA variant) and returns the AMI id, the
    same one M(genai.stack.eks_gpu_nodegroup) uses.
options:
  _terms:
    description:
      - Kubernetes versions as C(MAJOR.MINOR) strings, for example C('1.31'); 1.29 or newer, as far as AWS publishes
        the AMI parameter (there is no list of versions in the plugin).
      - Quote them. An unquoted C(1.30) is the number 1.3 and is refused as an unsupported version.
      - A malformed or older version fails before any request. A version with no parameter for the
        family (not released yet, or Amazon Linux 2 AMIs after 1.32) fails naming the SSM parameter.
    required: true
    type: list
    elements: str
  ami_type:
    description:
      - The AMI family, named as EKS names AMI types.
      - V(AL2023_x86_64_NVIDIA) and V(AL2_x86_64_GPU) read C(/aws/service/eks/optimized-ami/<version>/.../recommended/image_id);
        V(BOTTLEROCKET_x86_64_NVIDIA) reads C(/aws/service/bottlerocket/aws-k8s-<version>-nvidia/x86_64/latest/image_id).
    type: str
    choices: [AL2023_x86_64_NVIDIA, AL2_x86_64_GPU, BOTTLEROCKET_x86_64_NVIDIA]
    default: AL2023_x86_64_NVIDIA
extends_documentation_fragment:
  - amazon.aws.boto3
  - amazon.aws.common.plugins
  - amazon.aws.region.plugins
"""

EXAMPLES = r"""
- name: AMI of the AL2023 NVIDIA nodes for Kubernetes 1.31
  ansible.builtin.debug:
    msg: "{{ lookup('genai.stack.eks_gpu_ami', '1.31', region='us-east-2') }}"

- name: Legacy Amazon Linux 2 GPU AMI
  ansible.builtin.debug:
    msg: "{{ lookup('genai.stack.eks_gpu_ami', '1.29', ami_type='AL2_x86_64_GPU') }}"

- name: Bottlerocket NVIDIA AMI (the latest Bottlerocket release for Kubernetes 1.31)
  ansible.builtin.debug:
    msg: "{{ lookup('genai.stack.eks_gpu_ami', '1.31', ami_type='BOTTLEROCKET_x86_64_NVIDIA') }}"
"""

RETURN = r"""
_raw:
  description: One AMI id per Kubernetes version given.
  type: list
  elements: str
"""

try:
    import botocore
except ImportError:
    pass  # the base class reports a missing boto3

from ansible.errors import AnsibleLookupError

from ansible_collections.amazon.aws.plugins.plugin_utils.lookup import AWSLookupBase
from ansible_collections.genai.stack.plugins.module_utils import _gpu


class LookupModule(AWSLookupBase):
    def run(self, terms, variables=None, **kwargs):
        super().run(terms, variables, **kwargs)
        ami_type = self.get_option('ami_type')
        ssm = self.client('ssm')
        results = []
        # An input error names the option at fault as `eks_gpu_ami: <option>: ...`; the versions are
        # the documented `_terms`.
        for version in terms:
            version = str(version)
            problem = _gpu.kubernetes_version_problem(version)
            if problem:
                raise AnsibleLookupError('eks_gpu_ami: _terms: Kubernetes version %s' % problem)
            name = _gpu.ssm_parameter_for(ami_type, version)
            try:
                results.append(ssm.get_parameter(Name=name)['Parameter']['Value'])
            except botocore.exceptions.ClientError as exc:
                code = exc.response.get('Error', {}).get('Code')
                if code == 'ParameterNotFound':
                    raise AnsibleLookupError('eks_gpu_ami: _terms: no %s AMI is published for Kubernetes %s (SSM parameter %s not found)'
                                             % (ami_type, version, name))
                raise AnsibleLookupError('eks_gpu_ami: could not read %s: %s' % (name, exc))
        return results
