"""The sandbox's CloudWatch alarm evaluator (component 45-alarms): moto stores alarms and metric
data but never evaluates an alarm, so nothing the alarms are wired to would ever happen. Every
few seconds this process does what CloudWatch does:

- reads every metric alarm of the region (DescribeAlarms), with a Metrics Insights query
  (sandbox/cloudwatch/insights.py: the subset it evaluates; anything else is refused loudly: the
  alarm goes to INSUFFICIENT_DATA with a reason starting "sandbox cannot evaluate", and the log
  says why) or a plain metric and statistic;
- computes the alarm's value for each of its last EvaluationPeriods complete periods from the
  stored datapoints (ListMetrics, then GetMetricStatistics per matched series: Sum, SampleCount,
  Maximum, Minimum, combined as the query's function asks);
- decides the state (sandbox/cloudwatch/alarms.py) and records a change (SetAlarmState);
- runs the actions of the new state: an Auto Scaling policy is applied as step scaling does
  (sandbox/cloudwatch/scaling.py; moto's ExecutePolicy ignores step adjustments) on entering the
  state and again every minute while the alarm stays in it, as CloudWatch invokes Auto Scaling
  actions, with the instances a scale-out launched within the policy's warm-up left out of the
  capacity the next scale-out adds to; other actions (SNS) are only logged.

Time is the sandbox CloudWatch clock (sandbox/cloudwatch/clock.py), which a test may run faster
than the wall clock; the log says the speed whenever it changes. Each evaluation that changes a
state or capacity is appended to the history file (JSON lines) for tests and pictures.

Towards the emulator it signs as `sandbox-alarms` and marks its requests internal (not journaled,
never handed a fault meant for the code under test), like the node mirror.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from sandbox.cloudwatch import alarms, clock, insights, scaling  # noqa: E402

CLIENT_ID = 'sandbox-alarms'
INTERNAL_HEADER = 'x-sandbox-internal'
REFUSED = 'sandbox cannot evaluate this alarm: '
STATISTICS = {'Average': 'AVG', 'Sum': 'SUM', 'Maximum': 'MAX', 'Minimum': 'MIN', 'SampleCount': 'COUNT'}
POLICY_ARN = re.compile(r'^arn:[^:]+:autoscaling:[^:]*:[^:]*:scalingPolicy:[^:]*:autoScalingGroupName/(?P<group>[^:]+):policyName/(?P<policy>.+)$')
REINVOKE_SECONDS = 60
LOG = logging.getLogger('sandbox-alarms')


class Refused(Exception):
    """An alarm outside what the evaluator supports."""


def alarm_query(alarm):
    """(Query, period) of an alarm: its one returned Metrics Insights expression, or its plain metric."""
    metrics = alarm.get('Metrics')
    if metrics:
        returned = [m for m in metrics if m.get('ReturnData', True)]
        if len(returned) != 1:
            raise Refused('%d metric queries return data; exactly one must' % len(returned))
        entry = returned[0]
        if 'Expression' not in entry:
            stat = entry.get('MetricStat') or {}
            return _plain(stat.get('Metric') or {}, stat.get('Stat'), stat.get('Period')), int(stat.get('Period') or 60)
        if len(metrics) != 1:
            raise Refused('a query made of several metric entries (math expressions) is not evaluated')
        try:
            return insights.parse(entry['Expression']), int(entry.get('Period') or 60)
        except insights.QueryError as exc:
            raise Refused(str(exc)) from exc
    if alarm.get('ExtendedStatistic'):
        raise Refused('extended statistic %s is not evaluated' % alarm['ExtendedStatistic'])
    return _plain(alarm, alarm.get('Statistic'), alarm.get('Period')), int(alarm.get('Period') or 60)


def _plain(metric, statistic, _period):
    if statistic not in STATISTICS:
        raise Refused('statistic %r is not evaluated (supported: %s)' % (statistic, ', '.join(STATISTICS)))
    dimensions = metric.get('Dimensions') or []
    return insights.Query(STATISTICS[statistic], metric.get('MetricName'), metric.get('Namespace'),
                          tuple(d['Name'] for d in dimensions), tuple((d['Name'], '=', d['Value']) for d in dimensions))


class Aws:
    def __init__(self, region):
        import boto3.session

        session = boto3.session.Session(aws_access_key_id=CLIENT_ID, aws_secret_access_key=CLIENT_ID, region_name=region)
        self.cloudwatch = session.client('cloudwatch')
        self.autoscaling = session.client('autoscaling')
        for client in (self.cloudwatch, self.autoscaling):
            client.meta.events.register('before-sign.*.*', self._mark_internal)

    @staticmethod
    def _mark_internal(request, **_):
        request.headers[INTERNAL_HEADER] = CLIENT_ID

    def alarms(self):
        for page in self.cloudwatch.get_paginator('describe_alarms').paginate(AlarmTypes=['MetricAlarm']):
            yield from page.get('MetricAlarms', [])

    def forget(self):
        """Start a new evaluation: metrics are listed again (once per namespace and name)."""
        self._listed = {}

    def series(self, query):
        key = (query.namespace, query.metric)
        listed = getattr(self, '_listed', {})
        if key not in listed:
            kwargs = {'Namespace': query.namespace, 'MetricName': query.metric}
            listed[key] = [metric for page in self.cloudwatch.get_paginator('list_metrics').paginate(**kwargs)
                           for metric in page.get('Metrics', [])]
            self._listed = listed
        return [metric for metric in listed[key] if query.matches(metric)]

    def statistics(self, metric, start, end, period):
        response = self.cloudwatch.get_metric_statistics(
            Namespace=metric['Namespace'], MetricName=metric['MetricName'], Dimensions=metric.get('Dimensions') or [],
            StartTime=start, EndTime=end, Period=period, Statistics=['Sum', 'SampleCount', 'Maximum', 'Minimum'])
        return response.get('Datapoints', [])


def period_values(aws, query, period, periods, now):
    """The query's value in each of the last `periods` complete periods before `now`, oldest first."""
    end = int(now // period) * period
    start = end - periods * period
    buckets = [[] for _ in range(periods)]
    for metric in aws.series(query):
        for point in aws.statistics(metric, dt.datetime.fromtimestamp(start, dt.timezone.utc),
                                    dt.datetime.fromtimestamp(end, dt.timezone.utc), period):
            index = int((point['Timestamp'].timestamp() - start) // period)
            if 0 <= index < periods:
                buckets[index].append(point)
    return [insights.aggregate(query.function, bucket) for bucket in buckets]


class Evaluator:
    def __init__(self, aws, clock_path, history_path):
        self.aws = aws
        self.clock_path = clock_path
        self.history_path = history_path
        self.invoked = {}  # (alarm, action) -> sandbox time of the last invocation
        self.launches = {}  # Auto Scaling group -> [(sandbox time, instances)] its scale-outs launched
        self.speed = None

    def record(self, **entry):
        if self.history_path:
            with open(self.history_path, 'a', encoding='utf-8') as handle:
                handle.write(json.dumps(entry, sort_keys=True) + '\n')

    def tick(self):
        now = clock.now(self.clock_path)
        speed = clock.read(self.clock_path)[2]
        if speed != self.speed:
            LOG.info('clock: sandbox CloudWatch time runs at %gx the wall clock (now %s)', speed,
                     dt.datetime.fromtimestamp(now, dt.timezone.utc).isoformat())
            self.speed = speed
        if hasattr(self.aws, 'forget'):
            self.aws.forget()
        for alarm in list(self.aws.alarms()):
            try:
                self.evaluate(alarm, now)
            except (Refused, alarms.AlarmError) as exc:
                self.refuse(alarm, str(exc), now)

    def refuse(self, alarm, why, now):
        reason = REFUSED + why
        if alarm.get('StateValue') == 'INSUFFICIENT_DATA' and alarm.get('StateReason') == reason:
            return
        LOG.error('alarm %s: %s', alarm['AlarmName'], reason)
        self.aws.cloudwatch.set_alarm_state(AlarmName=alarm['AlarmName'], StateValue='INSUFFICIENT_DATA', StateReason=reason[:1023])
        self.record(time=now, alarm=alarm['AlarmName'], state='INSUFFICIENT_DATA', refused=why)

    def evaluate(self, alarm, now):
        query, period = alarm_query(alarm)
        periods = int(alarm['EvaluationPeriods'])
        values = period_values(self.aws, query, period, periods, now)
        state, reason = alarms.evaluate(alarm, values, alarm.get('StateValue') or 'INSUFFICIENT_DATA')
        name = alarm['AlarmName']
        changed = state != alarm.get('StateValue')
        if changed:
            LOG.info('alarm %s: %s -> %s (%s)', name, alarm.get('StateValue'), state, reason)
            self.aws.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason[:1023],
                                                StateReasonData=json.dumps({'values': values, 'period': period}))
            self.record(time=now, alarm=name, state=state, values=values, reason=reason)
        actions = {'ALARM': alarm.get('AlarmActions'), 'OK': alarm.get('OKActions'),
                   'INSUFFICIENT_DATA': alarm.get('InsufficientDataActions')}[state] or []
        if not alarm.get('ActionsEnabled', True):
            return
        latest = next((v for v in reversed(values) if v is not None), None)
        for arn in actions:
            match = POLICY_ARN.match(arn)
            key = (name, arn)
            if match:
                due = changed or now - self.invoked.get(key, -1e18) >= REINVOKE_SECONDS
                if due and latest is not None:
                    self.invoked[key] = now
                    self.scale(alarm, match.group('group'), match.group('policy'), latest, now)
            elif changed:
                LOG.info('alarm %s: action %s not run by the sandbox (only Auto Scaling policies are)', name, arn)
        if changed and state != 'ALARM':
            for key in [k for k in self.invoked if k[0] == name]:
                del self.invoked[key]

    def scale(self, alarm, group, policy_name, value, now):
        policies = self.aws.autoscaling.describe_policies(AutoScalingGroupName=group, PolicyNames=[policy_name]).get('ScalingPolicies', [])
        groups = self.aws.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group]).get('AutoScalingGroups', [])
        if not policies or not groups:
            LOG.error('alarm %s: policy %s of group %s not found', alarm['AlarmName'], policy_name, group)
            return
        current = groups[0]['DesiredCapacity']
        launches = self.launches.setdefault(group, [])
        warmup = scaling.warmup_seconds(policies[0], groups[0])
        launches[:] = [(when, count) for when, count in launches if now - when < warmup]
        try:
            target, why = scaling.new_capacity(policies[0], value - float(alarm['Threshold']), current,
                                               groups[0]['MinSize'], groups[0]['MaxSize'], scaling.warming(launches, now, warmup))
        except scaling.ScalingError as exc:
            LOG.error('alarm %s: %s', alarm['AlarmName'], exc)
            return
        # Re-invocations at the bound say the same each minute: only a change is worth a line.
        (LOG.info if target != current else LOG.debug)('alarm %s: %s', alarm['AlarmName'], why)
        if target > current:
            launches.append((now, target - current))
        if target != current:
            self.aws.autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=target, HonorCooldown=False)
            self.record(time=now, alarm=alarm['AlarmName'], group=group, policy=policy_name, desired=[current, target], value=value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--clock', required=True, help='the clock file (sandbox/cloudwatch/clock.py)')
    parser.add_argument('--history', help='append state and capacity changes here (JSON lines)')
    parser.add_argument('--interval', type=float, default=10.0,
                        help='wall seconds between evaluations at the normal clock speed; a faster clock shortens it '
                             '(one evaluation per minute of sandbox time, at least every 0.5 s)')
    parser.add_argument('--once', action='store_true', help='evaluate once and exit')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(levelname)s %(message)s')
    logging.getLogger('botocore').setLevel(logging.WARNING)
    evaluator = Evaluator(Aws(os.environ.get('AWS_REGION') or os.environ.get('AWS_DEFAULT_REGION') or 'us-east-2'),
                          args.clock, args.history)
    while True:
        started = time.time()
        try:
            evaluator.tick()
        except Exception:  # noqa: BLE001 - the emulator restarting (reset) must not end the evaluator
            LOG.exception('evaluation failed; trying again')
        if args.once:
            return 0
        interval = max(0.5, min(args.interval, 60.0 / evaluator.speed))
        took = time.time() - started
        if took > interval:
            # The alarms are then evaluated less often than CloudWatch would (each matched series
            # costs a GetMetricStatistics); the log says so rather than letting tests guess.
            LOG.warning('evaluation took %.1f s, longer than its interval (%.1f s)', took, interval)
        # In slices, so that a test speeding the clock up is seen within half a second.
        while time.time() - started < interval and clock.read(args.clock)[2] == evaluator.speed:
            time.sleep(0.5)


if __name__ == '__main__':
    sys.exit(main())
