# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. The CloudWatch service layer of scaling_alarm
(metric alarms)."""

from __future__ import annotations

from ansible_collections.genai.stack.plugins.module_utils._aws import AWSService

# The AlarmNames limit of one DescribeAlarms or DeleteAlarms request.
ALARM_NAMES_PER_REQUEST = 100


def _batches(names, size=ALARM_NAMES_PER_REQUEST):
    for start in range(0, len(names), size):
        yield names[start:start + size]


class CloudWatch(AWSService):
    """CloudWatch calls on metric alarms known by name."""

    def describe_alarms(self, names):
        """The metric alarms among `names`, by name: one paginated query per 100 names."""
        found = {}
        for batch in _batches(names):
            result = self.paginate('read alarms %s' % ', '.join(batch), 'describe_alarms', AlarmNames=batch,
                                   AlarmTypes=['MetricAlarm'], PaginationConfig={'PageSize': ALARM_NAMES_PER_REQUEST})
            found.update((a['AlarmName'], a) for a in result.get('MetricAlarms') or [])
        return found

    def put_metric_alarm(self, request):
        self.call('write alarm %s' % request['AlarmName'], 'put_metric_alarm', **request)

    def delete_alarms(self, names):
        for batch in _batches(names):
            self.call('delete alarms %s' % ', '.join(batch), 'delete_alarms', AlarmNames=batch)
