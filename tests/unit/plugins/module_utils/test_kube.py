"""genai.stack module_utils._kube: drift comparison, quantities, masking, connection options."""
import pytest

from ansible_collections.genai.stack.plugins.module_utils import _kube


def test_drift_ignores_fields_only_live_has():
    desired = {'spec': {'replicas': 2, 'template': {'spec': {'containers': [{'name': 'a', 'image': 'x'}]}}}}
    live = {'spec': {'replicas': 2, 'strategy': {'type': 'RollingUpdate'},
                     'template': {'spec': {'containers': [{'name': 'a', 'image': 'x', 'imagePullPolicy': 'IfNotPresent'}]}}},
            'status': {'readyReplicas': 2}}
    assert _kube.drifted_fields(desired, live) == []


def test_drift_reports_paths():
    desired = {'spec': {'replicas': 2, 'ports': [{'port': 80}]}, 'data': {'message': 'hi'}}
    live = {'spec': {'replicas': 5, 'ports': [{'port': 81}]}, 'data': {'message': 'changed'}}
    assert _kube.drifted_fields(desired, live) == ['spec.replicas', 'spec.ports[0].port', 'data.message']


def test_drift_list_length_and_missing_field():
    assert _kube.drifted_fields({'a': [1, 2]}, {'a': [1]}) == ['a']
    assert _kube.drifted_fields({'a': {'b': 1}}, {}) == ['a']


@pytest.mark.parametrize('desired,live', [
    ({'annotations': {}}, {}), ({'x': None}, {}), ({'x': []}, {'x': None}), ({'x': ''}, {}),
])
def test_empty_desired_matches_absent(desired, live):
    assert _kube.drifted_fields(desired, live) == []


@pytest.mark.parametrize('desired,live', [
    # what real charts render and the API server does not store (omitempty zero values): kube-prometheus-stack's
    # node-exporter `hostNetwork: false`, a probe's `initialDelaySeconds: 0`, a Service's `publishNotReadyAddresses: false`
    ({'spec': {'hostNetwork': False, 'hostPID': False}}, {'spec': {}}),
    ({'readinessProbe': {'initialDelaySeconds': 0, 'periodSeconds': 10}}, {'readinessProbe': {'periodSeconds': 10}}),
    ({'x': 0.0}, {}),
])
def test_zero_values_match_absent(desired, live):
    assert _kube.drifted_fields(desired, live) == []


@pytest.mark.parametrize('desired,live,expected', [
    # a zero value the live object holds as something else, and a non-zero value missing live, are drift
    ({'spec': {'hostNetwork': False}}, {'spec': {'hostNetwork': True}}, ['spec.hostNetwork']),
    ({'spec': {'replicas': 0}}, {'spec': {'replicas': 2}}, ['spec.replicas']),
    ({'spec': {'hostNetwork': True}}, {'spec': {}}, ['spec.hostNetwork']),
    ({'spec': {'replicas': 1}}, {'spec': {}}, ['spec.replicas']),
])
def test_zero_values_still_compared_when_live_has_them(desired, live, expected):
    assert _kube.drifted_fields(desired, live) == expected


@pytest.mark.parametrize('desired,live,equal', [
    (1, '1', True), ('0.5', '500m', True), (0.1, '100m', True), ('1Gi', '1024Mi', True), ('1', '1000m', True),
    ('2', '1', False), (True, 'true', False), ('a', 'b', False), (8080, 8080, True),
])
def test_scalars_and_quantities(desired, live, equal):
    assert _kube.scalars_equal(desired, live) is equal


def test_secret_drift_compares_string_data_with_data():
    desired = {'kind': 'Secret', 'stringData': {'password': 's3cret'}}
    live = {'kind': 'Secret', 'data': {'password': 'czNjcmV0'}}
    assert _kube.secret_drift(desired, live) == []
    live['data']['password'] = 'b3RoZXI='
    assert _kube.secret_drift(desired, live) == ['data.password']


def test_mask_secret_and_hash():
    secret = {'kind': 'Secret', 'data': {'a': 'czNjcmV0'}, 'stringData': {'b': 'plain'}}
    masked = _kube.mask_secret(secret)
    assert masked['data']['a'].startswith('sha256:') and masked['stringData']['b'].startswith('sha256:')
    assert 'plain' not in str(masked) and secret['stringData']['b'] == 'plain'
    assert _kube.mask_secret({'kind': 'ConfigMap', 'data': {'a': 'b'}}) == {'kind': 'ConfigMap', 'data': {'a': 'b'}}
    assert _kube.value_hash('abc') == _kube.value_hash(b'abc') == 'sha256:ba7816bf8f01cfea'
    assert _kube.hashed({'b': b'1', 'a': '2'}) == {'a': _kube.value_hash('2'), 'b': _kube.value_hash('1')}


def test_project_shows_live_side_of_managed_fields():
    assert _kube.project({'spec': {'replicas': 1}}, {'spec': {'replicas': 3, 'paused': False}, 'status': {}}) == {'spec': {'replicas': 3}}


def test_auth_params_env_fallback(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_KUBECONFIG', '/tmp/kc')
    monkeypatch.setenv('K8S_AUTH_CONTEXT', 'ctx')
    params = {'kubeconfig': None, 'context': 'mine', 'host': None, 'api_key': None, 'validate_certs': True, 'ca_cert': None}
    auth = _kube.auth_params(params)
    assert auth['kubeconfig'] == '/tmp/kc' and auth['context'] == 'mine' and auth['validate_certs'] is True


def test_argument_spec_merges_and_marks_token_no_log():
    spec = _kube.kube_argument_spec(name=dict(type='str'))
    assert spec['api_key']['no_log'] is True and spec['password']['no_log'] is True and 'name' in spec
    # No default: an unset option falls back to K8S_AUTH_VALIDATE_CERTS / K8S_AUTH_VERIFY_SSL, then the kubeconfig.
    assert 'default' not in spec['validate_certs']
    assert 'name' not in _kube.KUBE_AUTH_ARGSPEC


# ---------------------------------------------------------------------------------------------
# the kubernetes library is imported when a client is needed, not with the module

def test_importing_the_modules_does_not_import_kubernetes():
    import os
    import subprocess
    import sys
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..', '..'))
    code = ('import sys; sys.path.insert(0, %r)\n'
            'from ansible_collections.genai.stack.plugins.modules import helm_release, k8s_secret\n'
            'print(sorted(m for m in sys.modules if m == "kubernetes" or m.startswith("kubernetes.")))' % os.path.join(root, '.collections'))
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == '[]'


class _Module:
    params = {'kubeconfig': None, 'context': None, 'host': None, 'api_key': None, 'validate_certs': True, 'ca_cert': None}

    def fail_json(self, **kwargs):
        raise RuntimeError(kwargs)


def test_get_client_without_the_library_names_it(monkeypatch):
    for name in ('kubernetes', 'kubernetes.dynamic'):  # importing them now raises ImportError, imported before or not
        monkeypatch.setitem(__import__('sys').modules, name, None)
    with pytest.raises(RuntimeError) as failed:
        _kube.get_client(_Module())
    message = failed.value.args[0]['msg']
    assert 'kubernetes' in message and 'required' in message.lower()
    assert 'ImportError' in failed.value.args[0]['exception'] or 'ModuleNotFoundError' in failed.value.args[0]['exception']


class _Resource:
    namespaced = True

    def __init__(self, error=None, found=None):
        self.error, self.found = error, found

    def get(self, name, namespace=None):
        if self.error:
            raise self.error
        return self.found


class _Client:
    def __init__(self, resource):
        self._resource = resource

    def resource(self, kind, api_version):
        return self._resource


def test_get_object_not_found_is_none_and_other_errors_propagate():
    from kubernetes.client.exceptions import ApiException
    from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError
    assert _kube.get_object(_Client(_Resource(NotFoundError(ApiException(status=404, reason='Not Found')))), 'v1', 'ConfigMap', 'c', 'ns') is None
    with pytest.raises(ForbiddenError):
        _kube.get_object(_Client(_Resource(ForbiddenError(ApiException(status=403, reason='Forbidden')))), 'v1', 'ConfigMap', 'c', 'ns')

    class Found:
        def to_dict(self):
            return {'kind': 'ConfigMap'}
    assert _kube.get_object(_Client(_Resource(found=Found())), 'v1', 'ConfigMap', 'c', 'ns') == {'kind': 'ConfigMap'}


def test_fingerprints_are_hmac_under_a_key_of_their_own():
    import hashlib
    import hmac
    key = b'k' * 32
    assert _kube.Fingerprints(key).of('abc') == 'hmac-sha256:' + hmac.new(key, b'abc', hashlib.sha256).hexdigest()[:16]
    assert _kube.Fingerprints(key).of(b'abc') == _kube.Fingerprints(key).of('abc')
    one, two = _kube.Fingerprints(), _kube.Fingerprints()
    assert one.of('abc') == one.of('abc') and one.of('abc') != two.of('abc')
    assert one.of_data({'b': '1', 'a': '2'}) == {'a': one.of('2'), 'b': one.of('1')}
    assert _kube.value_hash('abc')[len('sha256:'):] not in one.of('abc')
    masked = _kube.mask_secret({'kind': 'Secret', 'data': {'a': 'x'}}, fingerprints=one)
    assert masked['data']['a'] == one.of('x')


def test_a_kubeconfig_dictionarys_credentials_join_the_no_log_values():
    """ansible-core masks every no_log value in what a module returns (its invocation included)."""
    class Module:
        no_log_values = set()
        params = {'kubeconfig': {'users': [{'name': 'u', 'user': {'token': 'tok-secret', 'client-key-data': 'a2V5'}},
                                           {'name': 'v', 'user': {'password': 'pw-secret', 'username': 'shown'}}]}}
    _kube.protect_kubeconfig(Module)
    assert Module.no_log_values == {'tok-secret', 'a2V5', 'pw-secret'}
    Module.params = {'kubeconfig': '/a/path'}
    _kube.protect_kubeconfig(Module)
    assert Module.no_log_values == {'tok-secret', 'a2V5', 'pw-secret'}
