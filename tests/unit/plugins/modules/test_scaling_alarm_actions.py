"""genai.stack.scaling_alarm notifications: alarm_actions, ok_actions, insufficient_data_actions and
purge_actions. Validation (before any client), the merge of given and existing actions, and the life
cycle against moto: actions other tools set survive a write unless purged, the policy always stays.
"""
import pytest

from ansible_collections.genai.stack.plugins.modules import scaling_alarm
# The moto fixtures and helpers of the module's main test file (pytest puts this directory on sys.path).
from test_scaling_alarm import REGION, _alarms, _policies, api_calls, aws_env, cloud, gpu_args, mutating, no_clients  # noqa: F401 pylint: disable=unused-import

ACCOUNT = '123456789012'  # moto's default account
TOPIC_A = 'arn:aws:sns:%s:%s:gpu-scaling' % (REGION, ACCOUNT)
TOPIC_B = 'arn:aws:sns:%s:%s:gpu-ok' % (REGION, ACCOUNT)
OTHER_TOOL_OK = 'arn:aws:sns:%s:%s:other-tool-ok' % (REGION, ACCOUNT)
OTHER_TOOL_NO_DATA = 'arn:aws:sns:%s:%s:other-tool-no-data' % (REGION, ACCOUNT)
OUT, IN = 'sandbox-sandbox-cpu-gpu-scale-out', 'sandbox-sandbox-cpu-gpu-scale-in'


# ---------------------------------------------------------------------------------------------
# validation: fails naming the option, before any client exists

BAD_ACTIONS = [
    ('not an ARN', {'alarm_actions': ['gpu-scaling']}, 'alarm_actions[0]', 'not an SNS topic ARN'),
    ('a Lambda, not a topic', {'ok_actions': [TOPIC_B, 'arn:aws:lambda:us-east-2:%s:function:f' % ACCOUNT]}, 'ok_actions[1]',
     'not an SNS topic ARN'),
    ('a scaling policy in alarm_actions', {'alarm_actions': ['arn:aws:autoscaling:us-east-2:%s:scalingPolicy:1:autoScalingGroupName/a:'
                                                             'policyName/p' % ACCOUNT]}, 'alarm_actions[0]', 'not an SNS topic ARN'),
    ('account id too short', {'alarm_actions': ['arn:aws:sns:us-east-2:12345:t']}, 'alarm_actions[0]', 'not an SNS topic ARN'),
    ('topic name with a dot', {'alarm_actions': ['arn:aws:sns:us-east-2:%s:a.b' % ACCOUNT]}, 'alarm_actions[0]', 'not an SNS topic ARN'),
    ('another region', {'ok_actions': ['arn:aws:sns:us-west-2:%s:t' % ACCOUNT]}, 'ok_actions[0]', "alarm's own region only"),
    ('another partition', {'insufficient_data_actions': ['arn:aws-cn:sns:us-east-2:%s:t' % ACCOUNT]}, 'insufficient_data_actions[0]',
     'partition aws-cn does not match region us-east-2'),
    ('listed twice', {'alarm_actions': [TOPIC_A, TOPIC_A]}, 'alarm_actions[1]', 'listed twice'),
    ('five alarm actions and the policy', {'alarm_actions': ['arn:aws:sns:us-east-2:%s:t%d' % (ACCOUNT, i) for i in range(5)]},
     'alarm_actions', 'one of them the scaling policy'),
    ('six ok actions', {'ok_actions': ['arn:aws:sns:us-east-2:%s:t%d' % (ACCOUNT, i) for i in range(6)]}, 'ok_actions', 'at most 5'),
]


@pytest.mark.parametrize('case, extra, option, text', BAD_ACTIONS, ids=[c[0] for c in BAD_ACTIONS])
def test_bad_actions_fail_naming_the_option_before_any_client(run_module, aws_env, no_clients, case, extra, option, text):
    result, failed = run_module(scaling_alarm, gpu_args(**extra))
    assert failed, result
    assert no_clients == []
    assert any(error['option'] == option and text in error['message'] for error in result['errors']), result['errors']


def test_partition_follows_the_region():
    assert scaling_alarm.partition_of('us-east-2') == 'aws'
    assert scaling_alarm.partition_of('cn-north-1') == 'aws-cn'
    assert scaling_alarm.partition_of('us-gov-west-1') == 'aws-us-gov'


# ---------------------------------------------------------------------------------------------
# the merge of given and existing actions


POLICY = 'arn:aws:autoscaling:us-east-2:%s:scalingPolicy:new:autoScalingGroupName/g:policyName/x-scale-out' % ACCOUNT
STALE_POLICY = 'arn:aws:autoscaling:us-east-2:%s:scalingPolicy:old:autoScalingGroupName/g:policyName/x-scale-out' % ACCOUNT
ANOTHER_POLICY = 'arn:aws:autoscaling:us-east-2:%s:scalingPolicy:9:autoScalingGroupName/g:policyName/someone-else' % ACCOUNT


def _actions(existing, **params):
    return scaling_alarm.desired_actions(params, existing, 'x-scale-out', POLICY)


def test_kept_actions_and_the_policy_replacing_its_old_arn():
    existing = {'AlarmActions': [STALE_POLICY, ANOTHER_POLICY, OTHER_TOOL_OK], 'OKActions': [OTHER_TOOL_OK],
                'InsufficientDataActions': [OTHER_TOOL_NO_DATA]}
    actions = _actions(existing, alarm_actions=[TOPIC_A], ok_actions=[TOPIC_B])
    assert actions == {'alarm_actions': sorted([POLICY, ANOTHER_POLICY, OTHER_TOOL_OK, TOPIC_A]),
                       'ok_actions': sorted([OTHER_TOOL_OK, TOPIC_B]),
                       'insufficient_data_actions': [OTHER_TOOL_NO_DATA]}


def test_purge_leaves_exactly_the_given_topics_and_the_policy():
    existing = {'AlarmActions': [STALE_POLICY, OTHER_TOOL_OK], 'OKActions': [OTHER_TOOL_OK], 'InsufficientDataActions': [OTHER_TOOL_NO_DATA]}
    actions = _actions(existing, alarm_actions=[TOPIC_A], purge_actions=True)
    assert actions == {'alarm_actions': sorted([POLICY, TOPIC_A]), 'ok_actions': [], 'insufficient_data_actions': []}
    assert _actions(None) == {'alarm_actions': [POLICY], 'ok_actions': [], 'insufficient_data_actions': []}


# ---------------------------------------------------------------------------------------------
# life cycle against moto


def _put_like_another_tool(cloud, alarm, **actions):
    """Rewrite an alarm as another tool would: same definition, other actions."""
    request = dict((k, alarm[k]) for k in ('AlarmName', 'AlarmDescription', 'Metrics', 'ComparisonOperator', 'Threshold',
                                           'EvaluationPeriods', 'TreatMissingData', 'ActionsEnabled', 'AlarmActions',
                                           'OKActions', 'InsufficientDataActions'))
    request.update(actions)
    cloud['cloudwatch'].put_metric_alarm(**request)


def test_notifications_are_set_kept_and_purged(run_module, cloud, api_calls):
    args = gpu_args(alarm_actions=[TOPIC_A], ok_actions=[TOPIC_B])
    result, failed = run_module(scaling_alarm, args)
    assert not failed and result['changed'], result
    policies = _policies(cloud)
    alarms = _alarms(cloud, OUT, IN)
    for name in (OUT, IN):
        assert sorted(alarms[name]['AlarmActions']) == sorted([policies[name]['PolicyARN'], TOPIC_A])
        assert alarms[name]['OKActions'] == [TOPIC_B]
        assert alarms[name]['InsufficientDataActions'] == []
    assert result['alarms'][0]['alarm_actions'] == sorted([policies[OUT]['PolicyARN'], TOPIC_A])
    assert result['alarms'][1]['ok_actions'] == [TOPIC_B]

    del api_calls[:]
    result, failed = run_module(scaling_alarm, args)
    assert not failed and not result['changed'] and mutating(api_calls) == [], result

    # Another tool adds an OK and an INSUFFICIENT_DATA notification; a re-run keeps them...
    _put_like_another_tool(cloud, alarms[OUT], OKActions=[TOPIC_B, OTHER_TOOL_OK], InsufficientDataActions=[OTHER_TOOL_NO_DATA])
    del api_calls[:]
    result, failed = run_module(scaling_alarm, args)
    assert not failed and not result['changed'] and mutating(api_calls) == [], result
    # ...and so does a write the module makes for another reason.
    result, failed = run_module(scaling_alarm, dict(args, scale_out_threshold=50))
    assert not failed and result['changed'], result
    written = _alarms(cloud, OUT)[OUT]
    assert written['Threshold'] == 50.0
    assert sorted(written['OKActions']) == sorted([TOPIC_B, OTHER_TOOL_OK])
    assert written['InsufficientDataActions'] == [OTHER_TOOL_NO_DATA]
    assert sorted(written['AlarmActions']) == sorted([policies[OUT]['PolicyARN'], TOPIC_A])

    # purge_actions: check mode shows what goes and writes nothing, then the write, then no change.
    purge = dict(args, scale_out_threshold=50, purge_actions=True)
    del api_calls[:]
    result, failed = run_module(scaling_alarm, purge, check_mode=True, diff=True)
    assert not failed and result['changed'] and mutating(api_calls) == [], result
    before, after = result['diff']['before']['scale_out_alarm'], result['diff']['after']['scale_out_alarm']
    assert before['ok_actions'] == sorted([TOPIC_B, OTHER_TOOL_OK]) and after['ok_actions'] == [TOPIC_B]
    assert before['insufficient_data_actions'] == [OTHER_TOOL_NO_DATA] and after['insufficient_data_actions'] == []
    assert result['diff']['before']['scale_in_alarm'] == result['diff']['after']['scale_in_alarm']
    assert _alarms(cloud, OUT)[OUT]['InsufficientDataActions'] == [OTHER_TOOL_NO_DATA]
    del api_calls[:]
    result, failed = run_module(scaling_alarm, purge)
    assert not failed and result['changed'] and mutating(api_calls) == [('cloudwatch', 'PutMetricAlarm')], (result, api_calls)
    purged = _alarms(cloud, OUT)[OUT]
    assert purged['OKActions'] == [TOPIC_B] and purged['InsufficientDataActions'] == []
    assert sorted(purged['AlarmActions']) == sorted([policies[OUT]['PolicyARN'], TOPIC_A])
    result, failed = run_module(scaling_alarm, purge)
    assert not failed and not result['changed'], result

    # Without any notification option and with purge, only the policies remain.
    result, failed = run_module(scaling_alarm, gpu_args(scale_out_threshold=50, purge_actions=True))
    assert not failed and result['changed']
    for name, alarm in _alarms(cloud, OUT, IN).items():
        assert alarm['AlarmActions'] == [policies[name]['PolicyARN']] and alarm['OKActions'] == []


def test_kept_actions_over_the_limit_fail_before_any_write(run_module, cloud, api_calls):
    run_module(scaling_alarm, gpu_args())
    alarm = _alarms(cloud, IN)[IN]
    others = ['arn:aws:sns:%s:%s:other-%d' % (REGION, ACCOUNT, i) for i in range(5)]
    _put_like_another_tool(cloud, alarm, OKActions=others)
    del api_calls[:]
    result, failed = run_module(scaling_alarm, gpu_args(ok_actions=[TOPIC_B], scale_out_adjustment=2))
    assert failed, result
    assert mutating(api_calls) == [], 'nothing is written, not even the changed policy'
    assert result['errors'][0]['option'] == 'ok_actions'
    assert '6 OKActions' in result['errors'][0]['message'] and 'purge_actions=true' in result['errors'][0]['message']
    result, failed = run_module(scaling_alarm, gpu_args(ok_actions=[TOPIC_B], purge_actions=True))
    assert not failed and _alarms(cloud, IN)[IN]['OKActions'] == [TOPIC_B]


def test_a_topic_of_another_account_is_accepted_with_a_warning(run_module, cloud):
    foreign = 'arn:aws:sns:%s:210987654321:central-alerts' % REGION
    result, failed = run_module(scaling_alarm, gpu_args(alarm_actions=[foreign]))
    assert not failed and not result.get('warnings'), 'not checkable before the first policy or alarm exists'
    result, failed = run_module(scaling_alarm, gpu_args(alarm_actions=[foreign]))
    assert not failed and not result['changed']
    assert any('alarm_actions: topic %s is in another account' % foreign in w for w in result.get('warnings', [])), result
