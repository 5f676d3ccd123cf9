"""The state of a CloudWatch metric alarm from its most recent periods, as CloudWatch decides it.

`evaluate(alarm, values, current_state)`: `alarm` as DescribeAlarms returns it (ComparisonOperator,
Threshold, EvaluationPeriods, DatapointsToAlarm, TreatMissingData), `values` the alarm's metric
value for each of its last EvaluationPeriods periods, oldest first, None for a period without data.
Returns (state, reason).

Rules (CloudWatch's documented "M out of N" evaluation; M = DatapointsToAlarm, default N):
- a value breaches when it compares true with the threshold (GreaterThanThreshold, ...);
- TreatMissingData decides what a missing period is: `breaching` (counts as breaching),
  `notBreaching` (counts as not breaching), `ignore` (the alarm keeps its state when it cannot
  decide) and `missing` (the default: not counted; with no data in the whole window, the alarm
  goes to INSUFFICIENT_DATA);
- ALARM when at least M periods breach; OK when fewer breach and at least one period has (or is
  treated as having) data; otherwise INSUFFICIENT_DATA (`missing`) or the current state (`ignore`);
- with `missing` or `ignore`, when fewer periods have data than M, the ones present decide: ALARM
  when every one of them breaches (the documentation's example: one breaching point among missing
  ones puts a 3-out-of-3 alarm in ALARM), OK otherwise.
"""
from __future__ import annotations

OPERATORS = {
    'GreaterThanThreshold': lambda v, t: v > t,
    'GreaterThanOrEqualToThreshold': lambda v, t: v >= t,
    'LessThanThreshold': lambda v, t: v < t,
    'LessThanOrEqualToThreshold': lambda v, t: v <= t,
}
TREATMENTS = ('missing', 'ignore', 'breaching', 'notBreaching')


class AlarmError(ValueError):
    """An alarm the sandbox cannot evaluate (an operator or treatment it does not know)."""


def evaluate(alarm, values, current_state='INSUFFICIENT_DATA'):
    operator = alarm.get('ComparisonOperator')
    if operator not in OPERATORS:
        raise AlarmError('comparison operator %r is not evaluated by the sandbox (supported: %s)' % (operator, ', '.join(OPERATORS)))
    treatment = alarm.get('TreatMissingData') or 'missing'
    if treatment not in TREATMENTS:
        raise AlarmError('TreatMissingData %r is not one of %s' % (treatment, ', '.join(TREATMENTS)))
    periods = int(alarm['EvaluationPeriods'])
    needed = int(alarm.get('DatapointsToAlarm') or periods)
    window = list(values)[-periods:]
    window = [None] * (periods - len(window)) + window
    threshold = float(alarm['Threshold'])
    breaching = sum(1 for v in window if v is not None and OPERATORS[operator](v, threshold))
    present = sum(1 for v in window if v is not None)
    missing = periods - present
    if treatment == 'breaching':
        breaching += missing
        present = periods
    elif treatment == 'notBreaching':
        present = periods
    shown = ', '.join('-' if v is None else '%g' % v for v in window)
    if 0 < present < needed and breaching == present:
        needed = present
    if breaching >= needed:
        return 'ALARM', 'Threshold Crossed: %d of %d datapoints [%s] were %s the threshold (%g)' % (
            breaching, periods, shown, _words(operator), threshold)
    if present == 0:
        if treatment == 'ignore':
            return current_state, 'no datapoint in %d periods; missing data ignored, state kept' % periods
        return 'INSUFFICIENT_DATA', 'Insufficient Data: no datapoint in the last %d periods' % periods
    return 'OK', 'Threshold Crossed: %d of %d datapoints [%s] were %s the threshold (%g); %d needed for ALARM' % (
        breaching, periods, shown, _words(operator), threshold, needed)


def _words(operator):
    return {'GreaterThanThreshold': 'greater than', 'GreaterThanOrEqualToThreshold': 'greater than or equal to',
            'LessThanThreshold': 'less than', 'LessThanOrEqualToThreshold': 'less than or equal to'}[operator]
