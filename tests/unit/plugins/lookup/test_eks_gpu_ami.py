"""Lookup genai.stack.eks_gpu_ami through the plugin loader, with a stubbed SSM client.

The plugin is loaded as Ansible loads it (its documented options and their defaults apply);
only the boto3 connection is replaced by a real botocore SSM client under botocore's Stubber,
which checks the exact parameter name of every request. The sandbox run is in the
eks_gpu_nodegroup integration target.
"""
import os

import boto3
import pytest
from botocore.stub import Stubber

from ansible.errors import AnsibleError, AnsibleLookupError
from ansible.plugins.loader import init_plugin_loader, lookup_loader

from ansible_collections.amazon.aws.plugins.plugin_utils import base as aws_plugin_base

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
PREFIX = '/aws/service/eks/optimized-ami'
# In a full run the module tests have already set up the collection finder; loading again is harmless.
pytestmark = pytest.mark.filterwarnings('ignore:AnsibleCollectionFinder has already been configured')


@pytest.fixture(scope='module')
def lookup():
    init_plugin_loader([os.path.join(ROOT, '.collections')])

    def make():
        plugin = lookup_loader.get('genai.stack.eks_gpu_ami')
        assert plugin is not None, 'genai.stack.eks_gpu_ami not found by the plugin loader'
        return plugin

    return make


@pytest.fixture
def ssm(monkeypatch):
    """A stubbed SSM client that the plugin receives instead of a connection; records how it was asked for."""
    for var in ('AWS_ENDPOINT_URL', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_REGION', 'AWS_DEFAULT_REGION'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'testing')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
    client = boto3.client('ssm', region_name='us-east-2')
    stubber = Stubber(client)
    connections = []

    def fake_conn(plugin, conn_type=None, resource=None, **kwargs):
        connections.append(dict(conn_type=conn_type, resource=resource, region=kwargs.get('region')))
        return client

    monkeypatch.setattr(aws_plugin_base, 'boto3_conn', fake_conn)
    stubber.connections = connections
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def _expect(stubber, name, value):
    stubber.add_response('get_parameter', {'Parameter': {'Name': name, 'Type': 'String', 'Value': value, 'Version': 1}}, {'Name': name})


def test_default_family_is_al2023_nvidia(lookup, ssm):
    _expect(ssm, PREFIX + '/1.31/amazon-linux-2023/x86_64/nvidia/recommended/image_id', 'ami-0a2023a2023a2023a')
    assert lookup().run(['1.31'], {}, region='us-east-2') == ['ami-0a2023a2023a2023a']
    assert ssm.connections == [{'conn_type': 'client', 'resource': 'ssm', 'region': 'us-east-2'}]


def test_al2_gpu_family(lookup, ssm):
    _expect(ssm, PREFIX + '/1.29/amazon-linux-2-gpu/recommended/image_id', 'ami-0a2a2a2a2a2a2a2a2')
    assert lookup().run(['1.29'], {}, ami_type='AL2_x86_64_GPU', region='eu-west-1') == ['ami-0a2a2a2a2a2a2a2a2']
    assert ssm.connections[0]['region'] == 'eu-west-1'


def test_bottlerocket_nvidia_family(lookup, ssm):
    """Bottlerocket's AMIs are published by the Bottlerocket project, under its own prefix: one
    variant per Kubernetes minor, the latest release of the x86_64 build."""
    _expect(ssm, '/aws/service/bottlerocket/aws-k8s-1.31-nvidia/x86_64/latest/image_id', 'ami-0b0771e40c4e7aaaa')
    assert lookup().run(['1.31'], {}, ami_type='BOTTLEROCKET_x86_64_NVIDIA', region='us-east-2') == ['ami-0b0771e40c4e7aaaa']


def test_unpublished_bottlerocket_parameter_names_family_and_version(lookup, ssm):
    name = '/aws/service/bottlerocket/aws-k8s-1.40-nvidia/x86_64/latest/image_id'
    ssm.add_client_error('get_parameter', service_error_code='ParameterNotFound', http_status_code=400, expected_params={'Name': name})
    with pytest.raises(AnsibleLookupError, match='no BOTTLEROCKET_x86_64_NVIDIA AMI is published for Kubernetes 1.40 \\(SSM parameter %s not found\\)' % name):
        lookup().run(['1.40'], {}, ami_type='BOTTLEROCKET_x86_64_NVIDIA', region='us-east-2')


def test_several_explicit_versions_keep_their_order(lookup, ssm):
    _expect(ssm, PREFIX + '/1.33/amazon-linux-2023/x86_64/nvidia/recommended/image_id', 'ami-0133')
    _expect(ssm, PREFIX + '/1.30/amazon-linux-2023/x86_64/nvidia/recommended/image_id', 'ami-0130')
    assert lookup().run(['1.33', '1.30'], {}, region='us-east-2') == ['ami-0133', 'ami-0130']


@pytest.mark.parametrize('version', ['1.28', 'latest', 1.3])
def test_unsupported_version_fails_before_any_request(lookup, ssm, version):
    # No response is queued: a request would fail the test with a StubResponseError instead.
    with pytest.raises(AnsibleLookupError, match=r"_terms: Kubernetes version '%s' is not supported: " % str(version).replace('.', r'\.')):
        lookup().run([version], {}, region='us-east-2')


def test_a_version_newer_than_any_list_is_asked_from_ssm(lookup, ssm):
    """No list of versions in the plugin: 1.34 (and later) is whatever AWS publishes."""
    _expect(ssm, PREFIX + '/1.34/amazon-linux-2023/x86_64/nvidia/recommended/image_id', 'ami-0134')
    assert lookup().run(['1.34'], {}, region='us-east-2') == ['ami-0134']


def test_unpublished_parameter_names_family_and_version(lookup, ssm):
    name = PREFIX + '/1.33/amazon-linux-2-gpu/recommended/image_id'
    ssm.add_client_error('get_parameter', service_error_code='ParameterNotFound', http_status_code=400, expected_params={'Name': name})
    with pytest.raises(AnsibleLookupError, match='no AL2_x86_64_GPU AMI is published for Kubernetes 1.33 \\(SSM parameter %s not found\\)' % name):
        lookup().run(['1.33'], {}, ami_type='AL2_x86_64_GPU', region='us-east-2')


def test_other_aws_error_names_the_parameter(lookup, ssm):
    name = PREFIX + '/1.31/amazon-linux-2023/x86_64/nvidia/recommended/image_id'
    ssm.add_client_error('get_parameter', service_error_code='AccessDeniedException', service_message='not allowed', http_status_code=400,
                         expected_params={'Name': name})
    with pytest.raises(AnsibleLookupError, match='could not read %s: .*AccessDeniedException' % name):
        lookup().run(['1.31'], {}, region='us-east-2')


def test_unknown_ami_type_is_refused(lookup, ssm):
    with pytest.raises(AnsibleError, match='ami_type'):
        lookup().run(['1.31'], {}, ami_type='AL2023_x86_64_STANDARD', region='us-east-2')  # an EKS AMI type without GPUs
