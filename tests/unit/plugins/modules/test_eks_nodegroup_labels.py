"""genai.stack.eks_nodegroup_labels: which option a failure names, and that it fails before any write."""
import boto3
import pytest
from moto import mock_aws

from ansible_collections.genai.stack.plugins.modules import eks_nodegroup_labels

ROLE = 'arn:aws:iam::123456789012:role/node'
BASE = {'name': 'cpu', 'cluster_name': 'demo', 'labels': {'capability': 'cpu'}, 'region': 'us-east-2'}


# Every test here runs against moto in-process (tests/unit/plugins/modules/conftest.py).
pytestmark = pytest.mark.usefixtures('offline_aws')


@pytest.fixture
def calls(monkeypatch):
    import botocore.client
    seen = []
    original = botocore.client.BaseClient._make_api_call

    def record(client, operation, params):
        seen.append(operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, '_make_api_call', record)
    return seen


def _cluster_with_nodegroup():
    ec2 = boto3.client('ec2', region_name='us-east-2')
    vpc = ec2.create_vpc(CidrBlock='10.0.0.0/16')['Vpc']['VpcId']
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock='10.0.1.0/24')['Subnet']['SubnetId']
    eks = boto3.client('eks', region_name='us-east-2')
    eks.create_cluster(name='demo', version='1.31', roleArn=ROLE, resourcesVpcConfig={'subnetIds': [subnet]})
    eks.create_nodegroup(clusterName='demo', nodegroupName='cpu', nodeRole=ROLE, subnets=[subnet], labels={'keep': 'me'})


def test_purge_labels_with_state_absent_is_refused_before_any_request(run_module, calls):
    result, failed = run_module(eks_nodegroup_labels, dict(BASE, purge_labels=True, state='absent'))
    assert failed
    assert result['errors'] == [{'option': 'purge_labels', 'message': result['errors'][0]['message']}]
    assert 'state=present only' in result['msg']
    assert calls == []


@mock_aws
def test_missing_cluster_is_blamed_on_cluster_name(run_module, calls):
    _cluster_with_nodegroup()
    del calls[:]
    result, failed = run_module(eks_nodegroup_labels, dict(BASE, cluster_name='nosuch'))
    assert failed and result['option'] == 'cluster_name'
    assert result['msg'].startswith("cluster_name: no EKS cluster 'nosuch'")
    assert calls == ['DescribeNodegroup', 'DescribeCluster']


@mock_aws
def test_missing_nodegroup_is_blamed_on_name(run_module, calls):
    _cluster_with_nodegroup()
    del calls[:]
    result, failed = run_module(eks_nodegroup_labels, dict(BASE, name='gpu'))
    assert failed and result['option'] == 'name'
    assert result['msg'] == "name: no node group 'gpu' in EKS cluster 'demo'"
    assert calls == ['DescribeNodegroup', 'DescribeCluster']


@mock_aws
def test_labels_merge_then_absent_removes_only_the_given_keys(run_module):
    _cluster_with_nodegroup()
    result, failed = run_module(eks_nodegroup_labels, dict(BASE, wait=False), diff=True)
    assert not failed and result['changed']
    assert result['diff']['after']['labels'] == {'keep': 'me', 'capability': 'cpu'}
    result, failed = run_module(eks_nodegroup_labels, dict(BASE, state='absent', wait=False))
    assert not failed and result['changed']
    labels = boto3.client('eks', region_name='us-east-2').describe_nodegroup(clusterName='demo', nodegroupName='cpu')['nodegroup']['labels']
    assert labels == {'keep': 'me'}


@pytest.mark.parametrize('current, labels, state, purge, after, payload', [
    ({'a': '1'}, {'a': '1'}, 'present', False, {'a': '1'}, None),
    ({'a': '1'}, {'b': '2'}, 'present', False, {'a': '1', 'b': '2'}, {'addOrUpdateLabels': {'b': '2'}}),
    ({'a': '1'}, {'b': '2'}, 'present', True, {'b': '2'}, {'addOrUpdateLabels': {'b': '2'}, 'removeLabels': ['a']}),
    ({'a': '1', 'b': '2'}, {'b': 'ignored'}, 'absent', False, {'a': '1'}, {'removeLabels': ['b']}),
    (None, {'c': '3'}, 'absent', False, {}, None),
])
def test_plan(current, labels, state, purge, after, payload):
    change = eks_nodegroup_labels.plan(current, {'labels': labels, 'state': state, 'purge_labels': purge})
    assert change == {'before': dict(current or {}), 'after': after, 'request': payload}
