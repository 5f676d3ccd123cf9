"""genai.stack module_utils._helm: version parsing and flags, chart sources, manifests, masking."""
import pytest

from ansible_collections.genai.stack.plugins.module_utils import _helm, _kube


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
    assert h3.wait('60s') == ['--wait', '--timeout', '60s']


def test_release_lookup_lists_every_state_without_helm3s_all():
    # helm 4 dropped `list --all`: the lookup names the states, so a pending or failed release is found on both.
    args = _helm.HelmRunner.release_args('my.release', 'ns')
    assert args[:5] == ['list', '-n', 'ns', '--filter', r'^my\.release$']
    assert '--all' not in args and {'--deployed', '--failed', '--pending', '--superseded', '--uninstalling'} <= set(args)


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


def test_split_manifest_reads_a_list_as_its_items():
    # aws-load-balancer-controller 3.5.0 renders its IngressClass and IngressClassParams inside a `kind: List`;
    # helm creates the items, so drift detection reads the items, never a "List" object (which no API serves).
    manifest = MANIFEST + """# Source: alb/templates/ingressclass.yaml
apiVersion: v1
kind: List
metadata: {}
items:
- apiVersion: elbv2.k8s.aws/v1beta1
  kind: IngressClassParams
  metadata: {name: alb}
- apiVersion: networking.k8s.io/v1
  kind: IngressClass
  metadata: {name: alb}
"""
    objects = _helm.split_manifest(manifest)
    assert [o['kind'] for o in objects] == ['ConfigMap', 'ConfigMap', 'Deployment', 'IngressClassParams', 'IngressClass']
    assert len(_helm.split_documents(manifest)) == 4  # the files of state=rendered keep the List as the chart wrote it


def test_changed_objects_masks_secrets():
    before = [{'kind': 'Secret', 'metadata': {'name': 's'}, 'data': {'k': 'b2xk'}}, {'kind': 'ConfigMap', 'metadata': {'name': 'c'}}]
    after = [{'kind': 'Secret', 'metadata': {'name': 's'}, 'data': {'k': 'bmV3'}}, {'kind': 'ConfigMap', 'metadata': {'name': 'c'}}]
    old, new = _helm.changed_objects(before, after, 'ns')
    assert list(old) == ['Secret/ns/s'] and list(new) == ['Secret/ns/s']
    assert new['Secret/ns/s']['data']['k'].startswith('hmac-sha256:')
    assert 'bmV3' not in str(new) and _kube.value_hash('bmV3') not in str(new)
    # The same value shows the same within a run, so the diff still shows what changed.
    again = _helm.changed_objects(before, after, 'ns')[1]
    assert again['Secret/ns/s']['data']['k'] == new['Secret/ns/s']['data']['k'] != old['Secret/ns/s']['data']['k']


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


# ---------------------------------------------------------------------------------------------
# deciding a re-run from the stored release

@pytest.mark.parametrize('text', ['1.2.3', 'v1.2.3', '0.1.0', '1.2.3-rc.1', '1.2.3-rc.1+b', '10.20.30+build.5'])
def test_exact_versions(text):
    assert _helm.exact_version(text)


@pytest.mark.parametrize('text', ['1.2', '1', '^1.2.3', '~1.2.3', '>=1.2.3', '1.2.x', '1.2.*', '*', '1.2.3 || 1.2.4', '1.2.3 - 1.2.4',
                                  '=1.2.3', ' 1.2.3', '1.2.3 ', '01.2.3', '1.2.3.4', '', None, 123])
def test_constraints_are_not_exact_versions(text):
    assert not _helm.exact_version(text)


@pytest.mark.parametrize('ref,repo_url,name', [
    ('oci://127.0.0.1:5000/charts/gpu-echo', None, 'gpu-echo'),
    ('oci://ghcr.io/arthur-ai/arthur-engine/charts/arthur-engine', None, 'arthur-engine'),
    ('oci://registry.local/gpu-echo', None, 'gpu-echo'),
    ('oci://registry.local/charts/gpu-echo:0.1.0', None, None),  # a tag in the reference: left to helm
    ('oci://registry.local/charts/gpu-echo@sha256:abc', None, None),
    ('oci://registry.local', None, None),
    ('bitnami/redis', None, 'redis'),
    ('dcgm-exporter', 'https://nvidia.github.io/dcgm-exporter/helm-charts', 'dcgm-exporter'),
    ('./charts/gpu-echo', None, None),
    ('/srv/charts/gpu-echo', None, None),
])
def test_chart_name_from_chart_ref(ref, repo_url, name):
    assert _helm.chart_name(ref, repo_url) == name


def test_chart_name_of_an_existing_local_path_is_none(tmp_path):
    assert _helm.chart_name(str(tmp_path)) is None


# The merge's expected results below are written by hand; the same rules are checked against the real
# helm binaries (3 and 4) in tests/sandbox/live/test_helm_precedence.py.
def test_merge_values_like_helm():
    base = {'image': {'repository': 'r', 'tag': '1'}, 'list': [1, 2], 'keep': {'a': 1}, 'scalar': 1, 'map': {'x': 1}}
    over = {'image': {'tag': '2'}, 'list': [3], 'keep': {}, 'scalar': {'now': 'map'}, 'map': 'now scalar', 'new': None}
    merged = _helm.merge_values(base, over)
    assert merged == {'image': {'repository': 'r', 'tag': '2'}, 'list': [3], 'keep': {'a': 1}, 'scalar': {'now': 'map'},
                      'map': 'now scalar', 'new': None}
    # neither input is changed
    assert base['image'] == {'repository': 'r', 'tag': '1'} and over['image'] == {'tag': '2'}


def test_merge_null_replaces_a_map():
    assert _helm.merge_values({'a': {'b': 1}}, {'a': None}) == {'a': None}


def test_user_values_files_in_order_then_values():
    files = [{'message': 'a', 'gpu': {'enabled': True, 'count': 1}}, None, {'message': 'b', 'gpu': {'count': 2}}]
    assert _helm.user_values(files, {'gpu': {'enabled': False}}) == {'message': 'b', 'gpu': {'enabled': False, 'count': 2}}
    assert _helm.user_values([], None) == {}
    assert _helm.user_values([], {}) == {}


@pytest.mark.parametrize('left,right,equal', [
    (1, 1.0, True), ({'n': 1}, {'n': 1.0}, True), (2.5, 2.5, True), (1, 2, False),
    ('1', 1, False), (1, '1', False), (True, 1, False), (1, True, False), (False, 0, False), (True, True, True),
    (None, None, True), (None, {}, False), ({}, None, False), ('', None, False), ([], {}, False),
    ({'a': [1, {'b': 'x'}]}, {'a': [1.0, {'b': 'x'}]}, True), ({'a': [1, 2]}, {'a': [2, 1]}, False),
    ({'a': 1}, {'a': 1, 'b': None}, False), ({'a': 'x'}, {'a': 'y'}, False), (12345678901234567890, 1.2345678901234567e19, False),
])
def test_values_equal(left, right, equal):
    assert _helm.values_equal(left, right) is equal


def _file(tmp_path, text):
    path = tmp_path / 'values.yaml'
    path.write_text(text)
    return str(path)


def test_load_values_file(tmp_path):
    text = 'a: 1\nb: 2.5\nc: yes\nd: ~\ne: hello\nf: "y"\ng: 0x1F\nj: 1.5e+3\nk: "1e3"\nbase: &b {x: 1}\nm:\n  <<: *b\n  z: 2\n'
    assert _helm.load_values_file(_file(tmp_path, text)) == {
        'a': 1, 'b': 2.5, 'c': True, 'd': None, 'e': 'hello', 'f': 'y', 'g': 31, 'j': 1500.0, 'k': '1e3',
        'base': {'x': 1}, 'm': {'x': 1, 'z': 2}}
    assert _helm.load_values_file(_file(tmp_path, '# nothing\n')) == {}


@pytest.mark.parametrize('text', [
    'a: 1\na: 2\n',                      # a key twice
    'a: y\n', 'a: n\n', 'y: 1\n',        # booleans to helm, strings to PyYAML
    'a: 1e3\n', 'a: 1.0e3\n', 'a: 0o17\n',  # numbers to helm, strings to PyYAML
    'a: 1:20\n', 'a: 1_000\n',           # numbers to PyYAML, not (or not alike) to helm
    '- a\n', 'a: [1\n',
])
def test_values_files_helm_may_read_differently_are_refused(tmp_path, text):
    with pytest.raises(ValueError):
        _helm.load_values_file(_file(tmp_path, text))


RELEASE = {'name': 'echo', 'status': 'deployed', 'revision': '3', 'chart': 'gpu-echo-0.1.0', 'app_version': '1.0.0'}
OCI = 'oci://127.0.0.1:5000/charts/gpu-echo'


def test_stored_noop_allowed_for_remote_exact_version():
    assert _helm.stored_noop_blocker(OCI, None, '0.1.0', None, RELEASE) is None
    assert _helm.stored_noop_blocker(OCI, None, '0.1.0', [], RELEASE) is None
    assert _helm.stored_noop_blocker('repo/gpu-echo', None, '0.1.0', None, RELEASE) is None
    assert _helm.stored_noop_blocker('gpu-echo', 'https://charts.example', '0.1.0', None, RELEASE) is None
    assert _helm.stored_noop_blocker(OCI, None, 'v1.2.3-rc.1+b', None, dict(RELEASE, chart='gpu-echo-v1.2.3-rc.1+b')) is None


@pytest.mark.parametrize('ref,repo_url,version,set_values,release,why', [
    (OCI, None, '0.1.0', None, None, 'no release'),
    (OCI, None, '0.1.0', None, dict(RELEASE, status='failed'), 'status'),
    (OCI, None, '0.1.0', None, dict(RELEASE, status='pending-upgrade'), 'status'),
    ('./charts/gpu-echo', None, '0.1.0', None, RELEASE, 'local'),
    (OCI, None, None, None, RELEASE, 'exact'),
    (OCI, None, '^0.1.0', None, RELEASE, 'exact'),
    (OCI, None, '0.1', None, RELEASE, 'exact'),
    (OCI, None, '0.2.0', None, RELEASE, 'is not'),
    (OCI, None, 'v0.1.0', None, RELEASE, 'is not'),   # helm may resolve v0.1.0 to another tag: left to helm
    ('oci://127.0.0.1:5000/charts/other', None, '0.1.0', None, RELEASE, 'is not'),
    ('oci://127.0.0.1:5000/charts/gpu-echo:0.1.0', None, '0.1.0', None, RELEASE, 'name'),
    ('repo/other', None, '0.1.0', None, RELEASE, 'is not'),
    (OCI, None, '0.1.0', [{'value': 'a=1', 'value_type': 'raw'}], RELEASE, 'set_values'),
])
def test_stored_noop_blocked(ref, repo_url, version, set_values, release, why):
    reason = _helm.stored_noop_blocker(ref, repo_url, version, set_values, release)
    assert reason and why in reason


def test_local_chart_directory_is_never_decided_from_the_store(tmp_path):
    chart = tmp_path / 'gpu-echo'
    chart.mkdir()
    assert 'local' in _helm.stored_noop_blocker(str(chart), None, '0.1.0', None, RELEASE)


def test_post_renderer_is_never_decided_from_the_store():
    # Its output can change with the same chart and values: the rendering must be compared.
    assert 'post_renderer' in _helm.stored_noop_blocker(OCI, None, '0.1.0', None, RELEASE, post_renderer='/tmp/pr')
    assert 'post_renderer' in _helm.stored_noop_request_blocker(OCI, None, '0.1.0', None, post_renderer='/tmp/pr')
    assert _helm.stored_noop_request_blocker(OCI, None, '0.1.0', None, post_renderer=None) is None


def test_status_resources_flag():
    assert _helm.HelmFlags((3, 19, 0)).status_resources and _helm.HelmFlags((3, 10, 0)).status_resources
    assert not _helm.HelmFlags((3, 9, 4)).status_resources and not _helm.HelmFlags((4, 3, 1)).status_resources


def test_live_index_and_lookup():
    resources = {
        'v1/ConfigMap': [{'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'c', 'namespace': 'ns'}, 'data': {'a': 'b'}}],
        'v1/ClusterRole': [{'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole', 'metadata': {'name': 'r'}}],
        'v1/Pod(related)': [{'apiVersion': 'v1', 'kind': 'PodList', 'metadata': {}, 'items': []}],
        'v1/Deployment': [{'apiVersion': 'meta.k8s.io/v1', 'kind': 'Table', 'metadata': {}, 'rows': []}],
        'odd': 'not a list',
    }
    index = _helm.live_index(resources)
    assert sorted(index) == [('rbac.authorization.k8s.io/v1', 'ClusterRole', '', 'r'), ('v1', 'ConfigMap', 'ns', 'c')]
    cm = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'c'}}
    assert _helm.live_lookup(index, cm, 'ns')['data'] == {'a': 'b'}
    assert _helm.live_lookup(index, cm, 'other') is None
    assert _helm.live_lookup(index, dict(cm, apiVersion='v2'), 'ns') is None
    role = {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRole', 'metadata': {'name': 'r'}}
    assert _helm.live_lookup(index, role, 'ns')['kind'] == 'ClusterRole'
    deployment = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'd'}}
    assert _helm.live_lookup(index, deployment, 'ns') is None
    assert _helm.live_index(None) == {}


def test_merge_key_overridden_by_an_explicit_key_is_not_a_duplicate(tmp_path):
    text = 'base: &b {x: 1, w: 0}\nm:\n  <<: *b\n  x: 3\n'
    assert _helm.load_values_file(_file(tmp_path, text)) == {'base': {'x': 1, 'w': 0}, 'm': {'x': 3, 'w': 0}}


# -- running helm -------------------------------------------------------------------------------

class CountingModule:
    """What HelmRunner needs of AnsibleModule: run_command, recording what ran through it and with which environment."""

    def __init__(self):
        self.ran = []

    def run_command(self, argv, environ_update=None, **_kwargs):
        self.ran.append((argv[1:], dict(environ_update or {})))
        return 0, 'fresh %s\n' % ' '.join(argv[1:]), ''


def test_each_command_runs_when_asked_with_the_connection_in_its_environment():
    module = CountingModule()
    runner = _helm.HelmRunner(module, '/usr/bin/helm', {'host': 'https://api.test:6443'})
    assert runner.run(['list', 'x'], record=False)[1] == 'fresh list x\n'
    assert runner.run(['list', 'x'], record=False)[1] == 'fresh list x\n'
    assert [argv for argv, _env in module.ran] == [['list', 'x'], ['list', 'x']]
    assert all(env.get('HELM_KUBEAPISERVER') == 'https://api.test:6443' for _argv, env in module.ran)


# --- helm_module: how both helm modules build themselves and check their input ------------------

class _Stop(Exception):
    def __init__(self, result):
        super().__init__(result.get('msg'))
        self.result = result


def _helm_module(monkeypatch, params, check_options, **kwargs):
    import json
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes
    payload = dict(params, _ansible_remote_tmp='/tmp', _ansible_keep_remote_files=False)
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': payload})))
    monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy', raising=False)

    def fail_json(self, **result):
        raise _Stop(result)

    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)
    return _helm.helm_module(HELM_SPEC, check_options, **kwargs)


HELM_SPEC = {'name': {'type': 'str'}, 'registry_username': {'type': 'str'}, 'registry_password': {'type': 'str', 'no_log': True}}


def _refuse_name(params):
    from ansible_collections.genai.stack.plugins.module_utils._validation import InputErrors
    if params['name'] == 'Bad':
        raise InputErrors([('name', 'must be lower case')])


def test_helm_module_runs_prepare_then_the_modules_own_checks(monkeypatch):
    order = []
    module = _helm_module(monkeypatch, {'name': 'good'}, lambda params: order.append('checks'), prepare=lambda m: order.append('prepare'))
    assert module.params['name'] == 'good' and module.check_mode is False and order == ['prepare', 'checks']


def test_helm_module_fails_naming_the_option_its_checks_refuse(monkeypatch):
    with pytest.raises(_Stop) as stop:
        _helm_module(monkeypatch, {'name': 'Bad'}, _refuse_name)
    assert stop.value.result['errors'] == [{'option': 'name', 'message': 'must be lower case'}]


def test_helm_module_wants_registry_credentials_together(monkeypatch):
    with pytest.raises(_Stop) as stop:
        _helm_module(monkeypatch, {'name': 'good', 'registry_username': 'me'}, _refuse_name)
    assert 'registry_username' in stop.value.result['msg'] and 'registry_password' in stop.value.result['msg']


def test_helm_module_says_when_pyyaml_is_missing(monkeypatch):
    monkeypatch.setattr(_helm, 'HAS_YAML', False)
    with pytest.raises(_Stop) as stop:
        _helm_module(monkeypatch, {'name': 'good'}, _refuse_name)
    assert 'PyYAML' in stop.value.result['msg']
