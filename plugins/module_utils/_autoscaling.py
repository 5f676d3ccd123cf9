# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. The Auto Scaling service layer of scaling_alarm:
an Auto Scaling group and its step-scaling policies."""

from __future__ import annotations

from ansible_collections.genai.stack.plugins.module_utils._aws import AWSService

# The PolicyNames limit of one DescribePolicies request.
POLICY_NAMES_PER_REQUEST = 50
# Auto Scaling has no not-found error code: DeletePolicy answers ValidationError for a policy
# (or a group) that does not exist, which is taken as already deleted there and nowhere else.
DELETE_POLICY_GONE = ('ValidationError',)


class AutoScaling(AWSService):
    """Auto Scaling calls on one group's scaling policies."""

    def group_exists(self, group):
        found = self.call('read Auto Scaling group %s' % group, 'describe_auto_scaling_groups', AutoScalingGroupNames=[group])
        return bool(found['AutoScalingGroups'])

    def describe_policies(self, group, names):
        """The policies of `group` among `names`, by name: one paginated query per 50 names."""
        found = {}
        for start in range(0, len(names), POLICY_NAMES_PER_REQUEST):
            result = self.paginate('read scaling policies of %s' % group, 'describe_policies', AutoScalingGroupName=group,
                                   PolicyNames=names[start:start + POLICY_NAMES_PER_REQUEST])
            found.update((p['PolicyName'], p) for p in result.get('ScalingPolicies') or [])
        return found

    def put_scaling_policy(self, request):
        """Create or replace a policy (PutScalingPolicy's arguments); returns its ARN when Auto Scaling gives it."""
        return self.call('write scaling policy %s' % request['PolicyName'], 'put_scaling_policy', **request).get('PolicyARN')

    def delete_policy(self, group, name):
        """Delete a policy; one already gone is not an error."""
        self.lookup('delete scaling policy %s' % name, 'delete_policy', DELETE_POLICY_GONE, AutoScalingGroupName=group, PolicyName=name)
