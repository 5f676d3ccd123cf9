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
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates both policies and both alarms.
      - V(absent) deletes both alarms, then both policies; any that do not exist are skipped. When the
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
      - What the alarms watch. Required when O(state=present).
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
    type: int
    default: 1
  scale_in_adjustment:
    description:
      - Instances added when the scale-in alarm fires. Must be negative.
    type: int
    default: -1
  estimated_instance_warmup:
    description:
      - Seconds until a new instance contributes to the metric, set on both policies.
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
notes:
  - The alarms' only actions are the policies; C(OKActions) and C(InsufficientDataActions) set by other
    tools are removed when an alarm is written.
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
    name: sandbox-gpu-nodes-gpu
    cluster_name: sandbox
    nodegroup_name: gpu-nodes
    metric: gpu

- name: Scale the CPU node group on CPU utilisation, two instances at a time
  genai.stack.scaling_alarm:
    name: sandbox-cpu-nodes-cpu
    cluster_name: sandbox
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

- name: Remove the alarms and policies
  genai.stack.scaling_alarm:
    name: sandbox-gpu-nodes-gpu
    cluster_name: sandbox
    nodegroup_name: gpu-nodes
    state: absent
"""

RETURN = r"""
autoscaling_group_name:
  description: The Auto Scaling group the policies belong to; null when it no longer exists (O(state=absent)).
  returned: always
  type: str
  sample: eks-gpu-nodes-5ac9a1b2-3c4d-5e6f-7a8b-9c0d1e2f3a4b
policies:
  description: The scale-out and scale-in policies, in that order; empty when O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Policy name.
      type: str
      sample: sandbox-gpu-nodes-gpu-scale-out
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
  description: The scale-out and scale-in alarms, in that order; empty when O(state=absent).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Alarm name.
      type: str
      sample: sandbox-gpu-nodes-gpu-scale-out
    arn:
      description: Alarm ARN; null in check mode when the alarm does not exist yet.
      type: str
      sample: arn:aws:cloudwatch:us-east-2:123456789012:alarm:sandbox-gpu-nodes-gpu-scale-out
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
      sample: SELECT AVG(nvidia_smi_utilization_gpu) FROM CWAgent WHERE ClusterName = 'sandbox' AND NodegroupName = 'gpu-nodes' AND NodegroupType = 'gpu'
    period:
      description: Period of the query in seconds.
      type: int
      sample: 120
    evaluation_periods:
      description: Number of periods evaluated.
      type: int
      sample: 1
    alarm_actions:
      description: ARNs run when the alarm fires (the policy).
      type: list
      elements: str
placeholder_arns:
  description: Policies whose ARN is not known yet because they would be created (check mode only).
  returned: always
  type: list
  elements: str
  sample: [sandbox-gpu-nodes-gpu-scale-out]
diff:
  description: Before and after of each policy and alarm that the module manages (all four, when they exist or would).
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

from ansible_collections.genai.stack.plugins.module_utils._aws import GenaiAWSModule, is_not_found
from ansible_collections.genai.stack.plugins.module_utils._diff import DifferenceTracker
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


# ---------------------------------------------------------------------------------------------
# Query rendering and input checks (no AWS access)


def quote_string(value):
    """A Metrics Insights string literal; single quotes cannot be escaped, so they are refused earlier."""
    return "'%s'" % value


def quote_identifier(name):
    return name if PLAIN_IDENTIFIER.match(name) else '"%s"' % name


def default_dimensions(cluster_name, nodegroup_name):
    """The dimensions the CloudWatch agent of our GPU node user data appends to nvidia_gpu metrics."""
    return {'ClusterName': cluster_name, 'NodegroupName': nodegroup_name, 'NodegroupType': 'gpu'}


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


def check_input(params):
    """Validate the whole input without AWS access; raise InputErrors naming every bad option.

    Returns the resolved settings: thresholds (defaults depend on `metric`) and query dimensions.
    """
    checker = Checker()
    present = params['state'] == 'present'
    name = params['name']
    if not name:
        checker.error('name', 'must not be empty')
    else:
        checker.match(NAME_PATTERN, name, 'name', 'a valid prefix (letters, digits and _ . - / : = + @, starting with a letter or digit)')
        longest = len(name) + max(len(s) for s in SUFFIX.values())
        checker.require(longest <= MAX_NAME, 'name',
                        'must be at most %d characters, so that name + "%s" fits the %d-character limit of policy and alarm names; got %d'
                        % (MAX_NAME - max(len(s) for s in SUFFIX.values()), SUFFIX['out'], MAX_NAME, len(name)))

    _check_text(checker, params['autoscaling_group_name'], 'autoscaling_group_name', MAX_NAME)
    if params['autoscaling_group_name'] and "'" in params['autoscaling_group_name'] and params['metric'] == 'cpu' and not params['query']:
        checker.error('autoscaling_group_name', "contains a single quote, which a Metrics Insights query cannot hold; give query")
    checker.match(EKS_NAME, params['cluster_name'], 'cluster_name', 'a valid EKS cluster name')
    checker.match(EKS_NAME, params['nodegroup_name'], 'nodegroup_name', 'a valid EKS node group name')

    resolved = {'scale_out_threshold': params['scale_out_threshold'], 'scale_in_threshold': params['scale_in_threshold'],
                'dimensions': None}
    if not present:
        checker.raise_if_any()
        return resolved

    metric = params['metric']
    custom_query = params['query'] is not None
    if custom_query:
        # Length is CloudWatch's limit on the expression, which is sent with whitespace collapsed.
        expression = normalise_expression(params['query'])
        if not expression:
            checker.error('query', 'must not be blank')
        else:
            checker.require(len(expression) <= MAX_EXPRESSION, 'query',
                            'must be at most %d characters (whitespace collapsed), got %d' % (MAX_EXPRESSION, len(expression)))
            if CONTROL_CHARACTERS.search(params['query'].translate({9: 32, 10: 32, 13: 32})):
                checker.error('query', 'must not contain control characters other than tabs and line breaks')

    dimensions = params['query_dimensions']
    if dimensions is not None:
        if metric != 'gpu':
            checker.error('query_dimensions', 'only applies to metric=gpu (the cpu query is built from the Auto Scaling group name)')
        elif custom_query:
            checker.error('query_dimensions', 'is not used when query is given; give one or the other')
        elif not dimensions:
            checker.error('query_dimensions', 'must name at least one dimension')
        for key, value in dimensions.items():
            if not key or '"' in key or CONTROL_CHARACTERS.search(key):
                checker.error('query_dimensions', 'dimension name %r must be non-empty, without double quotes or control characters' % key)
            if not isinstance(value, str) or not value:
                checker.error('query_dimensions', 'value of %r must be a non-empty string, got %r' % (key, value))
            elif "'" in value or CONTROL_CHARACTERS.search(value):
                checker.error('query_dimensions', 'value of %r must not contain single quotes or control characters' % key)
    elif metric == 'gpu' and not custom_query and params['autoscaling_group_name']:
        checker.error('metric', 'the gpu alarms query nvidia_smi_utilization_gpu by the ClusterName and NodegroupName dimensions, '
                                'which cannot be derived from autoscaling_group_name alone; give cluster_name and nodegroup_name '
                                'instead, or query_dimensions, or query')
    if metric == 'gpu' and not custom_query:
        resolved['dimensions'] = dict(dimensions) if dimensions else default_dimensions(params['cluster_name'], params['nodegroup_name'])

    default_out, default_in = DEFAULT_THRESHOLDS[metric]
    scale_out = default_out if params['scale_out_threshold'] is None else params['scale_out_threshold']
    scale_in = default_in if params['scale_in_threshold'] is None else params['scale_in_threshold']
    resolved.update(scale_out_threshold=float(scale_out), scale_in_threshold=float(scale_in))
    bounded = True
    for option, value in (('scale_out_threshold', scale_out), ('scale_in_threshold', scale_in)):
        if not custom_query:
            bounded = checker.in_range(value, option + ' (a percentage)', 0, 100) and bounded
        elif not math.isfinite(value):
            checker.error(option, 'must be a finite number')
            bounded = False
    if bounded and scale_in >= scale_out:
        checker.error('scale_in_threshold', 'must be below scale_out_threshold (%g), got %g' % (scale_out, scale_in))

    period = params['period']
    if not (period in (10, 30) or (period > 0 and period % 60 == 0)):
        checker.error('period', 'must be 10, 30 or a multiple of 60 seconds (a CloudWatch rule), got %d' % period)
    evaluation_periods = params['evaluation_periods']
    if checker.require(evaluation_periods >= 1, 'evaluation_periods', 'must be at least 1, got %d' % evaluation_periods) and period > 0:
        checker.require(period * evaluation_periods <= ONE_DAY, 'evaluation_periods',
                        'period x evaluation_periods must not exceed one day (%d s), got %d s' % (ONE_DAY, period * evaluation_periods))
    checker.require(params['scale_out_adjustment'] >= 1, 'scale_out_adjustment',
                    'must be positive (instances added on scale-out), got %d' % params['scale_out_adjustment'])
    checker.require(params['scale_in_adjustment'] <= -1, 'scale_in_adjustment',
                    'must be negative (instances removed on scale-in), got %d' % params['scale_in_adjustment'])
    if params['estimated_instance_warmup'] is not None:
        checker.in_range(params['estimated_instance_warmup'], 'estimated_instance_warmup', 0)
    description = params['alarm_description']
    if description is not None:
        longest = len(description) + len(' (scale out)')
        checker.require(longest <= MAX_DESCRIPTION, 'alarm_description',
                        'must be at most %d characters (with the " (scale out)" suffix), got %d' % (MAX_DESCRIPTION - len(' (scale out)'), len(description)))
    checker.raise_if_any()
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


def desired_alarm(direction, name, expression, params, settings, autoscaling_group_name, policy_arn):
    return {
        'name': name,
        'description': describe_alarm(direction, params, settings, autoscaling_group_name),
        'metrics': [{'id': QUERY_ID, 'expression': normalise_expression(expression), 'period': params['period'], 'return_data': True}],
        'comparison_operator': OPERATOR[direction],
        'threshold': settings['scale_out_threshold'] if direction == 'out' else settings['scale_in_threshold'],
        'evaluation_periods': params['evaluation_periods'],
        'treat_missing_data': params['treat_missing_data'],
        'actions_enabled': True,
        'alarm_actions': [policy_arn],
        'ok_actions': [],
        'insufficient_data_actions': [],
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
# AWS side


class ScalingAlarm:
    """Reads the pair, compares it with the request and writes only what differs."""

    def __init__(self, module, settings):
        self.module = module
        self.params = module.params
        self.settings = settings
        self.names = dict((d, self.params['name'] + SUFFIX[d]) for d in DIRECTIONS)
        self.tracker = DifferenceTracker()
        self.autoscaling = module.client('autoscaling')
        self.cloudwatch = module.client('cloudwatch')
        self.placeholders = []

    # -- reads --------------------------------------------------------------------------------

    def resolve_group(self, tolerate_missing):
        """The Auto Scaling group name; None when it is gone and `tolerate_missing` (state=absent)."""
        params = self.params
        if params['autoscaling_group_name']:
            name, option, missing = params['autoscaling_group_name'], 'autoscaling_group_name', 'no Auto Scaling group named %s'
        else:
            name = self._nodegroup_group(tolerate_missing)
            if name is None:
                return None
            option = 'nodegroup_name'
            missing = 'node group %s names Auto Scaling group %%s, which does not exist' % params['nodegroup_name']
        try:
            found = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name], aws_retry=True)['AutoScalingGroups']
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self.module.fail_json_aws(exc, msg='Failed to read Auto Scaling group %s' % name)
        if not found:
            if tolerate_missing:
                return None
            self.module.fail_input(InputErrors([(option, missing % name)]))
        return name

    def _nodegroup_group(self, tolerate_missing):
        params = self.params
        eks = self.module.client('eks')
        cluster, nodegroup = params['cluster_name'], params['nodegroup_name']
        try:
            described = eks.describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup, aws_retry=True)['nodegroup']
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if not is_not_found(exc):
                self.module.fail_json_aws(exc, msg='Failed to read node group %s of cluster %s' % (nodegroup, cluster))
            if tolerate_missing:
                return None
            self.module.fail_input(InputErrors([self._why_nodegroup_missing(eks, cluster, nodegroup)]))
        groups = (described.get('resources') or {}).get('autoScalingGroups') or []
        if not groups or not groups[0].get('name'):
            if tolerate_missing:
                return None
            self.module.fail_input(InputErrors([('nodegroup_name', 'node group %s of cluster %s has no Auto Scaling group yet (status %s)'
                                                 % (nodegroup, cluster, described.get('status')))]))
        return groups[0]['name']

    def _why_nodegroup_missing(self, eks, cluster, nodegroup):
        try:
            eks.describe_cluster(name=cluster, aws_retry=True)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            if is_not_found(exc):
                return ('cluster_name', 'no EKS cluster named %s' % cluster)
            self.module.fail_json_aws(exc, msg='Failed to read cluster %s' % cluster)
        return ('nodegroup_name', 'no node group named %s in cluster %s' % (nodegroup, cluster))

    def read_policies(self, group):
        if group is None:
            return {}
        try:
            policies = self.autoscaling.describe_policies(AutoScalingGroupName=group, PolicyNames=list(self.names.values()),
                                                          aws_retry=True)['ScalingPolicies']
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self.module.fail_json_aws(exc, msg='Failed to read scaling policies of %s' % group)
        return dict((p['PolicyName'], p) for p in policies)

    def read_alarms(self):
        try:
            alarms = self.cloudwatch.describe_alarms(AlarmNames=list(self.names.values()), AlarmTypes=['MetricAlarm'],
                                                     aws_retry=True)['MetricAlarms']
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self.module.fail_json_aws(exc, msg='Failed to read alarms %s' % ', '.join(self.names.values()))
        return dict((a['AlarmName'], a) for a in alarms)

    # -- converge -----------------------------------------------------------------------------

    def present(self):
        params, check_mode = self.params, self.module.check_mode
        group = self.resolve_group(tolerate_missing=False)
        if params['query'] is not None:
            expression = params['query']
        else:
            expression = render_query(params['metric'], group, self.settings['dimensions'])
            if params['metric'] == 'cpu' and "'" in group:
                self.module.fail_input(InputErrors([('nodegroup_name', "Auto Scaling group %s contains a single quote, which a Metrics "
                                                                       "Insights query cannot hold; give query" % group)]))
        policies = self.read_policies(group)
        alarms = self.read_alarms()

        arns, wrote_policy = {}, False
        for direction in DIRECTIONS:
            name = self.names[direction]
            existing = policies.get(name)
            before = normalise_policy(existing)
            warmup = params['estimated_instance_warmup']
            if warmup is None and before is not None:
                warmup = before['estimated_instance_warmup']
            adjustment = params['scale_out_adjustment'] if direction == 'out' else params['scale_in_adjustment']
            after = desired_policy(direction, name, adjustment, warmup)
            arns[direction] = existing.get('PolicyARN') if existing else None
            if self.tracker.add('scale_%s_policy' % direction, before, after) and not check_mode:
                arns[direction] = self._put_policy(group, after)
                wrote_policy = True
        if wrote_policy:
            policies = self.read_policies(group)
        for direction in DIRECTIONS:
            name = self.names[direction]
            arns[direction] = arns[direction] or (policies.get(name) or {}).get('PolicyARN')
            if arns[direction] is None:
                if not check_mode:
                    self.module.fail_json(msg='Scaling policy %s was written but Auto Scaling reports no ARN for it' % name)
                arns[direction] = placeholder_arn(self.module.region, group, name)
                self.placeholders.append(name)

        wrote_alarm = False
        for direction in DIRECTIONS:
            name = self.names[direction]
            after = desired_alarm(direction, name, expression, params, self.settings, group, arns[direction])
            if self.tracker.add('scale_%s_alarm' % direction, normalise_alarm(alarms.get(name)), after) and not check_mode:
                self._put_alarm(after)
                wrote_alarm = True
        if wrote_alarm:
            alarms = self.read_alarms()
        return self.result(group, policies, alarms, arns, expression)

    def _put_policy(self, group, policy):
        try:
            response = self.autoscaling.put_scaling_policy(aws_retry=True, **policy_request(group, policy))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self.module.fail_json_aws(exc, msg='Failed to write scaling policy %s' % policy['name'])
        # moto (before the sandbox's patch) answers without PolicyARN; the re-read policy has it.
        return response.get('PolicyARN')

    def _put_alarm(self, alarm):
        try:
            self.cloudwatch.put_metric_alarm(aws_retry=True, **alarm_request(alarm))
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            self.module.fail_json_aws(exc, msg='Failed to write alarm %s' % alarm['name'])

    def absent(self):
        check_mode = self.module.check_mode
        group = self.resolve_group(tolerate_missing=True)
        policies = self.read_policies(group)
        alarms = self.read_alarms()
        # Alarms first: an alarm must not point at a policy that no longer exists.
        doomed_alarms = []
        for direction in DIRECTIONS:
            name = self.names[direction]
            if self.tracker.add('scale_%s_alarm' % direction, normalise_alarm(alarms.get(name)), None):
                doomed_alarms.append(name)
        doomed_policies = []
        for direction in DIRECTIONS:
            name = self.names[direction]
            if self.tracker.add('scale_%s_policy' % direction, normalise_policy(policies.get(name)), None):
                doomed_policies.append(name)
        if not check_mode:
            if doomed_alarms:
                try:
                    self.cloudwatch.delete_alarms(AlarmNames=doomed_alarms, aws_retry=True)
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                    self.module.fail_json_aws(exc, msg='Failed to delete alarms %s' % ', '.join(doomed_alarms))
            for name in doomed_policies:
                try:
                    self.autoscaling.delete_policy(AutoScalingGroupName=group, PolicyName=name, aws_retry=True)
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                    if not is_not_found(exc):
                        self.module.fail_json_aws(exc, msg='Failed to delete scaling policy %s' % name)
        return {'autoscaling_group_name': group, 'policies': [], 'alarms': [], 'placeholder_arns': []}

    def result(self, group, policies, alarms, arns, expression):
        policy_list, alarm_list = [], []
        for direction in DIRECTIONS:
            name = self.names[direction]
            policy = policies.get(name) or {}
            policy_list.append({
                'name': name,
                'arn': policy.get('PolicyARN') or arns[direction],
                'adjustment': self.params['scale_out_adjustment'] if direction == 'out' else self.params['scale_in_adjustment'],
                'estimated_instance_warmup': policy.get('EstimatedInstanceWarmup', self.params['estimated_instance_warmup']),
            })
            alarm = alarms.get(name) or {}
            alarm_list.append({
                'name': name,
                'arn': alarm.get('AlarmArn'),
                'threshold': self.settings['scale_out_threshold'] if direction == 'out' else self.settings['scale_in_threshold'],
                'comparison_operator': OPERATOR[direction],
                'expression': normalise_expression(expression),
                'period': self.params['period'],
                'evaluation_periods': self.params['evaluation_periods'],
                'alarm_actions': [policy.get('PolicyARN') or arns[direction]],
            })
        return {'autoscaling_group_name': group, 'policies': policy_list, 'alarms': alarm_list, 'placeholder_arns': self.placeholders}

    def run(self):
        result = self.present() if self.params['state'] == 'present' else self.absent()
        result['changed'] = self.tracker.has_differences
        if self.module._diff:
            result['diff'] = self.tracker.diff()
        return result


def argument_spec():
    return dict(
        name=dict(type='str', required=True),
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
    )


def main():
    module = GenaiAWSModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[('autoscaling_group_name', 'cluster_name'), ('autoscaling_group_name', 'nodegroup_name')],
        required_together=[('cluster_name', 'nodegroup_name')],
        required_one_of=[('autoscaling_group_name', 'cluster_name')],
        required_if=[('state', 'present', ['metric'])],
        supports_check_mode=True,
    )
    settings = module.validate(check_input, module.params)
    module.exit_json(**ScalingAlarm(module, settings).run())


if __name__ == '__main__':
    main()
