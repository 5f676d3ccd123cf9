"""What an Auto Scaling step-scaling policy does to a group's desired capacity when its alarm
invokes it, following the documented rules (moto's ExecutePolicy ignores StepAdjustments, so the
sandbox applies them itself).

- The step is chosen by how far the metric is from the alarm's threshold (breach = value -
  threshold): above the threshold a step's lower bound is inclusive and its upper bound exclusive;
  below it, the lower bound is exclusive and the upper bound inclusive; a missing bound is
  unbounded.
- ChangeInCapacity adds the step's adjustment; ExactCapacity sets it; PercentChangeInCapacity adds
  that percentage of the current capacity, where a result between 0 and 1 (or -1 and 0) counts as
  1 (-1), a larger one is rounded towards zero, and MinAdjustmentMagnitude is the least change.
- The result stays within the group's minimum and maximum size.
- Instance warm-up: while scaling out, instances a scale-out launched less than the warm-up ago
  are not part of the current capacity the adjustment applies to, and the desired capacity only
  ever grows from such an invocation; so breaches that stay within the same step make one
  scaling activity per warm-up, not one per alarm invocation. The warm-up is the policy's
  EstimatedInstanceWarmup, else the group's DefaultInstanceWarmup, else its DefaultCooldown (300 s
  by default): the order the PutScalingPolicy reference gives. Scale-in is applied as it comes.
"""
from __future__ import annotations

import math


class ScalingError(ValueError):
    """A policy the sandbox does not apply (not step scaling, an unknown adjustment type)."""


def _bound(value, default):
    return default if value is None else float(value)


def choose_step(steps, breach):
    """The step adjustment for `breach` (metric value minus threshold), or None when no step covers it."""
    for step in steps:
        lower = _bound(step.get('MetricIntervalLowerBound'), -math.inf)
        upper = _bound(step.get('MetricIntervalUpperBound'), math.inf)
        if breach >= 0 and lower <= breach < upper:
            return step
        if breach < 0 and lower < breach <= upper:
            return step
    return None


def warmup_seconds(policy, group):
    """The warm-up of instances a step-scaling `policy` launches in `group` (DescribePolicies and
    DescribeAutoScalingGroups entries)."""
    for value in (policy.get('EstimatedInstanceWarmup'), group.get('DefaultInstanceWarmup'), group.get('DefaultCooldown')):
        if value is not None and int(value) >= 0:
            return int(value)
    return 300


def warming(launches, now, warmup):
    """Instances still warming up at `now`, from (time, count) of earlier scale-outs."""
    return sum(count for when, count in launches if now - when < warmup)


def new_capacity(policy, breach, current, min_size, max_size, warming_up=0):
    """(new desired capacity, explanation) for one invocation of `policy` (as DescribePolicies
    returns it) on a group with `current` desired capacity, `warming_up` of which are instances
    a scale-out launched within the warm-up."""
    target, why = _step_capacity(policy, breach, current, min_size, max_size)
    if target <= current or not warming_up:
        return target, why
    # Scaling out with instances warming up: the step applies to the capacity without them.
    settled, why = _step_capacity(policy, breach, current - warming_up, min_size, max_size)
    note = ' (%d instance(s) warming up not counted; desired %d -> %d)' % (warming_up, current, max(settled, current))
    return max(settled, current), why + note


def _step_capacity(policy, breach, current, min_size, max_size):
    if policy.get('PolicyType') != 'StepScaling':
        raise ScalingError('policy %s is %s; the sandbox applies StepScaling policies only'
                           % (policy.get('PolicyName'), policy.get('PolicyType')))
    step = choose_step(policy.get('StepAdjustments') or [], breach)
    if step is None:
        return current, 'no step of %s covers a breach of %g' % (policy.get('PolicyName'), breach)
    adjustment = int(step['ScalingAdjustment'])
    kind = policy.get('AdjustmentType')
    if kind == 'ChangeInCapacity':
        target = current + adjustment
    elif kind == 'ExactCapacity':
        target = adjustment
    elif kind == 'PercentChangeInCapacity':
        change = current * adjustment / 100.0
        if 0 < abs(change) < 1:
            change = math.copysign(1, change)
        else:
            change = math.trunc(change)
        least = int(policy.get('MinAdjustmentMagnitude') or 0)
        if change and abs(change) < least:
            change = math.copysign(least, change)
        target = current + int(change)
    else:
        raise ScalingError('adjustment type %r of policy %s is not one the sandbox applies' % (kind, policy.get('PolicyName')))
    clamped = max(min_size, min(max_size, target))
    return clamped, '%s: breach %+g, step %+d (%s): %d -> %d%s' % (
        policy.get('PolicyName'), breach, adjustment, kind, current, clamped,
        '' if clamped == target else ' (kept within %d..%d)' % (min_size, max_size))
