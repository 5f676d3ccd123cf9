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
