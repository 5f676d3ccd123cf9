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
    assert spec['api_key']['no_log'] is True and spec['validate_certs']['default'] is True and 'name' in spec
    assert 'name' not in _kube.KUBE_AUTH_ARGSPEC
