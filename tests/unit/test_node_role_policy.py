"""The GPU node role's inline policy (roles/cluster_gpu/files/cloudwatch-metrics-policy.json) against
the CloudWatch agent configuration that the node user data installs, for every AMI family.

What the agent needs, as its source (aws/amazon-cloudwatch-agent, the ec2tagger processor and its
translator) shows:
- `metrics.append_dimensions` accepts four EC2 keys, each only with its own `${aws:...}` value (any
  other value is ignored). InstanceId, InstanceType and ImageId come from the instance metadata
  (IMDS): no permission. AutoScalingGroupName is the instance's `aws:autoscaling:groupName` tag, read
  with ec2:DescribeTags; until that call has succeeded once the processor passes on no metrics at all.
- Per-plugin `append_dimensions` are literal values: no permission.
- Every series is written with PutMetricData to `metrics.namespace` (CWAgent when not set).
- `aggregation_dimensions` can only name dimensions that some series carries.

The test evaluates the policy document as IAM would for these requests (a small evaluator: Allow and
Deny, action and resource wildcards, StringEquals/StringLike conditions) and also checks that the
policy allows nothing beyond them.
"""
import fnmatch
import json
import os

import pytest

from _rendered_userdata import FLAVOURS, shell_part
from ansible_collections.genai.stack.plugins.modules import scaling_alarm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
POLICY_PATH = os.path.join(ROOT, 'roles', 'cluster_gpu', 'files', 'cloudwatch-metrics-policy.json')

# The agent's EC2 append_dimensions: key -> (the only value it resolves, the permission it needs).
AGENT_EC2_DIMENSIONS = {
    'InstanceId': ('${aws:InstanceId}', None),
    'InstanceType': ('${aws:InstanceType}', None),
    'ImageId': ('${aws:ImageId}', None),
    'AutoScalingGroupName': ('${aws:AutoScalingGroupName}', 'ec2:DescribeTags'),
}
AGENT_DEFAULT_NAMESPACE = 'CWAgent'
# Actions the agent calls without a resource ARN (neither supports resource-level permissions).
UNSCOPED = '*'


def agent_config(flavour):
    """The agent configuration as written into the user data's shell part (parsed, not rebuilt)."""
    script = shell_part(flavour)
    start = script.index("<<'CWAGENT'\n") + len("<<'CWAGENT'\n")
    return json.loads(script[start:script.index('\nCWAGENT\n', start)])


# ---------------------------------------------------------------------------------------------
# What the agent configuration needs


def agent_needs(config):
    """(requests, problems): requests are (action, condition context) pairs the agent makes."""
    metrics = config.get('metrics') or {}
    namespace = metrics.get('namespace', AGENT_DEFAULT_NAMESPACE)
    requests = [('cloudwatch:PutMetricData', {'cloudwatch:namespace': namespace})]
    problems = []
    carried = set()  # dimensions every series (or the plugin's series) carries
    for key, value in (metrics.get('append_dimensions') or {}).items():
        if key not in AGENT_EC2_DIMENSIONS or AGENT_EC2_DIMENSIONS[key][0] != value:
            problems.append('metrics.append_dimensions.%s=%s is not a dimension the agent resolves' % (key, value))
            continue
        carried.add(key)
        permission = AGENT_EC2_DIMENSIONS[key][1]
        if permission:
            requests.append((permission, {}))
    for plugin, settings in (metrics.get('metrics_collected') or {}).items():
        for key, value in (settings.get('append_dimensions') or {}).items():
            if not isinstance(value, str) or '${' in value:
                problems.append('metrics_collected.%s.append_dimensions.%s=%r is not a literal' % (plugin, key, value))
            carried.add(key)
    for dimensions in metrics.get('aggregation_dimensions') or []:
        for key in dimensions:
            if key not in carried:
                problems.append('aggregation dimension %s is carried by no series' % key)
    return requests, problems, carried


# ---------------------------------------------------------------------------------------------
# IAM evaluation of one identity policy (enough for what node role policies use)


def _listed(value):
    return value if isinstance(value, list) else [value]


def _matches(patterns, value):
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in _listed(patterns))


def _condition_holds(condition, context):
    for operator, keys in (condition or {}).items():
        for key, expected in keys.items():
            actual = context.get(key)
            if actual is None:
                return False  # a key absent from the request never satisfies these operators
            if operator == 'StringEquals':
                ok = actual in _listed(expected)
            elif operator == 'StringLike':
                ok = any(fnmatch.fnmatchcase(actual, p) for p in _listed(expected))
            else:
                raise AssertionError('condition operator %s is not understood by this test' % operator)
            if not ok:
                return False
    return True


def _statement_applies(statement, action, context):
    assert 'NotAction' not in statement and 'NotResource' not in statement, 'NotAction/NotResource grant more than they name'
    return (_matches(statement['Action'], action) and _matches(statement['Resource'], UNSCOPED)
            and _condition_holds(statement.get('Condition'), context))


def allowed(policy, action, context):
    applicable = [s for s in _listed(policy['Statement']) if _statement_applies(s, action, context)]
    if any(s['Effect'] == 'Deny' for s in applicable):
        return False
    return any(s['Effect'] == 'Allow' for s in applicable)


def load_policy():
    with open(POLICY_PATH) as handle:
        return json.load(handle)


# ---------------------------------------------------------------------------------------------
# tests


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_every_dimension_the_agent_appends_is_resolvable_with_the_node_role(flavour):
    config = agent_config(flavour)
    requests, problems = agent_needs(config)[:2]
    assert problems == []
    policy = load_policy()
    refused = ['%s %s' % (action, context or '') for action, context in requests if not allowed(policy, action, context)]
    assert refused == [], 'the node role policy does not allow what the agent calls: %s' % refused


@pytest.mark.parametrize('flavour', FLAVOURS)
def test_the_policy_allows_nothing_the_agent_does_not_need(flavour):
    requests = agent_needs(agent_config(flavour))[0]
    needed_actions = set(request[0] for request in requests)
    policy = load_policy()
    granted = set()
    for statement in _listed(policy['Statement']):
        if statement['Effect'] == 'Allow':
            granted.update(_listed(statement['Action']))
    assert granted == needed_actions
    namespace = requests[0][1]['cloudwatch:namespace']
    for other in ('AWS/EC2', 'ContainerInsights', namespace + '-other', namespace.lower()):
        assert not allowed(policy, 'cloudwatch:PutMetricData', {'cloudwatch:namespace': other}), other
    # A PutMetricData request without a namespace in the context is not allowed either.
    assert not allowed(policy, 'cloudwatch:PutMetricData', {})


def test_the_agent_namespace_is_the_one_the_gpu_alarm_reads():
    for flavour in FLAVOURS:
        config = agent_config(flavour)
        carried = agent_needs(config)[2]
        namespace = config['metrics'].get('namespace', AGENT_DEFAULT_NAMESPACE)
        query = scaling_alarm.render_query('gpu', dimensions=scaling_alarm.default_dimensions('demo', 'gpu-nodes'))
        assert ' FROM %s WHERE ' % namespace in query
        assert set(scaling_alarm.default_dimensions('demo', 'gpu-nodes')) <= carried


def test_the_evaluator_refuses_what_is_not_granted():
    """The checks above are only as good as the evaluator: it must say no where IAM says no."""
    policy = {'Statement': [
        {'Effect': 'Allow', 'Action': 'cloudwatch:Put*', 'Resource': '*', 'Condition': {'StringEquals': {'cloudwatch:namespace': 'A'}}},
        {'Effect': 'Allow', 'Action': ['ec2:DescribeTags'], 'Resource': 'arn:aws:ec2:us-east-2:123456789012:instance/*'},
        {'Effect': 'Deny', 'Action': 'cloudwatch:PutMetricData', 'Resource': '*', 'Condition': {'StringLike': {'cloudwatch:namespace': 'B*'}}},
    ]}
    assert allowed(policy, 'cloudwatch:PutMetricData', {'cloudwatch:namespace': 'A'})
    assert not allowed(policy, 'cloudwatch:PutMetricData', {'cloudwatch:namespace': 'B'})
    # DescribeTags has no resource type: a statement naming instance ARNs never covers it.
    assert not allowed(policy, 'ec2:DescribeTags', {})
    policy['Statement'].append({'Effect': 'Deny', 'Action': '*', 'Resource': '*'})
    assert not allowed(policy, 'cloudwatch:PutMetricData', {'cloudwatch:namespace': 'A'})


def test_a_dimension_the_agent_would_not_resolve_is_reported():
    config = agent_config('nodeadm')
    config['metrics']['append_dimensions']['InstanceId'] = '${aws:InstanceID}'
    config['metrics']['aggregation_dimensions'].append(['Team'])
    problems = agent_needs(config)[1]
    assert any('append_dimensions.InstanceId' in p for p in problems)
    assert any('Team' in p for p in problems)
