"""genai.stack.k8s_secret through main(): input validation before any write, format checks, masking,
read-before-write idempotence, check mode and diff, against an in-memory stand-in of the API."""
import base64
import copy
import json
import os

import boto3
import pytest
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import NotFoundError
from moto import mock_aws

from ansible_collections.genai.stack.plugins.modules import k8s_secret

SECRET_VALUE = 'Zq9-very-distinctive-secret-value-771'
ENDPOINTS = 'gpt-4o::https://openai.example.com/v1::sk-abcdef,gpt-4o-mini::http://10.0.0.5:8000::sk-ghijk'
CERT = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydA==\n-----END CERTIFICATE-----\n'
KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n'


class FakeResource:
    def __init__(self, api, kind):
        self.api, self.kind, self.namespaced = api, kind, kind != 'Namespace'

    def _key(self, namespace, name):
        return (self.kind, namespace, name)

    def get(self, name, namespace=None):
        self.api.calls.append(('get', self.kind, name))
        try:
            return FakeInstance(copy.deepcopy(self.api.objects[self._key(namespace, name)]))
        except KeyError:
            raise NotFoundError(ApiException(status=404, reason='Not Found'))

    def create(self, body, namespace):
        self.api.calls.append(('create', self.kind, body['metadata']['name']))
        stored = copy.deepcopy(body)
        stored['metadata']['resourceVersion'] = str(len(self.api.calls))
        self.api.objects[self._key(namespace, body['metadata']['name'])] = stored
        return FakeInstance(copy.deepcopy(stored))

    def replace(self, body, namespace):
        self.api.calls.append(('replace', self.kind, body['metadata']['name']))
        return self._store(body, namespace)

    def _store(self, body, namespace):
        stored = copy.deepcopy(body)
        self.api.objects[self._key(namespace, body['metadata']['name'])] = stored
        return FakeInstance(copy.deepcopy(stored))

    def delete(self, name, namespace):
        self.api.calls.append(('delete', self.kind, name))
        self.api.objects.pop(self._key(namespace, name), None)


class FakeInstance:
    def __init__(self, obj):
        self.obj = obj

    def to_dict(self):
        return self.obj


class FakeAPI:
    def __init__(self, namespaces=('arthur', 'default')):
        self.objects = {('Namespace', None, name): {'metadata': {'name': name}} for name in namespaces}
        self.calls = []

    def resource(self, kind, api_version):
        return FakeResource(self, kind)

    @property
    def writes(self):
        return [c for c in self.calls if c[0] != 'get']


@pytest.fixture
def api(monkeypatch):
    fake = FakeAPI()
    monkeypatch.setattr(k8s_secret, 'get_client', lambda module: fake)
    return fake


@pytest.fixture
def no_api(monkeypatch):
    def refuse(module):
        raise AssertionError('Kubernetes client created before validation finished')
    monkeypatch.setattr(k8s_secret, 'get_client', refuse)


def base(**kw):
    args = {'name': 'engine-secrets', 'namespace': 'arthur'}
    args.update(kw)
    return args


def assert_never_shows(result, *values):
    text = json.dumps(result)
    for value in values:
        assert value not in text


# ---------------------------------------------------------------------------------------------
# bad inputs: each fails before any client exists, naming its option

BAD_INPUTS = [
    ('name', base(name='Engine_Secrets', string_data={'a': 'b'})),
    ('namespace', base(namespace='Arthur NS', string_data={'a': 'b'})),
    ('string_data', base(string_data={'bad key!': 'x'})),
    ('string_data', base(string_data={'nested': {'a': 1}})),
    ('string_data', base(string_data={'flag': True})),
    ('data_files', base(data_files={'cert': '/nonexistent/file.pem'})),
    ('data_files', base(data_files={'a b': '/etc/hostname'})),
    ('labels', base(string_data={'a': 'b'}, labels={'app': 'has space'})),
    ('annotations', base(string_data={'a': 'b'}, annotations={'bad key/with/slashes': 'x'})),
    ('type', base(type='Opaque', docker_registry={'server': 'ghcr.io', 'username': 'u', 'password': SECRET_VALUE})),
    ('docker_registry.server', base(docker_registry={'server': 'not a host', 'username': 'u', 'password': SECRET_VALUE})),
    ('docker_registry.password', base(docker_registry={'server': 'ghcr.io', 'username': 'u', 'password': ''})),
    ('tls.cert', base(tls={'cert': 'not pem', 'key': KEY})),
    ('tls.key', base(tls={'cert': CERT, 'key': SECRET_VALUE})),
    ('tls', base(tls={'cert': CERT})),
    ('tls.cert_file', base(tls={'cert_file': '/nonexistent.crt', 'key': KEY})),
    ('external_secret.refresh_interval', base(external_secret={'secret_store': 's', 'remote_key': 'k', 'refresh_interval': 'hourly'})),
    ('external_secret.remote_key', base(external_secret={'secret_store': 's', 'remote_key': ' '})),
    ('external_secret.target_name', base(external_secret={'secret_store': 's', 'remote_key': 'k', 'target_name': 'UPPER'})),
    ('required_keys', base(string_data={'a': SECRET_VALUE}, required_keys=['a', 'b'])),
    ('min_length', base(string_data={'cookie': 'short-' + SECRET_VALUE[:3]}, min_length={'cookie': 64})),
    ('min_length', base(string_data={'a': 'b'}, min_length=-1)),
    ('min_length', base(string_data={'a': SECRET_VALUE}, min_length={'missing': 3})),
    ('format', base(string_data={'ep': SECRET_VALUE}, format={'ep': 'openai_endpoints'})),
    ('format', base(string_data={'ep': 'gpt::ftp://x.example::sk-1'}, format={'ep': 'openai_endpoints'})),
    ('format', base(string_data={'ep': 'gpt::https://x.example::'}, format={'ep': 'openai_endpoints'})),
    ('format', base(string_data={'ep': ENDPOINTS}, format={'ep': 'yaml'})),
    ('format', base(string_data={'u': 'not-a-url ' + SECRET_VALUE}, format={'u': 'url'})),
    ('format', base(string_data={'a': 'b'}, format={'missing': 'json'})),
]


@pytest.mark.parametrize('option,args', BAD_INPUTS, ids=['%02d-%s' % (i, o) for i, (o, _a) in enumerate(BAD_INPUTS)])
def test_bad_input_fails_naming_option_before_any_write(run_module, no_api, option, args):
    result, failed = run_module(k8s_secret, args)
    assert failed, result
    assert option in [e['option'] for e in result['errors']], result['msg']
    assert option + ':' in result['msg']
    assert_never_shows(result, SECRET_VALUE, 'sk-abcdef', 'sk-1')


@pytest.mark.parametrize('args,words', [
    (base(docker_registry={'server': 'ghcr.io', 'username': 'u', 'password': 'p'}, tls={'cert': CERT, 'key': KEY}), 'docker_registry|tls'),
    (base(string_data={'a': 'b'}, external_secret={'secret_store': 's', 'remote_key': 'k'}), 'external_secret|string_data'),
    (base(external_secret={'secret_store': 's', 'remote_key': 'k'}, min_length=3), 'external_secret|min_length'),
    (base(tls={'cert': CERT, 'cert_file': '/x', 'key': KEY}), 'cert|cert_file'),
])
def test_exclusive_options_fail_naming_both(run_module, no_api, args, words):
    result, failed = run_module(k8s_secret, args)
    assert failed and words in result['msg']


def test_all_problems_reported_at_once(run_module, no_api):
    result, failed = run_module(k8s_secret, base(name='BAD', namespace='BAD', string_data={'bad key': 'x'}, min_length='x'))
    assert failed
    assert {'name', 'namespace', 'string_data', 'min_length'} <= {e['option'] for e in result['errors']}


# ---------------------------------------------------------------------------------------------
# format checks

@pytest.mark.parametrize('value', [
    ENDPOINTS,
    'gpt-4o::https://my-resource.openai.azure.com/::0123456789abcdef',
    'a::http://localhost:8080::k',
])
def test_openai_endpoints_accepted(value):
    assert k8s_secret.format_problem('openai_endpoints', value) is None


@pytest.mark.parametrize('value,words', [
    ('', 'empty'),
    ('name::https://x.example', 'fields'),
    ('name::https://x.example::k::extra', 'fields'),
    ('::https://x.example::k', 'NAME'),
    ('n::x.example::k', 'ENDPOINT'),
    ('n::https://x.example::k,n2::mailto:a@b::k', 'entry 2'),
    ('n::https://x.example::has space', 'KEY'),
])
def test_openai_endpoints_rejected_without_value(value, words):
    problem = k8s_secret.format_problem('openai_endpoints', value)
    assert problem and words in problem
    assert 'x.example' not in problem and 'has space' not in problem


def test_pem_and_json_formats():
    assert k8s_secret.format_problem('pem', CERT) is None
    assert k8s_secret.format_problem('pem', 'abc') is not None
    assert k8s_secret.format_problem('json', '{"a": 1}') is None
    assert k8s_secret.format_problem('json', '{a') is not None


# ---------------------------------------------------------------------------------------------
# life cycle against the stand-in API

def test_create_rerun_update_and_delete(run_module, api):
    args = base(string_data={'openai': ENDPOINTS, 'port': 5432}, format={'openai': 'openai_endpoints'},
                required_keys=['openai'], min_length={'openai': 10}, labels={'app': 'genai'})
    result, failed = run_module(k8s_secret, args, diff=True)
    assert not failed and result['changed']
    assert result['actions'] == ['create Secret arthur/engine-secrets']
    stored = api.objects[('Secret', 'arthur', 'engine-secrets')]
    assert base64.b64decode(stored['data']['openai']).decode() == ENDPOINTS
    assert base64.b64decode(stored['data']['port']).decode() == '5432'
    assert stored['type'] == 'Opaque'
    assert result['secret']['keys'] == ['openai', 'port']
    assert result['diff']['after']['data']['openai'].startswith('hmac-sha256:')
    assert_never_shows(result, ENDPOINTS, 'sk-abcdef')

    api.calls.clear()
    result, failed = run_module(k8s_secret, args, diff=True)
    assert not failed and not result['changed']
    assert api.writes == []
    assert result['diff']['before'] == result['diff']['after']

    # a label added by someone else is kept; a key removed from the task is removed from the Secret
    api.objects[('Secret', 'arthur', 'engine-secrets')]['metadata']['labels']['team'] = 'ml'
    args['string_data'] = {'openai': ENDPOINTS}
    result, failed = run_module(k8s_secret, args, check_mode=True, diff=True)
    assert result['changed'] and api.writes == []
    assert set(result['diff']['before']['data']) == {'openai', 'port'}
    assert set(result['diff']['after']['data']) == {'openai'}
    result, failed = run_module(k8s_secret, args)
    assert result['changed'] and api.writes == [('replace', 'Secret', 'engine-secrets')]
    stored = api.objects[('Secret', 'arthur', 'engine-secrets')]
    assert set(stored['data']) == {'openai'} and stored['metadata']['labels'] == {'app': 'genai', 'team': 'ml'}

    api.calls.clear()
    result, failed = run_module(k8s_secret, base(state='absent'), check_mode=True)
    assert result['changed'] and api.writes == []
    result, failed = run_module(k8s_secret, base(state='absent'))
    assert result['changed'] and api.writes == [('delete', 'Secret', 'engine-secrets')]
    result, failed = run_module(k8s_secret, base(state='absent'))
    assert not result['changed']


def test_check_mode_create_makes_no_write(run_module, api):
    result, failed = run_module(k8s_secret, base(string_data={'a': SECRET_VALUE}), check_mode=True, diff=True)
    assert not failed and result['changed']
    assert api.writes == [] and not [key for key in api.objects if key[0] != 'Namespace']
    assert result['diff']['before']['exists'] is False
    assert_never_shows(result, SECRET_VALUE)


def test_docker_registry_secret(run_module, api):
    args = base(docker_registry={'server': 'registry.local:5000', 'username': 'bot', 'password': SECRET_VALUE, 'email': 'a@b.c'})
    result, failed = run_module(k8s_secret, args, diff=True)
    assert not failed and result['secret']['type'] == 'kubernetes.io/dockerconfigjson'
    stored = api.objects[('Secret', 'arthur', 'engine-secrets')]
    config = json.loads(base64.b64decode(stored['data']['.dockerconfigjson']))
    entry = config['auths']['registry.local:5000']
    assert entry['password'] == SECRET_VALUE
    assert base64.b64decode(entry['auth']).decode() == 'bot:' + SECRET_VALUE
    assert_never_shows(result, SECRET_VALUE)
    api.calls.clear()
    result, _failed = run_module(k8s_secret, args)
    assert not result['changed'] and api.writes == []


def test_type_change_recreates(run_module, api):
    run_module(k8s_secret, base(string_data={'tls.crt': CERT, 'tls.key': KEY}))
    api.calls.clear()
    result, failed = run_module(k8s_secret, base(tls={'cert': CERT, 'key': KEY}))
    assert not failed and result['changed']
    assert api.writes == [('delete', 'Secret', 'engine-secrets'), ('create', 'Secret', 'engine-secrets')]
    assert api.objects[('Secret', 'arthur', 'engine-secrets')]['type'] == 'kubernetes.io/tls'


def test_tls_from_files_and_data_files(run_module, api, tmp_path):
    (tmp_path / 'c.pem').write_text(CERT)
    (tmp_path / 'k.pem').write_text(KEY)
    (tmp_path / 'blob').write_bytes(b'\x00\x01binary')
    result, failed = run_module(k8s_secret, base(tls={'cert_file': str(tmp_path / 'c.pem'), 'key_file': str(tmp_path / 'k.pem')},
                                                 data_files={'ca.bin': str(tmp_path / 'blob')}))
    assert not failed, result
    stored = api.objects[('Secret', 'arthur', 'engine-secrets')]
    assert base64.b64decode(stored['data']['ca.bin']) == b'\x00\x01binary'
    assert base64.b64decode(stored['data']['tls.key']).decode() == KEY


def test_tls_file_that_is_not_pem_fails_before_write(run_module, api, tmp_path):
    (tmp_path / 'k.pem').write_text(SECRET_VALUE)
    result, failed = run_module(k8s_secret, base(tls={'cert': CERT, 'key_file': str(tmp_path / 'k.pem')}))
    assert failed and result['errors'][0]['option'] == 'tls.key_file'
    assert api.calls == []
    assert_never_shows(result, SECRET_VALUE)


def test_external_secret(run_module, api):
    args = base(external_secret={'secret_store': 'aws-sm', 'secret_store_kind': 'ClusterSecretStore', 'remote_key': 'prod/engine',
                                 'properties': {'password': 'db_password'}, 'refresh_interval': '30m'}, labels={'app': 'genai'})
    result, failed = run_module(k8s_secret, args, diff=True)
    assert not failed and result['changed']
    stored = api.objects[('ExternalSecret', 'arthur', 'engine-secrets')]
    assert stored['apiVersion'] == 'external-secrets.io/v1'
    assert stored['spec']['secretStoreRef'] == {'name': 'aws-sm', 'kind': 'ClusterSecretStore'}
    assert stored['spec']['data'] == [{'secretKey': 'password', 'remoteRef': {'key': 'prod/engine', 'property': 'db_password'}}]
    # fields the operator's webhook adds do not count as a difference
    stored['spec']['data'][0]['remoteRef']['conversionStrategy'] = 'Default'
    api.calls.clear()
    result, _failed = run_module(k8s_secret, args)
    assert not result['changed'] and api.writes == []
    args['external_secret']['properties'] = None
    result, _failed = run_module(k8s_secret, args)
    assert result['changed'] and api.writes == [('replace', 'ExternalSecret', 'engine-secrets')]
    assert api.objects[('ExternalSecret', 'arthur', 'engine-secrets')]['spec']['dataFrom'] == [{'extract': {'key': 'prod/engine'}}]


@pytest.fixture
def aws_env(monkeypatch):
    for var in ('AWS_ENDPOINT_URL', 'AWS_PROFILE', 'AWS_SESSION_TOKEN'):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'testing')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'testing')
    monkeypatch.setenv('AWS_REGION', 'us-east-2')


@mock_aws
def test_aws_secret_keys_become_data(run_module, api, aws_env):
    sm = boto3.client('secretsmanager', region_name='us-east-2')
    sm.create_secret(Name='prod/db', SecretString=json.dumps({'password': SECRET_VALUE, 'port': 5432, 'user': 'app'}))
    args = base(aws_secret={'secret_id': 'prod/db'}, string_data={'user': 'override'}, min_length={'password': 12})
    result, failed = run_module(k8s_secret, args, diff=True)
    assert not failed, result
    stored = api.objects[('Secret', 'arthur', 'engine-secrets')]
    decoded = {k: base64.b64decode(v).decode() for k, v in stored['data'].items()}
    assert decoded == {'password': SECRET_VALUE, 'port': '5432', 'user': 'override'}
    assert_never_shows(result, SECRET_VALUE)


@mock_aws
def test_aws_secret_errors_name_option(run_module, api, aws_env):
    sm = boto3.client('secretsmanager', region_name='us-east-2')
    sm.create_secret(Name='plain', SecretString=SECRET_VALUE)
    for secret_id in ('plain', 'missing'):
        result, failed = run_module(k8s_secret, base(aws_secret={'secret_id': secret_id}))
        assert failed and result['errors'][0]['option'] == 'aws_secret'
        assert_never_shows(result, SECRET_VALUE)
    assert api.calls == []


def test_no_log_covers_secret_options():
    spec = k8s_secret.argument_spec()
    assert spec['data']['no_log'] is True and spec['string_data']['no_log'] is True
    assert spec['docker_registry']['options']['password']['no_log'] is True
    assert spec['tls']['options']['key']['no_log'] is True
    assert spec['api_key']['no_log'] is True


@pytest.mark.parametrize('check_mode', [False, True])
def test_missing_namespace_is_named_before_any_write(run_module, api, check_mode, capsys):
    del api.objects[('Namespace', None, 'arthur')]
    result, failed = run_module(k8s_secret, base(string_data={'password': SECRET_VALUE}), check_mode=check_mode)
    assert api.writes == []
    assert ('get', 'Namespace', 'arthur') in api.calls
    if check_mode:
        # An earlier task of the same check run may be the one that creates the namespace.
        assert not failed and result['changed']
        warnings = ' '.join(result.get('warnings', [])) + capsys.readouterr().err
        assert "namespace: 'arthur' does not exist" in warnings, warnings
    else:
        assert failed and result['option'] == 'namespace'
        assert result['msg'].startswith("namespace: 'arthur' does not exist"), result['msg']


@pytest.mark.parametrize('option', ['tls', 'docker_registry', 'external_secret'])
def test_dict_option_with_suboptions_given_a_string_names_the_option(run_module, no_api, option):
    # ansible-core's own message for this case ("dictionary requested, could not parse JSON or
    # key=value") names nothing; NamingAnsibleModule reports the type check's message instead.
    result, failed = run_module(k8s_secret, base(**{option: 'three'}))
    assert failed
    assert result['msg'].startswith("argument '%s' is of type str" % option), result['msg']


# ---------------------------------------------------------------------------------------------
# data is base64 (as in a Kubernetes Secret and kubernetes.core.k8s), string_data is plain text

def _b64(value):
    return base64.b64encode(value if isinstance(value, bytes) else value.encode()).decode()


def test_data_is_base64_and_string_data_plain_text(run_module, api):
    blob = b'\x00\x01\xfekeystore'
    args = base(data={'keystore': _b64(blob), 'token': _b64(SECRET_VALUE)},
                string_data={'password': SECRET_VALUE + '-p', 'port': 5432}, min_length={'token': 20})
    result, failed = run_module(k8s_secret, args)
    assert not failed and result['changed'], result
    stored = api.objects[('Secret', 'arthur', 'engine-secrets')]['data']
    # Each value encoded once: what data gave is stored as is, string_data is encoded by the module.
    assert stored['keystore'] == _b64(blob) and stored['token'] == _b64(SECRET_VALUE)
    assert base64.b64decode(stored['password']).decode() == SECRET_VALUE + '-p'
    assert base64.b64decode(stored['port']).decode() == '5432'
    assert_never_shows(result, SECRET_VALUE, _b64(SECRET_VALUE))
    # The format checks read the decoded value: 20 characters or more.
    api.calls.clear()
    result, failed = run_module(k8s_secret, dict(args, min_length={'token': len(SECRET_VALUE) + 1}))
    assert failed and result['option'] == 'min_length' and api.writes == []
    # Line breaks inside a base64 value (base64's 76-column output) are skipped, as Kubernetes does.
    wrapped = _b64(SECRET_VALUE * 4)
    wrapped = '\n'.join(wrapped[i:i + 76] for i in range(0, len(wrapped), 76)) + '\n'
    result, failed = run_module(k8s_secret, base(data={'long': wrapped}))
    assert not failed
    assert base64.b64decode(api.objects[('Secret', 'arthur', 'engine-secrets')]['data']['long']).decode() == SECRET_VALUE * 4


AMBIGUOUS = [
    ('plain text in data', {'data': {'password': SECRET_VALUE}}, 'data.password',
     'is not valid base64: data takes base64-encoded values', 'string_data.password'),
    ('padding missing', {'data': {'token': _b64('abcd')[:-2]}}, 'data.token', 'is not valid base64', 'string_data.token'),
    ('a number in data', {'data': {'port': 5432}}, 'data.port', 'must be a base64-encoded string', 'string_data.port'),
    ('the same key in both', {'data': {'password': _b64(SECRET_VALUE)}, 'string_data': {'password': SECRET_VALUE}},
     'data.password', 'is also given in string_data.password', 'give each key once'),
]


@pytest.mark.parametrize('args,option,words,hint', [a[1:] for a in AMBIGUOUS], ids=[a[0] for a in AMBIGUOUS])
def test_ambiguous_data_fails_naming_the_key_before_any_request(run_module, no_api, args, option, words, hint):
    result, failed = run_module(k8s_secret, base(**args))
    assert failed, result
    assert result['option'] == option and result['errors'][0]['option'] == option, result
    assert result['msg'].startswith('Invalid input: %s: %s' % (option, words)), result['msg']
    assert hint in result['msg']
    assert_never_shows(result, SECRET_VALUE, _b64(SECRET_VALUE))


def test_base64_that_decodes_to_non_text_is_written_with_a_warning(run_module, api, capsys):
    # 16 letters and digits: a plain password that happens to be valid base64 (12 bytes, not UTF-8).
    password = 'Zq9xW3vB7kLmP0s2'
    result, failed = run_module(k8s_secret, base(data={'password': password}))
    assert not failed
    warnings = ' '.join(result.get('warnings', [])) + capsys.readouterr().err
    assert 'data.password: decodes to bytes that are not UTF-8 text' in warnings and 'string_data.password' in warnings
    assert password not in warnings
    # Text that is base64 of text: no warning.
    result, failed = run_module(k8s_secret, base(name='other', data={'password': _b64(password)}))
    warnings = ' '.join(result.get('warnings', [])) + capsys.readouterr().err
    assert not failed and 'decodes to bytes' not in warnings


# ---------------------------------------------------------------------------------------------
# fingerprints: keyed per run, returned only with --diff

def test_fingerprints_are_keyed_per_run_and_only_with_diff(run_module, api):
    import hashlib
    args = base(string_data={'password': SECRET_VALUE})
    plain, failed = run_module(k8s_secret, args)
    assert not failed and 'hashes' not in plain['secret'] and 'diff' not in plain
    assert set(plain['secret']) >= {'keys', 'name', 'type'}

    # With --diff: a fingerprint per key, the same in the diff and in the result, and not the unkeyed sha256
    # that anyone could test guesses against.
    first, failed = run_module(k8s_secret, dict(args, string_data={'password': SECRET_VALUE + '-2'}), diff=True)
    second, failed = run_module(k8s_secret, dict(args, string_data={'password': SECRET_VALUE + '-2'}), diff=True)
    fingerprint = first['secret']['hashes']['password']
    assert fingerprint.startswith('hmac-sha256:') and len(fingerprint) == len('hmac-sha256:') + 16
    assert fingerprint == first['diff']['after']['data']['password']
    assert first['diff']['before']['data']['password'] != fingerprint  # the value changed in this run
    unkeyed = hashlib.sha256((SECRET_VALUE + '-2').encode()).hexdigest()[:16]
    assert unkeyed not in json.dumps(first) and unkeyed not in json.dumps(second)
    # Unchanged in the second run: before and after compare within it, but its fingerprints are another run's.
    assert not second['changed'] and second['diff']['before'] == second['diff']['after']
    assert second['secret']['hashes']['password'] != fingerprint


def test_a_kubeconfig_dictionarys_token_never_shows_even_at_vvv():
    """Through ansible itself (exit_json's masking is real here): the module fails to reach the API
    server of the dictionary (nothing listens on port 9) and prints its invocation; the token is masked."""
    import subprocess
    import sys
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
    token = 'tok-' + 'q' * 24
    config = {'current-context': 'c', 'contexts': [{'name': 'c', 'context': {'cluster': 'k', 'user': 'u'}}],
              'clusters': [{'name': 'k', 'cluster': {'server': 'https://127.0.0.1:9'}}],
              'users': [{'name': 'u', 'user': {'token': token}}]}
    module_args = {'name': 'x', 'namespace': 'default', 'string_data': {'k': 'v'}, 'kubeconfig': config}
    ansible = os.path.join(os.path.dirname(sys.executable), 'ansible')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, 'ansible.cfg'))
    proc = subprocess.run([ansible, 'localhost', '-m', 'genai.stack.k8s_secret', '-a', json.dumps(module_args), '-vvv'],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and 'Could not create a Kubernetes client' in proc.stdout, proc.stdout[-3000:]
    assert 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER' in proc.stdout
    assert token not in proc.stdout + proc.stderr
