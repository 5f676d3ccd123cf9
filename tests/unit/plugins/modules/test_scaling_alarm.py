"""genai.stack.scaling_alarm through main(): validation, query rendering, normalisation, and a
full life cycle against moto's in-process mock (create, re-run, check mode, diff, throttling, delete).
"""
import botocore.client
import botocore.exceptions
import boto3
import pytest
from moto import mock_aws

from ansible_collections.genai.stack.plugins.module_utils import _aws
from ansible_collections.genai.stack.plugins.modules import scaling_alarm

REGION = 'us-east-2'
CLUSTER = 'sandbox'
NODEGROUP = 'sandbox-cpu'
MUTATING_PREFIXES = ('Put', 'Delete', 'Create', 'Update', 'Set', 'Enable', 'Disable', 'Attach', 'Detach', 'Execute')


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def aws_env(monkeypatch):
    """Credentials for moto and no sandbox endpoint, whatever the calling shell sourced."""
    for var in ('AWS_ENDPOINT_URL', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'testing')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
    monkeypatch.setenv('AWS_REGION', REGION)
    monkeypatch.setenv('AWS_DEFAULT_REGION', REGION)


@pytest.fixture
def api_calls(monkeypatch):
    """Every AWS operation the module makes, as (service, operation), recorded below botocore's client."""
    calls = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', recording)
    return calls


def mutating(calls):
    return [c for c in calls if c[1].startswith(MUTATING_PREFIXES)]


@pytest.fixture
def no_clients(monkeypatch):
    """Fail the test if the module creates any AWS client; returns the list of attempts."""
    attempts = []

    def refuse(self, service, *args, **kwargs):
        attempts.append(service)
        raise AssertionError('client(%s) created during input validation' % service)

    monkeypatch.setattr(_aws.GenaiAWSModule, 'client', refuse)
    return attempts


@pytest.fixture
def cloud(aws_env):
    """moto with an EKS cluster, a node group and the node group's Auto Scaling group (moto names
    one in describe_nodegroup but does not create it; the sandbox does, so the test does too)."""
    with mock_aws():
        ec2 = boto3.client('ec2', region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock='10.0.1.0/24', AvailabilityZone=REGION + 'a')['Subnet']['SubnetId']
        eks = boto3.client('eks', region_name=REGION)
        eks.create_cluster(name=CLUSTER, roleArn='arn:aws:iam::123456789012:role/eks', resourcesVpcConfig={'subnetIds': [subnet]})
        nodegroup = eks.create_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP, subnets=[subnet],
                                         nodeRole='arn:aws:iam::123456789012:role/node')['nodegroup']
        group = nodegroup['resources']['autoScalingGroups'][0]['name']
        ec2.create_launch_template(LaunchTemplateName='nodes', LaunchTemplateData={'ImageId': 'ami-12345678', 'InstanceType': 't3.micro'})
        autoscaling = boto3.client('autoscaling', region_name=REGION)
        autoscaling.create_auto_scaling_group(AutoScalingGroupName=group, LaunchTemplate={'LaunchTemplateName': 'nodes'},
                                              MinSize=0, MaxSize=3, VPCZoneIdentifier=subnet)
        yield {'group': group, 'autoscaling': autoscaling, 'cloudwatch': boto3.client('cloudwatch', region_name=REGION)}


def gpu_args(**extra):
    args = {'name': 'sandbox-sandbox-cpu-gpu', 'cluster_name': CLUSTER, 'nodegroup_name': NODEGROUP, 'metric': 'gpu'}
    args.update(extra)
    return args


def absent_args():
    args = gpu_args(state='absent')
    del args['metric']
    return args


def cpu_args(**extra):
    args = {'name': 'sandbox-sandbox-cpu-cpu', 'cluster_name': CLUSTER, 'nodegroup_name': NODEGROUP, 'metric': 'cpu'}
    args.update(extra)
    return args


# ---------------------------------------------------------------------------------------------
# validation: every bad input fails naming its option, before any client exists

BAD_INPUTS = [
    ('period not 10/30/60n', gpu_args(period=45), 'period', 'multiple of 60'),
    ('period zero', gpu_args(period=0), 'period', 'multiple of 60'),
    ('evaluation_periods zero', gpu_args(evaluation_periods=0), 'evaluation_periods', 'at least 1'),
    ('evaluation longer than a day', gpu_args(period=3600, evaluation_periods=25), 'evaluation_periods', 'one day'),
    ('scale_out_threshold above 100', gpu_args(scale_out_threshold=150), 'scale_out_threshold', '<= 100'),
    ('scale_in_threshold negative', cpu_args(scale_in_threshold=-1), 'scale_in_threshold', '>= 0'),
    ('scale_in above the default scale_out', gpu_args(scale_in_threshold=50), 'scale_in_threshold', 'below scale_out_threshold (40)'),
    ('scale_in equal to scale_out', cpu_args(scale_in_threshold=30, scale_out_threshold=30), 'scale_in_threshold', 'below'),
    ('scale_out_adjustment zero', gpu_args(scale_out_adjustment=0), 'scale_out_adjustment', 'positive'),
    ('scale_in_adjustment positive', gpu_args(scale_in_adjustment=1), 'scale_in_adjustment', 'negative'),
    ('name with a space', gpu_args(name='my alarms'), 'name', 'valid prefix'),
    ('name too long', gpu_args(name='a' * 250), 'name', 'at most 245'),
    ('gpu from an ASG name alone', {'name': 'x', 'autoscaling_group_name': 'asg', 'metric': 'gpu'}, 'metric',
     'cannot be derived from autoscaling_group_name alone'),
    ('query_dimensions with cpu', cpu_args(query_dimensions={'ClusterName': 'a'}), 'query_dimensions', 'only applies to metric=gpu'),
    ('query_dimensions value with a quote', gpu_args(query_dimensions={'ClusterName': "a'b"}), 'query_dimensions', 'single quotes'),
    ('query_dimensions empty', gpu_args(query_dimensions={}), 'query_dimensions', 'at least one'),
    ('query_dimensions non-string value', gpu_args(query_dimensions={'ClusterName': 3}), 'query_dimensions', 'non-empty string'),
    ('cluster_name charset', gpu_args(cluster_name='bad name!'), 'cluster_name', 'valid EKS cluster name'),
    ('nodegroup_name too long', gpu_args(nodegroup_name='n' * 64), 'nodegroup_name', 'valid EKS node group name'),
    ('estimated_instance_warmup negative', gpu_args(estimated_instance_warmup=-5), 'estimated_instance_warmup', '>= 0'),
    ('query blank', cpu_args(query='   '), 'query', 'blank'),
    ('query too long', cpu_args(query='SELECT ' + 'x' * 2100), 'query', 'at most 2048'),
    ('alarm_description too long', gpu_args(alarm_description='d' * 1020), 'alarm_description', 'at most 1012'),
    ('ASG name with a quote in the cpu query', {'name': 'x', 'autoscaling_group_name': "a'b", 'metric': 'cpu'},
     'autoscaling_group_name', 'single quote'),
    ('custom query threshold not finite', cpu_args(query='SELECT 1', scale_out_threshold=float('inf')), 'scale_out_threshold', 'finite'),
]


@pytest.mark.parametrize('args,option,text', [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_names_option_and_makes_no_call(run_module, no_clients, aws_env, args, option, text):
    result, failed = run_module(scaling_alarm, args)
    assert failed
    assert option in result['msg'] and text in result['msg'], result['msg']
    assert option in [e['option'].split(' ')[0] for e in result['errors']]
    assert no_clients == []


ARGSPEC_ERRORS = [
    ('ASG and cluster together', {'name': 'x', 'autoscaling_group_name': 'a', 'cluster_name': 'c', 'nodegroup_name': 'n', 'metric': 'cpu'},
     'autoscaling_group_name|cluster_name'),
    ('neither ASG nor cluster', {'name': 'x', 'metric': 'cpu'}, 'autoscaling_group_name, cluster_name'),
    ('nodegroup without cluster', {'name': 'x', 'nodegroup_name': 'n', 'metric': 'cpu'}, 'cluster_name'),
    ('present without metric', {'name': 'x', 'autoscaling_group_name': 'a'}, 'metric'),
    ('unknown metric', gpu_args(metric='memory'), 'metric'),
    ('treat_missing_data choice', gpu_args(treat_missing_data='zero'), 'treat_missing_data'),
    ('period not an int', gpu_args(period='two minutes'), 'period'),
]


@pytest.mark.parametrize('args,text', [b[1:] for b in ARGSPEC_ERRORS], ids=[b[0] for b in ARGSPEC_ERRORS])
def test_argument_spec_rules_fail_before_any_call(run_module, no_clients, aws_env, args, text):
    result, failed = run_module(scaling_alarm, args)
    assert failed
    assert text in result['msg'], result['msg']
    assert no_clients == []


def test_every_problem_is_reported_at_once(run_module, no_clients, aws_env):
    result, failed = run_module(scaling_alarm, gpu_args(name='bad name', period=45, evaluation_periods=0,
                                                        scale_out_threshold=101, scale_in_adjustment=2))
    assert failed
    options = {e['option'].split(' ')[0] for e in result['errors']}
    assert {'name', 'period', 'evaluation_periods', 'scale_out_threshold', 'scale_in_adjustment'} <= options
    assert no_clients == []


def test_custom_query_allows_thresholds_beyond_percentages():
    params = dict(scaling_alarm_defaults(), metric='cpu', autoscaling_group_name='g', query='SELECT MAX(x) FROM y',
                  scale_out_threshold=500.0, scale_in_threshold=150.0)
    settings = scaling_alarm.check_input(params)
    assert settings['scale_out_threshold'] == 500.0 and settings['scale_in_threshold'] == 150.0


def test_absent_needs_no_metric_or_thresholds():
    params = dict(scaling_alarm_defaults(), state='absent', autoscaling_group_name='g', period=45)
    scaling_alarm.check_input(params)  # period is not used for absent


def scaling_alarm_defaults():
    spec = scaling_alarm.argument_spec()
    params = dict((k, v.get('default')) for k, v in spec.items())
    params['name'] = 'x'
    return params


@pytest.mark.parametrize('metric,expected', [('gpu', (40.0, 10.0)), ('cpu', (60.0, 5.0))])
def test_thresholds_default_by_metric(metric, expected):
    params = dict(scaling_alarm_defaults(), metric=metric, cluster_name='c', nodegroup_name='n')
    settings = scaling_alarm.check_input(params)
    assert (settings['scale_out_threshold'], settings['scale_in_threshold']) == expected


# ---------------------------------------------------------------------------------------------
# query rendering


def test_gpu_query_uses_the_node_user_data_dimensions():
    dims = scaling_alarm.default_dimensions('sandbox', 'gpu-nodes')
    assert scaling_alarm.render_query('gpu', dimensions=dims) == (
        "SELECT AVG(nvidia_smi_utilization_gpu) FROM CWAgent WHERE ClusterName = 'sandbox' "
        "AND NodegroupName = 'gpu-nodes' AND NodegroupType = 'gpu'")


def test_cpu_query_filters_on_the_group():
    assert scaling_alarm.render_query('cpu', 'eks-abc') == (
        'SELECT AVG(CPUUtilization) FROM SCHEMA("AWS/EC2", AutoScalingGroupName) WHERE AutoScalingGroupName = \'eks-abc\'')


def test_query_dimensions_keep_order_and_quote_unusual_names():
    query = scaling_alarm.render_query('gpu', dimensions={'NodegroupName': 'a', 'k8s.io/role': 'b'})
    assert query.endswith("WHERE NodegroupName = 'a' AND \"k8s.io/role\" = 'b'")


def test_expression_whitespace_is_not_significant():
    assert scaling_alarm.normalise_expression('  SELECT  AVG(x)\n FROM   y ') == 'SELECT AVG(x) FROM y'


# ---------------------------------------------------------------------------------------------
# normalisation and comparison


def _desired_alarm(existing=None, **params):
    base = dict(scaling_alarm_defaults(), metric='gpu', cluster_name='c', nodegroup_name='n')
    base.update(params)
    settings = scaling_alarm.check_input(base)
    return scaling_alarm.desired_alarm('out', 'x-scale-out', 'SELECT AVG(a) FROM b', base, settings, 'asg', 'arn:policy', existing)


def _as_described(alarm):
    """What DescribeAlarms answers for an alarm written with alarm_request()."""
    request = scaling_alarm.alarm_request(alarm)
    described = dict(request, AlarmArn='arn:aws:cloudwatch:us-east-2:1:alarm:x', StateValue='OK', Dimensions=[])
    described['Metrics'] = [dict(reversed(list(m.items()))) for m in request['Metrics']]
    described['Threshold'] = int(request['Threshold'])
    return described


def test_alarm_round_trip_compares_equal_including_metrics():
    desired = _desired_alarm()
    assert scaling_alarm.normalise_alarm(_as_described(desired)) == desired


def test_metrics_differences_are_seen():
    desired = _desired_alarm()
    described = _as_described(desired)
    described['Metrics'][0]['Period'] = 60
    assert scaling_alarm.normalise_alarm(described) != desired
    described = _as_described(desired)
    described['Metrics'][0]['Expression'] = 'SELECT AVG(a) FROM c'
    assert scaling_alarm.normalise_alarm(described) != desired


def test_metrics_whitespace_and_missing_return_data_compare_equal():
    desired = _desired_alarm()
    described = _as_described(desired)
    described['Metrics'][0]['Expression'] = 'SELECT   AVG(a)\nFROM b'
    del described['Metrics'][0]['ReturnData']
    assert scaling_alarm.normalise_alarm(described) == desired


def test_single_metric_alarm_of_the_same_name_differs():
    desired = _desired_alarm()
    described = _as_described(desired)
    del described['Metrics']
    described.update(MetricName='CPUUtilization', Namespace='AWS/EC2', Period=120, Statistic='Average')
    assert scaling_alarm.normalise_alarm(described)['metrics'] == []
    assert scaling_alarm.normalise_alarm(described) != desired


def test_actions_of_other_tools_are_kept_unless_purged():
    described = _as_described(_desired_alarm())
    described['OKActions'] = ['arn:aws:sns:us-east-2:1:topic']
    kept = _desired_alarm(existing=described)
    assert kept['ok_actions'] == ['arn:aws:sns:us-east-2:1:topic']
    assert scaling_alarm.normalise_alarm(described) == kept
    purged = _desired_alarm(existing=described, purge_actions=True)
    assert purged['ok_actions'] == [] and purged['alarm_actions'] == ['arn:policy']
    assert scaling_alarm.normalise_alarm(described) != purged


def test_policy_normalisation_defaults_enabled_and_aggregation():
    desired = scaling_alarm.desired_policy('in', 'x-scale-in', -2, None)
    request = scaling_alarm.policy_request('asg', desired)
    assert request['StepAdjustments'] == [{'ScalingAdjustment': -2, 'MetricIntervalUpperBound': 0.0}]
    described = {k: v for k, v in request.items() if k not in ('Enabled', 'MetricAggregationType')}
    described['PolicyARN'] = 'arn:p'
    assert scaling_alarm.normalise_policy(described) == desired
    described['StepAdjustments'] = [{'ScalingAdjustment': -1, 'MetricIntervalUpperBound': 0}]
    assert scaling_alarm.normalise_policy(described) != desired


# ---------------------------------------------------------------------------------------------
# life cycle against moto


def _alarms(cloud, *names):
    return dict((a['AlarmName'], a) for a in cloud['cloudwatch'].describe_alarms(AlarmNames=list(names))['MetricAlarms'])


def _policies(cloud):
    return dict((p['PolicyName'], p) for p in cloud['autoscaling'].describe_policies(AutoScalingGroupName=cloud['group'])['ScalingPolicies'])


def test_create_rerun_check_mode_and_delete(run_module, cloud, api_calls):
    result, failed = run_module(scaling_alarm, gpu_args())
    assert not failed, result
    assert result['changed'] and result['autoscaling_group_name'] == cloud['group']
    assert result['placeholder_arns'] == []
    policies = _policies(cloud)
    alarms = _alarms(cloud, 'sandbox-sandbox-cpu-gpu-scale-out', 'sandbox-sandbox-cpu-gpu-scale-in')
    out_alarm = alarms['sandbox-sandbox-cpu-gpu-scale-out']
    assert out_alarm['Threshold'] == 40.0 and out_alarm['ComparisonOperator'] == 'GreaterThanThreshold'
    assert out_alarm['AlarmActions'] == [policies['sandbox-sandbox-cpu-gpu-scale-out']['PolicyARN']]
    assert out_alarm['Metrics'][0]['Period'] == 120 and out_alarm['EvaluationPeriods'] == 1
    assert "NodegroupName = 'sandbox-cpu'" in out_alarm['Metrics'][0]['Expression']
    assert alarms['sandbox-sandbox-cpu-gpu-scale-in']['Threshold'] == 10.0
    assert policies['sandbox-sandbox-cpu-gpu-scale-in']['StepAdjustments'] == [{'MetricIntervalUpperBound': 0.0, 'ScalingAdjustment': -1}]
    assert [p['arn'] for p in result['policies']] == [policies[p['name']]['PolicyARN'] for p in result['policies']]
    assert result['alarms'][0]['arn'] == out_alarm['AlarmArn']

    del api_calls[:]
    result, failed = run_module(scaling_alarm, gpu_args())
    assert not failed and not result['changed'], result
    assert mutating(api_calls) == []

    del api_calls[:]
    result, failed = run_module(scaling_alarm, gpu_args(scale_out_threshold=55), check_mode=True, diff=True)
    assert not failed and result['changed']
    assert mutating(api_calls) == []
    assert result['diff']['before']['scale_out_alarm']['threshold'] == 40.0
    assert result['diff']['after']['scale_out_alarm']['threshold'] == 55.0
    assert result['diff']['before']['scale_in_alarm'] == result['diff']['after']['scale_in_alarm']
    assert _alarms(cloud, 'sandbox-sandbox-cpu-gpu-scale-out')['sandbox-sandbox-cpu-gpu-scale-out']['Threshold'] == 40.0

    del api_calls[:]
    result, failed = run_module(scaling_alarm, gpu_args(scale_out_threshold=55))
    assert result['changed']
    assert mutating(api_calls) == [('cloudwatch', 'PutMetricAlarm')], 'only the changed alarm is written'

    del api_calls[:]
    result, failed = run_module(scaling_alarm, absent_args(), check_mode=True)
    assert not failed, result
    assert result['changed'] and mutating(api_calls) == []

    result, failed = run_module(scaling_alarm, absent_args(), diff=True)
    assert not failed and result['changed']
    assert result['diff']['after'] == {'scale_out_alarm': None, 'scale_in_alarm': None, 'scale_out_policy': None, 'scale_in_policy': None}
    assert _policies(cloud) == {}
    assert _alarms(cloud, 'sandbox-sandbox-cpu-gpu-scale-out', 'sandbox-sandbox-cpu-gpu-scale-in') == {}

    del api_calls[:]
    result, failed = run_module(scaling_alarm, absent_args())
    assert not failed and not result['changed'] and mutating(api_calls) == []


def test_check_mode_create_uses_placeholder_and_writes_nothing(run_module, cloud, api_calls):
    result, failed = run_module(scaling_alarm, cpu_args(), check_mode=True, diff=True)
    assert not failed and result['changed']
    assert mutating(api_calls) == []
    assert result['placeholder_arns'] == ['sandbox-sandbox-cpu-cpu-scale-out', 'sandbox-sandbox-cpu-cpu-scale-in']
    assert '<known after the policy is created>' in result['alarms'][0]['alarm_actions'][0]
    assert result['diff']['before']['scale_out_policy'] is None
    assert result['alarms'][0]['expression'].endswith("AutoScalingGroupName = '%s'" % cloud['group'])
    assert _policies(cloud) == {}


def test_cpu_pair_with_explicit_group_and_warmup_kept(run_module, cloud, api_calls):
    args = {'name': 'cpu-pair', 'autoscaling_group_name': cloud['group'], 'metric': 'cpu', 'estimated_instance_warmup': 300,
            'scale_out_adjustment': 2, 'scale_in_adjustment': -2}
    result, failed = run_module(scaling_alarm, args)
    assert not failed and result['changed']
    assert _policies(cloud)['cpu-pair-scale-out']['EstimatedInstanceWarmup'] == 300
    assert result['alarms'][0]['threshold'] == 60.0 and result['alarms'][1]['threshold'] == 5.0
    del args['estimated_instance_warmup']
    del api_calls[:]
    result, failed = run_module(scaling_alarm, args)
    assert not failed and not result['changed'] and mutating(api_calls) == []


def test_throttling_is_retried(run_module, cloud, api_calls, monkeypatch):
    monkeypatch.setattr('time.sleep', lambda seconds: None)
    throttled = {'PutScalingPolicy': 1, 'PutMetricAlarm': 1}
    recording = botocore.client.BaseClient._make_api_call

    def flaky(self, operation_name, api_params):
        if throttled.get(operation_name):
            throttled[operation_name] -= 1
            api_calls.append((self.meta.service_model.service_name, operation_name + ' (throttled)'))
            raise botocore.exceptions.ClientError({'Error': {'Code': 'ThrottlingException', 'Message': 'Rate exceeded'}}, operation_name)
        return recording(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', flaky)
    result, failed = run_module(scaling_alarm, gpu_args())
    assert not failed and result['changed'], result
    assert throttled == {'PutScalingPolicy': 0, 'PutMetricAlarm': 0}
    assert len(_policies(cloud)) == 2
    result, failed = run_module(scaling_alarm, gpu_args())
    assert not result['changed']


@pytest.mark.parametrize('args,option,text', [
    ({'name': 'x', 'autoscaling_group_name': 'missing-asg', 'metric': 'cpu'}, 'autoscaling_group_name', 'no Auto Scaling group named missing-asg'),
    (gpu_args(nodegroup_name='gpu-nodes'), 'nodegroup_name', 'no node group named gpu-nodes in cluster sandbox'),
    (gpu_args(cluster_name='elsewhere'), 'cluster_name', 'no EKS cluster named elsewhere'),
])
def test_missing_resources_are_reported_by_option_without_writes(run_module, cloud, api_calls, args, option, text):
    result, failed = run_module(scaling_alarm, args)
    assert failed
    assert result['errors'] == [{'option': option, 'message': text}], result
    assert mutating(api_calls) == []


def test_absent_when_node_group_is_gone_deletes_alarms_only(run_module, cloud, api_calls):
    run_module(scaling_alarm, gpu_args())
    cloud['cloudwatch'].put_metric_alarm(AlarmName='gone-scale-out', ComparisonOperator='GreaterThanThreshold', EvaluationPeriods=1,
                                         Threshold=1.0, Metrics=[{'Id': 'q', 'Expression': 'SELECT 1', 'Period': 60, 'ReturnData': True}])
    result, failed = run_module(scaling_alarm, {'name': 'gone', 'cluster_name': CLUSTER, 'nodegroup_name': 'deleted', 'state': 'absent'})
    assert not failed and result['changed'] and result['autoscaling_group_name'] is None
    assert _alarms(cloud, 'gone-scale-out') == {}
    assert len(_policies(cloud)) == 2, 'policies of other pairs are untouched'


def test_drifted_alarm_is_repaired(run_module, cloud, api_calls):
    run_module(scaling_alarm, gpu_args())
    alarm = _alarms(cloud, 'sandbox-sandbox-cpu-gpu-scale-in')['sandbox-sandbox-cpu-gpu-scale-in']
    cloud['cloudwatch'].put_metric_alarm(AlarmName=alarm['AlarmName'], ComparisonOperator='LessThanThreshold', EvaluationPeriods=3,
                                         Threshold=10.0, AlarmActions=['arn:aws:sns:us-east-2:123456789012:elsewhere'],
                                         Metrics=[dict(alarm['Metrics'][0], Period=300)])
    del api_calls[:]
    result, failed = run_module(scaling_alarm, gpu_args(), diff=True)
    assert not failed and result['changed']
    assert mutating(api_calls) == [('cloudwatch', 'PutMetricAlarm')]
    before, after = result['diff']['before']['scale_in_alarm'], result['diff']['after']['scale_in_alarm']
    assert before['metrics'][0]['period'] == 300 and after['metrics'][0]['period'] == 120
    assert before['evaluation_periods'] == 3 and after['evaluation_periods'] == 1
    repaired = _alarms(cloud, alarm['AlarmName'])[alarm['AlarmName']]
    # The policy is back; the topic another tool put there is kept (purge_actions defaults to false).
    assert sorted(repaired['AlarmActions']) == sorted([_policies(cloud)['sandbox-sandbox-cpu-gpu-scale-in']['PolicyARN'],
                                                       'arn:aws:sns:us-east-2:123456789012:elsewhere'])


def test_gpu_pair_for_an_explicit_group_uses_query_dimensions(run_module, cloud):
    args = {'name': 'self-managed', 'autoscaling_group_name': cloud['group'], 'metric': 'gpu',
            'query_dimensions': {'ClusterName': 'prod', 'NodegroupName': 'inference', 'NodegroupType': 'gpu'}}
    result, failed = run_module(scaling_alarm, args)
    assert not failed and result['changed']
    expression = _alarms(cloud, 'self-managed-scale-out')['self-managed-scale-out']['Metrics'][0]['Expression']
    assert expression.endswith("WHERE ClusterName = 'prod' AND NodegroupName = 'inference' AND NodegroupType = 'gpu'")
    result, failed = run_module(scaling_alarm, args)
    assert not result['changed']


def test_custom_query_replaces_the_expression(run_module, cloud):
    query = "SELECT MAX(ApproximateNumberOfMessagesVisible)\n  FROM SCHEMA(\"AWS/SQS\", QueueName) WHERE QueueName = 'jobs'"
    args = {'name': 'queue', 'autoscaling_group_name': cloud['group'], 'metric': 'cpu', 'query': query,
            'scale_out_threshold': 100, 'scale_in_threshold': 5}
    result, failed = run_module(scaling_alarm, args)
    assert not failed and result['changed'], result
    assert result['alarms'][0]['expression'] == scaling_alarm.normalise_expression(query)
    assert result['alarms'][0]['threshold'] == 100.0
    result, failed = run_module(scaling_alarm, args)
    assert not result['changed']


def test_query_control_characters_are_refused_but_line_breaks_are_fine():
    params = dict(scaling_alarm_defaults(), metric='cpu', autoscaling_group_name='g', query='SELECT 1\n\tFROM x')
    scaling_alarm.check_input(params)
    params['query'] = 'SELECT 1\x07 FROM x'
    with pytest.raises(scaling_alarm.InputErrors, match='query: must not contain control characters'):
        scaling_alarm.check_input(params)


# ---------------------------------------------------------------------------------------------
# several pairs in one call (alarms)

GPU_DIMENSIONS = {'ClusterName': CLUSTER, 'NodegroupName': NODEGROUP, 'NodegroupType': 'gpu'}
READS = ('Describe', 'List', 'Get')


def reads(calls):
    return [c for c in calls if c[1].startswith(READS)]


def pairs_args(group=None, **extra):
    """A GPU and a CPU pair; on the group by name when `group` is given, else through the node group."""
    gpu = {'name': 'pairs-gpu', 'metric': 'gpu'}
    if group:
        gpu['query_dimensions'] = dict(GPU_DIMENSIONS)
        args = {'autoscaling_group_name': group}
    else:
        args = {'cluster_name': CLUSTER, 'nodegroup_name': NODEGROUP}
    args['alarms'] = [gpu, {'name': 'pairs-cpu', 'metric': 'cpu', 'scale_out_threshold': 70}]
    args.update(extra)
    return args


PAIR_NAMES = ['pairs-gpu-scale-out', 'pairs-gpu-scale-in', 'pairs-cpu-scale-out', 'pairs-cpu-scale-in']


def test_two_pairs_in_one_call_create_rerun_and_delete(run_module, cloud, api_calls):
    result, failed = run_module(scaling_alarm, pairs_args(cloud['group']))
    assert not failed and result['changed'], result
    assert [p['name'] for p in result['policies']] == PAIR_NAMES
    assert [a['name'] for a in result['alarms']] == PAIR_NAMES
    assert [a['threshold'] for a in result['alarms']] == [40.0, 10.0, 70.0, 5.0]
    assert [p['adjustment'] for p in result['policies']] == [1, -1, 1, -1]
    assert "NodegroupType = 'gpu'" in result['alarms'][0]['expression']
    assert result['alarms'][2]['expression'].endswith("AutoScalingGroupName = '%s'" % cloud['group'])
    assert sorted(mutating(api_calls)) == sorted([('autoscaling', 'PutScalingPolicy')] * 4 + [('cloudwatch', 'PutMetricAlarm')] * 4)
    policies = _policies(cloud)
    alarms = _alarms(cloud, *PAIR_NAMES)
    assert sorted(policies) == sorted(PAIR_NAMES) and sorted(alarms) == sorted(PAIR_NAMES)
    for name in PAIR_NAMES:
        assert alarms[name]['AlarmActions'] == [policies[name]['PolicyARN']]
    assert [p['arn'] for p in result['policies']] == [policies[n]['PolicyARN'] for n in PAIR_NAMES]
    assert [a['arn'] for a in result['alarms']] == [alarms[n]['AlarmArn'] for n in PAIR_NAMES]
    assert alarms['pairs-cpu-scale-out']['Threshold'] == 70.0

    del api_calls[:]
    result, failed = run_module(scaling_alarm, pairs_args(cloud['group']), diff=True)
    assert not failed and not result['changed'], result
    assert api_calls == [('autoscaling', 'DescribePolicies'), ('cloudwatch', 'DescribeAlarms')], \
        'one read of all policies and one of all alarms; the group is known to exist from its policies'
    assert set(result['diff']['before']) == {'pairs-gpu', 'pairs-cpu'}
    assert set(result['diff']['before']['pairs-cpu']) == {'scale_out_policy', 'scale_in_policy', 'scale_out_alarm', 'scale_in_alarm'}
    assert result['diff']['before'] == result['diff']['after']

    del api_calls[:]
    result, failed = run_module(scaling_alarm, pairs_args(state='absent', alarms=[{'name': 'pairs-gpu'}, {'name': 'pairs-cpu'}]),
                                diff=True)
    assert not failed and result['changed'], result
    assert sorted(mutating(api_calls)) == [('autoscaling', 'DeletePolicy')] * 4 + [('cloudwatch', 'DeleteAlarms')]
    assert result['diff']['after'] == {p: {'scale_out_alarm': None, 'scale_in_alarm': None, 'scale_out_policy': None, 'scale_in_policy': None}
                                       for p in ('pairs-gpu', 'pairs-cpu')}
    assert result['policies'] == [] and result['alarms'] == []
    assert _policies(cloud) == {} and _alarms(cloud, *PAIR_NAMES) == {}

    del api_calls[:]
    result, failed = run_module(scaling_alarm, pairs_args(state='absent', alarms=[{'name': 'pairs-gpu'}, {'name': 'pairs-cpu'}]))
    assert not failed and not result['changed'] and mutating(api_calls) == []


def test_two_pairs_through_the_node_group_rerun_reads(run_module, cloud, api_calls):
    result, failed = run_module(scaling_alarm, pairs_args())
    assert not failed and result['changed'], result
    assert ('autoscaling', 'DescribeAutoScalingGroups') in api_calls, 'policies missing: the group is checked'
    assert "NodegroupName = 'sandbox-cpu'" in result['alarms'][0]['expression']
    del api_calls[:]
    result, failed = run_module(scaling_alarm, pairs_args())
    assert not failed and not result['changed'], result
    assert api_calls == [('eks', 'DescribeNodegroup'), ('autoscaling', 'DescribePolicies'), ('cloudwatch', 'DescribeAlarms')]


def test_two_pairs_check_mode_writes_nothing(run_module, cloud, api_calls):
    result, failed = run_module(scaling_alarm, pairs_args(cloud['group']), check_mode=True, diff=True)
    assert not failed and result['changed'], result
    assert mutating(api_calls) == []
    assert result['placeholder_arns'] == PAIR_NAMES
    assert result['diff']['before'] == {p: {'scale_out_policy': None, 'scale_in_policy': None, 'scale_out_alarm': None, 'scale_in_alarm': None}
                                        for p in ('pairs-gpu', 'pairs-cpu')}
    assert result['diff']['after']['pairs-cpu']['scale_out_alarm']['threshold'] == 70.0
    assert _policies(cloud) == {} and _alarms(cloud, *PAIR_NAMES) == {}


def test_only_the_changed_pair_is_written(run_module, cloud, api_calls):
    run_module(scaling_alarm, pairs_args(cloud['group']))
    args = pairs_args(cloud['group'])
    args['alarms'][1]['scale_in_threshold'] = 20
    del api_calls[:]
    result, failed = run_module(scaling_alarm, args, diff=True)
    assert not failed and result['changed'], result
    assert mutating(api_calls) == [('cloudwatch', 'PutMetricAlarm')]
    assert reads(api_calls) == [('autoscaling', 'DescribePolicies'), ('cloudwatch', 'DescribeAlarms'), ('cloudwatch', 'DescribeAlarms')], \
        'one re-read after the write'
    assert result['diff']['before']['pairs-cpu']['scale_in_alarm']['threshold'] == 5.0
    assert result['diff']['after']['pairs-cpu']['scale_in_alarm']['threshold'] == 20.0
    assert result['diff']['before']['pairs-gpu'] == result['diff']['after']['pairs-gpu']
    assert _alarms(cloud, 'pairs-cpu-scale-in')['pairs-cpu-scale-in']['Threshold'] == 20.0


def test_top_level_adjustments_are_the_pairs_defaults(run_module, cloud):
    args = pairs_args(cloud['group'], scale_out_adjustment=3, scale_in_adjustment=-2)
    args['alarms'][1]['scale_in_adjustment'] = -4
    result, failed = run_module(scaling_alarm, args)
    assert not failed, result
    assert [p['adjustment'] for p in result['policies']] == [3, -2, 3, -4]
    steps = dict((n, p['StepAdjustments'][0]['ScalingAdjustment']) for n, p in _policies(cloud).items())
    assert steps == {'pairs-gpu-scale-out': 3, 'pairs-gpu-scale-in': -2, 'pairs-cpu-scale-out': 3, 'pairs-cpu-scale-in': -4}
    result, failed = run_module(scaling_alarm, args)
    assert not failed and not result['changed']


def test_existence_check_runs_when_one_pair_is_new(run_module, cloud, api_calls):
    run_module(scaling_alarm, {'name': 'pairs-gpu', 'autoscaling_group_name': cloud['group'], 'metric': 'gpu',
                               'query_dimensions': dict(GPU_DIMENSIONS)})
    del api_calls[:]
    result, failed = run_module(scaling_alarm, pairs_args(cloud['group']))
    assert not failed and result['changed'], result
    assert reads(api_calls)[:3] == [('autoscaling', 'DescribePolicies'), ('autoscaling', 'DescribeAutoScalingGroups'),
                                    ('cloudwatch', 'DescribeAlarms')]
    assert sorted(mutating(api_calls)) == [('autoscaling', 'PutScalingPolicy')] * 2 + [('cloudwatch', 'PutMetricAlarm')] * 2


def test_single_pair_rerun_skips_the_group_check_too(run_module, cloud, api_calls):
    args = {'name': 'cpu-pair', 'autoscaling_group_name': cloud['group'], 'metric': 'cpu'}
    run_module(scaling_alarm, args)
    del api_calls[:]
    result, failed = run_module(scaling_alarm, args)
    assert not failed and not result['changed']
    assert api_calls == [('autoscaling', 'DescribePolicies'), ('cloudwatch', 'DescribeAlarms')]


@pytest.mark.parametrize('state', ['present', 'absent'])
def test_missing_group_is_still_reported_with_alarms(run_module, cloud, api_calls, state):
    args = pairs_args('missing-asg', state=state)
    if state == 'absent':
        args['alarms'] = [{'name': 'pairs-gpu'}, {'name': 'pairs-cpu'}]
    result, failed = run_module(scaling_alarm, args)
    assert mutating(api_calls) == []
    if state == 'present':
        assert failed
        assert result['errors'] == [{'option': 'autoscaling_group_name', 'message': 'no Auto Scaling group named missing-asg'}], result
        assert ('autoscaling', 'DescribeAutoScalingGroups') in api_calls
    else:
        assert not failed and not result['changed'] and result['autoscaling_group_name'] is None


def test_policies_read_refused_for_a_missing_group_is_reported_as_missing(run_module, cloud, api_calls, monkeypatch):
    """Should DescribePolicies refuse an unknown group instead of answering nothing, the group check explains it."""
    recording = botocore.client.BaseClient._make_api_call

    def refusing(self, operation_name, api_params):
        if operation_name == 'DescribePolicies':
            raise botocore.exceptions.ClientError({'Error': {'Code': 'ValidationError', 'Message': 'no such group'}}, operation_name)
        return recording(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', refusing)
    result, failed = run_module(scaling_alarm, pairs_args('missing-asg'))
    assert failed and result['errors'][0]['option'] == 'autoscaling_group_name', result
    result, failed = run_module(scaling_alarm, pairs_args(cloud['group']))
    assert failed and 'Failed to read scaling policies of %s' % cloud['group'] in result['msg'], result


def test_many_pairs_are_read_in_batches_of_the_api_limits(run_module, cloud, api_calls):
    args = {'autoscaling_group_name': cloud['group'], 'alarms': [{'name': 'many-%02d' % i, 'metric': 'cpu'} for i in range(30)]}
    result, failed = run_module(scaling_alarm, args, check_mode=True)
    assert not failed and result['changed'], result
    assert len(result['policies']) == 60 and mutating(api_calls) == []
    expected = [('autoscaling', 'DescribePolicies')] * 2 + [('autoscaling', 'DescribeAutoScalingGroups'), ('cloudwatch', 'DescribeAlarms')]
    assert reads(api_calls) == expected, '50 policy names and 100 alarm names per request'


# validation of alarms: every problem at once, named alarms[<index>].<option>, before any client

def _pairs_bad(*entries, **extra):
    args = {'cluster_name': CLUSTER, 'nodegroup_name': NODEGROUP, 'alarms': list(entries)}
    args.update(extra)
    return args


PAIR_BAD_INPUTS = [
    ('scale_in above scale_out in the second pair',
     _pairs_bad({'name': 'a', 'metric': 'gpu'}, {'name': 'b', 'metric': 'cpu', 'scale_in_threshold': 70}),
     'alarms[1].scale_in_threshold', 'below scale_out_threshold (60)'),
    ('threshold above 100', _pairs_bad({'name': 'a', 'metric': 'gpu', 'scale_out_threshold': 120}),
     'alarms[0].scale_out_threshold', '<= 100'),
    ('metric missing with state=present', _pairs_bad({'name': 'a', 'metric': 'gpu'}, {'name': 'b'}), 'alarms[1].metric', 'required'),
    ('bad pair name', _pairs_bad({'name': 'a b', 'metric': 'gpu'}), 'alarms[0].name', 'valid prefix'),
    ('pair name too long', _pairs_bad({'name': 'n' * 250, 'metric': 'gpu'}), 'alarms[0].name', 'at most 245'),
    ('duplicate names', _pairs_bad({'name': 'a', 'metric': 'gpu'}, {'name': 'a', 'metric': 'cpu'}), 'alarms[1].name',
     'duplicates alarms[0].name'),
    ('query_dimensions on a cpu pair', _pairs_bad({'name': 'a', 'metric': 'cpu', 'query_dimensions': {'ClusterName': 'x'}}),
     'alarms[0].query_dimensions', 'only applies to metric=gpu'),
    ('blank query', _pairs_bad({'name': 'a', 'metric': 'cpu', 'query': ' '}), 'alarms[0].query', 'blank'),
    ('gpu pair from an ASG name alone', {'autoscaling_group_name': 'asg', 'alarms': [{'name': 'a', 'metric': 'gpu'}]},
     'alarms[0].metric', 'cannot be derived from autoscaling_group_name alone'),
    ('pair adjustment of the wrong sign', _pairs_bad({'name': 'a', 'metric': 'gpu', 'scale_in_adjustment': 1}),
     'alarms[0].scale_in_adjustment', 'negative'),
    ('inherited adjustment of the wrong sign', _pairs_bad({'name': 'a', 'metric': 'gpu'}, {'name': 'b', 'metric': 'cpu'},
                                                          scale_out_adjustment=0),
     'scale_out_adjustment', 'positive'),
    ('description too long', _pairs_bad({'name': 'a', 'metric': 'gpu', 'alarm_description': 'd' * 1020}),
     'alarms[0].alarm_description', 'at most 1012'),
    ('empty list', _pairs_bad(), 'alarms', 'at least one pair'),
    ('shared options are still checked', _pairs_bad({'name': 'a', 'metric': 'gpu'}, period=45), 'period', 'multiple of 60'),
]


@pytest.mark.parametrize('args,option,text', [b[1:] for b in PAIR_BAD_INPUTS], ids=[b[0] for b in PAIR_BAD_INPUTS])
def test_pair_bad_input_names_the_entry_and_makes_no_call(run_module, no_clients, aws_env, args, option, text):
    result, failed = run_module(scaling_alarm, args)
    assert failed
    messages = dict((e['option'].split(' ')[0], e['message']) for e in result['errors'])
    assert option in messages and text in messages[option], result['msg']
    assert no_clients == []


def test_pair_problems_are_reported_at_once(run_module, no_clients, aws_env):
    result, failed = run_module(scaling_alarm, _pairs_bad({'name': 'ok', 'metric': 'gpu', 'scale_out_threshold': 101},
                                                          {'name': 'bad name', 'metric': 'cpu', 'scale_in_threshold': 30,
                                                           'scale_out_threshold': 20},
                                                          {'name': 'ok', 'metric': 'cpu'},
                                                          scale_in_adjustment=1, evaluation_periods=0))
    assert failed
    options = [e['option'].split(' ')[0] for e in result['errors']]
    assert set(options) == {'alarms[0].scale_out_threshold', 'alarms[1].name', 'alarms[1].scale_in_threshold', 'alarms[2].name',
                            'scale_in_adjustment', 'evaluation_periods'}, result['errors']
    assert options.count('scale_in_adjustment') == 1, 'an inherited option is reported once, not per pair'
    assert no_clients == []


def test_absent_pairs_need_only_names(run_module, no_clients, aws_env):
    result, failed = run_module(scaling_alarm, _pairs_bad({'name': 'a'}, {'name': 'a'}, state='absent'))
    assert failed and [e['option'] for e in result['errors']] == ['alarms[1].name'], result
    params = dict(scaling_alarm_defaults(), name=None, state='absent', autoscaling_group_name='g', alarms=[{'name': 'a'}, {'name': 'b'}])
    settings = scaling_alarm.check_input(params)
    assert [p['params']['name'] for p in settings['pairs']] == ['a', 'b']


PAIR_ARGSPEC_ERRORS = [
    ('name and alarms', _pairs_bad({'name': 'a', 'metric': 'gpu'}, name='x'), 'mutually exclusive', 'name|alarms'),
    ('metric and alarms', _pairs_bad({'name': 'a', 'metric': 'gpu'}, metric='gpu'), 'mutually exclusive', 'metric|alarms'),
    ('thresholds and alarms', _pairs_bad({'name': 'a', 'metric': 'gpu'}, scale_out_threshold=50, scale_in_threshold=5),
     'mutually exclusive', 'scale_in_threshold|alarms'),
    ('query and alarms', _pairs_bad({'name': 'a', 'metric': 'cpu'}, query='SELECT 1'), 'mutually exclusive', 'query|alarms'),
    ('neither name nor alarms', {'cluster_name': CLUSTER, 'nodegroup_name': NODEGROUP, 'metric': 'gpu'}, 'one of the following is required',
     'name, alarms'),
    ('entry without name', _pairs_bad({'metric': 'gpu'}), 'missing required arguments', 'name'),
    ('entry with an unknown metric', _pairs_bad({'name': 'a', 'metric': 'memory'}), 'must be one of', 'metric'),
    ('entry with an unknown option', _pairs_bad({'name': 'a', 'metric': 'gpu', 'period': 60}), 'Unsupported parameters', 'period'),
]


@pytest.mark.parametrize('args,text,names', [b[1:] for b in PAIR_ARGSPEC_ERRORS], ids=[b[0] for b in PAIR_ARGSPEC_ERRORS])
def test_pair_argument_spec_rules_fail_before_any_call(run_module, no_clients, aws_env, args, text, names):
    result, failed = run_module(scaling_alarm, args)
    assert failed
    assert text in result['msg'] and names in result['msg'], result['msg']
    assert no_clients == []
