#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: scaling_alarm
short_description: Scale-out and scale-in alarms with step-scaling policies for an Auto Scaling group
version_added: 0.1.0
description:
  - Converges a pair of step-scaling policies and the two CloudWatch alarms that trigger them for one
    Auto Scaling group, typically the group behind an EKS managed node group.
  - The scale-out policy adds O(scale_out_adjustment) instances when its alarm's metric is above
    O(scale_out_threshold); the scale-in policy adds O(scale_in_adjustment) (a negative number) when
    the metric is below O(scale_in_threshold).
  - The alarms evaluate a CloudWatch Metrics Insights query. For O(metric=gpu) it averages
    C(nvidia_smi_utilization_gpu) from the CloudWatch agent (namespace C(CWAgent)) over the node
    group's dimensions C(ClusterName), C(NodegroupName) and C(NodegroupType=gpu), which is what the
    node user data of M(genai.stack.eks_gpu_nodegroup) configures. For O(metric=cpu) it averages
    C(CPUUtilization) of C(AWS/EC2) for the Auto Scaling group.
  - The policies are named C(<name>-scale-out) and C(<name>-scale-in); the alarms carry the same names.
  - With O(alarms), one call converges several pairs (for example a GPU and a CPU pair) on the same Auto
    Scaling group; the policies of all pairs are read with one C(DescribePolicies) request and the alarms
    with one C(DescribeAlarms) request.
  - The Auto Scaling group's existence is checked (C(DescribeAutoScalingGroups)) only when some policy does
    not exist yet; a policy cannot exist without its group.
  - Every option is validated before the first request; all problems are reported at once, each
    naming its option.
  - Only what differs is written. The comparison includes the alarm's metrics list, so a re-run with
    the same arguments reports no change.
author:
  - genai.stack maintainers (@genai-stack)
options:
  name:
    description:
      - Prefix of the policy and alarm names, for example C(<cluster>-<nodegroup>-gpu).
      - The module appends C(-scale-out) and C(-scale-in).
      - "Letters, digits and C(_ . - / : = + @), starting with a letter or digit; the full names must not exceed 255 characters."
      - Exactly one of O(name) and O(alarms) is required.
    type: str
  alarms:
    description:
      - Several pairs on the same Auto Scaling group, in place of O(name) and the per-pair options at the top
        level. Each entry is converged as if its options were given at the top level.
      - O(period), O(evaluation_periods), O(estimated_instance_warmup), O(treat_missing_data), O(state), the
        notifications (O(alarm_actions), O(ok_actions), O(insufficient_data_actions), O(purge_actions)) and
        the group (O(autoscaling_group_name), or O(cluster_name) and O(nodegroup_name)) apply to every pair.
      - Mutually exclusive with O(name), O(metric), O(query), O(query_dimensions), O(scale_out_threshold),
        O(scale_in_threshold) and O(alarm_description).
      - The top-level O(scale_out_adjustment) and O(scale_in_adjustment) are the defaults of the entries'
        O(alarms[].scale_out_adjustment) and O(alarms[].scale_in_adjustment).
      - Pair names must be unique. A problem with an entry's option is reported as
        C(alarms[<index>].<option>), counting from 0.
      - With O(state=absent) only O(alarms[].name) is used.
      - RV(policies) and RV(alarms) list the pairs in the order of the entries.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - Prefix of the pair's policy and alarm names, as O(name).
        type: str
        required: true
      metric:
        description:
          - What the pair's alarms watch, as O(metric). Required when O(state=present).
          - Also selects the default thresholds of the pair.
        type: str
        choices: [gpu, cpu]
      query:
        description:
          - A Metrics Insights query that replaces the one built from O(alarms[].metric), as O(query).
        type: str
      query_dimensions:
        description:
          - Dimensions of the C(WHERE) clause of the V(gpu) query, as O(query_dimensions).
        type: dict
      scale_out_threshold:
        description:
          - The scale-out alarm fires when the metric is above this value, as O(scale_out_threshold).
          - Defaults to V(40) for O(alarms[].metric=gpu) and V(60) for O(alarms[].metric=cpu).
        type: float
      scale_in_threshold:
        description:
          - The scale-in alarm fires when the metric is below this value, as O(scale_in_threshold).
          - Defaults to V(10) for O(alarms[].metric=gpu) and V(5) for O(alarms[].metric=cpu).
        type: float
      scale_out_adjustment:
        description:
          - Instances added when the scale-out alarm fires. Must be positive.
          - Defaults to the top-level O(scale_out_adjustment) (itself V(1) by default).
        type: int
      scale_in_adjustment:
        description:
          - Instances added when the scale-in alarm fires. Must be negative.
          - Defaults to the top-level O(scale_in_adjustment) (itself V(-1) by default).
        type: int
      alarm_description:
        description:
          - Description of the pair's alarms, as O(alarm_description).
        type: str
  state:
    description:
      - V(present) creates or updates both policies and both alarms (of every pair of O(alarms)).
      - V(absent) deletes both alarms, then both policies (of every pair); any that do not exist are skipped. When the
        node group or the Auto Scaling group no longer exists, its policies went with it and only the
        alarms are deleted.
    type: str
    choices: [present, absent]
    default: present
  autoscaling_group_name:
    description:
      - The Auto Scaling group to scale.
      - Mutually exclusive with O(cluster_name) and O(nodegroup_name).
      - With O(metric=gpu) the query needs the node group's dimensions, so also give O(query_dimensions)
        or O(query).
    type: str
  cluster_name:
    description:
      - EKS cluster of the node group whose Auto Scaling group is scaled. Requires O(nodegroup_name).
      - The Auto Scaling group is found through the EKS C(DescribeNodegroup) API.
    type: str
  nodegroup_name:
    description:
      - EKS managed node group whose Auto Scaling group is scaled. Requires O(cluster_name).
    type: str
  metric:
    description:
      - What the alarms watch. Required when O(state=present), unless O(alarms) is given.
      - V(gpu) is the average GPU utilisation reported by the CloudWatch agent on the node group's nodes.
      - V(cpu) is the average C(CPUUtilization) of the Auto Scaling group's instances.
      - Also selects the default thresholds.
    type: str
    choices: [gpu, cpu]
  query:
    description:
      - A Metrics Insights query that replaces the one built from O(metric).
      - The thresholds are then not limited to percentages, but O(scale_in_threshold) must still be
        below O(scale_out_threshold).
      - At most 2048 characters.
    type: str
  query_dimensions:
    description:
      - Dimensions of the C(WHERE) clause of the V(gpu) query, as name-value pairs, in the order given.
      - Defaults to C(ClusterName=<cluster_name>), C(NodegroupName=<nodegroup_name>) and C(NodegroupType=gpu).
      - Needed with O(metric=gpu) when the group is given by O(autoscaling_group_name).
      - Only applies to O(metric=gpu).
      - Values must not contain single quotes, names must not contain double quotes.
    type: dict
  scale_out_threshold:
    description:
      - The scale-out alarm fires when the metric is above this value.
      - Defaults to V(40) for O(metric=gpu) and V(60) for O(metric=cpu).
      - A percentage between 0 and 100 unless O(query) is given.
    type: float
  scale_in_threshold:
    description:
      - The scale-in alarm fires when the metric is below this value.
      - Defaults to V(10) for O(metric=gpu) and V(5) for O(metric=cpu).
      - A percentage between 0 and 100 unless O(query) is given; must be below O(scale_out_threshold).
    type: float
  period:
    description:
      - Seconds over which the query is evaluated.
      - CloudWatch accepts V(10), V(30) or a multiple of V(60).
    type: int
    default: 120
  evaluation_periods:
    description:
      - Number of periods over which the metric is compared with the threshold.
      - At least 1; O(period) times O(evaluation_periods) must not exceed one day.
    type: int
    default: 1
  scale_out_adjustment:
    description:
      - Instances added when the scale-out alarm fires. Must be positive.
      - With O(alarms), the default of the entries that do not set O(alarms[].scale_out_adjustment).
    type: int
    default: 1
  scale_in_adjustment:
    description:
      - Instances added when the scale-in alarm fires. Must be negative.
      - With O(alarms), the default of the entries that do not set O(alarms[].scale_in_adjustment).
    type: int
    default: -1
  estimated_instance_warmup:
    description:
      - Seconds until a new instance contributes to the metric, set on both policies (of every pair).
      - When not given, the value the policies already have is kept.
    type: int
  treat_missing_data:
    description:
      - How the alarms treat periods without data.
    type: str
    choices: [missing, ignore, breaching, notBreaching]
    default: missing
  alarm_description:
    description:
      - Description of both alarms; C( (scale out)) or C( (scale in)) is appended.
      - When not given, a description stating group, metric, threshold and period is generated.
      - At most 1024 characters including the suffix.
    type: str
  alarm_actions:
    description:
      - ARNs of SNS topics notified when an alarm goes into the C(ALARM) state, set on both alarms (of every pair
        of O(alarms)), in addition to the alarm's scaling policy, which is always in its C(AlarmActions).
      - "Each an SNS topic ARN, C(arn:<partition>:sns:<region>:<account id>:<topic name>), of the alarms' region
        (CloudWatch notifies topics of the alarm's own region only); at most 4, as CloudWatch takes 5 actions per state."
      - A topic of another account is accepted (its access policy must allow C(cloudwatch.amazonaws.com) to publish);
        when the account of the alarms is known from an existing alarm or policy, the module warns about it.
      - Actions that are already on an alarm and not listed here are kept unless O(purge_actions=true).
    type: list
    elements: str
  ok_actions:
    description:
      - ARNs of SNS topics notified when an alarm goes back to the C(OK) state, set on both alarms (of every pair).
      - Same rules as O(alarm_actions); at most 5.
    type: list
    elements: str
  insufficient_data_actions:
    description:
      - ARNs of SNS topics notified when an alarm goes into the C(INSUFFICIENT_DATA) state, set on both alarms (of every pair).
      - Same rules as O(alarm_actions); at most 5.
    type: list
    elements: str
  purge_actions:
    description:
      - V(false) keeps the actions that are already on an alarm (set by another tool, or by an earlier run with other
        topics) and adds those of O(alarm_actions), O(ok_actions) and O(insufficient_data_actions).
      - V(true) makes each alarm's actions exactly the given topics plus, in C(AlarmActions), its scaling policy;
        an action list that is not given becomes empty.
      - Either way an out-of-date ARN of the alarm's own scaling policy (a policy of the same name that was
        recreated) is replaced by the current one.
      - With V(false), the module fails before any write when the kept and the given actions of a state exceed
        CloudWatch's limit of 5, naming the option.
    type: bool
    default: false
notes:
  - Each alarm's C(AlarmActions) always hold its scaling policy. Notifications are the SNS topics of
    O(alarm_actions), O(ok_actions) and O(insufficient_data_actions); actions set by other tools are kept
    unless O(purge_actions=true).
  - In check mode, when a policy does not exist yet, the alarm is compared with a placeholder ARN;
    RV(placeholder_arns) lists the policies concerned.
  - "Permissions: C(autoscaling:DescribeAutoScalingGroups), C(autoscaling:DescribePolicies),
    C(autoscaling:PutScalingPolicy), C(autoscaling:DeletePolicy), C(cloudwatch:DescribeAlarms),
    C(cloudwatch:PutMetricAlarm), C(cloudwatch:DeleteAlarms) and, with O(cluster_name),
    C(eks:DescribeNodegroup) and C(eks:DescribeCluster)."
seealso:
  - module: genai.stack.eks_gpu_nodegroup
  - module: amazon.aws.cloudwatch_metric_alarm
  - name: CloudWatch Metrics Insights query components and syntax
    description: The query language of the alarms.
    link: https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-querylanguage.html
extends_documentation_fragment:
  - genai.stack.attributes
  - genai.stack.attributes.actiongroup_aws
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Scale the GPU node group on GPU utilisation (out above 40 %, in below 10 %)
  genai.stack.scaling_alarm:
    name: prod-eks-gpu-nodes-gpu
    cluster_name: prod-eks
    nodegroup_name: gpu-nodes
    metric: gpu

- name: Scale the CPU node group on CPU utilisation, two instances at a time
  genai.stack.scaling_alarm:
    name: prod-eks-cpu-nodes-cpu
    cluster_name: prod-eks
    nodegroup_name: cpu-nodes
    metric: cpu
    scale_out_threshold: 70
    scale_out_adjustment: 2
    scale_in_adjustment: -2
    estimated_instance_warmup: 300

- name: GPU alarms for a self-managed group, dimensions given explicitly
  genai.stack.scaling_alarm:
    name: inference-gpu
    autoscaling_group_name: inference-asg
    metric: gpu
    query_dimensions:
      ClusterName: prod
      NodegroupName: inference
      NodegroupType: gpu

- name: Scale on a custom query (queue depth)
  genai.stack.scaling_alarm:
    name: workers-queue
    autoscaling_group_name: workers-asg
    metric: cpu
    query: SELECT MAX(ApproximateNumberOfMessagesVisible) FROM SCHEMA("AWS/SQS", QueueName) WHERE QueueName = 'jobs'
    scale_out_threshold: 100
    scale_in_threshold: 5

- name: Notify an on-call topic when the GPU node group scales out or in, and when it is back to normal
  genai.stack.scaling_alarm:
    name: prod-eks-gpu-nodes-gpu
    cluster_name: prod-eks
    nodegroup_name: gpu-nodes
    metric: gpu
    alarm_actions:
      - arn:aws:sns:us-east-2:123456789012:gpu-scaling
    ok_actions:
      - arn:aws:sns:us-east-2:123456789012:gpu-scaling

- name: Exactly these notifications (actions added by other tools are removed; the policies stay)
  genai.stack.scaling_alarm:
    name: prod-eks-gpu-nodes-gpu
    cluster_name: prod-eks
    nodegroup_name: gpu-nodes
    metric: gpu
    alarm_actions:
      - arn:aws:sns:us-east-2:123456789012:gpu-scaling
    purge_actions: true

- name: Remove the alarms and policies
  genai.stack.scaling_alarm:
    name: prod-eks-gpu-nodes-gpu
    cluster_name: prod-eks
    nodegroup_name: gpu-nodes
    state: absent

- name: GPU and CPU pairs on one node group in one task (one DescribePolicies and one DescribeAlarms for both)
  genai.stack.scaling_alarm:
    cluster_name: prod-eks
    nodegroup_name: gpu-nodes
    period: 60
    scale_out_adjustment: 2  # default of both pairs
    alarms:
      - name: prod-eks-gpu-nodes-gpu
        metric: gpu
        scale_out_threshold: 50
      - name: prod-eks-gpu-nodes-cpu
        metric: cpu
        scale_out_threshold: 80
        scale_in_threshold: 10
        scale_out_adjustment: 1
  register: gpu_nodes_alarms

- name: Remove both pairs
  genai.stack.scaling_alarm:
    cluster_name: prod-eks
    nodegroup_name: gpu-nodes
    state: absent
    alarms:
      - name: prod-eks-gpu-nodes-gpu
      - name: prod-eks-gpu-nodes-cpu
"""

RETURN = r"""
autoscaling_group_name:
  description: The Auto Scaling group the policies belong to; null when it no longer exists (O(state=absent)).
  returned: always
  type: str
  sample: eks-gpu-nodes-5ac9a1b2-3c4d-5e6f-7a8b-9c0d1e2f3a4b
policies:
  description:
    - The scale-out and scale-in policies, in that order; empty when O(state=absent).
    - With O(alarms), two entries per pair (scale-out, then scale-in), pairs in the order of O(alarms).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Policy name.
      type: str
      sample: prod-eks-gpu-nodes-gpu-scale-out
    arn:
      description: Policy ARN; a placeholder in check mode when the policy does not exist yet.
      type: str
      sample: arn:aws:autoscaling:us-east-2:123456789012:scalingPolicy:1f2e...:autoScalingGroupName/eks-gpu:policyName/x-scale-out
    adjustment:
      description: Change in capacity applied when the policy runs.
      type: int
      sample: 1
    estimated_instance_warmup:
      description: Estimated instance warm-up in seconds, or null.
      type: int
      sample: 300
alarms:
  description:
    - The scale-out and scale-in alarms, in that order; empty when O(state=absent).
    - With O(alarms), two entries per pair (scale-out, then scale-in), pairs in the order of O(alarms).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Alarm name.
      type: str
      sample: prod-eks-gpu-nodes-gpu-scale-out
    arn:
      description: Alarm ARN; null in check mode when the alarm does not exist yet.
      type: str
      sample: arn:aws:cloudwatch:us-east-2:123456789012:alarm:prod-eks-gpu-nodes-gpu-scale-out
    threshold:
      description: Threshold of the alarm.
      type: float
      sample: 40.0
    comparison_operator:
      description: C(GreaterThanThreshold) for scale-out, C(LessThanThreshold) for scale-in.
      type: str
      sample: GreaterThanThreshold
    expression:
      description: The Metrics Insights query.
      type: str
      sample: SELECT AVG(nvidia_smi_utilization_gpu) FROM CWAgent WHERE ClusterName = 'prod-eks' AND NodegroupName = 'gpu-nodes' AND NodegroupType = 'gpu'
    period:
      description: Period of the query in seconds.
      type: int
      sample: 120
    evaluation_periods:
      description: Number of periods evaluated.
      type: int
      sample: 1
    alarm_actions:
      description:
        - ARNs run when the alarm goes into C(ALARM), sorted; the scaling policy's is always one of them (a placeholder
          in check mode when the policy does not exist yet), the others are SNS topics.
      type: list
      elements: str
      sample:
        - arn:aws:autoscaling:us-east-2:123456789012:scalingPolicy:1f2e...:autoScalingGroupName/eks-gpu:policyName/x-scale-out
        - arn:aws:sns:us-east-2:123456789012:gpu-scaling
    ok_actions:
      description: ARNs notified when the alarm goes back to C(OK), sorted.
      type: list
      elements: str
      sample: [arn:aws:sns:us-east-2:123456789012:gpu-scaling]
    insufficient_data_actions:
      description: ARNs notified when the alarm goes into C(INSUFFICIENT_DATA), sorted.
      type: list
      elements: str
      sample: []
placeholder_arns:
  description: Policies whose ARN is not known yet because they would be created (check mode only).
  returned: always
  type: list
  elements: str
  sample: [prod-eks-gpu-nodes-gpu-scale-out]
diff:
  description:
    - Before and after of each policy and alarm that the module manages (all four, when they exist or would),
      under the keys C(scale_out_policy), C(scale_in_policy), C(scale_out_alarm) and C(scale_in_alarm).
    - With O(alarms), these keys are grouped by pair name, for example C(before[<name>].scale_out_policy).
  returned: when diff mode is enabled
  type: dict
  contains:
    before:
      description: The normalised state read from AWS; null for resources that do not exist.
      type: dict
    after:
      description: The normalised state after the run; null for resources that are deleted.
      type: dict
"""

import math
import re

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing library

from ansible_collections.amazon.aws.plugins.module_utils.arn import parse_aws_arn

from ansible_collections.genai.stack.plugins.module_utils._autoscaling import AutoScaling
from ansible_collections.genai.stack.plugins.module_utils._aws import AWSServiceError, GenaiAWSModule
from ansible_collections.genai.stack.plugins.module_utils._cloudwatch import CloudWatch
from ansible_collections.genai.stack.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.genai.stack.plugins.module_utils._eks import EKS, autoscaling_group_of
from ansible_collections.genai.stack.plugins.module_utils._gpu import gpu_metric_dimensions
from ansible_collections.genai.stack.plugins.module_utils._validation import EKS_NAME, Checker, InputErrors

GPU_QUERY = 'SELECT AVG(nvidia_smi_utilization_gpu) FROM CWAgent WHERE {where}'
CPU_QUERY = 'SELECT AVG(CPUUtilization) FROM SCHEMA("AWS/EC2", AutoScalingGroupName) WHERE AutoScalingGroupName = {asg}'
DEFAULT_THRESHOLDS = {'gpu': (40.0, 10.0), 'cpu': (60.0, 5.0)}  # (scale out above, scale in below)
METRIC_LABELS = {'gpu': 'average GPU utilisation', 'cpu': 'average CPU utilisation'}
QUERY_ID = 'utilization'
MAX_NAME = 255
MAX_EXPRESSION = 2048
MAX_DESCRIPTION = 1024
ONE_DAY = 86400
# Conservative subset of what Auto Scaling and CloudWatch accept, so the names also read well in ARNs.
NAME_PATTERN = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.\-/:=+@]*$')
PLAIN_IDENTIFIER = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
DIRECTIONS = ('out', 'in')
SUFFIX = {'out': '-scale-out', 'in': '-scale-in'}
OPERATOR = {'out': 'GreaterThanThreshold', 'in': 'LessThanThreshold'}
CONTROL_CHARACTERS = re.compile(r'[\x00-\x1f\x7f]')
# Options an entry of `alarms` sets for its pair; the adjustments default to the top-level ones.
PAIR_OPTIONS = ('name', 'metric', 'query', 'query_dimensions', 'scale_out_threshold', 'scale_in_threshold',
                'scale_out_adjustment', 'scale_in_adjustment', 'alarm_description')
INHERITED_OPTIONS = ('scale_out_adjustment', 'scale_in_adjustment')
# Notification options and the alarm fields they set; CloudWatch takes at most 5 ARNs in each field.
ACTION_OPTIONS = (('alarm_actions', 'AlarmActions'), ('ok_actions', 'OKActions'), ('insufficient_data_actions', 'InsufficientDataActions'))
ACTION_FIELDS = dict(ACTION_OPTIONS)
MAX_ACTIONS = 5
# arn:<partition>:sns:<region>:<account>:<topic>; topic names are 1-256 letters, digits, - and _ (.fifo for FIFO topics).
SNS_TOPIC_ARN = re.compile(r'^arn:(?P<partition>aws[a-z-]*):sns:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):(?P<account>\d{12}):'
                           r'(?P<topic>[A-Za-z0-9_-]{1,256}|[A-Za-z0-9_-]{1,251}\.fifo)$')
ACCOUNT_ID = re.compile(r'^\d{12}$')


# ---------------------------------------------------------------------------------------------
# Query rendering and input checks (no AWS access)


def quote_string(value):
    """A Metrics Insights string literal; single quotes cannot be escaped, so they are refused earlier."""
    return "'%s'" % value


def quote_identifier(name):
    return name if PLAIN_IDENTIFIER.match(name) else '"%s"' % name


def default_dimensions(cluster_name, nodegroup_name):
    """The dimensions the CloudWatch agent of our GPU node user data appends to nvidia_gpu metrics."""
    return gpu_metric_dimensions(cluster_name, nodegroup_name)


def render_query(metric, autoscaling_group_name=None, dimensions=None):
    if metric == 'gpu':
        where = ' AND '.join('%s = %s' % (quote_identifier(k), quote_string(v)) for k, v in dimensions.items())
        return GPU_QUERY.format(where=where)
    return CPU_QUERY.format(asg=quote_string(autoscaling_group_name))


def normalise_expression(expression):
    """Whitespace is not significant to CloudWatch; the module sends and compares the collapsed form."""
    return ' '.join((expression or '').split())


def _check_text(checker, value, option, max_length, pattern=None, what=None):
    if value is None:
        return
    if not value:
        checker.error(option, 'must not be empty')
        return
    if len(value) > max_length:
        checker.error(option, 'must be at most %d characters, got %d' % (max_length, len(value)))
    if pattern is not None:
        checker.match(pattern, value, option, what)
    elif CONTROL_CHARACTERS.search(value):
        checker.error(option, 'must not contain control characters')


def partition_of(region):
    """The ARN partition of a region (aws-cn, aws-us-gov, aws-iso...; aws for the commercial regions)."""
    for prefix, partition in (('cn-', 'aws-cn'), ('us-gov-', 'aws-us-gov'), ('us-isob-', 'aws-iso-b'), ('us-iso-', 'aws-iso'),
                              ('eu-isoe-', 'aws-iso-e'), ('us-isof-', 'aws-iso-f')):
        if (region or '').startswith(prefix):
            return partition
    return 'aws'


def check_actions(checker, params, region):
    """SNS topic ARNs of alarm_actions, ok_actions and insufficient_data_actions: format, no repeats,
    the alarms' region and partition (CloudWatch notifies topics of the alarm's own region only)."""
    for option in ACTION_FIELDS:
        arns = params.get(option)
        if arns is None:
            continue
        # The scaling policy takes one place of AlarmActions.
        limit = MAX_ACTIONS - 1 if option == 'alarm_actions' else MAX_ACTIONS
        if len(arns) > limit:
            checker.error(option, 'CloudWatch takes at most %d actions per state%s; got %d'
                          % (MAX_ACTIONS, ', one of them the scaling policy' if option == 'alarm_actions' else '', len(arns)))
        seen = set()
        for index, arn in enumerate(arns):
            label = '%s[%d]' % (option, index)
            match = SNS_TOPIC_ARN.match(arn or '')
            if not match:
                checker.error(label, '%r is not an SNS topic ARN (arn:<partition>:sns:<region>:<account id>:<topic name>)' % arn)
                continue
            if arn in seen:
                checker.error(label, '%s is listed twice' % arn)
            seen.add(arn)
            if region and match.group('region') != region:
                checker.error(label, 'topic %s is in region %s, the alarms in %s; CloudWatch notifies topics of the alarm\'s own region only'
                              % (arn, match.group('region'), region))
            elif region and match.group('partition') != partition_of(region):
                checker.error(label, 'partition %s does not match region %s (partition %s)' % (match.group('partition'), region, partition_of(region)))


def check_input(params, region=None):
    """Validate the whole input without AWS access; raise InputErrors naming every bad option.

    Returns the resolved settings of every pair under `pairs` (one entry without O(alarms)): the
    pair's own view of the parameters (`params`), its thresholds (defaults depend on `metric`) and
    query dimensions. Without `alarms` the single pair's thresholds and dimensions are also at the
    top level of the result.
    """
    checker = Checker()
    present = params['state'] == 'present'

    _check_text(checker, params['autoscaling_group_name'], 'autoscaling_group_name', MAX_NAME)
    checker.match(EKS_NAME, params['cluster_name'], 'cluster_name', 'a valid EKS cluster name')
    checker.match(EKS_NAME, params['nodegroup_name'], 'nodegroup_name', 'a valid EKS node group name')

    entries = params.get('alarms')
    resolved_pairs = [_check_pair(checker, pair, label, present) for pair, label in _pairs(checker, params, entries)]

    if present:
        period = params['period']
        if not (period in (10, 30) or (period > 0 and period % 60 == 0)):
            checker.error('period', 'must be 10, 30 or a multiple of 60 seconds (a CloudWatch rule), got %d' % period)
        evaluation_periods = params['evaluation_periods']
        if checker.require(evaluation_periods >= 1, 'evaluation_periods', 'must be at least 1, got %d' % evaluation_periods) and period > 0:
            checker.require(period * evaluation_periods <= ONE_DAY, 'evaluation_periods',
                            'period x evaluation_periods must not exceed one day (%d s), got %d s' % (ONE_DAY, period * evaluation_periods))
        if params['estimated_instance_warmup'] is not None:
            checker.in_range(params['estimated_instance_warmup'], 'estimated_instance_warmup', 0)
        check_actions(checker, params, region)
    # Problems with a top-level option that several pairs inherit are reported once.
    checker.errors = list(dict.fromkeys(checker.errors))
    checker.raise_if_any()

    if entries is None:
        resolved = dict((k, v) for k, v in resolved_pairs[0].items() if k != 'params')
    else:
        resolved = {'scale_out_threshold': None, 'scale_in_threshold': None, 'dimensions': None}
    resolved['pairs'] = resolved_pairs
    return resolved


def _pairs(checker, params, entries):
    """(parameters as the pair sees them, label) of every pair: one without O(alarms), else one per
    entry, whose names must be unique."""
    if entries is None:
        return [(params, lambda option: option)]
    if not entries:
        checker.error('alarms', 'must list at least one pair')
    pairs, first_index = [], {}
    for index, entry in enumerate(entries):
        pair = pair_params(params, entry)
        label = _pair_label(index, entry)
        if pair['name'] in first_index:
            checker.error(label('name'), 'duplicates alarms[%d].name (%s); pair names must be unique'
                          % (first_index[pair['name']], pair['name']))
        elif pair['name']:
            first_index[pair['name']] = index
        pairs.append((pair, label))
    return pairs


def pair_params(params, entry):
    """The parameters as one pair of O(alarms) sees them: the entry's options over the top-level ones.

    The adjustments an entry leaves unset are the top-level ones; every other per-pair option is the
    entry's (top-level values of those are refused together with `alarms`).
    """
    pair = dict(params)
    pair['alarms'] = None
    for option in PAIR_OPTIONS:
        value = entry.get(option)
        if option in INHERITED_OPTIONS and value is None:
            continue
        pair[option] = value
    return pair


def _pair_label(index, entry):
    """How an error names a pair's option: alarms[<index>].<option>, or the top-level option it inherits."""
    def label(option):
        if option not in PAIR_OPTIONS or (option in INHERITED_OPTIONS and entry.get(option) is None):
            return option
        return 'alarms[%d].%s' % (index, option)
    return label


def _check_pair(checker, params, label, present):
    """Check one pair's options (`params` as the pair sees them); `label` names an option in errors.

    Returns the pair's resolved settings: its parameters, thresholds (defaults by metric) and the
    dimensions of the GPU query."""
    resolved = {'params': params, 'scale_out_threshold': params['scale_out_threshold'],
                'scale_in_threshold': params['scale_in_threshold'], 'dimensions': None}
    _check_pair_name(checker, params['name'], label)
    if params['autoscaling_group_name'] and "'" in params['autoscaling_group_name'] and params['metric'] == 'cpu' and not params['query']:
        checker.error('autoscaling_group_name', "contains a single quote, which a Metrics Insights query cannot hold; give query")
    if not present:
        return resolved

    if params['query'] is not None:
        _check_custom_query(checker, params['query'], label('query'))
    if params['metric'] is None:
        checker.error(label('metric'), 'is required when state=present')
    resolved['dimensions'] = _check_query_dimensions(checker, params, label)
    resolved.update(_check_thresholds(checker, params, label))
    checker.require(params['scale_out_adjustment'] >= 1, label('scale_out_adjustment'),
                    'must be positive (instances added on scale-out), got %d' % params['scale_out_adjustment'])
    checker.require(params['scale_in_adjustment'] <= -1, label('scale_in_adjustment'),
                    'must be negative (instances removed on scale-in), got %d' % params['scale_in_adjustment'])
    description = params['alarm_description']
    if description is not None:
        longest = len(description) + len(' (scale out)')
        checker.require(longest <= MAX_DESCRIPTION, label('alarm_description'),
                        'must be at most %d characters (with the " (scale out)" suffix), got %d' % (MAX_DESCRIPTION - len(' (scale out)'), len(description)))
    return resolved


def _check_pair_name(checker, name, label):
    """The pair's name prefixes both policies and alarms: a valid prefix that leaves room for the suffixes."""
    if not name:
        checker.error(label('name'), 'must not be empty')
        return
    checker.match(NAME_PATTERN, name, label('name'), 'a valid prefix (letters, digits and _ . - / : = + @, starting with a letter or digit)')
    longest_suffix = max(len(s) for s in SUFFIX.values())
    checker.require(len(name) + longest_suffix <= MAX_NAME, label('name'),
                    'must be at most %d characters, so that name + "%s" fits the %d-character limit of policy and alarm names; got %d'
                    % (MAX_NAME - longest_suffix, SUFFIX['out'], MAX_NAME, len(name)))


def _check_custom_query(checker, query, option):
    """CloudWatch's limits on a Metrics Insights expression (sent with whitespace collapsed)."""
    expression = normalise_expression(query)
    if not expression:
        checker.error(option, 'must not be blank')
        return
    checker.require(len(expression) <= MAX_EXPRESSION, option,
                    'must be at most %d characters (whitespace collapsed), got %d' % (MAX_EXPRESSION, len(expression)))
    if CONTROL_CHARACTERS.search(query.translate({9: 32, 10: 32, 13: 32})):
        checker.error(option, 'must not contain control characters other than tabs and line breaks')


def _check_query_dimensions(checker, params, label):
    """Check query_dimensions; returns the GPU query's dimensions (given or derived), or None when
    the pair has no built GPU query."""
    metric, custom_query, dimensions = params['metric'], params['query'] is not None, params['query_dimensions']
    if dimensions is not None:
        option = label('query_dimensions')
        if metric != 'gpu':
            checker.error(option, 'only applies to metric=gpu (the cpu query is built from the Auto Scaling group name)')
        elif custom_query:
            checker.error(option, 'is not used when query is given; give one or the other')
        elif not dimensions:
            checker.error(option, 'must name at least one dimension')
        for key, value in dimensions.items():
            if not key or '"' in key or CONTROL_CHARACTERS.search(key):
                checker.error(option, 'dimension name %r must be non-empty, without double quotes or control characters' % key)
            if not isinstance(value, str) or not value:
                checker.error(option, 'value of %r must be a non-empty string, got %r' % (key, value))
            elif "'" in value or CONTROL_CHARACTERS.search(value):
                checker.error(option, 'value of %r must not contain single quotes or control characters' % key)
    elif metric == 'gpu' and not custom_query and params['autoscaling_group_name']:
        checker.error(label('metric'), 'the gpu alarms query nvidia_smi_utilization_gpu by the ClusterName and NodegroupName dimensions, '
                                       'which cannot be derived from autoscaling_group_name alone; give cluster_name and nodegroup_name '
                                       'instead, or query_dimensions, or query')
    if metric != 'gpu' or custom_query:
        return None
    return dict(dimensions) if dimensions else default_dimensions(params['cluster_name'], params['nodegroup_name'])


def _check_thresholds(checker, params, label):
    """The thresholds with the metric's defaults, checked (percentages for the built queries; in
    below out). Returns the resolved ones, or {} when the metric is unknown."""
    metric, custom_query = params['metric'], params['query'] is not None
    scale_out, scale_in = params['scale_out_threshold'], params['scale_in_threshold']
    resolved = {}
    if metric is not None:
        default_out, default_in = DEFAULT_THRESHOLDS[metric]
        scale_out = default_out if scale_out is None else scale_out
        scale_in = default_in if scale_in is None else scale_in
        resolved = {'scale_out_threshold': float(scale_out), 'scale_in_threshold': float(scale_in)}
    bounded = True
    for option, value in (('scale_out_threshold', scale_out), ('scale_in_threshold', scale_in)):
        if value is None:
            bounded = False
        elif not custom_query:
            bounded = checker.in_range(value, label(option), 0, 100, what='a percentage') and bounded
        elif not math.isfinite(value):
            checker.error(label(option), 'must be a finite number')
            bounded = False
    if bounded and scale_in >= scale_out:
        checker.error(label('scale_in_threshold'), 'must be below scale_out_threshold (%g), got %g' % (scale_out, scale_in))
    return resolved


# ---------------------------------------------------------------------------------------------
# Normalised views: the same shape for what AWS holds and what is asked, used for compare and diff


def _float_or_none(value):
    return None if value is None else float(value)


def normalise_policy(policy):
    """The fields of a step-scaling policy this module manages, from a DescribePolicies entry."""
    if policy is None:
        return None
    steps = [{'lower_bound': _float_or_none(s.get('MetricIntervalLowerBound')),
              'upper_bound': _float_or_none(s.get('MetricIntervalUpperBound')),
              'adjustment': int(s['ScalingAdjustment'])} for s in policy.get('StepAdjustments') or []]
    steps.sort(key=lambda s: (s['lower_bound'] is None, s['lower_bound'] or 0.0, s['upper_bound'] is None, s['upper_bound'] or 0.0))
    return {
        'name': policy.get('PolicyName'),
        'policy_type': policy.get('PolicyType'),
        'adjustment_type': policy.get('AdjustmentType'),
        'metric_aggregation_type': policy.get('MetricAggregationType') or 'Average',
        'step_adjustments': steps,
        'estimated_instance_warmup': policy.get('EstimatedInstanceWarmup'),
        # Auto Scaling omits Enabled in some responses; a policy is enabled unless it says otherwise.
        'enabled': policy.get('Enabled', True),
    }


def normalise_metrics(metrics):
    result = []
    for query in metrics or []:
        entry = {'id': query.get('Id'), 'expression': normalise_expression(query.get('Expression')) if 'Expression' in query else None,
                 'period': query.get('Period'), 'return_data': bool(query.get('ReturnData', True))}
        if query.get('Label'):
            entry['label'] = query['Label']
        if query.get('MetricStat'):
            entry['metric_stat'] = query['MetricStat']
        result.append(entry)
    return sorted(result, key=lambda m: m['id'] or '')


def normalise_alarm(alarm):
    """The fields of a metric alarm this module manages, from a DescribeAlarms MetricAlarms entry.

    Alarms on a single metric (Namespace/MetricName) have no Metrics; they normalise to an empty
    list and so differ from what this module writes.
    """
    if alarm is None:
        return None
    return {
        'name': alarm.get('AlarmName'),
        'description': alarm.get('AlarmDescription'),
        'metrics': normalise_metrics(alarm.get('Metrics')),
        'comparison_operator': alarm.get('ComparisonOperator'),
        'threshold': _float_or_none(alarm.get('Threshold')),
        'evaluation_periods': alarm.get('EvaluationPeriods'),
        'treat_missing_data': alarm.get('TreatMissingData') or 'missing',
        'actions_enabled': alarm.get('ActionsEnabled', True),
        'alarm_actions': sorted(alarm.get('AlarmActions') or []),
        'ok_actions': sorted(alarm.get('OKActions') or []),
        'insufficient_data_actions': sorted(alarm.get('InsufficientDataActions') or []),
    }


def desired_policy(direction, name, adjustment, warmup):
    bound = {'lower_bound': 0.0, 'upper_bound': None} if direction == 'out' else {'lower_bound': None, 'upper_bound': 0.0}
    bound['adjustment'] = adjustment
    return {
        'name': name,
        'policy_type': 'StepScaling',
        'adjustment_type': 'ChangeInCapacity',
        'metric_aggregation_type': 'Average',
        'step_adjustments': [bound],
        'estimated_instance_warmup': warmup,
        'enabled': True,
    }


def policy_request(autoscaling_group_name, policy):
    steps = []
    for step in policy['step_adjustments']:
        entry = {'ScalingAdjustment': step['adjustment']}
        if step['lower_bound'] is not None:
            entry['MetricIntervalLowerBound'] = step['lower_bound']
        if step['upper_bound'] is not None:
            entry['MetricIntervalUpperBound'] = step['upper_bound']
        steps.append(entry)
    request = {'AutoScalingGroupName': autoscaling_group_name, 'PolicyName': policy['name'], 'PolicyType': policy['policy_type'],
               'AdjustmentType': policy['adjustment_type'], 'MetricAggregationType': policy['metric_aggregation_type'],
               'StepAdjustments': steps, 'Enabled': policy['enabled']}
    if policy['estimated_instance_warmup'] is not None:
        request['EstimatedInstanceWarmup'] = policy['estimated_instance_warmup']
    return request


def describe_alarm(direction, params, settings, autoscaling_group_name):
    threshold = settings['scale_out_threshold'] if direction == 'out' else settings['scale_in_threshold']
    suffix = ' (scale out)' if direction == 'out' else ' (scale in)'
    if params['alarm_description'] is not None:
        return params['alarm_description'] + suffix
    what = 'the query' if params['query'] is not None else METRIC_LABELS[params['metric']]
    adjustment = params['scale_out_adjustment'] if direction == 'out' else params['scale_in_adjustment']
    return ('Scale %s Auto Scaling group %s by %+d when %s is %s %g over %d period(s) of %d s (genai.stack.scaling_alarm)'
            % (direction, autoscaling_group_name, adjustment, what, 'above' if direction == 'out' else 'below', threshold,
               params['evaluation_periods'], params['period']))


def is_policy_arn_named(arn, policy_name):
    """True for an Auto Scaling policy ARN of a policy called `policy_name` (of any group)."""
    parsed = parse_aws_arn(arn) if arn.startswith('arn:') else None
    return bool(parsed) and parsed['service'] == 'autoscaling' and parsed['resource'].endswith(':policyName/' + policy_name)


def desired_actions(params, existing, policy_name, policy_arn):
    """The alarm's actions per field: the policy (in AlarmActions, always), the given topics and, unless
    purge_actions, every action already there, except an out-of-date ARN of the same policy."""
    actions = {}
    for option, field in ACTION_OPTIONS:
        wanted = list(params.get(option) or [])
        if field == 'AlarmActions':
            wanted.append(policy_arn)
        if not params.get('purge_actions'):
            wanted.extend(arn for arn in (existing or {}).get(field) or [] if not is_policy_arn_named(arn, policy_name))
        actions[option] = sorted(set(wanted))
    return actions


def desired_alarm(direction, name, expression, params, settings, autoscaling_group_name, policy_arn, existing=None):
    """The alarm as it should be; `existing` (the DescribeAlarms entry) gives the actions that are kept."""
    actions = desired_actions(params, existing, name, policy_arn)
    return {
        'name': name,
        'description': describe_alarm(direction, params, settings, autoscaling_group_name),
        'metrics': [{'id': QUERY_ID, 'expression': normalise_expression(expression), 'period': params['period'], 'return_data': True}],
        'comparison_operator': OPERATOR[direction],
        'threshold': settings['scale_out_threshold'] if direction == 'out' else settings['scale_in_threshold'],
        'evaluation_periods': params['evaluation_periods'],
        'treat_missing_data': params['treat_missing_data'],
        'actions_enabled': True,
        'alarm_actions': actions['alarm_actions'],
        'ok_actions': actions['ok_actions'],
        'insufficient_data_actions': actions['insufficient_data_actions'],
    }


def alarm_request(alarm):
    return {
        'AlarmName': alarm['name'],
        'AlarmDescription': alarm['description'],
        'Metrics': [{'Id': m['id'], 'Expression': m['expression'], 'Period': m['period'], 'ReturnData': m['return_data']}
                    for m in alarm['metrics']],
        'ComparisonOperator': alarm['comparison_operator'],
        'Threshold': alarm['threshold'],
        'EvaluationPeriods': alarm['evaluation_periods'],
        'TreatMissingData': alarm['treat_missing_data'],
        'ActionsEnabled': alarm['actions_enabled'],
        'AlarmActions': alarm['alarm_actions'],
        'OKActions': alarm['ok_actions'],
        'InsufficientDataActions': alarm['insufficient_data_actions'],
    }


def placeholder_arn(region, autoscaling_group_name, policy_name):
    return ('arn:aws:autoscaling:%s:<account>:scalingPolicy:<known after the policy is created>:autoScalingGroupName/%s:policyName/%s'
            % (region or '<region>', autoscaling_group_name, policy_name))


# ---------------------------------------------------------------------------------------------
# Planning (no AWS access): the resources as read and as wanted in, the changes out. Each change
# is one policy or alarm of one pair and direction: {'pair', 'direction', 'name', 'key' (its name
# in the diff), 'before', 'after'}; it is a write when before != after.


def pair_entries(params, settings):
    """The pairs of the request, each with its options, settings and its resources' names."""
    pairs = []
    for resolved in settings['pairs']:
        name = resolved['params']['name']
        pairs.append({'name': name, 'params': resolved['params'], 'settings': resolved,
                      'names': dict((d, name + SUFFIX[d]) for d in DIRECTIONS)})
    return pairs


def _each(pairs):
    for pair in pairs:
        for direction in DIRECTIONS:
            yield pair, direction, pair['names'][direction]


def plan_policies(pairs, policies, warmup):
    """The step-scaling policies: `policies` as DescribePolicies gives them, by name; a policy that
    exists keeps its warmup unless `warmup` (estimated_instance_warmup) is given."""
    changes = []
    for pair, direction, name in _each(pairs):
        before = normalise_policy(policies.get(name))
        kept = warmup if warmup is not None or before is None else before['estimated_instance_warmup']
        after = desired_policy(direction, name, pair['params']['scale_%s_adjustment' % direction], kept)
        changes.append({'pair': pair, 'direction': direction, 'name': name, 'key': 'scale_%s_policy' % direction,
                        'before': before, 'after': after})
    return changes


def plan_alarms(pairs, alarms, arns, group, params):
    """The metric alarms: `alarms` as DescribeAlarms gives them, by name, each wired to its policy's
    ARN in `arns`; a pair's `expression` is its Metrics Insights query."""
    changes = []
    for pair, direction, name in _each(pairs):
        after = desired_alarm(direction, name, pair['expression'], pair['params'], pair['settings'], group, arns[name], alarms.get(name))
        changes.append({'pair': pair, 'direction': direction, 'name': name, 'key': 'scale_%s_alarm' % direction,
                        'before': normalise_alarm(alarms.get(name)), 'after': after})
    return changes


def plan_removal(pairs, policies, alarms):
    """state=absent: every alarm, then every policy, to none. Alarms come first: an alarm must not
    point at a policy that no longer exists."""
    changes = [{'pair': pair, 'direction': direction, 'name': name, 'key': 'scale_%s_alarm' % direction,
                'before': normalise_alarm(alarms.get(name)), 'after': None} for pair, direction, name in _each(pairs)]
    changes.extend({'pair': pair, 'direction': direction, 'name': name, 'key': 'scale_%s_policy' % direction,
                    'before': normalise_policy(policies.get(name)), 'after': None} for pair, direction, name in _each(pairs))
    return changes


def writes(changes):
    """The changes that differ from what is there."""
    return [change for change in changes if change['before'] != change['after']]


def actions_over_limit(pairs, params, alarms, region):
    """(option, message) for each alarm whose actions (the given ones, its policy and, unless
    purge_actions, those kept) would exceed CloudWatch's limit per state."""
    errors = []
    for _pair, _direction, name in _each(pairs):
        # The policy's ARN may not be known yet; any ARN of its name counts the same.
        actions = desired_actions(params, alarms.get(name), name, placeholder_arn(region, '-', name))
        for option, field in ACTION_OPTIONS:
            if len(actions[option]) > MAX_ACTIONS:
                ours = set(params.get(option) or [])
                kept = len(actions[option]) - len(ours) - (1 if field == 'AlarmActions' else 0)
                errors.append((option, 'alarm %s would have %d %s, CloudWatch takes at most %d: %d set by another tool are '
                                       'kept unless purge_actions=true' % (name, len(actions[option]), field, MAX_ACTIONS, kept)))
    return errors


def resources_account(policies, alarms):
    """The account of the pairs' policies and alarms, or None while there are none (or several)."""
    accounts = set()
    for resource, key in [(a, 'AlarmArn') for a in alarms.values()] + [(p, 'PolicyARN') for p in policies.values()]:
        parsed = parse_aws_arn(resource.get(key) or '')
        if parsed and ACCOUNT_ID.match(parsed['account_id'] or ''):
            accounts.add(parsed['account_id'])
    return accounts.pop() if len(accounts) == 1 else None


# ---------------------------------------------------------------------------------------------
# AWS side


class ScalingAlarm:
    """Reads every pair at once, plans, and writes only what differs (nothing in check mode)."""

    def __init__(self, module, settings):
        self.module = module
        self.params = module.params
        # With `alarms`, diff entries are grouped under each pair's name.
        self.grouped = self.params.get('alarms') is not None
        self.pairs = pair_entries(self.params, settings)
        self.all_names = [name for _pair, _direction, name in _each(self.pairs)]
        self.tracker = DifferenceTracker()
        self.before, self.after = {}, {}
        self.autoscaling = AutoScaling(module.client('autoscaling'))
        self.cloudwatch = CloudWatch(module.client('cloudwatch'))
        self.placeholders = []

    def track(self, changes):
        """Record planned changes for `changed` and the diff; returns those that differ."""
        for change in changes:
            pair, key = change['pair'], change['key']
            if self.grouped:
                self.before.setdefault(pair['name'], {})[key] = change['before']
                self.after.setdefault(pair['name'], {})[key] = change['after']
            else:
                self.before[key] = change['before']
                self.after[key] = change['after']
            self.tracker.add('%s %s' % (pair['name'], key), change['before'], change['after'])
        return writes(changes)

    # -- reads --------------------------------------------------------------------------------

    def group_name(self, tolerate_missing):
        """The Auto Scaling group's name (not yet checked to exist); None when the node group is gone
        or has no group and `tolerate_missing` (state=absent)."""
        if self.params['autoscaling_group_name']:
            return self.params['autoscaling_group_name']
        return self._nodegroup_group(tolerate_missing)

    def locate(self, group, tolerate_missing):
        """(group, its policies among ours). The group's existence is only checked when a policy is
        missing: a policy cannot exist without its group. (None, {}) when the group is gone and
        `tolerate_missing`."""
        policies, error = None, None
        try:
            policies = self.autoscaling.describe_policies(group, self.all_names)
        except AWSServiceError as exc:
            if not isinstance(exc.exception, botocore.exceptions.ClientError):
                raise
            error = exc  # judged once we know whether the group exists
        if policies is not None and all(name in policies for name in self.all_names):
            return group, policies
        if not self.autoscaling.group_exists(group):
            if tolerate_missing:
                return None, {}
            self.module.fail_input(InputErrors([self._missing_group(group)]))
        if error is not None:
            raise error
        return group, policies

    def _missing_group(self, group):
        if self.params['autoscaling_group_name']:
            return ('autoscaling_group_name', 'no Auto Scaling group named %s' % group)
        return ('nodegroup_name', 'node group %s names Auto Scaling group %s, which does not exist' % (self.params['nodegroup_name'], group))

    def _nodegroup_group(self, tolerate_missing):
        cluster, nodegroup = self.params['cluster_name'], self.params['nodegroup_name']
        eks = EKS(self.module.client('eks'))
        try:
            described = eks.describe_nodegroup(cluster, nodegroup)
        except AWSServiceError as exc:
            raise AWSServiceError('read node group %s of cluster %s' % (nodegroup, cluster), exc.exception) from exc
        if described is None:
            if tolerate_missing:
                return None
            if self._cluster_missing(eks, cluster):
                self.module.fail_input(InputErrors([('cluster_name', 'no EKS cluster named %s' % cluster)]))
            self.module.fail_input(InputErrors([('nodegroup_name', 'no node group named %s in cluster %s' % (nodegroup, cluster))]))
        group = autoscaling_group_of(described)
        if not group:
            if tolerate_missing:
                return None
            self.module.fail_input(InputErrors([('nodegroup_name', 'node group %s of cluster %s has no Auto Scaling group yet (status %s)'
                                                 % (nodegroup, cluster, described.get('status')))]))
        return group

    @staticmethod
    def _cluster_missing(eks, cluster):
        try:
            return eks.describe_cluster(cluster) is None
        except AWSServiceError as exc:
            raise AWSServiceError('read cluster %s' % cluster, exc.exception) from exc

    # -- converge -----------------------------------------------------------------------------

    def present(self):
        group = self.group_name(tolerate_missing=False)
        self.set_expressions(group)
        group, policies = self.locate(group, tolerate_missing=False)
        alarms = self.cloudwatch.describe_alarms(self.all_names)
        self.check_kept_actions(policies, alarms)
        policies, arns = self.converge_policies(group, policies)
        alarms = self.converge_alarms(group, alarms, arns)
        return self.result(group, policies, alarms, arns)

    def set_expressions(self, group):
        """Each pair's Metrics Insights expression: the given query, or the one built for its metric."""
        for pair in self.pairs:
            params = pair['params']
            if params['query'] is not None:
                pair['expression'] = params['query']
                continue
            if params['metric'] == 'cpu' and "'" in group:
                self.module.fail_input(InputErrors([('nodegroup_name', "Auto Scaling group %s contains a single quote, which a Metrics "
                                                                       "Insights query cannot hold; give query" % group)]))
            pair['expression'] = render_query(params['metric'], group, pair['settings']['dimensions'])

    def converge_policies(self, group, policies):
        """Write the step-scaling policies that differ; returns the policies as read after any
        write, and every policy's ARN (a placeholder in check mode for one not written yet)."""
        check_mode = self.module.check_mode
        arns = dict((name, (policies.get(name) or {}).get('PolicyARN')) for name in self.all_names)
        changed = self.track(plan_policies(self.pairs, policies, self.params['estimated_instance_warmup']))
        if changed and not check_mode:
            for change in changed:
                arns[change['name']] = self.autoscaling.put_scaling_policy(policy_request(group, change['after']))
            policies = self.autoscaling.describe_policies(group, self.all_names)
        for name in self.all_names:
            arns[name] = arns[name] or (policies.get(name) or {}).get('PolicyARN')
            if arns[name] is None:
                if not check_mode:
                    self.module.fail_json(msg='Scaling policy %s was written but Auto Scaling reports no ARN for it' % name)
                arns[name] = placeholder_arn(self.module.region, group, name)
                self.placeholders.append(name)
        return policies, arns

    def converge_alarms(self, group, alarms, arns):
        """Write the alarms that differ, each wired to its policy's ARN; returns the alarms as read
        after any write."""
        changes = plan_alarms(self.pairs, alarms, arns, group, self.params)
        for change in changes:
            change['pair'].setdefault('desired', {})[change['direction']] = change['after']
        changed = self.track(changes)
        if changed and not self.module.check_mode:
            for change in changed:
                self.cloudwatch.put_metric_alarm(alarm_request(change['after']))
            alarms = self.cloudwatch.describe_alarms(self.all_names)
        return alarms

    def check_kept_actions(self, policies, alarms):
        """Before any write: the actions kept (purge_actions=false) and the given ones must fit CloudWatch's
        limit per state; a topic of another account than the alarms' is allowed (its access policy decides) but said."""
        errors = actions_over_limit(self.pairs, self.params, alarms, self.module.region)
        if errors:
            self.module.fail_input(InputErrors(errors))
        account = resources_account(policies, alarms)
        if account is None:
            return  # not checkable before the first policy or alarm exists
        for option in ACTION_FIELDS:
            for arn in self.params.get(option) or []:
                if SNS_TOPIC_ARN.match(arn).group('account') != account:
                    self.module.warn('%s: topic %s is in another account than the alarms (%s); its access policy must allow '
                                     'cloudwatch.amazonaws.com to publish to it' % (option, arn, account))

    def absent(self):
        group = self.group_name(tolerate_missing=True)
        policies = {}
        if group is not None:
            group, policies = self.locate(group, tolerate_missing=True)
        alarms = self.cloudwatch.describe_alarms(self.all_names)
        changed = self.track(plan_removal(self.pairs, policies, alarms))
        if not self.module.check_mode:
            self.cloudwatch.delete_alarms([c['name'] for c in changed if c['key'].endswith('_alarm')])
            for change in changed:
                if change['key'].endswith('_policy'):
                    self.autoscaling.delete_policy(group, change['name'])
        return {'autoscaling_group_name': group, 'policies': [], 'alarms': [], 'placeholder_arns': []}

    def result(self, group, policies, alarms, arns):
        policy_list, alarm_list = [], []
        for pair in self.pairs:
            params, settings = pair['params'], pair['settings']
            for direction in DIRECTIONS:
                name = pair['names'][direction]
                policy = policies.get(name) or {}
                policy_list.append({
                    'name': name,
                    'arn': policy.get('PolicyARN') or arns[name],
                    'adjustment': params['scale_%s_adjustment' % direction],
                    'estimated_instance_warmup': policy.get('EstimatedInstanceWarmup', self.params['estimated_instance_warmup']),
                })
                alarm = alarms.get(name) or {}
                alarm_list.append({
                    'name': name,
                    'arn': alarm.get('AlarmArn'),
                    'threshold': settings['scale_%s_threshold' % direction],
                    'comparison_operator': OPERATOR[direction],
                    'expression': normalise_expression(pair['expression']),
                    'period': self.params['period'],
                    'evaluation_periods': self.params['evaluation_periods'],
                    'alarm_actions': pair['desired'][direction]['alarm_actions'],
                    'ok_actions': pair['desired'][direction]['ok_actions'],
                    'insufficient_data_actions': pair['desired'][direction]['insufficient_data_actions'],
                })
        return {'autoscaling_group_name': group, 'policies': policy_list, 'alarms': alarm_list, 'placeholder_arns': self.placeholders}

    def run(self):
        result = self.present() if self.params['state'] == 'present' else self.absent()
        result['changed'] = self.tracker.has_differences
        if self.module._diff:
            result['diff'] = {'before': self.before, 'after': self.after}
        return result


PAIR_SPEC = dict(
    name=dict(type='str', required=True),
    metric=dict(type='str', choices=['gpu', 'cpu']),
    query=dict(type='str'),
    query_dimensions=dict(type='dict'),
    scale_out_threshold=dict(type='float'),
    scale_in_threshold=dict(type='float'),
    scale_out_adjustment=dict(type='int'),
    scale_in_adjustment=dict(type='int'),
    alarm_description=dict(type='str'),
)


def argument_spec():
    return dict(
        name=dict(type='str'),
        alarms=dict(type='list', elements='dict', options=PAIR_SPEC),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        autoscaling_group_name=dict(type='str'),
        cluster_name=dict(type='str'),
        nodegroup_name=dict(type='str'),
        metric=dict(type='str', choices=['gpu', 'cpu']),
        query=dict(type='str'),
        query_dimensions=dict(type='dict'),
        scale_out_threshold=dict(type='float'),
        scale_in_threshold=dict(type='float'),
        period=dict(type='int', default=120),
        evaluation_periods=dict(type='int', default=1),
        scale_out_adjustment=dict(type='int', default=1),
        scale_in_adjustment=dict(type='int', default=-1),
        estimated_instance_warmup=dict(type='int'),
        treat_missing_data=dict(type='str', choices=['missing', 'ignore', 'breaching', 'notBreaching'], default='missing'),
        alarm_description=dict(type='str'),
        alarm_actions=dict(type='list', elements='str'),
        ok_actions=dict(type='list', elements='str'),
        insufficient_data_actions=dict(type='list', elements='str'),
        purge_actions=dict(type='bool', default=False),
    )


# Options of one pair that `alarms` replaces (the adjustments are the entries' defaults instead).
EXCLUSIVE_WITH_ALARMS = ('name', 'metric', 'query', 'query_dimensions', 'scale_out_threshold', 'scale_in_threshold', 'alarm_description')


def main():
    mutually_exclusive = [('autoscaling_group_name', 'cluster_name'), ('autoscaling_group_name', 'nodegroup_name')]
    mutually_exclusive.extend((option, 'alarms') for option in EXCLUSIVE_WITH_ALARMS)
    module = GenaiAWSModule(
        argument_spec=argument_spec(),
        mutually_exclusive=mutually_exclusive,
        required_together=[('cluster_name', 'nodegroup_name')],
        required_one_of=[('autoscaling_group_name', 'cluster_name'), ('name', 'alarms')],
        supports_check_mode=True,
    )
    settings = module.validate(check_input, module.params, module.region)
    try:
        result = ScalingAlarm(module, settings).run()
    except AWSServiceError as exc:
        module.fail_service(exc, msg='Failed to %s' % exc.operation)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
