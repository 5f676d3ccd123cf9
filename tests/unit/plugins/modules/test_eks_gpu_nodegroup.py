"""eks_gpu_nodegroup through main(): input validation, user data, template comparison.

The AWS calls run against moto's in-process mock; the live behaviour against the sandbox is in
tests/integration/targets/eks_gpu_nodegroup.
"""
import base64
import json
import tomllib

import boto3
import pytest
from moto import mock_aws

from ansible_collections.genai.stack.plugins.modules import eks_gpu_nodegroup
from ansible_collections.genai.stack.plugins.module_utils import _userdata

ROLE = 'arn:aws:iam::123456789012:role/sandbox-eks-node-role'
BASE = {'name': 'gpu', 'cluster_name': 'demo', 'node_role': ROLE, 'region': 'us-east-2'}
POLICY = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': ['cloudwatch:PutMetricData'], 'Resource': '*'}]}


# Every test here runs against moto in-process (tests/unit/plugins/modules/conftest.py).
pytestmark = pytest.mark.usefixtures('offline_aws')


class CallRecorder:
    """Fails the test if any AWS API is called: validation must end before the first request."""

    def __init__(self, monkeypatch):
        self.calls = []
        import botocore.client

        original = botocore.client.BaseClient._make_api_call

        def record(client, operation, params):
            self.calls.append(operation)
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', record)


BAD_INPUTS = [
    ({'instance_type': 'g4dn huge'}, 'instance_type', 'not an EC2 instance type'),
    ({'instance_type': 'm5.xlarge'}, 'instance_type', 'no NVIDIA GPU'),
    ({'instance_type': 'g4ad.xlarge'}, 'instance_type', 'no NVIDIA GPU'),
    ({'instance_type': 't3.medium'}, 'instance_type', 'no NVIDIA GPU'),
    ({'scaling_config': {'min_size': 3, 'max_size': 2, 'desired_size': 2}}, 'scaling_config.min_size', 'must not exceed'),
    ({'scaling_config': {'min_size': 1, 'max_size': 2, 'desired_size': 5}}, 'scaling_config.desired_size', 'between'),
    ({'scaling_config': {'min_size': 1, 'max_size': 2, 'desired_size': 0}}, 'scaling_config.desired_size', 'between'),
    ({'scaling_config': {'min_size': -1, 'max_size': 2, 'desired_size': 1}}, 'scaling_config.min_size', '>= 0'),
    ({'scaling_config': {'min_size': 0, 'max_size': 0, 'desired_size': 0}}, 'scaling_config.max_size', '>= 1'),
    ({'scaling_config': {'min_size': 0, 'max_size': 2, 'desired_size': -3}}, 'scaling_config.desired_size', '>= 0'),
    ({'kubernetes_version': '1.19'}, 'kubernetes_version', 'not supported: older than 1.29'),
    ({'kubernetes_version': '1.28'}, 'kubernetes_version', 'not supported: older than 1.29'),
    ({'kubernetes_version': 'latest'}, 'kubernetes_version', 'not supported'),
    ({'subnets': ['subnet-xyz']}, 'subnets', 'subnet id'),
    ({'subnets': ['sn-0123456789abcdef0']}, 'subnets', 'subnet id'),
    ({'subnets': []}, 'subnets', 'not be empty'),
    ({'subnets': ['subnet-0123abcd', 'subnet-0123abcd']}, 'subnets', 'more than once'),
    ({'node_role': 'sandbox-eks-node-role'}, 'node_role', 'role ARN'),
    ({'node_role': 'arn:aws:iam::12345:role/x'}, 'node_role', 'role ARN'),
    ({'node_role': 'arn:aws:iam::123456789012:user/x'}, 'node_role', 'role ARN'),
    ({'name': '-gpu'}, 'name', 'node group name'),
    ({'name': 'g' * 64}, 'name', 'node group name'),
    ({'cluster_name': 'bad name'}, 'cluster_name', 'cluster name'),
    ({'disk_size': 5}, 'disk_size', '>= 20'),
    ({'ami_id': 'ami-xyz'}, 'ami_id', 'AMI id'),
    ({'labels': {'bad key!': 'x'}}, 'labels', 'label key'),
    ({'labels': {'capability': 'g' * 70}}, 'labels', 'label value'),
    ({'labels': {'eks.amazonaws.com/nodegroup': 'other'}}, 'labels', 'which EKS reserves'),
    ({'taints': [{'key': 'a', 'effect': 'NO_SCHEDULE'}, {'key': 'a', 'effect': 'NO_SCHEDULE'}]}, 'taints', 'twice'),
    ({'security_groups': ['group-1']}, 'security_groups', 'security group id'),
    ({'tags': {'aws:owner': 'me'}}, 'tags', 'aws:'),
    ({'kms_key_id': 'not a key'}, 'kms_key_id', 'KMS'),
    ({'wait_timeout': 0}, 'wait_timeout', '>= 1'),
    ({'launch_template_name': 'x'}, 'launch_template_name', 'launch template name'),
    ({'node_role_policy': {'name': 'metrics'}}, 'node_role_policy.document', 'required with state=present'),
    ({'node_role_policy': {'name': 'metrics', 'document': '{not json'}}, 'node_role_policy.document', 'not valid JSON'),
    ({'node_role_policy': {'name': 'metrics', 'document': ['a']}}, 'node_role_policy.document', 'JSON object'),
    ({'node_role_policy': {'name': 'metrics', 'document': {'Version': '2012-10-17'}}}, 'node_role_policy.document', 'no Statement'),
    ({'node_role_policy': {'name': 'bad name', 'document': POLICY}}, 'node_role_policy.name', 'inline policy name'),
    ({'node_role_policy': {'name': 'big', 'document': dict(POLICY, Sid='x' * 10300)}}, 'node_role_policy.document', 'IAM allows 10240'),
]


@pytest.mark.parametrize('extra,option,text', BAD_INPUTS, ids=[b[1] + ':' + str(i) for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_fails_before_any_request(run_module, monkeypatch, extra, option, text):
    recorder = CallRecorder(monkeypatch)
    args = dict(BASE, **extra)
    result, failed = run_module(eks_gpu_nodegroup, args)
    assert failed, result
    assert option + ':' in result['msg'], result['msg']
    assert text in result['msg'], result['msg']
    assert any(e['option'] == option for e in result['errors'])
    assert recorder.calls == []


def test_all_problems_reported_at_once(run_module):
    result, failed = run_module(eks_gpu_nodegroup, dict(BASE, instance_type='m5.large', disk_size=1, subnets=['nope']))
    assert failed
    assert {e['option'] for e in result['errors']} == {'instance_type', 'disk_size', 'subnets'}


def test_unsupported_option_type_is_refused(run_module):
    result, failed = run_module(eks_gpu_nodegroup, dict(BASE, scaling_config={'min_size': 'two'}))
    assert failed
    assert 'min_size' in result['msg']


@mock_aws
def test_missing_cluster_names_option_and_mutates_nothing(run_module, monkeypatch):
    recorder = CallRecorder(monkeypatch)
    result, failed = run_module(eks_gpu_nodegroup, dict(BASE, cluster_name='nosuch'))
    assert failed
    assert result['msg'].startswith('cluster_name: no EKS cluster named')
    assert recorder.calls == ['DescribeCluster']


def _cluster():
    return {'name': 'demo', 'endpoint': 'https://ABC.gr7.us-east-2.eks.amazonaws.com',
            'certificateAuthority': {'data': 'Q0FEQVRB'}, 'serviceIpv4Cidr': '172.20.0.0/16'}


def test_nodeadm_user_data_has_node_config_agent_and_imdsv2():
    text = _userdata.render('nodeadm', _cluster(), 'gpu', 'us-east-2', {'capability': 'gpu'},
                            [{'key': 'nvidia.com/gpu', 'value': 'present', 'effect': 'NO_SCHEDULE'}])
    assert 'Content-Type: application/node.eks.aws' in text
    assert 'kind: NodeConfig' in text
    assert 'apiServerEndpoint: https://ABC.gr7.us-east-2.eks.amazonaws.com' in text
    assert 'cidr: 172.20.0.0/16' in text
    assert '--node-labels=capability=gpu' in text
    assert '--register-with-taints=nvidia.com/gpu=present:NoSchedule' in text
    assert 'dnf install -y amazon-cloudwatch-agent' in text
    _assert_agent_and_imds(text)


def test_bootstrap_user_data_for_al2():
    text = _userdata.render('bootstrap', _cluster(), 'gpu', 'us-east-2', {'capability': 'gpu'}, [])
    assert '/etc/eks/bootstrap.sh demo' in text
    assert '--b64-cluster-ca Q0FEQVRB' in text
    assert '--dns-cluster-ip 172.20.0.10' in text
    assert "--kubelet-extra-args '--node-labels=capability=gpu'" in text
    assert 'application/node.eks.aws' not in text
    assert 'yum install -y amazon-cloudwatch-agent' in text
    _assert_agent_and_imds(text)


def _assert_agent_and_imds(text):
    config_text = text.split("<<'CWAGENT'\n", 1)[1].split('\nCWAGENT\n', 1)[0]
    config = json.loads(config_text)
    gpu = config['metrics']['metrics_collected']['nvidia_gpu']
    assert gpu['measurement'] == ['utilization_gpu', 'utilization_memory', 'memory_total', 'memory_used', 'memory_free', 'power_draw']
    assert gpu['append_dimensions'] == {'ClusterName': 'demo', 'NodegroupName': 'gpu', 'NodegroupType': 'gpu'}
    assert config['metrics']['namespace'] == 'CWAgent'
    # Every metadata read carries a session token; the token itself comes from a PUT.
    for line in text.splitlines():
        if '169.254.169.254/latest/meta-data' in line:
            assert 'X-aws-ec2-metadata-token:' in line, line
        if '169.254.169.254/latest/api/token' in line:
            assert '-X PUT' in line, line


def test_rendering_is_deterministic():
    one = _userdata.render('nodeadm', _cluster(), 'gpu', 'us-east-2', {'b': '2', 'a': '1'}, [])
    two = _userdata.render('nodeadm', _cluster(), 'gpu', 'us-east-2', {'a': '1', 'b': '2'}, [])
    assert one == two


# ------------------------------------------------------------------ Bottlerocket (TOML settings)
GPU_TAINT = {'key': 'nvidia.com/gpu', 'value': 'present', 'effect': 'NO_SCHEDULE'}


def test_bottlerocket_user_data_is_toml_settings_that_join_the_cluster():
    text = _userdata.render('bottlerocket', _cluster(), 'gpu', 'us-east-2', {'capability': 'gpu', 'example.com/team': 'ml'},
                            [GPU_TAINT, {'key': 'dedicated', 'value': None, 'effect': 'NO_EXECUTE'},
                             {'key': 'nvidia.com/gpu', 'value': 'present', 'effect': 'PREFER_NO_SCHEDULE'}])
    settings = tomllib.loads(text)['settings']['kubernetes']
    assert {k: v for k, v in settings.items() if not isinstance(v, dict)} == {
        'cluster-name': 'demo',
        'api-server': 'https://ABC.gr7.us-east-2.eks.amazonaws.com',
        'cluster-certificate': 'Q0FEQVRB',
        'cluster-dns-ip': '172.20.0.10',    # EKS's: the .10 of the service CIDR
    }
    assert settings['node-labels'] == {'capability': 'gpu', 'example.com/team': 'ml'}
    # Bottlerocket's format: each key to its list of "value:Effect"; no value is an empty one.
    assert settings['node-taints'] == {'dedicated': [':NoExecute'], 'nvidia.com/gpu': ['present:NoSchedule', 'present:PreferNoSchedule']}
    # Settings only: no MIME document, no script, no CloudWatch agent (Bottlerocket runs neither).
    assert not text.startswith('MIME-Version') and '#!/bin/bash' not in text
    assert 'amazon-cloudwatch-agent' not in text and 'CWAgent' not in text


def test_bottlerocket_user_data_without_labels_or_taints_has_no_empty_tables():
    settings = tomllib.loads(_userdata.render('bottlerocket', _cluster(), 'gpu', 'us-east-2', {}, []))['settings']['kubernetes']
    assert 'node-labels' not in settings and 'node-taints' not in settings
    assert settings['cluster-name'] == 'demo'


def test_bottlerocket_rendering_is_deterministic():
    """The same labels and taints in another order render the same bytes, so a re-run makes no
    new launch template version."""
    taints = [GPU_TAINT, {'key': 'a', 'value': 'x', 'effect': 'NO_EXECUTE'}, {'key': 'a', 'value': 'x', 'effect': 'NO_SCHEDULE'}]
    one = _userdata.render('bottlerocket', _cluster(), 'gpu', 'us-east-2', {'b': '2', 'a': '1', 'c.io/z': '3'}, taints)
    two = _userdata.render('bottlerocket', dict(_cluster()), 'gpu', 'us-east-2', {'c.io/z': '3', 'a': '1', 'b': '2'}, list(reversed(taints)))
    assert one == two
    assert one.encode('utf-8') == two.encode('utf-8')
    # Nothing of the agent's options changes the TOML: they configure an agent Bottlerocket has not.
    assert one == _userdata.render('bottlerocket', _cluster(), 'other', 'eu-west-1', {'b': '2', 'a': '1', 'c.io/z': '3'}, taints, interval=10)


@pytest.mark.parametrize('text', ['plain', 'quote " inside', 'back\\slash', '\\"', 'ends with \\', 'tab\tnew\nline\r',
                                  'bell\x07 del\x7f nul\x00', 'é ü 漢字', '', "single ' quote", '[table] = "x"'])
def test_toml_strings_parse_back_to_the_same_text(text):
    quoted = _userdata.toml_string(text)
    assert tomllib.loads('k = %s\n%s = 1\n' % (quoted, quoted)) == {'k': text, text: 1}
    assert '\n' not in quoted, 'a basic string is one line'


def test_bottlerocket_escapes_a_quote_and_a_backslash_in_values_and_keys():
    cluster = dict(_cluster(), name='de"mo', endpoint='https://a\\b')
    text = _userdata.render('bottlerocket', cluster, 'gpu', 'us-east-2', {'k"ey': 'v\\al"ue'}, [{'key': 'x\\y', 'value': 'q"', 'effect': 'NO_SCHEDULE'}])
    settings = tomllib.loads(text)['settings']['kubernetes']
    assert settings['cluster-name'] == 'de"mo' and settings['api-server'] == 'https://a\\b'
    assert settings['node-labels'] == {'k"ey': 'v\\al"ue'}
    assert settings['node-taints'] == {'x\\y': ['q":NoSchedule']}


def test_normalised_template_data_ignores_order_and_encoding():
    user_data = base64.b64encode(b'#!/bin/bash\n').decode()
    left = {'ImageId': 'ami-1', 'UserData': user_data, 'SecurityGroupIds': ['sg-2', 'sg-1'],
            'TagSpecifications': [{'ResourceType': 'instance', 'Tags': [{'Key': 'b', 'Value': '2'}, {'Key': 'a', 'Value': '1'}]}],
            'MetadataOptions': {'HttpTokens': 'required', 'HttpPutResponseHopLimit': 2}}
    right = {'ImageId': 'ami-1', 'UserData': user_data, 'SecurityGroupIds': ['sg-1', 'sg-2'],
             'TagSpecifications': [{'ResourceType': 'instance', 'Tags': [{'Key': 'a', 'Value': '1'}, {'Key': 'b', 'Value': '2'}]}],
             'MetadataOptions': {'HttpTokens': 'required', 'HttpPutResponseHopLimit': 2, 'HttpEndpoint': 'enabled'}}
    assert eks_gpu_nodegroup._normalise_template_data(left) == eks_gpu_nodegroup._normalise_template_data(right)
    right['MetadataOptions']['HttpTokens'] = 'optional'
    assert eks_gpu_nodegroup._normalise_template_data(left) != eks_gpu_nodegroup._normalise_template_data(right)


def _node_role(service='ec2.amazonaws.com'):
    trust = {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'Service': service}, 'Action': 'sts:AssumeRole'}]}
    boto3.client('iam', region_name='us-east-2').create_role(RoleName='sandbox-eks-node-role', AssumeRolePolicyDocument=json.dumps(trust))


def _account(role_service='ec2.amazonaws.com'):
    """A VPC, a subnet, cluster `demo` and (unless role_service is None) the node role; the AMI id."""
    ec2 = boto3.client('ec2', region_name='us-east-2')
    vpc = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock='10.0.1.0/24')['Subnet']['SubnetId']
    eks = boto3.client('eks', region_name='us-east-2')
    eks.create_cluster(name='demo', version='1.31', roleArn=ROLE, resourcesVpcConfig={'subnetIds': [subnet]})
    if role_service:
        _node_role(role_service)
    return ec2.describe_images(Owners=['amazon'])['Images'][0]['ImageId']


@mock_aws
@pytest.mark.parametrize('role_service, message', [
    (None, "node_role: IAM role 'sandbox-eks-node-role' does not exist"),
    ('lambda.amazonaws.com', "node_role: IAM role 'sandbox-eks-node-role' cannot be assumed by EC2"),
])
def test_unusable_node_role_fails_before_any_write(run_module, monkeypatch, role_service, message):
    image = _account(role_service)
    recorder = CallRecorder(monkeypatch)
    result, failed = run_module(eks_gpu_nodegroup, dict(BASE, ami_id=image))
    assert failed
    assert result['msg'].startswith(message), result['msg']
    assert result['option'] == 'node_role'
    assert 'GetRole' in recorder.calls
    assert [c for c in recorder.calls if not c.startswith(('Describe', 'Get', 'List'))] == []


@mock_aws
def test_check_mode_on_new_node_group_plans_and_mutates_nothing(run_module, monkeypatch):
    image = _account()
    recorder = CallRecorder(monkeypatch)
    result, failed = run_module(eks_gpu_nodegroup, dict(BASE, ami_id=image), check_mode=True, diff=True)
    assert not failed, result
    assert result['changed'] is True
    assert result['actions'] == ['create launch template demo-gpu', 'create node group gpu']
    assert result['diff']['before']['nodegroup'] is None
    assert result['diff']['after']['nodegroup']['scaling_config'] == {'min_size': 1, 'max_size': 2, 'desired_size': 1}
    assert result['diff']['after']['launch_template']['http_tokens'] == 'required'
    assert result['diff']['after']['launch_template']['root_volume']['encrypted'] is True
    mutating = [c for c in recorder.calls if not c.startswith(('Describe', 'Get', 'List'))]
    assert mutating == []


def test_policy_document_accepts_dict_json_and_iam_url_encoding():
    text = json.dumps(POLICY)
    from urllib.parse import quote
    for given in (POLICY, text, '  %s\n' % text, quote(text)):
        assert eks_gpu_nodegroup.policy_document(given) == POLICY


@mock_aws
def test_node_role_policy_in_check_mode_is_planned_not_written(run_module, monkeypatch):
    image = _account()
    recorder = CallRecorder(monkeypatch)
    result, failed = run_module(eks_gpu_nodegroup, dict(BASE, ami_id=image, node_role_policy={'name': 'metrics', 'document': POLICY}),
                                check_mode=True, diff=True)
    assert not failed, result
    assert 'put inline policy metrics on IAM role sandbox-eks-node-role' in result['actions']
    assert result['diff']['before']['node_role_policy'] is None
    assert result['diff']['after']['node_role_policy']['document'] == POLICY
    assert 'GetRolePolicy' in recorder.calls
    assert [c for c in recorder.calls if not c.startswith(('Describe', 'Get', 'List'))] == []
    with pytest.raises(Exception):
        boto3.client('iam', region_name='us-east-2').get_role_policy(RoleName='sandbox-eks-node-role', PolicyName='metrics')


@mock_aws
def test_roll_interrupted_before_the_default_version_reuses_the_version_and_sets_the_default(run_module, monkeypatch):
    """A run killed between CreateLaunchTemplateVersion and ModifyLaunchTemplate (found by
    tests/reliability/test_sigkill.py): the re-run rolls that version in, without another one,
    and makes it the template's default."""
    image = _account()
    args = dict(BASE, ami_id=image, wait=False)
    result, failed = run_module(eks_gpu_nodegroup, args)
    assert not failed, result
    import botocore.client
    import botocore.exceptions
    original = botocore.client.BaseClient._make_api_call
    calls = []

    def interrupted(client, operation, params):
        if operation == 'ModifyLaunchTemplate':
            # An error the modules do not retry (InternalError is retried for about a minute first).
            raise botocore.exceptions.ClientError({'Error': {'Code': 'UnauthorizedOperation', 'Message': 'interrupted'}}, operation)
        return original(client, operation, params)

    def rolled(client, operation, params):
        calls.append((operation, params))
        if operation == 'UpdateNodegroupVersion':  # not in moto; what EKS answers
            return {'update': {'id': 'update-1', 'type': 'VersionUpdate', 'status': 'InProgress'}}
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', interrupted)
    result, failed = run_module(eks_gpu_nodegroup, dict(args, instance_type='g5.xlarge'))
    assert failed and 'default version' in result['msg'], result
    ec2 = boto3.client('ec2', region_name='us-east-2')
    template = ec2.describe_launch_templates(LaunchTemplateNames=['demo-gpu'])['LaunchTemplates'][0]
    assert (template['LatestVersionNumber'], template['DefaultVersionNumber']) == (2, 1)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', rolled)
    result, failed = run_module(eks_gpu_nodegroup, dict(args, instance_type='g5.xlarge'))
    assert not failed, result
    operations = [c[0] for c in calls]
    assert 'CreateLaunchTemplateVersion' not in operations, operations
    assert [(c[1]['LaunchTemplateId'], c[1]['DefaultVersion']) for c in calls if c[0] == 'ModifyLaunchTemplate'] == [(template['LaunchTemplateId'], '2')]
    assert [c[1]['launchTemplate'] for c in calls if c[0] == 'UpdateNodegroupVersion'] == [{'id': template['LaunchTemplateId'], 'version': '2'}]
    assert 'set the default version of launch template demo-gpu to 2' in result['actions']
    template = ec2.describe_launch_templates(LaunchTemplateNames=['demo-gpu'])['LaunchTemplates'][0]
    assert (template['LatestVersionNumber'], template['DefaultVersionNumber']) == (2, 2)
