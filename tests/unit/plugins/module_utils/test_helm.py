"""genai.stack module_utils._helm: version parsing and flags, chart sources, manifests, masking."""
import pytest

from ansible_collections.genai.stack.plugins.module_utils import _helm


@pytest.mark.parametrize('text,version', [
    ('v3.19.0', (3, 19, 0)), ('v4.3.1+gc0d08d0', (4, 3, 1)),
    ('version.BuildInfo{Version:"v3.8.2", GitCommit:"x"}', (3, 8, 2)), ('garbage', None),
])
def test_parse_version(text, version):
    assert _helm.parse_version(text) == version


def test_flags_helm3_and_helm4():
    h3, h4, old = _helm.HelmFlags((3, 19, 0)), _helm.HelmFlags((4, 3, 1)), _helm.HelmFlags((3, 12, 0))
    assert h3.atomic() == ['--atomic'] and h4.atomic() == ['--rollback-on-failure']
    assert h3.dry_run_client() == h4.dry_run_client() == ['--dry-run=client'] and old.dry_run_client() == ['--dry-run']
    assert h3.upgrade_extra() == [] and h4.upgrade_extra() == ['--force-conflicts']
    assert h3.plain_http_supported and not old.plain_http_supported
    assert '--all' not in h4.list_states() and '--pending' in h4.list_states()
    assert h3.wait('60s') == ['--wait', '--timeout', '60s']


def test_chart_sources(tmp_path):
    assert _helm.chart_source('oci://r.local:5000/charts/x') == 'oci'
    assert _helm.chart_source('x', 'https://charts.example') == 'url'
    assert _helm.chart_source(str(tmp_path)) == 'local'
    assert _helm.chart_source('bitnami/redis') == 'repo'
    assert _helm.oci_registry_host('oci://127.0.0.1:5000/charts/gpu-echo') == '127.0.0.1:5000'


MANIFEST = """---
# Source: c/templates/a.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  namespace: other
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: App
---
"""


def test_split_and_name_files():
    docs = _helm.split_documents(MANIFEST)
    assert len(docs) == 3 and docs[0][0].startswith('# Source:')
    names = _helm.rendered_file_names([d for _r, d in docs])
    assert names == ['configmap-default-app.yaml', 'configmap-other-app.yaml', 'deployment-app.yaml']


def test_changed_objects_masks_secrets():
    before = [{'kind': 'Secret', 'metadata': {'name': 's'}, 'data': {'k': 'b2xk'}}, {'kind': 'ConfigMap', 'metadata': {'name': 'c'}}]
    after = [{'kind': 'Secret', 'metadata': {'name': 's'}, 'data': {'k': 'bmV3'}}, {'kind': 'ConfigMap', 'metadata': {'name': 'c'}}]
    old, new = _helm.changed_objects(before, after, 'ns')
    assert list(old) == ['Secret/ns/s'] and list(new) == ['Secret/ns/s']
    assert new['Secret/ns/s']['data']['k'].startswith('sha256:')
    assert 'bmV3' not in str(new)


def test_mask_values():
    values = {'db': {'password': 'x', 'host': 'h'}, 'apiToken': 't', 'list': [{'secretKey': 'v'}], 'n': None}
    masked = _helm.mask_values(values)
    assert masked == {'db': {'password': _helm.MASK, 'host': 'h'}, 'apiToken': _helm.MASK,
                      'list': [{'secretKey': _helm.MASK}], 'n': None}
    assert _helm.mask_values({'a': 1}, mask_all=True) == {'a': _helm.MASK}


def test_display_command_masks_secret_set_values():
    argv = ['helm', 'upgrade', 'r', 'c', '--set', 'db.password=x y', '--set-string', 'tag=1.0', '--set', 'replicas=2']
    shown = _helm.display_command(argv)
    assert 'x y' not in shown and "'db.password=VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'" in shown or 'db.password=VALUE_SPECIFIED' in shown
    assert 'tag=1.0' in shown and 'replicas=2' in shown
    assert 'replicas=2' not in _helm.display_command(argv, mask_all=True)


def test_set_value_args():
    assert _helm.set_value_args([{'value': 'a=1', 'value_type': 'raw'}, {'value': 'b=[1]', 'value_type': 'json'},
                                 {'value': 'c=/f', 'value_type': 'file'}, {'value': 'd=01', 'value_type': 'string'}]) == [
        '--set', 'a=1', '--set-json', 'b=[1]', '--set-file', 'c=/f', '--set-string', 'd=01']


@pytest.mark.parametrize('text', ['1.2.3', 'v1.2', '^1.2', '~1.2.3-rc.1', '>= 1.0, < 2.0', '>=1.0 <2.0', '1.2 - 1.4 || 2.x', '*',
                                  '1.0.0+build.1'])
def test_version_constraints_helm_accepts(text):
    assert _helm.valid_version_constraint(text)


@pytest.mark.parametrize('text', ['v-one', '', '  ', '1..2', 'latest', '1.2.3.4', '>> 1', '1.2 ||', None])
def test_version_constraints_helm_refuses(text):
    assert not _helm.valid_version_constraint(text)


# stderr of helm 3.19 against the sandbox registry (distribution 3.1), recorded on this project's sandbox.
NO_REPO = ('Error: INSTALLATION FAILED: GET "http://127.0.0.1:5000/v2/charts/nope/tags/list": response status code 404: '
           'name unknown: repository name not known to registry: map[name:charts/nope]')
NO_TAG = 'Error: INSTALLATION FAILED: failed to perform "FetchReference" on source: 127.0.0.1:5000/charts/gpu-echo:99.0.0: not found'
NO_AUTH = 'Error: INSTALLATION FAILED: GET "http://127.0.0.1:5000/v2/charts/gpu-echo/tags/list": basic credential not found'
REFUSED = ('Error: authenticating to "127.0.0.1:5000": GET "http://127.0.0.1:5000/v2/": response status code 401: unauthorized: '
           'authentication required')


@pytest.mark.parametrize('stderr, version, credentials, option', [
    (NO_REPO, None, True, 'chart_ref'),
    (NO_TAG, '99.0.0', True, 'chart_version'),
    (NO_AUTH, None, False, 'registry_username'),
    (REFUSED, None, True, 'registry_password'),
    ('Error: INSTALLATION FAILED: improper constraint: v-one', 'v-one', False, 'chart_version'),
    ('Error: INSTALLATION FAILED: Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused', '1.0.0', True,
     'chart_ref'),
    ('Error: INSTALLATION FAILED: template: x/templates/a.yaml:3: unexpected EOF', None, False, None),
])
def test_chart_errors_name_the_option(stderr, version, credentials, option):
    error = _helm.HelmError('helm install failed', command='helm install', rc=1, stderr=stderr)
    told = _helm.chart_error(error, 'oci://127.0.0.1:5000/charts/gpu-echo', version, with_credentials=credentials)
    assert told.option == option
    if option:
        assert str(told).startswith(option + ': ')
        assert told.command == 'helm install' and told.stderr == stderr
    else:
        assert told is error


def test_local_chart_permission_error_is_not_blamed_on_the_registry():
    error = _helm.HelmError('failed', stderr='Error: open /charts/x/Chart.yaml: permission denied')
    assert _helm.chart_error(error, '/charts/x', remote=False).option is None
