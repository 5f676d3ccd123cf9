"""scaling_alarm's planning: what is there and what is asked in, the changes out (no AWS access)."""
import pytest

from ansible_collections.genai.stack.plugins.modules import scaling_alarm

PARAMS = {'name': 'gpu', 'metric': 'gpu', 'query': None, 'alarm_description': None, 'scale_out_adjustment': 1,
          'scale_in_adjustment': -1, 'evaluation_periods': 1, 'period': 120, 'treat_missing_data': 'missing',
          'alarm_actions': None, 'ok_actions': None, 'insufficient_data_actions': None, 'purge_actions': False}
SETTINGS = {'pairs': [{'params': PARAMS, 'scale_out_threshold': 40.0, 'scale_in_threshold': 10.0, 'dimensions': None}]}
ARN = 'arn:aws:autoscaling:us-east-2:123456789012:scalingPolicy:0000:autoScalingGroupName/asg:policyName/%s'


def _pairs():
    pairs = scaling_alarm.pair_entries(PARAMS, SETTINGS)
    pairs[0]['expression'] = 'SELECT AVG(x) FROM y'
    return pairs


def _policy(name, adjustment, warmup=None):
    steps = [{'MetricIntervalLowerBound': 0.0, 'ScalingAdjustment': adjustment}] if adjustment > 0 else \
        [{'MetricIntervalUpperBound': 0.0, 'ScalingAdjustment': adjustment}]
    policy = {'PolicyName': name, 'PolicyType': 'StepScaling', 'AdjustmentType': 'ChangeInCapacity', 'StepAdjustments': steps,
              'MetricAggregationType': 'Average', 'Enabled': True, 'PolicyARN': ARN % name}
    if warmup is not None:
        policy['EstimatedInstanceWarmup'] = warmup
    return policy


def test_pair_entries_name_each_direction():
    assert _pairs()[0]['names'] == {'out': 'gpu-scale-out', 'in': 'gpu-scale-in'}


def test_new_policies_are_all_writes():
    changes = scaling_alarm.plan_policies(_pairs(), {}, None)
    assert [(c['key'], c['before']) for c in changes] == [('scale_out_policy', None), ('scale_in_policy', None)]
    assert scaling_alarm.writes(changes) == changes
    assert changes[0]['after']['step_adjustments'] == [{'lower_bound': 0.0, 'upper_bound': None, 'adjustment': 1}]


def test_existing_policies_keep_their_warmup_unless_one_is_given():
    policies = {'gpu-scale-out': _policy('gpu-scale-out', 1, warmup=300), 'gpu-scale-in': _policy('gpu-scale-in', -1, warmup=300)}
    assert scaling_alarm.writes(scaling_alarm.plan_policies(_pairs(), policies, None)) == []
    changes = scaling_alarm.writes(scaling_alarm.plan_policies(_pairs(), policies, 60))
    assert [(c['name'], c['before']['estimated_instance_warmup'], c['after']['estimated_instance_warmup']) for c in changes] == [
        ('gpu-scale-out', 300, 60), ('gpu-scale-in', 300, 60)]


def test_alarms_are_wired_to_their_policy_and_rerun_plans_no_write():
    arns = {'gpu-scale-out': ARN % 'gpu-scale-out', 'gpu-scale-in': ARN % 'gpu-scale-in'}
    changes = scaling_alarm.plan_alarms(_pairs(), {}, arns, 'asg', PARAMS)
    assert [c['after']['alarm_actions'] for c in changes] == [[arns['gpu-scale-out']], [arns['gpu-scale-in']]]
    assert [c['after']['comparison_operator'] for c in changes] == ['GreaterThanThreshold', 'LessThanThreshold']
    existing = {c['name']: dict(scaling_alarm.alarm_request(c['after']), AlarmArn='arn:aws:cloudwatch:us-east-2:123456789012:alarm:'
                                + c['name']) for c in changes}
    assert scaling_alarm.writes(scaling_alarm.plan_alarms(_pairs(), existing, arns, 'asg', PARAMS)) == []


def test_removal_plans_alarms_before_policies_and_only_what_exists():
    policies = {'gpu-scale-out': _policy('gpu-scale-out', 1)}
    alarms = {'gpu-scale-in': {'AlarmName': 'gpu-scale-in'}}
    changes = scaling_alarm.plan_removal(_pairs(), policies, alarms)
    assert [c['key'] for c in changes] == ['scale_out_alarm', 'scale_in_alarm', 'scale_out_policy', 'scale_in_policy']
    writes = [(c['key'], c['name']) for c in scaling_alarm.writes(changes)]
    assert writes == [('scale_in_alarm', 'gpu-scale-in'), ('scale_out_policy', 'gpu-scale-out')]


def test_actions_over_the_limit_count_the_kept_ones():
    topics = ['arn:aws:sns:us-east-2:123456789012:t%d' % i for i in range(4)]
    params = dict(PARAMS, alarm_actions=topics[:1])
    alarms = {'gpu-scale-out': {'AlarmActions': topics[1:] + ['arn:aws:sns:us-east-2:123456789012:other']}}
    errors = scaling_alarm.actions_over_limit(_pairs(), params, alarms, 'us-east-2')
    assert errors == [('alarm_actions', 'alarm gpu-scale-out would have 6 AlarmActions, CloudWatch takes at most 5: 4 set by another '
                                        'tool are kept unless purge_actions=true')]
    assert scaling_alarm.actions_over_limit(_pairs(), dict(params, purge_actions=True), alarms, 'us-east-2') == []


@pytest.mark.parametrize('policies, alarms, account', [
    ({}, {}, None),
    ({'p': {'PolicyARN': ARN % 'p'}}, {'a': {'AlarmArn': 'arn:aws:cloudwatch:us-east-2:123456789012:alarm:a'}}, '123456789012'),
    ({'p': {'PolicyARN': ARN % 'p'}}, {'a': {'AlarmArn': 'arn:aws:cloudwatch:us-east-2:210987654321:alarm:a'}}, None),
    ({'p': {'PolicyARN': 'not an arn'}}, {}, None),
])
def test_resources_account(policies, alarms, account):
    assert scaling_alarm.resources_account(policies, alarms) == account


@pytest.mark.parametrize('arn, expected', [
    (ARN % 'gpu-scale-out', True),
    (ARN % 'other-scale-out', False),
    ('arn:aws:sns:us-east-2:123456789012:policyName/gpu-scale-out', False),
    ('x' + ARN % 'gpu-scale-out', False),
])
def test_is_policy_arn_named(arn, expected):
    assert scaling_alarm.is_policy_arn_named(arn, 'gpu-scale-out') is expected
