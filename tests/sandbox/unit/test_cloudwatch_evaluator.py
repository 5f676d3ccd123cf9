"""The evaluator's application of a step-scaling policy over time (sandbox/cloudwatch/evaluator.py:
Evaluator.scale) with an in-memory Auto Scaling group: instances a scale-out launched are left out
of the capacity while they warm up, so an alarm invoking the same +1 step every minute adds one
instance per warm-up, as Auto Scaling documents."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))
from sandbox.cloudwatch import evaluator  # noqa: E402

ALARM = {'AlarmName': 'gpu-out', 'Threshold': 40.0}
STEP = {'PolicyName': 'out', 'PolicyType': 'StepScaling', 'AdjustmentType': 'ChangeInCapacity',
        'StepAdjustments': [{'MetricIntervalLowerBound': 0.0, 'ScalingAdjustment': 1}]}


class FakeAutoScaling:
    def __init__(self, policy, desired=1, cooldown=300):
        self.policy = policy
        self.group = {'AutoScalingGroupName': 'g', 'DesiredCapacity': desired, 'MinSize': 1, 'MaxSize': 5, 'DefaultCooldown': cooldown}
        self.calls = []

    def describe_policies(self, **_):
        return {'ScalingPolicies': [self.policy]}

    def describe_auto_scaling_groups(self, **_):
        return {'AutoScalingGroups': [dict(self.group)]}

    def set_desired_capacity(self, AutoScalingGroupName, DesiredCapacity, HonorCooldown):  # noqa: N803 - boto3's names
        self.calls.append(DesiredCapacity)
        self.group['DesiredCapacity'] = DesiredCapacity


class FakeAws:
    def __init__(self, autoscaling):
        self.autoscaling = autoscaling


def _run(policy, times, cooldown=300, value=85.0):
    autoscaling = FakeAutoScaling(policy, cooldown=cooldown)
    ev = evaluator.Evaluator(FakeAws(autoscaling), clock_path=None, history_path=None)
    for now in times:
        ev.scale(ALARM, 'g', 'out', value, now)
    return autoscaling.calls


def test_the_same_step_every_minute_adds_one_instance_per_warmup():
    # Invoked every minute for 11 minutes: +1 at 0, 300 and 600 s (the group's default cooldown).
    assert _run(STEP, range(0, 660, 60)) == [2, 3, 4]


def test_the_policy_warmup_wins_over_the_group_default():
    assert _run(dict(STEP, EstimatedInstanceWarmup=120), range(0, 300, 60)) == [2, 3, 4]


def test_no_warmup_adds_at_every_invocation():
    assert _run(dict(STEP, EstimatedInstanceWarmup=0), range(0, 240, 60)) == [2, 3, 4, 5]


def test_a_larger_step_adds_only_the_difference_while_instances_warm_up():
    steps = dict(STEP, StepAdjustments=[{'MetricIntervalLowerBound': 0.0, 'MetricIntervalUpperBound': 20.0, 'ScalingAdjustment': 1},
                                        {'MetricIntervalLowerBound': 20.0, 'ScalingAdjustment': 3}])
    autoscaling = FakeAutoScaling(steps)
    ev = evaluator.Evaluator(FakeAws(autoscaling), clock_path=None, history_path=None)
    ev.scale(ALARM, 'g', 'out', 50.0, 0)     # breach 10: +1 -> 2
    ev.scale(ALARM, 'g', 'out', 70.0, 60)    # breach 30: +3 on the 1 settled -> 4 (2 more)
    ev.scale(ALARM, 'g', 'out', 70.0, 120)   # the same again: nothing
    assert autoscaling.calls == [2, 4]
