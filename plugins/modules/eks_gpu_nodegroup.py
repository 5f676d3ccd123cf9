#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: eks_gpu_nodegroup
short_description: Converge an NVIDIA GPU managed node group of an existing EKS cluster
version_added: 0.1.0
author:
  - genai.stack maintainers (@genai-stack)
description:
  - Manages one GPU node group of an existing Amazon EKS cluster as a single resource made of an
    EC2 launch template and an EKS managed node group.
  - The AMI comes from the public SSM parameter AWS publishes for the cluster's Kubernetes version and
    O(ami_type) (Amazon Linux 2023 NVIDIA by default, Amazon Linux 2 GPU for the legacy path, Bottlerocket
    NVIDIA); an explicit O(ami_id) wins.
  - On Amazon Linux the launch template carries rendered user data (C(nodeadm) NodeConfig for AL2023,
    C(/etc/eks/bootstrap.sh) for AL2) that installs the CloudWatch agent with the C(nvidia_gpu)
    measurements C(utilization_gpu), C(utilization_memory), C(memory_total), C(memory_used),
    C(memory_free) and C(power_draw), with the dimensions C(ClusterName), C(NodegroupName) and
    C(NodegroupType=gpu) that M(genai.stack.scaling_alarm) queries. Instance metadata is read with
    IMDSv2 tokens; the template requires IMDSv2, limits the metadata response to O(metadata_hop_limit) network hops,
    encrypts the node's volumes and, with O(detailed_monitoring), turns on EC2 detailed monitoring.
  - On Bottlerocket (O(ami_type=BOTTLEROCKET_x86_64_NVIDIA)) the user data is Bottlerocket's TOML settings
    (C([settings.kubernetes]) with the cluster's name, endpoint, certificate and DNS address, and its
    C(node-labels) and C(node-taints) tables). Bottlerocket has no shell and no package manager for user data
    to run, so B(no CloudWatch agent is installed and the nodes publish no GPU metrics), and the GPU alarm of
    M(genai.stack.scaling_alarm) (C(CWAgent) C(nvidia_smi_utilization_gpu) by C(ClusterName), C(NodegroupName)
    and C(NodegroupType)) would never get data. Publish GPU metrics another way (for example NVIDIA's DCGM
    exporter read by a metrics pipeline of your own) and scale on those. Bottlerocket's NVIDIA variants run
    the NVIDIA device plugin themselves.
  - Every new launch template version is written whole, never derived from an earlier version, so a setting
    removed from the task (for example O(security_groups) or O(kms_key_id)) is gone from the next version
    instead of being inherited; one new version, and the run after it makes none.
  - A change of user data (for example O(cloudwatch_metrics_interval)), AMI or instance type creates a
    new launch template version and rolls it into the same node group with C(UpdateNodegroupVersion).
    A change of scaling only is sent with C(UpdateNodegroupConfig) alone.
  - A change of O(labels), O(taints) or O(gpu_taint) is sent both ways, first C(UpdateNodegroupConfig)
    (labels, taints), then a new template version rolled with C(UpdateNodegroupVersion), so the nodes
    are replaced. The reason is that the launch template names an AMI (O(ami_id) or the SSM parameter's),
    which makes it a custom AMI for EKS, and EKS does not merge its bootstrap into the user data of a custom AMI.
    The kubelet then registers only the labels and taints that the rendered user data passes to it
    (C(--node-labels), C(--register-with-taints); Bottlerocket's C(node-labels), C(node-taints)); the node group's
    own labels and taints are what EKS reports for the group (C(DescribeNodegroup)).
  - Once the node group exists, a re-run keeps its current desired size, which autoscalers own (see the notes);
    O(enforce_desired_size) sets it from O(scaling_config.desired_size) every run instead.
  - Nothing is ever recreated. Immutable settings (subnets, node role, capacity type) are refused with
    an error before any change.
  - O(state=absent) deletes the node group, waits for it to go, then deletes the launch template.
  - Option names follow M(community.aws.eks_nodegroup) where the meaning is the same.
options:
  name:
    description: Name of the node group.
    type: str
    required: true
  cluster_name:
    description: Name of the existing EKS cluster.
    type: str
    required: true
  node_role:
    description:
      - ARN of the IAM role of the nodes. Required to create the node group.
      - Before anything is created the role is read (C(iam:GetRole)); a role that does not exist or that EC2 cannot
        assume fails naming this option. Without the permission the module warns and goes on.
      - Cannot change on an existing node group.
    type: str
  node_role_policy:
    description:
      - An inline policy to keep on the node role, typically the permissions the CloudWatch agent of the user data needs
        to publish the GPU metrics (C(cloudwatch:PutMetricData) and friends).
      - With O(state=present) the policy is read (C(iam:GetRolePolicy)) and written (C(iam:PutRolePolicy)) only when its
        document differs, after every check and before the launch template; with O(state=absent) it is deleted
        (C(iam:DeleteRolePolicy)) after the node group.
      - The role is O(node_role), or the existing node group's role when O(node_role) is not given.
    type: dict
    suboptions:
      name:
        description: Name of the inline policy (letters, digits and C(+=,.@_-), at most 128).
        type: str
        required: true
      document:
        description:
          - The policy document, as a dict or a JSON string. Required with O(state=present).
          - Compared as parsed JSON, so formatting and key order do not count as a change.
        type: raw
  subnets:
    description:
      - Subnet ids for the nodes. Defaults to the cluster's subnets when creating.
      - Cannot change on an existing node group.
    type: list
    elements: str
  instance_type:
    description:
      - EC2 instance type with NVIDIA GPUs.
      - The module knows the GPUs of the common g4dn, g5, g6, g6e, p3, p4 and p5 sizes; any other type (a newer family
        such as p5en or p6) is read from AWS (C(ec2:DescribeInstanceTypes), C(GpuInfo)) before any change, and refused
        when it does not exist in the region or has no whole NVIDIA GPU.
    type: str
    default: g4dn.2xlarge
  ami_type:
    description:
      - Which AMI family to use when O(ami_id) is not given (named as EKS names AMI types), and which user data
        to render.
      - V(AL2023_x86_64_NVIDIA) renders a C(nodeadm) NodeConfig; V(AL2_x86_64_GPU) calls C(bootstrap.sh).
        Amazon Linux 2 EKS AMIs are past end of support; use it only for legacy clusters.
      - V(BOTTLEROCKET_x86_64_NVIDIA) renders Bottlerocket's TOML settings, from the SSM parameter
        C(/aws/service/bottlerocket/aws-k8s-<version>-nvidia/x86_64/latest/image_id). Its nodes get no CloudWatch
        agent, so no GPU metrics for M(genai.stack.scaling_alarm) (see the description); O(disk_size) sizes its data
        volume.
    type: str
    choices: [AL2023_x86_64_NVIDIA, AL2_x86_64_GPU, BOTTLEROCKET_x86_64_NVIDIA]
    default: AL2023_x86_64_NVIDIA
  ami_id:
    description: An explicit AMI id. Wins over the SSM parameter; must still be of the O(ami_type) family.
    type: str
  kubernetes_version:
    description:
      - Kubernetes version whose AMI to use, as C(MAJOR.MINOR). Defaults to the cluster's version.
      - 1.29 or newer. Whether a version can be used is AWS's answer, not a list in the module, read before any change
        (unless O(ami_id)) - the EKS optimized-AMI SSM parameter for the version and O(ami_type) must exist; Amazon Linux 2
        AMIs stop at 1.32.
    type: str
  disk_size:
    description:
      - Size in GiB of the encrypted gp3 volume where container images and pods' local storage live.
      - On Amazon Linux that is the root volume (the AMI's root device).
      - On Bottlerocket it is the data volume (the AMI's second device, C(/dev/xvdb)); the root volume (C(/dev/xvda)) holds
        only the operating system and keeps the AMI's size, encrypted and gp3 as well.
    type: int
    default: 60
  kms_key_id:
    description: KMS key for the node's volumes. The account's default EBS key when not given.
    type: str
  security_groups:
    description:
      - Security group ids for the nodes.
      - Without this option the launch template names no security group and EKS attaches the cluster security group
        to the nodes. When a launch template names security groups, EKS attaches no other group, so nodes with only
        these groups may not reach the control plane nor each other and never join. The module therefore adds the
        cluster security group (C(resourcesVpcConfig.clusterSecurityGroupId) of C(DescribeCluster)) to these
        groups, unless O(include_cluster_security_group=false).
      - Removing the option makes a new template version without any security group, so EKS attaches the cluster
        security group again.
    type: list
    elements: str
  include_cluster_security_group:
    description:
      - With O(security_groups), also attach the cluster security group, as EKS does when the launch template names none.
      - Set it to V(false) only when O(security_groups) already allow what the cluster security group allows (all
        traffic between the nodes and the control plane, and between the nodes).
      - A cluster without a cluster security group (created before EKS had them) gets a warning and only O(security_groups).
    type: bool
    default: true
  detailed_monitoring:
    description:
      - Turn on EC2 detailed monitoring of the instances, so C(AWS/EC2) publishes C(CPUUtilization) every minute.
      - Without it the metric comes every 5 minutes, and an alarm with a shorter period (the 120 s CPU alarm of
        M(genai.stack.scaling_alarm)) flaps between C(INSUFFICIENT_DATA) and its states. Detailed monitoring is billed per
        instance metric; turn it off when no alarm reads C(AWS/EC2) metrics faster than every 5 minutes.
    type: bool
    default: true
  metadata_hop_limit:
    description:
      - How many network hops the instance metadata (IMDSv2) response may travel (C(HttpPutResponseHopLimit)).
      - V(1), the default, keeps the node's metadata, and so the node role's credentials, away from pods that do not
        run in the host network. Pods that read instance metadata themselves (an AWS SDK without IAM roles for service
        accounts or EKS Pod Identity, some agents and operators) then fail to get credentials or the region; give them
        IRSA or Pod Identity.
      - V(2) lets every pod on the node read the metadata and use the node role's credentials, and everything the node
        role may do; choose it only when such pods cannot be given their own role.
    type: int
    default: 1
  capacity_type:
    description: On-demand or spot capacity. Cannot change on an existing node group.
    type: str
    choices: [ON_DEMAND, SPOT]
    default: ON_DEMAND
  scaling_config:
    description: Sizes of the node group.
    type: dict
    default: {}
    suboptions:
      min_size:
        description: Minimum number of nodes.
        type: int
        default: 1
      max_size:
        description: Maximum number of nodes.
        type: int
        default: 2
      desired_size:
        description:
          - Desired number of nodes, between O(scaling_config.min_size) and O(scaling_config.max_size).
          - Used when the node group is created. Later runs keep the node group's current desired size, moved into the
            new range when O(scaling_config.min_size) or O(scaling_config.max_size) change, unless O(enforce_desired_size).
        type: int
        default: 1
  enforce_desired_size:
    description:
      - Set the desired size of an existing node group to O(scaling_config.desired_size) on every run, undoing what the
        scaling alarms or the Cluster Autoscaler did since the last run.
      - By default (V(false)) the current desired size is kept, as C(eksctl) does and as Terraform's
        C(ignore_changes = [scaling_config[0].desired_size]) recommends for autoscaled node groups.
    type: bool
    default: false
  labels:
    description:
      - Kubernetes labels of the nodes, set both on the node group (C(UpdateNodegroupConfig)) and on the kubelet
        (C(--node-labels) in the user data, or Bottlerocket's C(node-labels) setting).
      - Checked before any request. A key is an optional DNS subdomain prefix and C(/), then a name of at most 63
        letters, digits, C(-), C(_) and C(.) starting and ending alphanumeric; EKS allows at most 63 characters for the
        whole key and 1 to 63 for a value (same characters as a name).
      - The kubelet refuses to start with a key in the C(kubernetes.io) or C(k8s.io) namespaces (or their subdomains)
        unless it is under C(kubelet.kubernetes.io/) or C(node.kubernetes.io/) or one of the labels it sets itself
        (C(kubernetes.io/hostname), C(kubernetes.io/os), C(kubernetes.io/arch), C(topology.kubernetes.io/zone),
        C(topology.kubernetes.io/region) and their legacy C(beta) and C(failure-domain.beta) forms).
        C(node-restriction.kubernetes.io/) keys are for administrators only and are refused too.
      - Keys under C(eks.amazonaws.com/) are refused. As EKS does in the user data it generates for its own AMIs, the
        kubelet also registers the Nodes with C(eks.amazonaws.com/nodegroup) (O(name)), C(eks.amazonaws.com/capacityType)
        and C(eks.amazonaws.com/nodegroup-image) (the AMI id); with an AMI in the launch template EKS adds nothing to the
        user data, and without them nothing could select the node group's Nodes by C(eks.amazonaws.com/nodegroup).
      - A change creates a new launch template version and rolls it, which replaces the nodes (see the description).
    type: dict
    default: {capability: gpu}
  taints:
    description:
      - Kubernetes taints of the nodes, set both on the node group (C(UpdateNodegroupConfig)) and on the kubelet
        (C(--register-with-taints) in the user data, or Bottlerocket's C(node-taints) setting).
      - A change creates a new launch template version and rolls it, which replaces the nodes (see the description).
    type: list
    elements: dict
    default: []
    suboptions:
      key:
        description: Taint key, with the rules of a label key (at most 63 characters for EKS).
        type: str
        required: true
      value:
        description: Taint value, with the rules of a label value (at most 63 characters, may be empty).
        type: str
      effect:
        description: Taint effect.
        type: str
        required: true
        choices: [NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE]
  gpu_taint:
    description: Add the taint C(nvidia.com/gpu=present:NO_SCHEDULE) so only pods that tolerate it land on GPU nodes.
    type: bool
    default: false
  tags:
    description: Tags of the node group, its launch template and the instances and volumes it starts.
    type: dict
    default: {}
    aliases: [resource_tags]
  purge_tags:
    description: Remove node group tags that are not in O(tags) (and not added by O(cluster_autoscaler_tags)).
    type: bool
    default: true
  cluster_autoscaler_tags:
    description:
      - Add the cluster-autoscaler auto-discovery tags C(k8s.io/cluster-autoscaler/enabled=true) and
        C(k8s.io/cluster-autoscaler/<cluster>=owned).
    type: bool
    default: true
  cloudwatch_metrics_interval:
    description:
      - How often, in seconds, the CloudWatch agent collects GPU metrics.
      - Not used on Bottlerocket, which gets no agent.
    type: int
    default: 60
  launch_template_name:
    description: Name of the launch template. Defaults to C(<cluster_name>-<name>).
    type: str
  wait:
    description: Wait for the node group to become C(ACTIVE), for updates to finish and for deletion to complete.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait.
      - When they pass, the module fails saying what it waited for; a re-run waits for a node group that is still busy
        before it changes anything.
      - A node group that EKS ends C(CREATE_FAILED) or C(DELETE_FAILED) fails the module at once with EKS's health issues
        (C(nodegroup_status), C(health_issues) in the result); an update that EKS ends C(Failed) or C(Cancelled) fails it with
        the update id and EKS's errors (C(eks_update)).
    type: int
    default: 1200
  state:
    description: Whether the node group should exist.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Updates of one node group are serialised by EKS; when both the configuration and the template
    change, the module applies the configuration first and waits for it before rolling the template,
    whatever O(wait) says.
  - "Scaling: the step-scaling policies of M(genai.stack.scaling_alarm) and the Cluster Autoscaler both move the desired
    capacity of the node group's Auto Scaling group (EKS reports it as C(scaling_config.desired_size)) within
    O(scaling_config.min_size) and O(scaling_config.max_size); this module keeps what they set and only moves it into a
    changed range. The two can share a node group: each acts on its own signal (a CloudWatch alarm; pending or
    idle pods), both within the same bounds, so give the bounds, not a desired size, as the contract.
    The Cluster Autoscaler finds the group by the tags of O(cluster_autoscaler_tags); it also scales in
    nodes it judges idle while an alarm may scale out, so keep the alarms' thresholds and the autoscaler's
    C(--scale-down-utilization-threshold) from contradicting each other, or use one of the two."
  - "A re-run reads: DescribeCluster, DescribeNodegroup, the AMI parameter (SSM GetParameter, unless O(ami_id)),
    the launch template version the node group runs (DescribeLaunchTemplateVersions) and, with O(node_role_policy),
    GetRolePolicy. The template listing and DescribeImages are read only when that version differs from what is asked;
    on Bottlerocket DescribeImages is read every run, since which of the template's two volumes is the AMI's root device
    is the AMI's answer."
extends_documentation_fragment:
  - genai.stack.attributes
  - genai.stack.attributes.actiongroup_aws
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: GPU node group for the Arthur GenAI Engine, with the inline policy its CloudWatch agent needs
  genai.stack.eks_gpu_nodegroup:
    name: gpu-nodes
    cluster_name: arthur
    node_role: arn:aws:iam::123456789012:role/eks-node-role
    node_role_policy:
      name: cloudwatch-gpu-metrics
      document:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: [cloudwatch:PutMetricData, ec2:DescribeTags]
            Resource: "*"
    instance_type: g4dn.2xlarge
    disk_size: 60
    scaling_config:
      min_size: 2
      max_size: 2
      desired_size: 2
    labels:
      capability: gpu
    gpu_taint: true

- name: Move to a bigger instance type (new template version, same node group)
  genai.stack.eks_gpu_nodegroup:
    name: gpu-nodes
    cluster_name: arthur
    node_role: arn:aws:iam::123456789012:role/eks-node-role
    instance_type: g5.12xlarge

- name: Bottlerocket GPU nodes (no CloudWatch agent on them, so no GPU alarm of scaling_alarm for this group)
  genai.stack.eks_gpu_nodegroup:
    name: gpu-bottlerocket
    cluster_name: arthur
    node_role: arn:aws:iam::123456789012:role/eks-node-role
    ami_type: BOTTLEROCKET_x86_64_NVIDIA
    disk_size: 100  # the data volume (/dev/xvdb), where images and pods live
    gpu_taint: true

- name: Remove the node group and its launch template
  genai.stack.eks_gpu_nodegroup:
    name: gpu-nodes
    cluster_name: arthur
    state: absent
"""

RETURN = r"""
nodegroup:
  description: The node group as EKS describes it (snake_case keys), or the planned one in check mode.
  returned: state=present
  type: dict
  sample:
    nodegroup_name: gpu-nodes
    status: ACTIVE
    scaling_config: {min_size: 2, max_size: 2, desired_size: 2}
    labels: {capability: gpu}
launch_template:
  description: The launch template and the version the node group uses.
  returned: state=present
  type: dict
  sample: {id: lt-0123456789abcdef0, name: arthur-gpu-nodes, version: "3"}
ami_id:
  description: The AMI the nodes run.
  returned: state=present
  type: str
  sample: ami-0123456789abcdef0
autoscaling_group_name:
  description: The Auto Scaling group EKS created for the node group. Empty in check mode before creation.
  returned: state=present
  type: str
  sample: eks-gpu-nodes-6ac7c1e2-1d3e-4b7b-9a55-6a1c8e0a1e2f
gpus_per_node:
  description: NVIDIA GPUs of one instance of O(instance_type).
  returned: state=present
  type: int
  sample: 1
user_data:
  description: The rendered user data (it holds no secret); MIME multi-part on Amazon Linux, TOML on Bottlerocket.
  returned: state=present
  type: str
updates:
  description: EKS update ids started by this run, with their type.
  returned: always
  type: list
  elements: dict
  sample: [{id: 0b8e..., type: VersionUpdate}]
actions:
  description: What the module did (or would do in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [create launch template arthur-gpu-nodes, create node group gpu-nodes]
"""

import base64
import hashlib
import json
import re
from urllib.parse import unquote

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.genai.stack.plugins.module_utils._aws import AWSServiceError, GenaiAWSModule, eks_problems, is_not_found, wait_until
from ansible_collections.genai.stack.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.genai.stack.plugins.module_utils._ec2 import EC2, SUBNET_NOT_FOUND, tag_specifications
from ansible_collections.genai.stack.plugins.module_utils._eks import EKS, autoscaling_group_of, plan_label_update, run_or_fail, waiter_timed_out
from ansible_collections.genai.stack.plugins.module_utils._iam import ACCESS_DENIED, IAM, SSM, policy_document, role_name
from ansible_collections.genai.stack.plugins.module_utils import _gpu
from ansible_collections.genai.stack.plugins.module_utils import _userdata
from ansible_collections.genai.stack.plugins.module_utils._validation import (
    AMI_ID, EKS_NAME, IAM_ROLE_ARN, KMS_KEY, NAME_MAX, SECURITY_GROUP_ID, SUBNET_ID, TAINT_EFFECTS, Checker, input_error_fields,
    label_value_problem, qualified_name_problem,
)

GPU_TAINT = {'key': 'nvidia.com/gpu', 'value': 'present', 'effect': 'NO_SCHEDULE'}
LT_NAME_MAX = 128


POLICY_NAME = re.compile(r'^[\w+=,.@-]{1,128}$')
ROLE_POLICY_MAX = 10240


def validate_params(params):
    """Static checks of the whole input; returns nothing, raises InputErrors with every problem."""
    check = Checker()
    check.match(EKS_NAME, params['name'], 'name', 'a valid node group name (alphanumerics, - and _, at most 63, starting alphanumeric)')
    check.match(EKS_NAME, params['cluster_name'], 'cluster_name', 'a valid EKS cluster name')
    if params['state'] == 'present' or params['node_role']:
        check.match(IAM_ROLE_ARN, params['node_role'], 'node_role', 'an IAM role ARN (arn:aws:iam::<account>:role/<name>)')
    _check_role_policy(check, params['node_role_policy'], params['state'])
    if params['state'] == 'absent':
        check.raise_if_any()
        return
    subnets = params['subnets'] or []
    for subnet in subnets:
        check.match(SUBNET_ID, subnet, 'subnets', 'a subnet id (subnet-xxxxxxxx)')
    if params['subnets'] is not None and not subnets:
        check.error('subnets', 'must not be empty when given')
    if len(set(subnets)) != len(subnets):
        check.error('subnets', 'lists a subnet more than once')
    for group in params['security_groups'] or []:
        check.match(SECURITY_GROUP_ID, group, 'security_groups', 'a security group id (sg-xxxxxxxx)')
    problem = _gpu.describe_instance_type_problem(params['instance_type'])
    if problem:
        check.error('instance_type', problem)
    check.match(AMI_ID, params['ami_id'], 'ami_id', 'an AMI id (ami-xxxxxxxx)')
    check.match(KMS_KEY, params['kms_key_id'], 'kms_key_id', 'a KMS key id, ARN or alias')
    if params['kubernetes_version'] is not None:
        problem = _gpu.kubernetes_version_problem(params['kubernetes_version'])
        if problem:
            check.error('kubernetes_version', problem)
    check.in_range(params['disk_size'], 'disk_size', 20, 16384)
    check.in_range(params['cloudwatch_metrics_interval'], 'cloudwatch_metrics_interval', 1, 86400)
    check.in_range(params['wait_timeout'], 'wait_timeout', 1, 86400)
    _check_scaling(check, params['scaling_config'])
    check.in_range(params['metadata_hop_limit'], 'metadata_hop_limit', 1, 64)
    _check_labels(check, params['labels'] or {})
    _check_taints(check, params['taints'])
    for key, value in (params['tags'] or {}).items():
        if not isinstance(value, str):
            check.error('tags', 'value of tag %r must be a string' % key)
        elif key.startswith('aws:'):
            check.error('tags', 'tag keys may not start with aws: (%r)' % key)
    template_name = params['launch_template_name']
    if template_name is not None and not (3 <= len(template_name) <= LT_NAME_MAX and all(c.isalnum() or c in '()./_-' for c in template_name)):
        check.error('launch_template_name', '%r is not a valid launch template name (3-128 of letters, digits and ( ) . / _ -)' % template_name)
    check.raise_if_any()


def _check_scaling(check, scaling):
    lo, hi, want = scaling['min_size'], scaling['max_size'], scaling['desired_size']
    ok = check.in_range(lo, 'scaling_config.min_size', 0, 1000)
    ok = check.in_range(hi, 'scaling_config.max_size', 1, 1000) and ok
    ok = check.in_range(want, 'scaling_config.desired_size', 0, 1000) and ok
    if ok:
        if lo > hi:
            check.error('scaling_config.min_size', 'must not exceed max_size (%s > %s)' % (lo, hi))
        elif not lo <= want <= hi:
            check.error('scaling_config.desired_size', 'must be between min_size and max_size (%s not in [%s, %s])' % (want, lo, hi))


EKS_LABEL_PREFIX = 'eks.amazonaws.com/'


def _check_labels(check, labels):
    """Kubernetes' and the kubelet's rules, then the EKS API's lengths (labels go to both)."""
    errors_before = len(check.errors)
    check.labels(labels, 'labels', kubelet=True)
    if len(check.errors) > errors_before:
        return
    for key in sorted(labels):
        if key.startswith(EKS_LABEL_PREFIX):
            check.error('labels', 'key %r uses the %s prefix, which EKS reserves; the module sets the Nodes\' '
                                  'eks.amazonaws.com/nodegroup, capacityType and nodegroup-image labels itself' % (key, EKS_LABEL_PREFIX))
    for key, value in labels.items():
        if len(key) > NAME_MAX:
            check.error('labels', 'key %r is %d characters long; EKS allows at most %d for a node group label key' % (key, len(key), NAME_MAX))
        if not value:
            check.error('labels', 'value of key %r is empty; EKS requires 1 to %d characters for a node group label value' % (key, NAME_MAX))


def _check_taints(check, taints):
    seen = set()
    for taint in taints:
        key = taint['key']
        problem = qualified_name_problem(key) or (len(key) > NAME_MAX and 'is %d characters long (EKS allows at most %d)' % (len(key), NAME_MAX))
        if problem:
            check.error('taints', 'key %r is not a valid taint key: it %s' % (key, problem))
        problem = label_value_problem(taint['value'] or '')
        if problem:
            check.error('taints', 'value of taint %r is not a valid taint value: it %s' % (key, problem))
        if taint['effect'] not in TAINT_EFFECTS:
            check.error('taints', 'effect of taint %r must be one of %s, got %r' % (key, ', '.join(TAINT_EFFECTS), taint['effect']))
        if (key, taint['effect']) in seen:
            check.error('taints', 'taint %s:%s is listed twice' % (key, taint['effect']))
        seen.add((key, taint['effect']))


def _check_role_policy(check, policy, state):
    if policy is None:
        return
    check.match(POLICY_NAME, policy['name'], 'node_role_policy.name', 'a valid inline policy name (letters, digits and +=,.@_-, at most 128)')
    if state == 'absent':
        return
    document = policy.get('document')
    if document is None:
        check.error('node_role_policy.document', 'is required with state=present')
        return
    try:
        parsed = policy_document(document)
    except ValueError as exc:
        check.error('node_role_policy.document', str(exc))
        return
    size = len(json.dumps(parsed, separators=(',', ':')))
    check.require(size <= ROLE_POLICY_MAX, 'node_role_policy.document',
                  'is %d characters without whitespace; IAM allows %d for the inline policies of a role' % (size, ROLE_POLICY_MAX))


def _normalise_template_data(data):
    """The part of launch template data this module manages, in a comparable shape."""
    data = data or {}
    user_data = data.get('UserData')
    if user_data:
        user_data = base64.b64decode(user_data).decode('utf-8', errors='replace')
    mappings = []
    for mapping in sorted(data.get('BlockDeviceMappings') or [], key=lambda m: m.get('DeviceName', '')):
        ebs = mapping.get('Ebs') or {}
        mappings.append({
            'DeviceName': mapping.get('DeviceName'),
            'VolumeSize': ebs.get('VolumeSize'),
            'VolumeType': ebs.get('VolumeType'),
            'Encrypted': bool(ebs.get('Encrypted')),
            'DeleteOnTermination': bool(ebs.get('DeleteOnTermination', True)),
            'KmsKeyId': ebs.get('KmsKeyId'),
        })
    metadata = data.get('MetadataOptions') or {}
    tag_specs = {}
    for spec in data.get('TagSpecifications') or []:
        # Only the resource types the module sets are compared.
        if spec.get('ResourceType') in ('instance', 'volume'):
            tag_specs[spec['ResourceType']] = {t['Key']: t['Value'] for t in spec.get('Tags') or []}
    return {
        'ImageId': data.get('ImageId'),
        'InstanceType': data.get('InstanceType'),
        'UserData': user_data,
        'BlockDeviceMappings': mappings,
        'MetadataOptions': {
            'HttpTokens': metadata.get('HttpTokens'),
            'HttpEndpoint': metadata.get('HttpEndpoint', 'enabled'),
            'HttpPutResponseHopLimit': metadata.get('HttpPutResponseHopLimit'),
        },
        'TagSpecifications': tag_specs,
        'SecurityGroupIds': sorted(data.get('SecurityGroupIds') or []),
        'Monitoring': bool((data.get('Monitoring') or {}).get('Enabled')),
    }


def _template_summary(normalised, version=None):
    """What the diff shows of a template: readable, and the user data only as a digest."""
    if not normalised:
        return None
    # In device-name order, the first shown as the root volume: the only volume on Amazon Linux; on
    # Bottlerocket /dev/xvda (the OS), then the data volume /dev/xvdb.
    volumes = [{'device': m.get('DeviceName'), 'size': m.get('VolumeSize'), 'type': m.get('VolumeType'), 'encrypted': m.get('Encrypted'),
                'kms_key_id': m.get('KmsKeyId')} for m in normalised.get('BlockDeviceMappings') or [{}]]
    user_data = normalised.get('UserData') or ''
    summary = {
        'version': version,
        'image_id': normalised.get('ImageId'),
        'instance_type': normalised.get('InstanceType'),
        'user_data_sha256': hashlib.sha256(user_data.encode('utf-8')).hexdigest() if user_data else None,
        'root_volume': {k: v for k, v in volumes[0].items() if k != 'device'},
        'http_tokens': normalised['MetadataOptions'].get('HttpTokens'),
        'metadata_hop_limit': normalised['MetadataOptions'].get('HttpPutResponseHopLimit'),
        'detailed_monitoring': normalised.get('Monitoring'),
        'security_group_ids': normalised.get('SecurityGroupIds'),
        'tags': (normalised.get('TagSpecifications') or {}).get('instance', {}),
    }
    if len(volumes) > 1:
        summary['data_volume'] = volumes[1]
    return summary


def _taints_key(taints):
    return sorted(({'key': t['key'], 'value': t.get('value') or None, 'effect': t['effect']} for t in taints or []),
                  key=lambda t: (t['key'], t['effect']))


# -- planning: current and desired state in, changes out (no AWS calls) -----------------------
def node_security_groups(user_groups, cluster, include_cluster_group=True):
    """The security groups the launch template names, and a warning or None.

    No groups asked: none named, so EKS attaches the cluster security group. Groups asked: EKS
    attaches nothing else, so the cluster security group is added (unless told not to)."""
    if not user_groups:
        return [], None
    groups = set(user_groups)
    warning = None
    if include_cluster_group:
        cluster_group = (cluster.get('resourcesVpcConfig') or {}).get('clusterSecurityGroupId')
        if cluster_group:
            groups.add(cluster_group)
        else:
            warning = ('security_groups: cluster %s reports no cluster security group, so the nodes get only %s; '
                       'make sure they allow the control plane and the other nodes' % (cluster.get('name'), ', '.join(sorted(groups))))
    return sorted(groups), warning


def volume_layout(image, data_volume):
    """The node's volumes from the AMI's DescribeImages entry: {'root': device, 'root_size': GiB or None,
    'data': device or None}.

    Without a data volume, disk_size sizes the root device. With one (Bottlerocket), the root device
    keeps the AMI's size (None: EC2 takes the snapshot's) and disk_size sizes the data device: the
    AMI's other EBS device, else Bottlerocket's /dev/xvdb."""
    root = image.get('RootDeviceName') or '/dev/xvda'
    layout = {'root': root, 'root_size': None, 'data': None}
    if not data_volume:
        return layout
    others = []
    for mapping in image.get('BlockDeviceMappings') or []:
        if mapping.get('DeviceName') == root:
            layout['root_size'] = (mapping.get('Ebs') or {}).get('VolumeSize')
        elif mapping.get('Ebs') is not None and mapping.get('DeviceName'):
            others.append(mapping['DeviceName'])
    layout['data'] = sorted(others)[0] if others else '/dev/xvdb'
    return layout


def plan_scaling(current, min_size, max_size, desired_size, enforce=False):
    """The scaling config to ask for. A node group that exists keeps its desired size (autoscalers
    own it), moved only into a new [min, max]; `enforce` or a new node group takes desired_size."""
    if current is None or enforce or current.get('desiredSize') is None:
        want = desired_size
    else:
        want = min(max(current['desiredSize'], min_size), max_size)
    return {'minSize': min_size, 'maxSize': max_size, 'desiredSize': want}


def _taint_request(taint):
    return {k: v for k, v in taint.items() if v is not None}


def plan_taint_update(current, wanted):
    """UpdateNodegroupConfig's taints payload (addOrUpdateTaints, removeTaints), or None."""
    now, want = _taints_key(current), _taints_key(wanted)
    if now == want:
        return None
    payload = {}
    wanted_keys = {(t['key'], t['effect']) for t in want}
    add = [_taint_request(t) for t in want if t not in now]
    remove = [_taint_request(t) for t in now if (t['key'], t['effect']) not in wanted_keys]
    if add:
        payload['addOrUpdateTaints'] = add
    if remove:
        payload['removeTaints'] = remove
    return payload


def plan_config_update(current, desired):
    """The UpdateNodegroupConfig arguments that bring `current` (DescribeNodegroup) to `desired`
    (scalingConfig, labels, taints); empty when nothing differs."""
    config = {}
    if (current.get('scalingConfig') or {}) != desired['scalingConfig']:
        config['scalingConfig'] = desired['scalingConfig']
    labels = plan_label_update(current.get('labels'), desired['labels'])
    if labels:
        config['labels'] = labels
    taints = plan_taint_update(current.get('taints'), desired['taints'])
    if taints:
        config['taints'] = taints
    return config


def plan_tag_update(current, wanted):
    """Tags to add or change, and tag keys to remove (AWS's own aws: tags are never removed)."""
    add, remove = compare_aws_tags(current or {}, wanted, purge_tags=True)
    return add, sorted(remove)


class NodegroupManager:
    """Reads, compares, then writes only what differs and only outside check mode."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.check_mode = module.check_mode
        self.eks = EKS(module.client('eks'))
        self.ec2 = EC2(module.client('ec2'))
        self._iam = None
        self.tracker = DifferenceTracker()
        self.actions = []
        self.updates = []
        self.gpus_per_node = None
        self.template_name = self.params['launch_template_name'] or '%s-%s' % (self.params['cluster_name'], self.params['name'])

    @property
    def iam(self):
        """IAM's client is made on first use: most runs never read the node role."""
        if self._iam is None:
            self._iam = IAM(self.module.client('iam'))
        return self._iam

    # -- reads ------------------------------------------------------------------------------
    def describe_cluster(self):
        cluster = self.eks.describe_cluster(self.params['cluster_name'])
        if cluster is None:
            self.module.fail_option('cluster_name', 'no EKS cluster named %r in %s' % (self.params['cluster_name'], self.module.region))
        return cluster

    def describe_nodegroup(self):
        return self.eks.describe_nodegroup(self.params['cluster_name'], self.params['name'])

    def describe_template(self):
        return self.ec2.describe_launch_template(self.template_name)

    def template_versions(self, template_id, versions):
        """LaunchTemplateData of the given versions, keyed by version number."""
        return self.ec2.launch_template_versions(template_id, versions)

    def template_version_data(self, template_id, versions):
        """Normalised data of the given versions, keyed by version number."""
        return {number: _normalise_template_data(data) for number, data in self.template_versions(template_id, versions).items()}

    # -- the node role's inline policy --------------------------------------------------------
    def _policy_role(self, nodegroup):
        return role_name(self.params['node_role'] or (nodegroup or {}).get('nodeRole'))

    def converge_role_policy(self, nodegroup):
        policy = self.params['node_role_policy']
        if not policy:
            return
        role = self._policy_role(nodegroup)
        if role is None:
            self.module.fail_option('node_role', 'needed for node_role_policy')
        wanted = policy_document(policy['document'])
        current = self.iam.get_role_policy(role, policy['name'])
        if current is not None and not compare_policies(current, wanted):
            current = wanted  # the same policy, written in another order
        if self.tracker.add('node_role_policy', {'role': role, 'name': policy['name'], 'document': current} if current else None,
                            {'role': role, 'name': policy['name'], 'document': wanted}):
            self.actions.append('put inline policy %s on IAM role %s' % (policy['name'], role))
            if not self.check_mode:
                self.iam.put_role_policy(role, policy['name'], wanted)

    def remove_role_policy(self, nodegroup):
        policy = self.params['node_role_policy']
        if not policy:
            return
        role = self._policy_role(nodegroup)
        if role is None:
            self.module.warn('node_role_policy: the node group is gone and node_role is not given, so the role of inline policy %s '
                             'is unknown; it was not removed' % policy['name'])
            return
        current = self.iam.get_role_policy(role, policy['name'])
        if self.tracker.add('node_role_policy', {'role': role, 'name': policy['name'], 'document': current} if current else None, None):
            self.actions.append('delete inline policy %s of IAM role %s' % (policy['name'], role))
            if not self.check_mode:
                self.iam.delete_role_policy(role, policy['name'])

    def resolve_ami(self, version):
        if self.params['ami_id']:
            return self.params['ami_id']
        name = _gpu.ssm_parameter_for(self.params['ami_type'], version)
        ami_id = SSM(self.module.client('ssm')).parameter(name)
        if ami_id is None:
            self.module.fail_option('kubernetes_version', 'no %s AMI is published for Kubernetes %s (SSM parameter %s not found)'
                                    % (self.params['ami_type'], version, name))
        return ami_id

    def describe_image(self, ami_id):
        image = self.ec2.describe_image(ami_id)
        if image is None:
            self.module.fail_option('ami_id', 'AMI %s does not exist or is not visible to this account' % ami_id)
        return image

    def check_subnets(self, subnets, cluster):
        try:
            found = self.ec2.describe_subnets(subnets)
        except AWSServiceError as exc:
            if is_not_found(exc, SUBNET_NOT_FOUND):
                self.module.fail_option('subnets', exc.exception.response['Error'].get('Message', 'a subnet does not exist'))
            raise
        missing = sorted(set(subnets) - {s['SubnetId'] for s in found})
        if missing:
            self.module.fail_option('subnets', '%s do not exist' % ', '.join(missing))
        vpc = (cluster.get('resourcesVpcConfig') or {}).get('vpcId')
        other = sorted(s['SubnetId'] for s in found if vpc and s.get('VpcId') != vpc)
        if other:
            self.module.fail_option('subnets', '%s are not in the cluster VPC %s' % (', '.join(other), vpc))
        public = sorted(s['SubnetId'] for s in found if s.get('MapPublicIpOnLaunch'))
        if public:
            self.module.warn('subnets %s assign public IPs on launch; GPU nodes are normally kept in private subnets' % ', '.join(public))

    def instance_gpus(self):
        """NVIDIA GPUs of one instance: from the module's table, else from DescribeInstanceTypes."""
        instance_type = self.params['instance_type']
        known = _gpu.gpu_count(instance_type)
        if known:
            return known
        info = self.ec2.describe_instance_type(instance_type)
        if info is None:
            self.module.fail_option('instance_type', '%r is not an EC2 instance type offered in %s' % (instance_type, self.module.region))
        gpus = _gpu.gpus_from_type_info(info)
        if gpus < 1:
            self.module.fail_option('instance_type', '%r has no whole NVIDIA GPU (EC2 DescribeInstanceTypes GpuInfo: %s)'
                                    % (instance_type, (info.get('GpuInfo') or {}).get('Gpus') or 'none'))
        return gpus

    def check_node_role(self):
        """Before the launch template is created: EKS refuses a node role that does not exist or
        that EC2 cannot assume, and would leave the new template behind."""
        name = role_name(self.params['node_role'])
        try:
            role = self.iam.get_role(name)
        except AWSServiceError as exc:
            if exc.code not in ACCESS_DENIED:
                raise
            self.module.warn('node_role: not allowed to read IAM role %r (iam:GetRole), so it was not checked' % name)
            return
        if role is None:
            self.module.fail_option('node_role', 'IAM role %r does not exist (%s)' % (name, self.params['node_role']))
        if role.get('Arn') and role['Arn'] != self.params['node_role']:
            self.module.fail_option('node_role', '%s does not match the ARN of role %r (%s)' % (self.params['node_role'], name, role['Arn']))
        trust = role.get('AssumeRolePolicyDocument')
        if isinstance(trust, str):
            trust = json.loads(unquote(trust))
        if trust and 'ec2.amazonaws.com' not in json.dumps(trust):
            self.module.fail_option('node_role', 'IAM role %r cannot be assumed by EC2 (ec2.amazonaws.com is not in its trust policy), '
                                    'so nodes could not join' % name)

    # -- desired state ----------------------------------------------------------------------
    def desired_labels(self):
        return dict(self.params['labels'] or {})

    def kubelet_labels(self, ami_id):
        """The labels the kubelet registers the Node with: the user's, and the ones EKS puts in the
        user data it generates for its own AMIs. With an AMI in the launch template EKS merges
        nothing, so without these the Nodes would lack eks.amazonaws.com/nodegroup, which
        kubectl, the Cluster Autoscaler and the roles select a node group's Nodes by."""
        labels = self.desired_labels()
        labels.update({
            EKS_LABEL_PREFIX + 'nodegroup': self.params['name'],
            EKS_LABEL_PREFIX + 'capacityType': self.params['capacity_type'],
            EKS_LABEL_PREFIX + 'nodegroup-image': ami_id,
        })
        return labels

    def desired_taints(self):
        taints = [dict(t) for t in self.params['taints']]
        if self.params['gpu_taint'] and not any(t['key'] == GPU_TAINT['key'] and t['effect'] == GPU_TAINT['effect'] for t in taints):
            taints.append(dict(GPU_TAINT))
        return taints

    def desired_tags(self):
        tags = dict(self.params['tags'] or {})
        if self.params['cluster_autoscaler_tags']:
            tags['k8s.io/cluster-autoscaler/enabled'] = 'true'
            tags['k8s.io/cluster-autoscaler/%s' % self.params['cluster_name']] = 'owned'
        return tags

    def _ebs(self, size):
        ebs = {'VolumeType': 'gp3', 'Encrypted': True, 'DeleteOnTermination': True}
        if size:
            ebs['VolumeSize'] = size
        if self.params['kms_key_id']:
            ebs['KmsKeyId'] = self.params['kms_key_id']
        return ebs

    def desired_template_data(self, cluster, ami_id, layout):
        """The whole LaunchTemplateData of the version the nodes should run, and its user data.
        `layout` is volume_layout() of the AMI: disk_size sizes its data volume, else its root volume."""
        user_data = _userdata.render(_gpu.AMI_TYPES[self.params['ami_type']].user_data, cluster, self.params['name'], self.module.region,
                                     self.kubelet_labels(ami_id), self.desired_taints(), self.params['cloudwatch_metrics_interval'])
        if layout['data']:
            volumes = [{'DeviceName': layout['root'], 'Ebs': self._ebs(layout['root_size'])},
                       {'DeviceName': layout['data'], 'Ebs': self._ebs(self.params['disk_size'])}]
        else:
            volumes = [{'DeviceName': layout['root'], 'Ebs': self._ebs(self.params['disk_size'])}]
        instance_tags = dict(self.desired_tags())
        instance_tags.setdefault('Name', '%s-%s' % (self.params['cluster_name'], self.params['name']))
        data = {
            'ImageId': ami_id,
            'InstanceType': self.params['instance_type'],
            'UserData': base64.b64encode(user_data.encode('utf-8')).decode('ascii'),
            'BlockDeviceMappings': volumes,
            'MetadataOptions': {'HttpTokens': 'required', 'HttpEndpoint': 'enabled',
                                'HttpPutResponseHopLimit': self.params['metadata_hop_limit']},
            'Monitoring': {'Enabled': self.params['detailed_monitoring']},
            'TagSpecifications': tag_specifications(['instance', 'volume'], instance_tags),
        }
        groups, warning = node_security_groups(self.params['security_groups'], cluster, self.params['include_cluster_security_group'])
        if warning:
            self.module.warn(warning)
        if groups:
            data['SecurityGroupIds'] = groups
        return data, user_data

    # -- present ----------------------------------------------------------------------------
    def present(self):
        cluster = self.describe_cluster()
        nodegroup = self.describe_nodegroup()
        subnets = self.check_before_writes(cluster, nodegroup)
        version = self.params['kubernetes_version'] or (cluster.get('version') or '')
        ami_id = self.resolve_ami(version)
        template, in_use, target_version, desired_data, user_data = self.plan_template(cluster, nodegroup, ami_id)
        self.converge_role_policy(nodegroup)
        template_id, target_version = self.converge_template(template, in_use, target_version, desired_data)
        if nodegroup is None:
            nodegroup = self.create_nodegroup(subnets, template_id, target_version)
        else:
            nodegroup = self.update_nodegroup(nodegroup, template_id, target_version)

        asg_name = autoscaling_group_of(nodegroup) or ''
        return {
            'nodegroup': camel_dict_to_snake_dict(nodegroup or {}, ignore_list=['labels', 'tags']),
            'launch_template': {'id': template_id, 'name': self.template_name, 'version': target_version},
            'ami_id': ami_id,
            'gpus_per_node': self.gpus_per_node,
            'autoscaling_group_name': asg_name,
            'user_data': user_data,
        }

    def check_before_writes(self, cluster, nodegroup):
        """Everything that can be refused before the first write; returns the subnets to use."""
        if nodegroup is None and not self.params['node_role']:
            self.module.fail_option('node_role', 'required to create node group %r' % self.params['name'])
        version = self.params['kubernetes_version'] or (cluster.get('version') or '')
        if not self.params['ami_id'] and _gpu.kubernetes_version_problem(version):
            self.module.fail_option('kubernetes_version', 'cluster %s runs Kubernetes %s, which this module does not support (%d.%d or newer)'
                                    % ((cluster['name'], version) + _gpu.OLDEST_KUBERNETES_VERSION))
        self.gpus_per_node = self.instance_gpus()
        subnets = self.params['subnets']
        if subnets is None:
            subnets = list((nodegroup or {}).get('subnets') or (cluster.get('resourcesVpcConfig') or {}).get('subnetIds') or [])
        if nodegroup is None:
            self.check_subnets(subnets, cluster)
            self.check_node_role()
        self.check_immutable(nodegroup, subnets)
        return subnets

    def plan_template(self, cluster, nodegroup, ami_id):
        """Which template version the node group should run: (template, in_use, target_version,
        desired data, user data); target_version is None when a new version is needed."""
        # A re-run reads the version the node group runs, by the id and number DescribeNodegroup
        # gave, first: when it already is what is asked, the template listing and the AMI
        # lookup are not needed (the AMI is in use, and the version names its root device).
        # With a data volume (Bottlerocket) the version names two devices and does not say which
        # is the root: the AMI does.
        used = (nodegroup or {}).get('launchTemplate') or {}
        in_use = str(used.get('version') or '') or None
        in_use_data = None
        if used.get('id') and in_use and used.get('name') == self.template_name:
            in_use_data = self.template_versions(used['id'], [in_use]).get(in_use)
        mappings = (in_use_data or {}).get('BlockDeviceMappings') or []
        data_volume = _gpu.AMI_TYPES[self.params['ami_type']].data_volume
        if not data_volume and in_use_data and in_use_data.get('ImageId') == ami_id and len(mappings) == 1 and mappings[0].get('DeviceName'):
            layout = volume_layout({'RootDeviceName': mappings[0]['DeviceName']}, False)
        else:
            layout = volume_layout(self.describe_image(ami_id), data_volume)
        desired_data, user_data = self.desired_template_data(cluster, ami_id, layout)
        desired_norm = _normalise_template_data(desired_data)

        if in_use_data is not None and _normalise_template_data(in_use_data) == desired_norm:
            template = {'LaunchTemplateId': used['id'], 'LatestVersionNumber': None}
            known, latest, target_version = {in_use: desired_norm}, None, in_use
        else:
            template = self.describe_template()
            if nodegroup is not None:
                self.check_template_ownership(nodegroup, template)
            latest = str(template['LatestVersionNumber']) if template else None
            known = self.template_version_data(template['LaunchTemplateId'], [in_use, latest]) if template else {}
            # Reuse a version that already matches (a re-run after an interrupted roll must not
            # add a duplicate version).
            target_version = next((c for c in (in_use, latest) if c and known.get(c) == desired_norm), None)
        before_version = in_use or latest
        self.tracker.add('launch_template', _template_summary(known.get(before_version), before_version),
                         _template_summary(desired_norm, target_version or ('(new)' if template is None else '(next)')))
        return template, in_use, target_version, desired_data, user_data

    def converge_template(self, template, in_use, target_version, desired_data):
        """Create the template or its new version, or make a reused version the default; returns (id, version)."""
        template_id = template['LaunchTemplateId'] if template else None
        if template is None:
            self.actions.append('create launch template %s' % self.template_name)
            if not self.check_mode:
                template_id, target_version = self.create_template(desired_data)
        elif target_version is None:
            self.actions.append('create version %s of launch template %s' % (int(template['LatestVersionNumber']) + 1, self.template_name))
            if not self.check_mode:
                target_version = self.create_template_version(template_id, desired_data)
        elif target_version != in_use and template.get('DefaultVersionNumber') is not None \
                and str(template['DefaultVersionNumber']) != target_version:
            # A run stopped between CreateLaunchTemplateVersion and ModifyLaunchTemplate left the
            # version it is about to roll in, not the default: reuse it and make it the default.
            self.actions.append('set the default version of launch template %s to %s' % (self.template_name, target_version))
            if not self.check_mode:
                self.set_default_template_version(template_id, target_version)
        return template_id, target_version

    def check_immutable(self, nodegroup, subnets):
        if nodegroup is None:
            return
        problems = []
        if self.params['subnets'] is not None and sorted(nodegroup.get('subnets') or []) != sorted(subnets):
            problems.append(('subnets', 'cannot change the subnets of existing node group %r (%s); create a new node group'
                             % (self.params['name'], ', '.join(nodegroup.get('subnets') or []))))
        if self.params['node_role'] and nodegroup.get('nodeRole') and nodegroup['nodeRole'] != self.params['node_role']:
            problems.append(('node_role', 'cannot change the node role of existing node group %r (%s)' % (self.params['name'], nodegroup['nodeRole'])))
        if nodegroup.get('capacityType') and nodegroup['capacityType'] != self.params['capacity_type']:
            problems.append(('capacity_type', 'cannot change the capacity type of existing node group %r (%s)'
                             % (self.params['name'], nodegroup['capacityType'])))
        if problems:
            self.module.fail_json(msg='; '.join('%s: %s' % p for p in problems), **input_error_fields(problems))

    def check_template_ownership(self, nodegroup, template):
        used = nodegroup.get('launchTemplate') or {}
        if not used:
            self.module.fail_option('name', 'node group %r exists without a launch template; it was not created by this module '
                                    'and cannot be converged in place' % self.params['name'])
        if template is not None and used.get('id') and used['id'] != template['LaunchTemplateId']:
            self.module.fail_option('launch_template_name', 'node group %r uses launch template %s, not %s (%s)'
                                    % (self.params['name'], used.get('id'), self.template_name, template['LaunchTemplateId']))
        if template is None:
            self.module.fail_option('launch_template_name', 'node group %r uses launch template %s, but no template named %s exists; '
                                    'set launch_template_name to its name' % (self.params['name'], used.get('id') or used.get('name'), self.template_name))

    # -- writes -----------------------------------------------------------------------------
    def create_template(self, data):
        return self.ec2.create_launch_template(self.template_name, data, self.desired_tags())

    def create_template_version(self, template_id, data):
        version = self.ec2.create_launch_template_version(self.template_name, template_id, data, 'genai.stack.eks_gpu_nodegroup')
        self.set_default_template_version(template_id, version)
        return version

    def set_default_template_version(self, template_id, version):
        # New instances started outside EKS (and humans reading the console) see the current version.
        self.ec2.set_default_launch_template_version(self.template_name, template_id, version)

    def create_nodegroup(self, subnets, template_id, version):
        planned = {
            'nodegroupName': self.params['name'],
            'clusterName': self.params['cluster_name'],
            'status': 'CREATING',
            'scalingConfig': self.desired_scaling(None),
            'subnets': subnets,
            'nodeRole': self.params['node_role'],
            'labels': self.desired_labels(),
            'taints': self.desired_taints(),
            'tags': self.desired_tags(),
            'capacityType': self.params['capacity_type'],
            'launchTemplate': {'name': self.template_name, 'id': template_id, 'version': version},
        }
        self.tracker.add('nodegroup', None, self._nodegroup_summary(planned))
        self.actions.append('create node group %s' % self.params['name'])
        if self.check_mode:
            return planned
        kwargs = dict(clusterName=self.params['cluster_name'], nodegroupName=self.params['name'], scalingConfig=planned['scalingConfig'],
                      subnets=subnets, nodeRole=self.params['node_role'], labels=planned['labels'], tags=planned['tags'],
                      capacityType=self.params['capacity_type'], launchTemplate={'id': template_id, 'version': version})
        if planned['taints']:
            kwargs['taints'] = [_taint_request(t) for t in planned['taints']]
        self.eks.create_nodegroup(**kwargs)
        if self.params['wait']:
            return self.wait_for_status('ACTIVE')
        return self.describe_nodegroup()

    def desired_scaling(self, nodegroup):
        scaling = self.params['scaling_config']
        return plan_scaling((nodegroup or {}).get('scalingConfig') if nodegroup else None, scaling['min_size'], scaling['max_size'],
                            scaling['desired_size'], self.params['enforce_desired_size'])

    def update_nodegroup(self, nodegroup, template_id, target_version):
        current = nodegroup
        desired = dict(current)
        desired.update({
            'scalingConfig': self.desired_scaling(current),
            'labels': self.desired_labels(),
            'taints': self.desired_taints(),
            'tags': self._merged_tags(current.get('tags') or {}),
            'launchTemplate': dict(current.get('launchTemplate') or {}, version=target_version or '(next)'),
        })
        self.tracker.add('nodegroup', self._nodegroup_summary(current), self._nodegroup_summary(desired))
        if current.get('status') not in ('ACTIVE', 'DEGRADED', None):
            if self.check_mode:
                self.module.warn('node group %s is %s' % (self.params['name'], current.get('status')))
            else:
                current = self.wait_for_status('ACTIVE', allow=('ACTIVE', 'DEGRADED'))

        config = plan_config_update(current, desired)
        tags_add, tags_remove = plan_tag_update(current.get('tags'), desired['tags'])
        roll = target_version is None or str((current.get('launchTemplate') or {}).get('version')) != str(target_version)
        if config:
            self.actions.append('update node group %s configuration (%s)' % (self.params['name'], ', '.join(sorted(config))))
        if tags_add or tags_remove:
            self.actions.append('update node group %s tags' % self.params['name'])
        if roll:
            self.actions.append('roll launch template version %s into node group %s' % (target_version or '(next)', self.params['name']))
        if self.check_mode:
            return desired
        self.apply_tags(current['nodegroupArn'], tags_add, tags_remove)
        if config:
            # EKS refuses a second update while one runs: always wait when a roll follows.
            self.start_update('update node group %s' % self.params['name'], self.eks.update_nodegroup_config, 'ConfigUpdate',
                              self.params['wait'] or roll, **config)
        if roll:
            self.start_update('roll launch template version %s into node group %s' % (target_version, self.params['name']),
                              self.eks.update_nodegroup_version, 'VersionUpdate', self.params['wait'],
                              launchTemplate={'id': template_id, 'version': str(target_version)})
        if config or roll or tags_add or tags_remove:
            return self.describe_nodegroup()
        return current

    def apply_tags(self, arn, tags_add, tags_remove):
        what = 'node group %s' % self.params['name']
        if tags_add:
            self.eks.tag_resource(arn, tags_add, what)
        if tags_remove:
            self.eks.untag_resource(arn, tags_remove, what)

    def start_update(self, what, method, default_type, wait, **kwargs):
        update = method(self.params['cluster_name'], self.params['name'], what, **kwargs)
        self.updates.append({'id': update['id'], 'type': update.get('type', default_type)})
        if wait:
            self.wait_for_update(update['id'], self.updates[-1]['type'])

    def _merged_tags(self, current_tags):
        wanted = self.desired_tags()
        if self.params['purge_tags']:
            return wanted
        merged = dict(current_tags)
        merged.update(wanted)
        return merged

    @staticmethod
    def _nodegroup_summary(nodegroup):
        scaling = nodegroup.get('scalingConfig') or {}
        template = nodegroup.get('launchTemplate') or {}
        return {
            'scaling_config': {'min_size': scaling.get('minSize'), 'max_size': scaling.get('maxSize'), 'desired_size': scaling.get('desiredSize')},
            'labels': dict(nodegroup.get('labels') or {}),
            'taints': _taints_key(nodegroup.get('taints')),
            'tags': dict(nodegroup.get('tags') or {}),
            'subnets': sorted(nodegroup.get('subnets') or []),
            'node_role': nodegroup.get('nodeRole'),
            'capacity_type': nodegroup.get('capacityType'),
            'launch_template_version': str(template.get('version')) if template.get('version') is not None else None,
        }

    # -- waits ------------------------------------------------------------------------------
    # What to do about a node group EKS could not create or delete; neither recovers by waiting.
    FAILED_STATUS_ADVICE = {
        'CREATE_FAILED': 'EKS does not repair a node group that failed to create: fix the cause, delete it with state=absent and run again',
        'DELETE_FAILED': 'fix the cause and run state=absent again',
    }

    def fail_if_failed(self, nodegroup):
        """Fail, naming the node group and EKS's health issues, when it is CREATE_FAILED or DELETE_FAILED."""
        status = nodegroup.get('status')
        if status in self.FAILED_STATUS_ADVICE:
            issues = (nodegroup.get('health') or {}).get('issues') or []
            detail = '%s; %s' % (eks_problems(issues), self.FAILED_STATUS_ADVICE[status])
            self.module.fail_json(msg='node group %s is %s: %s' % (self.params['name'], status, detail),
                                  nodegroup_status=status, health_issues=issues, actions=self.actions, updates=self.updates)

    def wait_for_status(self, status, allow=None):
        """Wait until the node group's status is one of `allow` (`status` alone by default); EKS's
        NodegroupActive waiter when only ACTIVE will do."""
        allow = allow or (status,)
        if allow == ('ACTIVE',):
            self._run_waiter('nodegroup_active', 'node group %s to be ACTIVE' % self.params['name'])
            return self.describe_nodegroup()

        def probe():
            nodegroup = self.describe_nodegroup()
            if nodegroup is None:
                self.module.fail_json(msg='node group %s disappeared while waiting for %s' % (self.params['name'], status))
            self.fail_if_failed(nodegroup)
            return nodegroup if nodegroup.get('status') in allow else None

        return wait_until('node group %s to be %s' % (self.params['name'], status), probe, self.params['wait_timeout'])

    def wait_for_deletion(self):
        self._run_waiter('nodegroup_deleted', 'node group %s to be deleted' % self.params['name'])

    def _run_waiter(self, waiter_name, what):
        """One of EKS's node group waiters; a failure names the node group's status and EKS's health issues."""
        try:
            self.eks.wait(waiter_name, self.params['cluster_name'], self.params['name'], self.params['wait_timeout'])
        except botocore.exceptions.WaiterError as exc:
            if waiter_timed_out(exc):
                raise TimeoutError('Timed out after %ss waiting for %s' % (self.params['wait_timeout'], what))
            nodegroup = self.describe_nodegroup()
            if nodegroup is None:
                self.module.fail_json(msg='node group %s disappeared while waiting for %s' % (self.params['name'], what))
            self.fail_if_failed(nodegroup)
            self.module.fail_json_aws(exc, msg='Failed waiting for %s' % what)

    def wait_for_update(self, update_id, update_type):
        return self.eks.wait_for_update(self.params['cluster_name'], self.params['name'], update_id,
                                        '%s %s of node group %s' % (update_type, update_id, self.params['name']),
                                        self.params['wait_timeout'])

    # -- absent -----------------------------------------------------------------------------
    def absent(self):
        nodegroup = self.describe_nodegroup()
        template = self.describe_template()
        self.tracker.add('nodegroup', self._nodegroup_summary(nodegroup) if nodegroup else None, None)
        self.tracker.add('launch_template', {'name': self.template_name, 'id': template['LaunchTemplateId']} if template else None, None)
        if nodegroup is not None:
            self.actions.append('delete node group %s' % self.params['name'])
            if not self.check_mode and nodegroup.get('status') != 'DELETING':
                self.eks.delete_nodegroup(self.params['cluster_name'], self.params['name'])
        if template is not None:
            self.actions.append('delete launch template %s' % self.template_name)
        if self.check_mode:
            self.remove_role_policy(nodegroup)
            return {}
        gone = nodegroup is None
        if nodegroup is not None and self.params['wait']:
            self.wait_for_deletion()
            gone = True
        if template is not None:
            if gone:
                self.ec2.delete_launch_template(self.template_name, template['LaunchTemplateId'])
            else:
                self.module.warn('launch template %s was kept: it can only be deleted once the node group is gone (use wait: true)'
                                 % self.template_name)
        self.remove_role_policy(nodegroup)
        return {}


def module_argument_spec():
    """The options of the module (DOCUMENTATION describes each)."""
    return dict(
        name=dict(type='str', required=True),
        cluster_name=dict(type='str', required=True),
        node_role=dict(type='str'),
        node_role_policy=dict(type='dict', options=dict(
            name=dict(type='str', required=True),
            document=dict(type='raw'),
        )),
        subnets=dict(type='list', elements='str'),
        instance_type=dict(type='str', default='g4dn.2xlarge'),
        ami_type=dict(type='str', default='AL2023_x86_64_NVIDIA', choices=list(_gpu.AMI_TYPES)),
        ami_id=dict(type='str'),
        kubernetes_version=dict(type='str'),
        disk_size=dict(type='int', default=60),
        kms_key_id=dict(type='str'),
        security_groups=dict(type='list', elements='str'),
        include_cluster_security_group=dict(type='bool', default=True),
        detailed_monitoring=dict(type='bool', default=True),
        metadata_hop_limit=dict(type='int', default=1),
        capacity_type=dict(type='str', default='ON_DEMAND', choices=['ON_DEMAND', 'SPOT']),
        scaling_config=dict(type='dict', default={}, options=dict(
            min_size=dict(type='int', default=1),
            max_size=dict(type='int', default=2),
            desired_size=dict(type='int', default=1),
        )),
        enforce_desired_size=dict(type='bool', default=False),
        labels=dict(type='dict', default={'capability': 'gpu'}),
        taints=dict(type='list', elements='dict', default=[], options=dict(
            key=dict(type='str', required=True, no_log=False),
            value=dict(type='str'),
            effect=dict(type='str', required=True, choices=list(TAINT_EFFECTS)),
        )),
        gpu_taint=dict(type='bool', default=False),
        tags=dict(type='dict', default={}, aliases=['resource_tags']),
        purge_tags=dict(type='bool', default=True),
        cluster_autoscaler_tags=dict(type='bool', default=True),
        cloudwatch_metrics_interval=dict(type='int', default=60),
        launch_template_name=dict(type='str'),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=1200),
        state=dict(type='str', default='present', choices=['present', 'absent']),
    )


def main():
    module = GenaiAWSModule(argument_spec=module_argument_spec(), supports_check_mode=True)
    module.validate(validate_params, module.params)

    manager = NodegroupManager(module)
    result = run_or_fail(module, manager.present if module.params['state'] == 'present' else manager.absent)
    changed = manager.tracker.has_differences or bool(manager.actions)
    result.update(changed=changed, actions=manager.actions, updates=manager.updates)
    if module._diff:
        result['diff'] = manager.tracker.diff()
    module.exit_json(**result)


if __name__ == '__main__':
    main()
