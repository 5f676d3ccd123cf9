"""The EC2, IAM, SSM, Auto Scaling and CloudWatch service layers, and the GPU metric dimensions."""
import pytest

from ansible_collections.genai.stack.plugins.module_utils._autoscaling import AutoScaling
from ansible_collections.genai.stack.plugins.module_utils._aws import AWSServiceError
from ansible_collections.genai.stack.plugins.module_utils._cloudwatch import CloudWatch
from ansible_collections.genai.stack.plugins.module_utils._ec2 import EC2, tag_specifications
from ansible_collections.genai.stack.plugins.module_utils._gpu import GPU_METRIC_DIMENSIONS, gpu_metric_dimensions
from ansible_collections.genai.stack.plugins.module_utils._iam import IAM, SSM, policy_document, role_name
from ansible_collections.genai.stack.plugins.module_utils._userdata import cloudwatch_agent_config

from fake_aws import FakeClient, client_error


# EC2 ------------------------------------------------------------------------------------------

def test_tag_specifications_sort_the_tags_for_each_type():
    assert tag_specifications(['instance', 'volume'], {'b': '2', 'a': '1'}) == [
        {'ResourceType': 'instance', 'Tags': [{'Key': 'a', 'Value': '1'}, {'Key': 'b', 'Value': '2'}]},
        {'ResourceType': 'volume', 'Tags': [{'Key': 'a', 'Value': '1'}, {'Key': 'b', 'Value': '2'}]},
    ]
    assert tag_specifications(['launch-template'], {}) == [{'ResourceType': 'launch-template', 'Tags': []}]


def test_missing_launch_template_image_and_instance_type_read_as_none():
    ec2 = EC2(FakeClient(describe_launch_templates=client_error('InvalidLaunchTemplateName.NotFoundException'),
                         describe_images=client_error('InvalidAMIID.NotFound'),
                         describe_instance_types=client_error('InvalidInstanceType')))
    assert ec2.describe_launch_template('t') is None
    assert ec2.describe_image('ami-1') is None
    assert ec2.describe_instance_type('g9.huge') is None


def test_launch_template_versions_by_number_and_none_asked_makes_no_call():
    client = FakeClient(describe_launch_template_versions={'LaunchTemplateVersions': [
        {'VersionNumber': 3, 'LaunchTemplateData': {'ImageId': 'ami-3'}}, {'VersionNumber': 4}]})
    ec2 = EC2(client)
    assert ec2.launch_template_versions('lt-1', [None]) == {} and client.calls == []
    assert ec2.launch_template_versions('lt-1', ['4', 3, None]) == {'3': {'ImageId': 'ami-3'}, '4': {}}
    assert client.calls == [('describe_launch_template_versions', {'LaunchTemplateId': 'lt-1', 'Versions': ['3', '4']})]


def test_other_ec2_errors_name_the_operation():
    with pytest.raises(AWSServiceError, match="^Could not describe launch template 't'"):
        EC2(FakeClient(describe_launch_templates=client_error('UnauthorizedOperation'))).describe_launch_template('t')


# IAM and SSM ----------------------------------------------------------------------------------

@pytest.mark.parametrize('arn, name', [
    ('arn:aws:iam::123456789012:role/eks-node-role', 'eks-node-role'),
    ('arn:aws-cn:iam::123456789012:role/path/to/eks-node-role', 'eks-node-role'),
    ('arn:aws:iam::123456789012:user/someone', None),
    ('arn:aws:sts::123456789012:assumed-role/r/s', None),
    ('eks-node-role', None),
    (None, None),
])
def test_role_name(arn, name):
    assert role_name(arn) == name


def test_policy_document_reads_iam_url_encoding():
    assert policy_document('%7B%22Statement%22%3A%5B1%5D%7D') == {'Statement': [1]}
    with pytest.raises(ValueError, match='has no Statement'):
        policy_document({'Version': '2012-10-17'})


def test_role_policy_reads_none_when_missing_and_delete_tolerates_a_gone_policy():
    client = FakeClient(get_role_policy=client_error('NoSuchEntity'), delete_role_policy=client_error('NoSuchEntity'))
    iam = IAM(client)
    assert iam.get_role_policy('r', 'p') is None
    iam.delete_role_policy('r', 'p')
    assert [c[0] for c in client.calls] == ['get_role_policy', 'delete_role_policy']


def test_role_policy_document_is_decoded():
    iam = IAM(FakeClient(get_role_policy={'PolicyDocument': '%7B%22Statement%22%3A%5B%5D%2C%22x%22%3A1%7D'}))
    with pytest.raises(ValueError):
        iam.get_role_policy('r', 'p')  # an empty Statement is no policy
    iam = IAM(FakeClient(get_role_policy={'PolicyDocument': {'Statement': [{'Effect': 'Allow'}]}}))
    assert iam.get_role_policy('r', 'p') == {'Statement': [{'Effect': 'Allow'}]}


def test_get_role_access_denied_is_an_error_for_the_caller():
    with pytest.raises(AWSServiceError) as raised:
        IAM(FakeClient(get_role=client_error('AccessDenied'))).get_role('r')
    assert raised.value.code == 'AccessDenied'


def test_ssm_parameter():
    assert SSM(FakeClient(get_parameter={'Parameter': {'Value': 'ami-1'}})).parameter('/p') == 'ami-1'
    assert SSM(FakeClient(get_parameter=client_error('ParameterNotFound'))).parameter('/p') is None


# Auto Scaling ---------------------------------------------------------------------------------

def _policies(params):
    return [{'ScalingPolicies': [{'PolicyName': name} for name in params['PolicyNames'] if name.endswith('-out')]}]


def test_describe_policies_asks_50_names_at_a_time():
    client = FakeClient(describe_policies=_policies)
    names = ['p%03d-%s' % (i, d) for i in range(30) for d in ('out', 'in')]
    found = AutoScaling(client).describe_policies('asg', names)
    assert sorted(found) == sorted(n for n in names if n.endswith('-out'))
    assert [len(c[1]['PolicyNames']) for c in client.calls] == [50, 10]
    assert all(c[1]['AutoScalingGroupName'] == 'asg' for c in client.calls)


def test_delete_policy_takes_validation_error_as_gone_but_not_other_errors():
    AutoScaling(FakeClient(delete_policy=client_error('ValidationError'))).delete_policy('asg', 'p')
    with pytest.raises(AWSServiceError, match='^Could not delete scaling policy p'):
        AutoScaling(FakeClient(delete_policy=client_error('AccessDenied'))).delete_policy('asg', 'p')


def test_group_exists_and_put_policy():
    autoscaling = AutoScaling(FakeClient(describe_auto_scaling_groups={'AutoScalingGroups': []},
                                         put_scaling_policy={'PolicyARN': 'arn:p'}))
    assert autoscaling.group_exists('asg') is False
    assert autoscaling.put_scaling_policy({'PolicyName': 'p', 'AutoScalingGroupName': 'asg'}) == 'arn:p'


# CloudWatch -----------------------------------------------------------------------------------

def test_describe_alarms_asks_100_names_at_a_time():
    client = FakeClient(describe_alarms=lambda params: [{'MetricAlarms': [{'AlarmName': params['AlarmNames'][0]}]}])
    names = ['a%03d' % i for i in range(150)]
    assert sorted(CloudWatch(client).describe_alarms(names)) == ['a000', 'a100']
    assert [len(c[1]['AlarmNames']) for c in client.calls] == [100, 50]
    assert client.calls[0][1]['AlarmTypes'] == ['MetricAlarm']


def test_delete_alarms_in_batches_and_none_makes_no_call():
    client = FakeClient(delete_alarms={})
    cloudwatch = CloudWatch(client)
    cloudwatch.delete_alarms([])
    assert client.calls == []
    cloudwatch.delete_alarms(['a%03d' % i for i in range(101)])
    assert [len(c[1]['AlarmNames']) for c in client.calls] == [100, 1]


# GPU metric dimensions ------------------------------------------------------------------------

def test_gpu_metric_dimensions_are_what_the_agent_appends_and_aggregates():
    dims = gpu_metric_dimensions('prod', 'gpu-nodes')
    assert dims == {'ClusterName': 'prod', 'NodegroupName': 'gpu-nodes', 'NodegroupType': 'gpu'}
    assert tuple(dims) == GPU_METRIC_DIMENSIONS
    metrics = cloudwatch_agent_config('prod', 'gpu-nodes', 'us-east-2')['metrics']
    assert metrics['metrics_collected']['nvidia_gpu']['append_dimensions'] == dims
    assert metrics['aggregation_dimensions'] == [list(GPU_METRIC_DIMENSIONS)]
