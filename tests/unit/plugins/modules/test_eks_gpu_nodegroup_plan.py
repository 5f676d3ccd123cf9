"""eks_gpu_nodegroup's planning functions (no AWS), its label and taint checks, and the launch
template it writes (moto in-process): desired size kept, cluster security group, no inherited
settings, detailed monitoring, IMDS hop limit."""
import base64

import boto3
import botocore.client
import pytest
from moto import mock_aws

from ansible_collections.genai.stack.plugins.modules import eks_gpu_nodegroup as ng
from ansible_collections.genai.stack.plugins.module_utils import _validation

ROLE = 'arn:aws:iam::123456789012:role/sandbox-eks-node-role'
BASE = {'name': 'gpu', 'cluster_name': 'demo', 'node_role': ROLE, 'region': 'us-east-2'}

pytestmark = pytest.mark.usefixtures('offline_aws')


# ------------------------------------------------------------------ desired size
@pytest.mark.parametrize('current, bounds, enforce, expected', [
    (None, (1, 3, 2), False, 2),                          # a new node group takes desired_size
    ({'minSize': 1, 'maxSize': 3, 'desiredSize': 3}, (1, 3, 2), False, 3),   # scaled out by an alarm: kept
    ({'minSize': 1, 'maxSize': 3, 'desiredSize': 1}, (1, 3, 2), False, 1),   # scaled in: kept
    ({'minSize': 1, 'maxSize': 5, 'desiredSize': 5}, (1, 3, 2), False, 3),   # max lowered: moved into the range
    ({'minSize': 1, 'maxSize': 3, 'desiredSize': 1}, (2, 3, 2), False, 2),   # min raised: moved into the range
    ({'minSize': 1, 'maxSize': 3, 'desiredSize': 3}, (1, 3, 2), True, 2),    # enforce_desired_size
])
def test_plan_scaling_keeps_the_desired_size_autoscalers_set(current, bounds, enforce, expected):
    lo, hi, want = bounds
    assert ng.plan_scaling(current, lo, hi, want, enforce) == {'minSize': lo, 'maxSize': hi, 'desiredSize': expected}


def test_plan_config_update_sends_only_what_differs():
    current = {'scalingConfig': {'minSize': 1, 'maxSize': 3, 'desiredSize': 3}, 'labels': {'capability': 'gpu', 'old': 'x'},
               'taints': [{'key': 'a', 'value': 'b', 'effect': 'NO_SCHEDULE'}]}
    same = {'scalingConfig': dict(current['scalingConfig']), 'labels': {'capability': 'gpu', 'old': 'x'},
            'taints': [{'key': 'a', 'value': 'b', 'effect': 'NO_SCHEDULE'}]}
    assert ng.plan_config_update(current, same) == {}
    changed = {'scalingConfig': {'minSize': 2, 'maxSize': 3, 'desiredSize': 3}, 'labels': {'capability': 'gpu', 'team': 'ml'},
               'taints': [{'key': 'c', 'value': None, 'effect': 'NO_EXECUTE'}]}
    assert ng.plan_config_update(current, changed) == {
        'scalingConfig': {'minSize': 2, 'maxSize': 3, 'desiredSize': 3},
        'labels': {'addOrUpdateLabels': {'team': 'ml'}, 'removeLabels': ['old']},
        'taints': {'addOrUpdateTaints': [{'key': 'c', 'effect': 'NO_EXECUTE'}],
                   'removeTaints': [{'key': 'a', 'value': 'b', 'effect': 'NO_SCHEDULE'}]},
    }


def test_plan_tag_update_keeps_aws_tags():
    assert ng.plan_tag_update({'a': '1', 'b': '2', 'aws:x': 'y'}, {'a': '1', 'c': '3'}) == ({'c': '3'}, ['b'])


# ------------------------------------------------------------------ security groups
CLUSTER = {'name': 'demo', 'resourcesVpcConfig': {'clusterSecurityGroupId': 'sg-0c1c1c1c1c1c1c1c1'}}


@pytest.mark.parametrize('groups, include, cluster, expected, warns', [
    (None, True, CLUSTER, [], False),                      # no groups: EKS attaches the cluster group itself
    (['sg-0aaaaaaaaaaaaaaaa'], True, CLUSTER, ['sg-0aaaaaaaaaaaaaaaa', 'sg-0c1c1c1c1c1c1c1c1'], False),
    (['sg-0c1c1c1c1c1c1c1c1'], True, CLUSTER, ['sg-0c1c1c1c1c1c1c1c1'], False),   # named already: once
    (['sg-0aaaaaaaaaaaaaaaa'], False, CLUSTER, ['sg-0aaaaaaaaaaaaaaaa'], False),  # opted out
    (['sg-0aaaaaaaaaaaaaaaa'], True, {'name': 'old'}, ['sg-0aaaaaaaaaaaaaaaa'], True),
])
def test_node_security_groups_include_the_cluster_security_group(groups, include, cluster, expected, warns):
    found, warning = ng.node_security_groups(groups, cluster, include)
    assert found == expected
    assert bool(warning) == warns


# ------------------------------------------------------------------ labels and taints
BAD_LABELS = [
    ({'labels': {'team.kubernetes.io/x': 'a'}}, "key 'team.kubernetes.io/x'", 'kubelet accepts'),
    ({'labels': {'kubernetes.io/role': 'gpu'}}, "key 'kubernetes.io/role'", 'kubelet accepts'),
    ({'labels': {'k8s.io/gpu': 'yes'}}, "key 'k8s.io/gpu'", 'kubelet accepts'),
    ({'labels': {'x.k8s.io/gpu': 'yes'}}, "key 'x.k8s.io/gpu'", 'kubelet accepts'),
    ({'labels': {'node-restriction.kubernetes.io/gpu': 'yes'}}, "node-restriction.kubernetes.io/gpu", 'NodeRestriction'),
    ({'labels': {'a/b/c': 'x'}}, "key 'a/b/c'", 'more than one /'),
    ({'labels': {'/gpu': 'x'}}, "key '/gpu'", 'empty prefix'),
    ({'labels': {'Example.com/gpu': 'x'}}, "key 'Example.com/gpu'", 'not a DNS subdomain'),
    ({'labels': {'g' * 64: 'x'}}, "key '" + 'g' * 64 + "'", 'name of 64 characters'),
    ({'labels': {'example.com/' + 'g' * 52: 'x'}}, 'example.com/', 'EKS allows at most 63'),
    ({'labels': {'gpu': 'a b'}}, "value of key 'gpu'", 'label value'),
    ({'labels': {'gpu': '-a'}}, "value of key 'gpu'", 'label value'),
    ({'labels': {'gpu': ''}}, "value of key 'gpu'", 'EKS requires 1 to 63'),
    ({'taints': [{'key': 'dedicated', 'value': 'a/b', 'effect': 'NO_SCHEDULE'}]}, "value of taint 'dedicated'", 'taint value'),
    ({'taints': [{'key': 'x' * 64, 'effect': 'NO_SCHEDULE'}]}, 'x' * 64, 'taint key'),
    ({'taints': [{'key': 'bad key', 'effect': 'NO_SCHEDULE'}]}, "key 'bad key'", 'taint key'),
    ({'metadata_hop_limit': 0}, 'metadata_hop_limit', '>= 1'),
    ({'metadata_hop_limit': 65}, 'metadata_hop_limit', '<= 64'),
]


class _NoCalls:
    def __init__(self, monkeypatch):
        self.calls = []
        original = botocore.client.BaseClient._make_api_call

        def record(client, operation, params):
            self.calls.append((operation, params))
            if operation == 'UpdateNodegroupVersion':  # not in moto; what EKS answers
                return {'update': {'id': 'update-1', 'type': 'VersionUpdate', 'status': 'InProgress'}}
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', record)


@pytest.mark.parametrize('extra, offending, text', BAD_LABELS, ids=[str(i) for i in range(len(BAD_LABELS))])
def test_labels_and_taints_the_kubelet_or_eks_refuse_fail_before_any_request(run_module, monkeypatch, extra, offending, text):
    recorder = _NoCalls(monkeypatch)
    result, failed = run_module(ng, dict(BASE, **extra))
    assert failed, result
    option = next(iter(extra))
    assert result['msg'].startswith('Invalid input: ' + option + ':'), result['msg']
    assert offending in result['msg'] and text in result['msg'], result['msg']
    assert recorder.calls == []


@pytest.mark.parametrize('key', ['node.kubernetes.io/gpu', 'gpu.node.kubernetes.io/x', 'kubelet.kubernetes.io/gpu',
                                 'topology.kubernetes.io/zone', 'example.com/gpu', 'capability', 'nvidia.com/gpu.present'])
def test_labels_the_kubelet_accepts(key):
    check = _validation.Checker()
    check.labels({key: 'yes'}, 'labels', kubelet=True)
    assert check.errors == []


def test_kubernetes_label_rules_without_the_kubelet():
    assert _validation.qualified_name_problem('a' * 253 + '/b') is None
    assert 'prefix of 254' in _validation.qualified_name_problem('a' * 254 + '/b')
    assert _validation.qualified_name_problem('x/' + 'n' * 63) is None
    assert _validation.label_value_problem('') is None
    assert _validation.label_value_problem('A-b_c.9') is None
    assert '64 characters' in _validation.label_value_problem('v' * 64)
    check = _validation.Checker()
    check.labels({'kubernetes.io/role': 'x'}, 'labels')   # EKS API labels only: no kubelet rule
    assert check.errors == []


# ------------------------------------------------------------------ launch template versions
def _account(cluster_sg=None):
    ec2 = boto3.client('ec2', region_name='us-east-2')
    vpc = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock='10.0.1.0/24')['Subnet']['SubnetId']
    extra = ec2.create_security_group(GroupName='extra', Description='extra', VpcId=vpc)['GroupId']
    eks = boto3.client('eks', region_name='us-east-2')
    eks.create_cluster(name='demo', version='1.31', roleArn=ROLE, resourcesVpcConfig={'subnetIds': [subnet]})
    if cluster_sg:
        from moto.eks.models import eks_backends
        eks_backends['123456789012']['us-east-2'].clusters['demo'].resources_vpc_config['clusterSecurityGroupId'] = cluster_sg
    boto3.client('iam', region_name='us-east-2').create_role(
        RoleName='sandbox-eks-node-role',
        AssumeRolePolicyDocument='{"Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')
    return ec2.describe_images(Owners=['amazon'])['Images'][0]['ImageId'], extra


def _versions():
    ec2 = boto3.client('ec2', region_name='us-east-2')
    return {v['VersionNumber']: v['LaunchTemplateData'] for v in
            ec2.describe_launch_template_versions(LaunchTemplateName='demo-gpu')['LaunchTemplateVersions']}


@mock_aws
def test_template_has_monitoring_hop_limit_and_the_cluster_security_group(run_module):
    image, extra = _account(cluster_sg='sg-0c1c1c1c1c1c1c1c1')
    result, failed = run_module(ng, dict(BASE, ami_id=image, wait=False, security_groups=[extra]))
    assert not failed, result
    data = _versions()[1]
    assert data['Monitoring'] == {'Enabled': True}
    assert data['MetadataOptions']['HttpPutResponseHopLimit'] == 1
    assert data['MetadataOptions']['HttpTokens'] == 'required'
    assert sorted(data['SecurityGroupIds']) == sorted([extra, 'sg-0c1c1c1c1c1c1c1c1'])


@mock_aws
def test_removed_settings_are_not_inherited_by_the_next_version(run_module, monkeypatch):
    image, extra = _account(cluster_sg='sg-0c1c1c1c1c1c1c1c1')
    args = dict(BASE, ami_id=image, wait=False)
    result, failed = run_module(ng, dict(args, security_groups=[extra], kms_key_id='alias/gpu', metadata_hop_limit=2))
    assert not failed, result
    recorder = _NoCalls(monkeypatch)
    result, failed = run_module(ng, args)
    assert not failed, result
    created = [p for o, p in recorder.calls if o == 'CreateLaunchTemplateVersion']
    assert len(created) == 1 and 'SourceVersion' not in created[0], created
    data = _versions()[2]
    assert 'SecurityGroupIds' not in data
    assert 'KmsKeyId' not in data['BlockDeviceMappings'][0]['Ebs']
    assert data['MetadataOptions']['HttpPutResponseHopLimit'] == 1
    assert base64.b64decode(data['UserData'])


@mock_aws
def test_a_rerun_keeps_the_desired_size_an_autoscaler_set(run_module, monkeypatch):
    image = _account()[0]
    args = dict(BASE, ami_id=image, wait=False, scaling_config={'min_size': 1, 'max_size': 4, 'desired_size': 2})
    result, failed = run_module(ng, args)
    assert not failed, result
    eks = boto3.client('eks', region_name='us-east-2')
    eks.update_nodegroup_config(clusterName='demo', nodegroupName='gpu', scalingConfig={'minSize': 1, 'maxSize': 4, 'desiredSize': 4})
    recorder = _NoCalls(monkeypatch)
    result, failed = run_module(ng, args, diff=True)
    assert not failed, result
    assert result['changed'] is False, result['actions']
    assert 'UpdateNodegroupConfig' not in [call[0] for call in recorder.calls]
    # A lower max moves the desired size into the range, and only then is it written.
    result, failed = run_module(ng, dict(args, scaling_config={'min_size': 1, 'max_size': 3, 'desired_size': 2}), check_mode=True, diff=True)
    assert not failed, result
    assert result['diff']['before']['nodegroup']['scaling_config']['desired_size'] == 4
    assert result['diff']['after']['nodegroup']['scaling_config'] == {'min_size': 1, 'max_size': 3, 'desired_size': 3}
    # enforce_desired_size puts desired_size back.
    result, failed = run_module(ng, dict(args, enforce_desired_size=True), check_mode=True, diff=True)
    assert result['diff']['after']['nodegroup']['scaling_config']['desired_size'] == 2


# ------------------------------------------------------------------ facts from AWS, not from lists
@mock_aws
@pytest.mark.parametrize('instance_type, gpus', [('p5en.48xlarge', 8), ('p6-b200.48xlarge', 8), ('p5.4xlarge', 1)])
def test_gpus_of_a_type_the_table_lacks_come_from_describe_instance_types(run_module, monkeypatch, instance_type, gpus):
    image = _account()[0]
    recorder = _NoCalls(monkeypatch)
    result, failed = run_module(ng, dict(BASE, ami_id=image, instance_type=instance_type), check_mode=True)
    assert not failed, result
    assert result['gpus_per_node'] == gpus
    assert 'DescribeInstanceTypes' in [call[0] for call in recorder.calls]


@mock_aws
@pytest.mark.parametrize('instance_type, text', [('g4dn.huge', 'not an EC2 instance type offered'),
                                                 ('g6f.large', 'no whole NVIDIA GPU'), ('x8g.large', 'no whole NVIDIA GPU')])
def test_a_type_aws_does_not_know_or_without_a_whole_gpu_fails_before_any_write(run_module, monkeypatch, instance_type, text):
    image = _account()[0]
    recorder = _NoCalls(monkeypatch)
    result, failed = run_module(ng, dict(BASE, ami_id=image, instance_type=instance_type))
    assert failed, result
    assert result['msg'].startswith('instance_type: ') and text in result['msg'], result['msg']
    assert [c for c, _p in recorder.calls if not c.startswith(('Describe', 'Get', 'List'))] == []


@mock_aws
def test_a_kubernetes_version_newer_than_any_list_is_asked_from_ssm(run_module, monkeypatch):
    image = _account()[0]
    original = botocore.client.BaseClient._make_api_call
    asked = []

    def ssm(client, operation, params):
        if operation == 'GetParameter':
            asked.append(params['Name'])
            if '/1.40/' in params['Name']:
                return {'Parameter': {'Name': params['Name'], 'Value': image, 'Type': 'String'}}
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', ssm)
    result, failed = run_module(ng, dict(BASE, kubernetes_version='1.40'), check_mode=True)
    assert not failed, result
    assert result['ami_id'] == image
    assert asked == ['/aws/service/eks/optimized-ami/1.40/amazon-linux-2023/x86_64/nvidia/recommended/image_id']
    result, failed = run_module(ng, dict(BASE, kubernetes_version='1.41'), check_mode=True)
    assert failed
    assert result['msg'].startswith('kubernetes_version: no AL2023_x86_64_NVIDIA AMI is published for Kubernetes 1.41'), result['msg']


# ------------------------------------------------------------------ Bottlerocket: TOML user data, a data volume
BOTTLEROCKET = 'BOTTLEROCKET_x86_64_NVIDIA'
BOTTLEROCKET_PARAMETER = '/aws/service/bottlerocket/aws-k8s-1.31-nvidia/x86_64/latest/image_id'
BOTTLEROCKET_IMAGE = {  # DescribeImages of a Bottlerocket AMI: the OS on the root device, a data device
    'ImageId': 'ami-0b0771e40c4e7aaaa', 'RootDeviceName': '/dev/xvda', 'Name': 'bottlerocket-aws-k8s-1.31-nvidia-x86_64-v1.40.0-c3a4e8f1',
    'BlockDeviceMappings': [
        {'DeviceName': '/dev/xvda', 'Ebs': {'SnapshotId': 'snap-0aaaaaaaaaaaaaaaa', 'VolumeSize': 4, 'VolumeType': 'gp2'}},
        {'DeviceName': '/dev/xvdb', 'Ebs': {'SnapshotId': 'snap-0bbbbbbbbbbbbbbbb', 'VolumeSize': 20, 'VolumeType': 'gp2'}},
    ],
}


@pytest.mark.parametrize('image, data_volume, expected', [
    # Amazon Linux: disk_size sizes the AMI's root device, whatever else it maps.
    ({'RootDeviceName': '/dev/xvda'}, False, {'root': '/dev/xvda', 'root_size': None, 'data': None}),
    (BOTTLEROCKET_IMAGE, False, {'root': '/dev/xvda', 'root_size': None, 'data': None}),
    # Bottlerocket: the root keeps the AMI's size, the data volume is the AMI's other device.
    (BOTTLEROCKET_IMAGE, True, {'root': '/dev/xvda', 'root_size': 4, 'data': '/dev/xvdb'}),
    ({'RootDeviceName': '/dev/sda1', 'BlockDeviceMappings': [{'DeviceName': '/dev/sdf', 'Ebs': {'VolumeSize': 9}},
                                                             {'DeviceName': '/dev/sdb', 'VirtualName': 'ephemeral0'},
                                                             {'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 3}}]},
     True, {'root': '/dev/sda1', 'root_size': 3, 'data': '/dev/sdf'}),
    # An AMI that maps no data device: Bottlerocket's own name for it.
    ({'RootDeviceName': '/dev/xvda'}, True, {'root': '/dev/xvda', 'root_size': None, 'data': '/dev/xvdb'}),
])
def test_volume_layout_from_the_ami(image, data_volume, expected):
    assert ng.volume_layout(image, data_volume) == expected


def test_bottlerocket_parameter_is_where_aws_publishes_it():
    from ansible_collections.genai.stack.plugins.module_utils import _gpu
    assert _gpu.ssm_parameter_for(BOTTLEROCKET, '1.31') == BOTTLEROCKET_PARAMETER
    assert _gpu.ssm_parameter_for(BOTTLEROCKET, '1.40') == '/aws/service/bottlerocket/aws-k8s-1.40-nvidia/x86_64/latest/image_id'
    assert _gpu.AMI_TYPES[BOTTLEROCKET].user_data == 'bottlerocket' and _gpu.AMI_TYPES[BOTTLEROCKET].data_volume
    assert not any(family.data_volume for name, family in _gpu.AMI_TYPES.items() if name != BOTTLEROCKET)


class _BottlerocketAccount(_NoCalls):
    """Every call recorded; SSM and DescribeImages answer for the Bottlerocket AMI, as AWS does."""

    def __init__(self, monkeypatch):
        super().__init__(monkeypatch)
        recorded = botocore.client.BaseClient._make_api_call

        def answer(client, operation, params):
            if operation == 'GetParameter' and params['Name'] == BOTTLEROCKET_PARAMETER:
                self.calls.append((operation, params))
                return {'Parameter': {'Name': params['Name'], 'Value': BOTTLEROCKET_IMAGE['ImageId'], 'Type': 'String'}}
            if operation == 'DescribeImages' and params.get('ImageIds') == [BOTTLEROCKET_IMAGE['ImageId']]:
                self.calls.append((operation, params))
                return {'Images': [BOTTLEROCKET_IMAGE]}
            return recorded(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', answer)

    def operations(self):
        return [operation for operation, _params in self.calls]


@mock_aws
def test_bottlerocket_template_has_toml_user_data_and_disk_size_on_the_data_volume(run_module, monkeypatch):
    import tomllib
    _account()
    account = _BottlerocketAccount(monkeypatch)
    args = dict(BASE, ami_type=BOTTLEROCKET, disk_size=80, wait=False, gpu_taint=True, kms_key_id='alias/gpu')
    result, failed = run_module(ng, args, diff=True)
    assert not failed, result
    assert [p['Name'] for o, p in account.calls if o == 'GetParameter'] == [BOTTLEROCKET_PARAMETER]
    assert result['ami_id'] == BOTTLEROCKET_IMAGE['ImageId']
    data = _versions()[1]
    assert data['ImageId'] == BOTTLEROCKET_IMAGE['ImageId']
    # The user data the template carries is Bottlerocket's TOML settings, as the module returns it.
    user_data = base64.b64decode(data['UserData']).decode('utf-8')
    assert user_data == result['user_data']
    settings = tomllib.loads(user_data)['settings']['kubernetes']
    assert settings['cluster-name'] == 'demo'
    # The user's labels, and the ones EKS writes into the user data of its own AMIs (it adds
    # nothing to a template that names an AMI).
    assert settings['node-labels'] == {'capability': 'gpu', 'eks.amazonaws.com/nodegroup': 'gpu',
                                       'eks.amazonaws.com/capacityType': 'ON_DEMAND',
                                       'eks.amazonaws.com/nodegroup-image': BOTTLEROCKET_IMAGE['ImageId']}
    assert settings['node-taints'] == {'nvidia.com/gpu': ['present:NoSchedule']}
    # disk_size sizes the data volume; the OS volume keeps the AMI's size; both encrypted gp3 with the key.
    volumes = {m['DeviceName']: m['Ebs'] for m in data['BlockDeviceMappings']}
    assert volumes == {
        '/dev/xvda': {'VolumeSize': 4, 'VolumeType': 'gp3', 'Encrypted': True, 'DeleteOnTermination': True, 'KmsKeyId': 'alias/gpu'},
        '/dev/xvdb': {'VolumeSize': 80, 'VolumeType': 'gp3', 'Encrypted': True, 'DeleteOnTermination': True, 'KmsKeyId': 'alias/gpu'},
    }
    after = result['diff']['after']['launch_template']
    assert after['root_volume']['size'] == 4 and after['data_volume']['device'] == '/dev/xvdb' and after['data_volume']['size'] == 80

    # Unchanged: no new version (the TOML renders the same bytes); the AMI is read for its devices.
    account.calls.clear()
    result, failed = run_module(ng, args)
    assert not failed, result
    assert result['changed'] is False, result['actions']
    assert 'DescribeImages' in account.operations()
    assert [o for o in account.operations() if not o.startswith(('Describe', 'Get', 'List'))] == []

    # A new disk_size is a new version with only the data volume grown.
    result, failed = run_module(ng, dict(args, disk_size=120), check_mode=True, diff=True)
    assert not failed, result
    assert result['actions'] == ['create version 2 of launch template demo-gpu', 'roll launch template version (next) into node group gpu']
    assert result['diff']['before']['launch_template']['data_volume']['size'] == 80
    assert result['diff']['after']['launch_template']['data_volume']['size'] == 120
    assert result['diff']['after']['launch_template']['root_volume']['size'] == 4


@mock_aws
def test_amazon_linux_template_keeps_one_volume_sized_by_disk_size(run_module):
    image = _account()[0]
    result, failed = run_module(ng, dict(BASE, ami_id=image, disk_size=80, wait=False), diff=True)
    assert not failed, result
    mappings = _versions()[1]['BlockDeviceMappings']
    root = boto3.client('ec2', region_name='us-east-2').describe_images(ImageIds=[image])['Images'][0]['RootDeviceName']
    assert [(m['DeviceName'], m['Ebs']['VolumeSize']) for m in mappings] == [(root, 80)]
    assert 'data_volume' not in result['diff']['after']['launch_template']
    assert result['user_data'].startswith('MIME-Version: 1.0')
    # EKS merges nothing into a template that names an AMI: the kubelet itself must register the
    # labels everyone selects a node group's Nodes by.
    flags = [line.strip() for line in result['user_data'].splitlines() if '--node-labels=' in line]
    assert len(flags) == 1, result['user_data']
    for label in ('capability=gpu', 'eks.amazonaws.com/nodegroup=gpu', 'eks.amazonaws.com/capacityType=ON_DEMAND',
                  'eks.amazonaws.com/nodegroup-image=' + image):
        assert label in flags[0].strip('"-').split('=', 1)[1].split(','), flags[0]
