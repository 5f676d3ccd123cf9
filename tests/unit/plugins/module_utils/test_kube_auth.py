"""genai.stack module_utils._kube_auth: kubernetes.core's connection options and K8S_AUTH_* variables,
resolved once, and given to helm by its flags and environment or by a private kubeconfig."""
import os

import pytest
import yaml

from ansible_collections.genai.stack.plugins.module_utils import _kube_auth
from ansible_collections.genai.stack.plugins.module_utils._validation import Checker, InputErrors

ENV = [name for name in os.environ if name.startswith('K8S_AUTH_')] + ['KUBECONFIG']


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def params(**given):
    out = dict((name, None) for name in _kube_auth.KUBE_AUTH_ARGSPEC)
    out.update(given)
    return out


def problems(**given):
    check = Checker()
    _kube_auth.check_connection(check, params(**given))
    try:
        check.raise_if_any()
    except InputErrors as exc:
        return exc.errors
    return []


def test_options_have_kubernetes_core_names_aliases_and_secrets():
    spec = _kube_auth.KUBE_AUTH_ARGSPEC
    assert set(spec) == {'kubeconfig', 'context', 'host', 'api_key', 'username', 'password', 'validate_certs', 'ca_cert',
                         'client_cert', 'client_key', 'proxy', 'no_proxy', 'proxy_headers', 'persist_config',
                         'impersonate_user', 'impersonate_groups'}
    assert spec['validate_certs']['aliases'] == ['verify_ssl'] and spec['ca_cert']['aliases'] == ['ssl_ca_cert']
    assert spec['client_cert']['aliases'] == ['cert_file'] and spec['client_key']['aliases'] == ['key_file']
    assert spec['api_key']['no_log'] and spec['password']['no_log']
    assert spec['proxy_headers']['options']['proxy_basic_auth']['no_log']
    assert spec['kubeconfig']['type'] == 'raw'


@pytest.mark.parametrize('variable,option,raw,expected', [
    ('K8S_AUTH_VERIFY_SSL', 'validate_certs', 'false', False),
    ('K8S_AUTH_VALIDATE_CERTS', 'validate_certs', 'no', False),
    ('K8S_AUTH_VERIFY_SSL', 'validate_certs', 'yes', True),
    ('K8S_AUTH_SSL_CA_CERT', 'ca_cert', '/etc/ca.pem', '/etc/ca.pem'),
    ('K8S_AUTH_CA_CERT', 'ca_cert', '/etc/ca.pem', '/etc/ca.pem'),
    ('K8S_AUTH_CERT_FILE', 'client_cert', '/c.pem', '/c.pem'),
    ('K8S_AUTH_CLIENT_KEY', 'client_key', '/k.pem', '/k.pem'),
    ('K8S_AUTH_KEY_FILE', 'client_key', '/k.pem', '/k.pem'),
    ('K8S_AUTH_PROXY', 'proxy', 'http://p:3128', 'http://p:3128'),
    ('K8S_AUTH_IMPERSONATE_GROUPS', 'impersonate_groups', 'a,,b', ['a', 'b']),
    ('K8S_AUTH_PERSIST_CONFIG', 'persist_config', '0', False),
])
def test_environment_fallbacks_under_both_names(monkeypatch, variable, option, raw, expected):
    monkeypatch.setenv(variable, raw)
    auth = _kube_auth.auth_params(params())
    assert auth[option] == expected
    assert auth.source(option) == '%s (from %s)' % (option, variable)


def test_an_option_wins_over_the_environment_and_is_its_own_source(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'false')
    monkeypatch.setenv('K8S_AUTH_CONTEXT', 'from-env')
    auth = _kube_auth.auth_params(params(validate_certs=True, context='mine'))
    assert auth['validate_certs'] is True and auth['context'] == 'mine' and auth.source('context') == 'context'


def test_proxy_headers_from_the_environment(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH', 'u:p')
    assert _kube_auth.auth_params(params())['proxy_headers'] == {'proxy_basic_auth': 'u:p'}


def test_client_kwargs_leave_out_what_is_unset():
    assert _kube_auth.client_kwargs(_kube_auth.auth_params(params(host='https://h', validate_certs=False))) == {
        'host': 'https://h', 'validate_certs': False}


def test_bad_connection_input_is_named(tmp_path, monkeypatch):
    assert problems(host='api.example:6443')[0][0] == 'host'
    assert problems(client_cert=str(tmp_path / 'missing.pem'))[0][0] == 'client_cert'
    cert = tmp_path / 'c.pem'
    cert.write_text('x')
    assert [error[0] for error in problems(client_cert=str(cert))] == ['client_key']
    assert [error[0] for error in problems(username='u')] == ['password']
    assert [error[0] for error in problems(impersonate_groups=['g'])] == ['impersonate_groups']
    assert [error[0] for error in problems(proxy='proxy:3128')] == ['proxy']
    assert [error[0] for error in problems(kubeconfig=['not', 'a', 'path'])] == ['kubeconfig']
    monkeypatch.setenv('K8S_AUTH_SSL_CA_CERT', str(tmp_path / 'nope.pem'))
    assert problems()[0][0] == 'ca_cert (from K8S_AUTH_SSL_CA_CERT)'
    assert problems(kubeconfig={'clusters': []}, ca_cert=str(cert)) == []


def test_plain_connections_reach_helm_by_flags_and_environment():
    auth = _kube_auth.auth_params(params(kubeconfig='/k', context='c', host='https://h:6443/', api_key='tok',
                                         ca_cert='/ca', validate_certs=False, impersonate_user='u', impersonate_groups=['a', 'b']))
    args, env = _kube_auth.helm_settings(auth, lambda text: pytest.fail('no kubeconfig needed'))
    assert args == ['--kubeconfig', '/k', '--kube-context', 'c']
    assert env == {'HELM_KUBEAPISERVER': 'https://h:6443', 'HELM_KUBETOKEN': 'tok', 'HELM_KUBECAFILE': '/ca',
                   'HELM_KUBEINSECURE_SKIP_TLS_VERIFY': 'true', 'HELM_KUBEASUSER': 'u', 'HELM_KUBEASGROUPS': 'a,b'}


def written(auth):
    out = {}

    def write(text):
        out['config'] = yaml.safe_load(text)
        return '/private/kubeconfig'
    args, env = _kube_auth.helm_settings(auth, write)
    assert args == ['--kubeconfig', '/private/kubeconfig', '--kube-context', _kube_auth.HELM_CONTEXT]
    config = out['config']
    assert config['current-context'] == _kube_auth.HELM_CONTEXT and len(config['contexts']) == 1
    return config['clusters'][0]['cluster'], config['users'][0]['user'], config['contexts'][0]['context'], env


def test_client_certificates_reach_helm_through_a_kubeconfig_without_reading_another():
    auth = _kube_auth.auth_params(params(host='https://h:6443', client_cert='/c.pem', client_key='/k.pem', ca_cert='/ca.pem'))
    cluster, user, context, env = written(auth)
    assert cluster == {'server': 'https://h:6443', 'certificate-authority': '/ca.pem'}
    assert user == {'client-certificate': '/c.pem', 'client-key': '/k.pem'}
    assert env == {} and 'namespace' not in context


def kubeconfig_file(tmp_path, name='config', server='https://kube:6443', insecure=False):
    data = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'main',
        'clusters': [{'name': 'c1', 'cluster': dict({'server': server, 'certificate-authority': 'ca.crt'},
                                                    **({'insecure-skip-tls-verify': True} if insecure else {}))}],
        'users': [{'name': 'u1', 'user': {'client-certificate': 'admin.crt', 'client-key': '/abs/admin.key'}}],
        'contexts': [{'name': 'main', 'context': {'cluster': 'c1', 'user': 'u1', 'namespace': 'team'}},
                     {'name': 'other', 'context': {'cluster': 'c1', 'user': 'u1'}}],
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_proxy_starts_from_the_kubeconfig_context_with_its_files_made_absolute(tmp_path):
    path = kubeconfig_file(tmp_path)
    auth = _kube_auth.auth_params(params(kubeconfig=str(path), proxy='http://proxy:3128',
                                         proxy_headers={'proxy_basic_auth': 'me:p@ss', 'basic_auth': None, 'user_agent': None}))
    cluster, user, context, _env = written(auth)
    assert cluster == {'server': 'https://kube:6443', 'certificate-authority': str(tmp_path / 'ca.crt'),
                       'proxy-url': 'http://me:p%40ss@proxy:3128'}
    assert user == {'client-certificate': str(tmp_path / 'admin.crt'), 'client-key': '/abs/admin.key'}
    assert context['namespace'] == 'team'


@pytest.mark.parametrize('no_proxy,bypassed', [
    ('kube', True), ('.example.org,kube', True), ('*', True), ('kube:6443', True), ('kube:443', False),
    ('other,ube', False), ('', False),
])
def test_no_proxy_decides_for_the_api_server(tmp_path, no_proxy, bypassed):
    path = kubeconfig_file(tmp_path)
    auth = _kube_auth.auth_params(params(kubeconfig=str(path), proxy='http://proxy:3128', no_proxy=no_proxy))
    cluster, _user, _context, _env = written(auth)
    assert ('proxy-url' not in cluster) is bypassed


def test_the_verify_switch_drops_the_ca_and_a_ca_drops_the_data(tmp_path):
    path = kubeconfig_file(tmp_path)
    cluster = written(_kube_auth.auth_params(params(kubeconfig=str(path), validate_certs=False, proxy='http://p:1')))[0]
    assert cluster['insecure-skip-tls-verify'] is True and 'certificate-authority' not in cluster
    path = kubeconfig_file(tmp_path, insecure=True)
    cluster = written(_kube_auth.auth_params(params(kubeconfig=str(path), validate_certs=True, proxy='http://p:1')))[0]
    assert 'insecure-skip-tls-verify' not in cluster


def test_kubeconfig_list_merges_first_wins(tmp_path, monkeypatch):
    first = kubeconfig_file(tmp_path, 'a', server='https://first:6443')
    second = kubeconfig_file(tmp_path, 'b', server='https://second:6443')
    monkeypatch.setenv('KUBECONFIG', os.pathsep.join([str(tmp_path / 'missing'), str(first), str(second)]))
    cluster = written(_kube_auth.auth_params(params(context='other', proxy='http://p:1')))[0]
    assert cluster['server'] == 'https://first:6443'


def test_a_kubeconfig_dictionary_is_used_and_its_secrets_are_listed():
    config = {'current-context': 'x', 'clusters': [{'name': 'c', 'cluster': {'server': 'https://d:1', 'certificate-authority-data': 'Q0E='}}],
              'users': [{'name': 'u', 'user': {'token': 's3cret'}}], 'contexts': [{'name': 'x', 'context': {'cluster': 'c', 'user': 'u'}}]}
    cluster, user, _context, _env = written(_kube_auth.auth_params(params(kubeconfig=config)))
    assert cluster == {'server': 'https://d:1', 'certificate-authority-data': 'Q0E='} and user == {'token': 's3cret'}
    assert _kube_auth.secret_values(config) == ['s3cret']
    assert _kube_auth.secret_values('/path') == []


def test_a_missing_context_is_an_error_not_a_guess(tmp_path):
    path = kubeconfig_file(tmp_path)
    with pytest.raises(ValueError, match="no context 'nope'"):
        written(_kube_auth.auth_params(params(kubeconfig=str(path), context='nope', proxy='http://p:1')))


def test_what_helm_cannot_take_is_refused():
    auth = _kube_auth.auth_params(params(proxy='http://p:1', proxy_headers={'user_agent': 'x'}))
    assert [text for _o, text in _kube_auth.helm_problems(auth)] == [
        'helm has no setting for the User-Agent sent to a proxy (user_agent)']
    auth = _kube_auth.auth_params(params(proxy_headers={'basic_auth': 'a:b'}))
    assert 'needs the proxy' in _kube_auth.helm_problems(auth)[0][1]
    assert _kube_auth.helm_problems(_kube_auth.auth_params(params())) == []
