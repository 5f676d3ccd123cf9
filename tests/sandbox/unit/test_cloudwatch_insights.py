"""The sandbox's Metrics Insights subset (sandbox/cloudwatch/insights.py) and alarm evaluation
(sandbox/cloudwatch/alarms.py): each supported query form against known series and datapoints
gives the value CloudWatch's documented semantics give; unsupported forms fail with an error that
names them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sandbox.cloudwatch import alarms, insights, scaling  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def metric(name, namespace='CWAgent', **dims):
    return {'Namespace': namespace, 'MetricName': name, 'Dimensions': [{'Name': k, 'Value': v} for k, v in dims.items()]}


GPU_A = metric('nvidia_smi_utilization_gpu', ClusterName='sandbox', NodegroupName='gpu-nodes', NodegroupType='gpu', InstanceId='i-a')
GPU_B = metric('nvidia_smi_utilization_gpu', ClusterName='sandbox', NodegroupName='gpu-nodes', NodegroupType='gpu', InstanceId='i-b')
GPU_OTHER = metric('nvidia_smi_utilization_gpu', ClusterName='other', NodegroupName='gpu-nodes', NodegroupType='gpu', InstanceId='i-c')
CPU_ASG = metric('CPUUtilization', 'AWS/EC2', AutoScalingGroupName='asg-1')
CPU_INSTANCE = metric('CPUUtilization', 'AWS/EC2', AutoScalingGroupName='asg-1', InstanceId='i-a')
CPU_BARE = metric('CPUUtilization', 'AWS/EC2')


def test_the_collections_own_queries_parse_and_select_their_series():
    # The two forms plugins/modules/scaling_alarm.py writes (read from the module, so a change there
    # is tested here too).
    source = (ROOT / 'plugins' / 'modules' / 'scaling_alarm.py').read_text(encoding='utf-8')
    gpu_template = [line for line in source.splitlines() if line.startswith('GPU_QUERY = ')][0].split(' = ', 1)[1].strip("'")
    cpu_template = [line for line in source.splitlines() if line.startswith('CPU_QUERY = ')][0].split(' = ', 1)[1].strip("'")
    gpu = insights.parse(gpu_template.format(where="ClusterName = 'sandbox' AND NodegroupName = 'gpu-nodes' AND NodegroupType = 'gpu'"))
    assert (gpu.function, gpu.metric, gpu.namespace, gpu.schema_keys) == ('AVG', 'nvidia_smi_utilization_gpu', 'CWAgent', None)
    assert [m for m in (GPU_A, GPU_B, GPU_OTHER) if gpu.matches(m)] == [GPU_A, GPU_B]
    cpu = insights.parse(cpu_template.format(asg="'asg-1'"))
    assert cpu.schema_keys == ('AutoScalingGroupName',)
    # SCHEMA: exactly that dimension set; the per-instance series and the bare one are not in it.
    assert [m for m in (CPU_ASG, CPU_INSTANCE, CPU_BARE) if cpu.matches(m)] == [CPU_ASG]


@pytest.mark.parametrize('query, selected', [
    ('SELECT AVG(CPUUtilization) FROM "AWS/EC2"', [CPU_ASG, CPU_INSTANCE, CPU_BARE]),
    ('SELECT AVG(CPUUtilization) FROM SCHEMA("AWS/EC2")', [CPU_BARE]),
    ('SELECT AVG(CPUUtilization) FROM SCHEMA("AWS/EC2", InstanceId, AutoScalingGroupName)', [CPU_INSTANCE]),
    ("SELECT MAX(CPUUtilization) FROM \"AWS/EC2\" WHERE InstanceId != 'i-a'", [CPU_ASG, CPU_BARE]),
    ("select sum(CPUUtilization) from \"AWS/EC2\" where AutoScalingGroupName = 'asg-1' and InstanceId = 'i-a'", [CPU_INSTANCE]),
    ("SELECT AVG(cpuutilization) FROM \"AWS/EC2\"", []),  # identifiers are case-sensitive
    ("SELECT AVG(CPUUtilization) FROM \"aws/ec2\"", []),
])
def test_series_selection(query, selected):
    parsed = insights.parse(query)
    assert [m for m in (CPU_ASG, CPU_INSTANCE, CPU_BARE) if parsed.matches(m)] == selected


# Two series in one period: A had observations 10, 30 (Sum 40, 2 samples), B had 80 (1 sample).
STATS = [{'Sum': 40.0, 'SampleCount': 2.0, 'Maximum': 30.0, 'Minimum': 10.0},
         {'Sum': 80.0, 'SampleCount': 1.0, 'Maximum': 80.0, 'Minimum': 80.0}]


@pytest.mark.parametrize('function, expected', [
    ('AVG', 40.0),  # (10 + 30 + 80) / 3 observations, not the mean of the series' means (50)
    ('COUNT', 3.0),
    ('SUM', 120.0),
    ('MAX', 80.0),
    ('MIN', 10.0),
])
def test_aggregate_over_observations(function, expected):
    assert insights.aggregate(function, STATS) == pytest.approx(expected)


def test_aggregate_without_observations_is_missing():
    assert insights.aggregate('AVG', []) is None
    assert insights.aggregate('MAX', [{'Sum': 0.0, 'SampleCount': 0.0, 'Maximum': 0.0, 'Minimum': 0.0}]) is None


@pytest.mark.parametrize('query, words', [
    ('SELECT AVG(CPUUtilization) FROM "AWS/EC2" GROUP BY InstanceId', 'GROUP BY'),
    ('SELECT AVG(CPUUtilization) FROM "AWS/EC2" ORDER BY AVG() DESC', 'ORDER BY'),
    ('SELECT AVG(CPUUtilization) FROM "AWS/EC2" LIMIT 5', 'LIMIT'),
    ("SELECT AVG(CPUUtilization) FROM \"AWS/EC2\" WHERE InstanceId = 'a' OR InstanceId = 'b'", 'OR'),
    ("SELECT AVG(CPUUtilization) FROM \"AWS/EC2\" WHERE InstanceId LIKE 'i-%'", 'LIKE'),
    ("SELECT AVG(CPUUtilization) FROM \"AWS/EC2\" WHERE (InstanceId = 'a')", 'parentheses'),
    ('SELECT P90(CPUUtilization) FROM "AWS/EC2"', "'P90' is not one of"),
    ("SELECT AVG(CPUUtilization) FROM \"AWS/EC2\" WHERE InstanceId = i-a", 'quoted string'),
    ('SELECT AVG(CPUUtilization)', 'ends too early'),
    ('', 'empty'),
    ('SELECT AVG(CPUUtilization) FROM "AWS/EC2" ;', "unexpected character ';'"),
])
def test_unsupported_or_malformed_queries_are_refused_by_name(query, words):
    with pytest.raises(insights.QueryError, match=None) as error:
        insights.parse(query)
    assert words in str(error.value)


def alarm(**kw):
    base = {'ComparisonOperator': 'GreaterThanThreshold', 'Threshold': 40.0, 'EvaluationPeriods': 1, 'TreatMissingData': 'missing'}
    base.update(kw)
    return base


@pytest.mark.parametrize('kw, values, current, expected', [
    ({}, [55.0], 'OK', 'ALARM'),
    ({}, [40.0], 'ALARM', 'OK'),  # not greater than the threshold
    ({'ComparisonOperator': 'GreaterThanOrEqualToThreshold'}, [40.0], 'OK', 'ALARM'),
    ({'ComparisonOperator': 'LessThanThreshold', 'Threshold': 10.0}, [3.0], 'OK', 'ALARM'),
    ({}, [None], 'OK', 'INSUFFICIENT_DATA'),  # missing: no data in the window
    ({'TreatMissingData': 'ignore'}, [None], 'ALARM', 'ALARM'),  # ignore: the state is kept
    ({'TreatMissingData': 'breaching'}, [None], 'OK', 'ALARM'),
    ({'TreatMissingData': 'notBreaching'}, [None], 'ALARM', 'OK'),
    # 2 of 3: two breaching periods are enough, one is not.
    ({'EvaluationPeriods': 3, 'DatapointsToAlarm': 2}, [50.0, 20.0, 60.0], 'OK', 'ALARM'),
    ({'EvaluationPeriods': 3, 'DatapointsToAlarm': 2}, [50.0, 20.0, 30.0], 'ALARM', 'OK'),
    # Only the last EvaluationPeriods count; fewer values than periods are missing ones.
    ({'EvaluationPeriods': 2}, [90.0, 90.0, 10.0, 90.0], 'OK', 'OK'),
    ({'EvaluationPeriods': 3, 'DatapointsToAlarm': 1}, [45.0], 'OK', 'ALARM'),
    # Fewer periods with data than M: the present ones decide (all breaching: ALARM).
    ({'EvaluationPeriods': 3}, [None, 55.0, None], 'OK', 'ALARM'),
    ({'EvaluationPeriods': 3}, [None, 55.0, 30.0], 'ALARM', 'OK'),
    ({'EvaluationPeriods': 3, 'TreatMissingData': 'notBreaching'}, [None, 55.0, None], 'OK', 'OK'),
])
def test_alarm_state(kw, values, current, expected):
    state, reason = alarms.evaluate(alarm(**kw), values, current)
    assert state == expected, reason


def test_alarm_reason_shows_the_datapoints():
    state, reason = alarms.evaluate(alarm(EvaluationPeriods=2), [None, 55.5])
    assert state == 'ALARM' and '[-, 55.5]' in reason and 'greater than the threshold (40)' in reason


def test_unknown_operator_or_treatment_is_refused():
    with pytest.raises(alarms.AlarmError, match='LessThanLowerOrGreaterThanUpperThreshold'):
        alarms.evaluate(alarm(ComparisonOperator='LessThanLowerOrGreaterThanUpperThreshold'), [1.0])
    with pytest.raises(alarms.AlarmError, match='sometimes'):
        alarms.evaluate(alarm(TreatMissingData='sometimes'), [1.0])


def policy(kind='ChangeInCapacity', steps=None, **kw):
    return dict({'PolicyName': 'p', 'PolicyType': 'StepScaling', 'AdjustmentType': kind,
                 'StepAdjustments': steps if steps is not None else [{'MetricIntervalLowerBound': 0.0, 'ScalingAdjustment': 1}]}, **kw)


TWO_STEPS = [{'MetricIntervalLowerBound': 0.0, 'MetricIntervalUpperBound': 20.0, 'ScalingAdjustment': 1},
             {'MetricIntervalLowerBound': 20.0, 'ScalingAdjustment': 3}]
BELOW = [{'MetricIntervalUpperBound': 0.0, 'MetricIntervalLowerBound': -10.0, 'ScalingAdjustment': -1},
         {'MetricIntervalUpperBound': -10.0, 'ScalingAdjustment': -2}]


@pytest.mark.parametrize('steps, breach, adjustment', [
    (TWO_STEPS, 0.0, 1),     # above: lower bound inclusive
    (TWO_STEPS, 19.9, 1),
    (TWO_STEPS, 20.0, 3),    # upper bound exclusive
    (BELOW, -10.0, -2),      # below: lower bound exclusive (so -10 is the next step's), upper bound inclusive
    (BELOW, -9.9, -1),
    (BELOW, -10.5, -2),
    (BELOW, -0.1, -1),
    (TWO_STEPS, -5.0, None),  # no step covers it
])
def test_step_choice(steps, breach, adjustment):
    step = scaling.choose_step(steps, breach)
    assert (step['ScalingAdjustment'] if step else None) == adjustment


@pytest.mark.parametrize('pol, breach, current, expected', [
    (policy(), 5.0, 2, 3),
    (policy(), 5.0, 4, 4),                                        # kept at the maximum (4)
    (policy(steps=BELOW), -15.0, 2, 1),                           # kept at the minimum (1)
    (policy('ExactCapacity', [{'MetricIntervalLowerBound': 0.0, 'ScalingAdjustment': 3}]), 1.0, 1, 3),
    (policy('PercentChangeInCapacity', [{'MetricIntervalLowerBound': 0.0, 'ScalingAdjustment': 50}]), 1.0, 1, 2),   # 0.5 counts as 1
    (policy('PercentChangeInCapacity', [{'MetricIntervalLowerBound': 0.0, 'ScalingAdjustment': 50}]), 1.0, 3, 4),   # 1.5 rounds down
    (policy('PercentChangeInCapacity', [{'MetricIntervalLowerBound': 0.0, 'ScalingAdjustment': 10}],
            MinAdjustmentMagnitude=2), 1.0, 1, 3),                                                              # at least 2
    (policy(steps=TWO_STEPS), -1.0, 2, 2),                        # no step: unchanged
])
def test_new_capacity(pol, breach, current, expected):
    assert scaling.new_capacity(pol, breach, current, 1, 4)[0] == expected


@pytest.mark.parametrize('steps, breach, current, warming_up, expected', [
    (None, 5.0, 2, 1, 2),           # the same step again while the last added instance warms up: one activity
    (None, 5.0, 2, 0, 3),           # warmed up: the step applies again
    (TWO_STEPS, 25.0, 2, 1, 4),     # a larger step while one warms up: only the difference is added (1 + 3)
    (TWO_STEPS, 5.0, 3, 2, 3),      # a smaller step than the one in progress never lowers the capacity
    (BELOW, -15.0, 4, 2, 2),        # scale-in is applied as it comes
])
def test_warming_instances_are_not_part_of_the_capacity_a_scale_out_adds_to(steps, breach, current, warming_up, expected):
    pol = policy(steps=steps) if steps is not None else policy()
    assert scaling.new_capacity(pol, breach, current, 1, 6, warming_up)[0] == expected


@pytest.mark.parametrize('pol, group, seconds', [
    (policy(EstimatedInstanceWarmup=60), {'DefaultInstanceWarmup': 120, 'DefaultCooldown': 300}, 60),
    (policy(), {'DefaultInstanceWarmup': 120, 'DefaultCooldown': 300}, 120),
    (policy(), {'DefaultInstanceWarmup': -1, 'DefaultCooldown': 200}, 200),   # -1: turned off
    (policy(), {}, 300),
])
def test_warmup_seconds_follow_the_documented_fallbacks(pol, group, seconds):
    assert scaling.warmup_seconds(pol, group) == seconds


def test_warming_counts_launches_within_the_warmup():
    assert scaling.warming([(0, 1), (100, 2), (250, 1)], 310, 300) == 3
    assert scaling.warming([(0, 1)], 300, 300) == 0


def test_only_step_scaling_is_applied():
    with pytest.raises(scaling.ScalingError, match='TargetTrackingScaling'):
        scaling.new_capacity(policy(PolicyType='TargetTrackingScaling'), 1.0, 1, 1, 4)
