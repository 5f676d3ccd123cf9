"""Lookup genai.stack.eks_connection through the plugin loader, with a stubbed EKS client.

The plugin is loaded as Ansible loads it; only the EKS connection is a real botocore client under
botocore's Stubber (which checks every request). The STS client is real: presigning is local, so the
token is what botocore signs with the test's credentials. That the sandbox's API server accepts and
refuses these tokens as EKS does is shown in tests/sandbox/live/test_eks_token_auth.py, and a whole
play on the lookup in tests/playbooks/test_eks_connection.py.
"""
import base64
import datetime
import os
import stat
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.stub import Stubber

from ansible.errors import AnsibleLookupError
from ansible.plugins.loader import init_plugin_loader, lookup_loader

from ansible_collections.amazon.aws.plugins.plugin_utils import base as aws_plugin_base
from ansible_collections.genai.stack.plugins.module_utils import _eks_token

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
pytestmark = pytest.mark.filterwarnings('ignore:AnsibleCollectionFinder has already been configured')

PEM = (b'-----BEGIN CERTIFICATE-----\nMIIBfakeButShapedLikeACertificate\n-----END CERTIFICATE-----\n')
ENDPOINT = 'https://ABCDEF.gr7.us-east-2.eks.amazonaws.com'


def _cluster(name, **over):
    cluster = {'name': name, 'arn': 'arn:aws:eks:us-east-2:111122223333:cluster/' + name, 'status': 'ACTIVE',
               'endpoint': ENDPOINT, 'certificateAuthority': {'data': base64.b64encode(PEM).decode()}}
    cluster.update(over)
    return cluster


@pytest.fixture(scope='module')
def lookup():
    init_plugin_loader([os.path.join(ROOT, '.collections')])

    def run(*terms, **kwargs):
        plugin = lookup_loader.get('genai.stack.eks_connection')
        assert plugin is not None, 'genai.stack.eks_connection not found by the plugin loader'
        return plugin.run(list(terms), variables={}, **kwargs)

    return run


@pytest.fixture
def aws(monkeypatch, tmp_path):
    """A stubbed EKS client and a real STS client, handed to the plugin instead of connections."""
    for var in ('AWS_ENDPOINT_URL', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_REGION', 'AWS_DEFAULT_REGION',
                'AWS_SESSION_TOKEN', 'GENAI_STACK_EKS_CA_DIR'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AKIAUNITTESTKEY00001')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'unit-test-secret')
    eks = boto3.client('eks', region_name='us-east-2')
    sts = boto3.client('sts', region_name='us-east-2')
    stubber = Stubber(eks)
    asked = []

    def fake_conn(plugin, conn_type=None, resource=None, **kwargs):
        asked.append((resource, kwargs.get('region')))
        return {'eks': eks, 'sts': sts}[resource]

    monkeypatch.setattr(aws_plugin_base, 'boto3_conn', fake_conn)
    stubber.asked = asked
    stubber.ca_dir = str(tmp_path / 'ca')
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def _query(token):
    url = _eks_token.presigned_url(token)
    parts = urlsplit(url)
    return parts, {k: v[0] for k, v in parse_qs(parts.query).items()}


def test_connection_from_describe_cluster_with_a_token_for_that_cluster(lookup, aws):
    aws.add_response('describe_cluster', {'cluster': _cluster('arthur-prod')}, {'name': 'arthur-prod'})
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    [conn] = lookup('arthur-prod', region='us-east-2', ca_cert_dir=aws.ca_dir)

    assert sorted(conn) == ['api_key', 'ca_cert', 'host']
    assert conn['host'] == ENDPOINT
    with open(conn['ca_cert'], 'rb') as handle:
        assert handle.read() == PEM
    assert stat.S_IMODE(os.stat(os.path.dirname(conn['ca_cert'])).st_mode) == 0o700

    token = conn['api_key']
    assert token.startswith('k8s-aws-v1.') and '=' not in token
    parts, query = _query(token)
    assert parts.scheme == 'https' and parts.hostname == 'sts.us-east-2.amazonaws.com' and parts.path == '/'
    assert query['Action'] == 'GetCallerIdentity' and query['Version'] == '2011-06-15'
    assert query['X-Amz-Expires'] == '60'
    assert query['X-Amz-Credential'].startswith('AKIAUNITTESTKEY00001/')
    assert '/us-east-2/sts/aws4_request' in query['X-Amz-Credential']
    assert query['X-Amz-SignedHeaders'].split(';') == ['host', 'x-k8s-aws-id']
    signed = _eks_token.signed_at(_eks_token.presigned_url(token))
    assert before <= signed <= datetime.datetime.now(datetime.timezone.utc)
    assert _eks_token.expiration(signed) - signed == datetime.timedelta(minutes=14)
    assert ('eks', 'us-east-2') in aws.asked


def test_the_signature_covers_the_cluster_id(lookup, aws, monkeypatch):
    """Two tokens made in the same second for two clusters differ only by their signature: the
    x-k8s-aws-id header is signed, which is what makes a token useless on another cluster."""
    frozen = datetime.datetime(2026, 12, 6, 3, 0, 0)
    # botocore's signers read the clock through get_current_datetime (botocore.compat), imported into botocore.auth.
    monkeypatch.setattr('botocore.auth.get_current_datetime', lambda remove_tzinfo=True: frozen)
    for name in ('one', 'two', 'one'):
        aws.add_response('describe_cluster', {'cluster': _cluster(name)}, {'name': name})
    tokens = [lookup(name, region='us-east-2', ca_cert_dir=aws.ca_dir)[0]['api_key'] for name in ('one', 'two', 'one')]
    signatures = [_query(t)[1]['X-Amz-Signature'] for t in tokens]
    unsigned = [{k: v for k, v in _query(t)[1].items() if k != 'X-Amz-Signature'} for t in tokens]
    assert unsigned[0] == unsigned[1] == unsigned[2]
    assert signatures[0] == signatures[2] != signatures[1]


def test_outposts_local_cluster_is_named_by_its_id():
    assert _eks_token.cluster_id({'name': 'edge', 'id': 'abc-123', 'outpostConfig': {'x': 1}}) == 'abc-123'
    assert _eks_token.cluster_id({'name': 'cloud', 'id': 'abc-123'}) == 'cloud'


def test_same_ca_reuses_its_file(lookup, aws):
    aws.add_response('describe_cluster', {'cluster': _cluster('a')}, {'name': 'a'})
    aws.add_response('describe_cluster', {'cluster': _cluster('b')}, {'name': 'b'})
    first, second = lookup('a', 'b', region='us-east-2', ca_cert_dir=aws.ca_dir)
    assert first['ca_cert'] == second['ca_cert']
    assert os.listdir(aws.ca_dir) == [os.path.basename(first['ca_cert'])]


@pytest.mark.parametrize('name', ['', '-leading-dash', 'has space', 'x' * 101, 'dot.ted'])
def test_bad_cluster_name_fails_before_any_request(lookup, aws, name):
    with pytest.raises(AnsibleLookupError, match=r'^eks_connection: _terms: .*EKS cluster name|must be a non-empty'):
        lookup(name, region='us-east-2', ca_cert_dir=aws.ca_dir)
    assert aws.asked == []


def test_missing_cluster_is_named(lookup, aws):
    aws.add_client_error('describe_cluster', 'ResourceNotFoundException', 'No cluster found for name: gone.',
                         404, expected_params={'name': 'gone'})
    with pytest.raises(AnsibleLookupError, match=r'^eks_connection: _terms: no EKS cluster gone in region us-east-2$'):
        lookup('gone', region='us-east-2', ca_cert_dir=aws.ca_dir)


def test_cluster_still_creating_has_no_connection(lookup, aws):
    aws.add_response('describe_cluster', {'cluster': _cluster('new', status='CREATING', endpoint='')}, {'name': 'new'})
    with pytest.raises(AnsibleLookupError, match=r'EKS cluster new has no connection yet: its status is CREATING'):
        lookup('new', region='us-east-2', ca_cert_dir=aws.ca_dir)
    assert not os.path.exists(aws.ca_dir)


def test_a_ca_that_is_not_a_certificate_is_refused(lookup, aws):
    bad = _cluster('odd', certificateAuthority={'data': base64.b64encode(b'hello').decode()})
    aws.add_response('describe_cluster', {'cluster': bad}, {'name': 'odd'})
    with pytest.raises(AnsibleLookupError, match=r'EKS cluster odd: .* not a PEM certificate'):
        lookup('odd', region='us-east-2', ca_cert_dir=aws.ca_dir)


def test_token_prefix_is_checked():
    with pytest.raises(ValueError, match='not an EKS token'):
        _eks_token.presigned_url('k8s-aws-v2.abc')
