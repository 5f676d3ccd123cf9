"""genai.stack.helm_release through main(): validation before helm runs, and the decisions (install,
no-op, drift, recovery, check mode, rendered files) against a fake helm binary and a fake API."""
import copy
import hashlib
import json
import os
import subprocess

import pytest
import yaml
from ansible.module_utils import basic

from ansible_collections.genai.stack.plugins.module_utils import _helm
from ansible_collections.genai.stack.plugins.modules import helm_release

CHART = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'fixtures', 'charts', 'gpu-echo')
PASSWORD = 'Reg1stry-Pa55-distinctive'


def render(name, values):
    merged = {'replicaCount': 1, 'message': 'hello'}
    merged.update(values)
    return ('---\n# Source: gpu-echo/templates/configmap.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-gpu-echo\n'
            'data:\n  message: %s\n---\n# Source: gpu-echo/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\n'
            'metadata:\n  name: %s-gpu-echo\nspec:\n  replicas: %s\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s-db\n'
            'stringData:\n  password: %s\n' % (name, json.dumps(merged['message']), name, merged['replicaCount'], name, PASSWORD))


class FakeHelm:
    """Just enough of helm's command line: releases with status, revisions, values and manifests."""

    def __init__(self, version='v3.19.0'):
        self.version = version
        self.releases = {}
        self.calls = []
        self.files = {}
        self.stdin = []
        self.status_fails = False
        self.status_revision_offset = 0
        # helm's dry run against a cluster without the CRDs of the custom resources the chart renders.
        self.crds_missing = False

    def values_from(self, argv):
        """Flat values only (a shallow merge and a naive --set): no test here relies on helm's precedence,
        which is checked against the real binaries in tests/sandbox/live/test_helm_precedence.py."""
        values = {}
        for i, arg in enumerate(argv):
            if arg == '-f':
                with open(argv[i + 1]) as handle:
                    values.update(yaml.safe_load(handle) or {})
            elif arg == '--set':
                key, _s, value = argv[i + 1].partition('=')
                values[key] = int(value) if value.isdigit() else value
        return values

    @staticmethod
    def post_rendered(args, text):
        """What helm does with --post-renderer: the rendering goes through the executable."""
        if '--post-renderer' not in args:
            return text
        return subprocess.run([args[args.index('--post-renderer') + 1]], input=text, capture_output=True, text=True, check=True).stdout

    def __call__(self, module, argv, **kwargs):
        args = argv[1:]
        self.calls.append(args)
        for i, arg in enumerate(args[:-1]):
            if arg == '-f':
                # What helm read, with its mode: the module removes its own values file when the task ends.
                with open(args[i + 1]) as handle:
                    self.files[args[i + 1]] = (handle.read(), os.stat(args[i + 1]).st_mode & 0o777)
        if kwargs.get('data') is not None:
            self.stdin.append(kwargs['data'])
        cmd = args[0]
        name = args[1] if len(args) > 1 else None
        rel = self.releases.get(name)
        if cmd == 'version':
            return 0, self.version, ''
        if cmd == 'registry':
            return 0, '', 'Login Succeeded'
        if cmd == 'repo':
            return 0, '', 'Update Complete.'
        if cmd == 'list':
            found = [{'name': n, 'namespace': 'default', 'revision': str(r['revision']), 'status': r['status'],
                      'chart': r.get('chart', 'gpu-echo-0.1.0'), 'app_version': '1.0.0'} for n, r in self.releases.items()]
            return 0, json.dumps(found), ''
        if cmd == 'history':
            return 0, json.dumps(rel['history']), ''
        if cmd == 'status':
            if self.version.startswith('v4') and '--show-resources' in args:
                return 1, '', 'Error: unknown flag: --show-resources'
            if rel is None or self.status_fails:
                return 1, '', 'Error: release: not found'
            resources = {}
            for obj in yaml.safe_load_all(rel['manifest']):
                live = obj and self.objects.get(None, obj['apiVersion'], obj['kind'], obj['metadata']['name'])
                if live:
                    live['metadata']['namespace'] = 'default'
                    resources.setdefault('v1/%s' % obj['kind'], []).append(live)
            resources['v1/Pod(related)'] = [{'apiVersion': 'v1', 'kind': 'PodList', 'metadata': {}, 'items': []}]
            return 0, json.dumps({'name': name, 'namespace': 'default', 'version': rel['revision'] + self.status_revision_offset,
                                  'config': rel['values'] or None, 'manifest': rel['manifest'],
                                  'info': {'status': rel['status'], 'resources': resources}}), ''
        if cmd == 'get':
            rel = self.releases[args[2]]
            if args[1] == 'values':
                return 0, json.dumps(rel['values'] or None), ''
            return 0, rel['manifest'], ''
        if cmd == 'template':
            return 0, self.post_rendered(args, render(name, self.values_from(args))), ''
        if cmd == 'show':
            return 0, 'apiVersion: v2\nname: gpu-echo\nversion: 0.1.0\nappVersion: 1.0.0\n', ''
        if cmd == 'install' and any(a.startswith('--dry-run') for a in args):
            if self.crds_missing:
                return 1, '', ('Error: INSTALLATION FAILED: unable to build kubernetes objects from release manifest: resource '
                               'mapping not found for name: "echo" namespace: "" from "": no matches for kind "PrometheusRule" '
                               'in version "monitoring.coreos.com/v1"\nensure CRDs are installed first')
            values = self.values_from(args)
            return 0, json.dumps({'chart': {'metadata': {'name': 'gpu-echo', 'version': '0.1.0', 'appVersion': '1.0.0'}},
                                  'config': values, 'manifest': self.post_rendered(args, render(name, values))}), ''
        if cmd == 'install':
            values = self.values_from(args)
            self.releases[name] = {'status': 'deployed', 'revision': 1, 'values': values,
                                   'manifest': self.post_rendered(args, render(name, values)),
                                   'history': [{'revision': 1, 'status': 'deployed'}]}
            return 0, '', ''
        if cmd == 'upgrade':
            values = self.values_from(args)
            rel['revision'] += 1
            rel.update(status='deployed', values=values, manifest=self.post_rendered(args, render(name, values)))
            rel['history'].append({'revision': rel['revision'], 'status': 'deployed'})
            return 0, '', ''
        if cmd == 'rollback':
            rel['revision'] += 1
            rel['status'] = 'deployed'
            rel['history'].append({'revision': rel['revision'], 'status': 'deployed'})
            return 0, '', ''
        if cmd == 'uninstall':
            del self.releases[name]
            return 0, '', ''
        raise AssertionError('unexpected helm call %s' % args)

    @property
    def writes(self):
        return [c[0] for c in self.calls if c[0] in ('install', 'upgrade', 'rollback', 'uninstall')
                and not any(a.startswith('--dry-run') for a in c)]


class FakeObjects:
    """Live objects for drift detection: get_object() answers from here."""

    def __init__(self, helm):
        self.helm = helm
        self.overrides = {}

    def get(self, client, api_version, kind, name, namespace=None):
        for rel in self.helm.releases.values():
            for obj in yaml.safe_load_all(rel['manifest']):
                if obj and obj['kind'] == kind and obj['metadata']['name'] == name:
                    live = copy.deepcopy(obj)
                    if kind == 'Secret':
                        import base64
                        live['data'] = {k: base64.b64encode(v.encode()).decode() for k, v in live.pop('stringData').items()}
                    live.setdefault('status', {'observed': True})
                    override = self.overrides.get((kind, name))
                    if override == 'missing':
                        return None
                    if override:
                        override(live)
                    return live
        return None


@pytest.fixture
def helm(monkeypatch, tmp_path):
    fake = FakeHelm()
    objects = FakeObjects(fake)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: fake(self, argv, **kw))  # pylint: disable=unnecessary-lambda
    monkeypatch.setattr(helm_release, 'get_object', objects.get)
    monkeypatch.setattr(helm_release, 'get_client', lambda module: object())
    fake.objects = objects
    binary = tmp_path / 'helm'
    binary.write_text('#!/bin/sh\n')
    binary.chmod(0o755)
    fake.binary = str(binary)
    return fake


@pytest.fixture
def no_helm(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('helm ran before validation finished: %s' % (args[1:],))
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', refuse)


def args(helm=None, **kw):
    base = {'name': 'echo', 'chart_ref': CHART, 'release_namespace': 'default'}
    if helm is not None:
        base['binary_path'] = helm.binary
    base.update(kw)
    return base


# ---------------------------------------------------------------------------------------------
# bad inputs

BAD = [
    ('name', args(name='Echo')),
    ('name', args(name='e' * 54)),
    ('release_namespace', args(release_namespace='Bad_NS')),
    ('wait_timeout', args(wait_timeout='five minutes')),
    ('binary_path', args(binary_path='/nonexistent/helm')),
    ('chart_ref', args(chart_ref=None)),
    ('chart_ref', args(chart_ref='./no/such/chart')),
    ('chart_ref', args(chart_ref='oci://registry.local')),
    ('chart_repo_url', args(chart_ref='oci://registry.local/charts/x', chart_repo_url='https://charts.example')),
    ('chart_repo_url', args(chart_ref='x', chart_repo_url='ftp://charts.example')),
    ('chart_ref', args(chart_ref='repo/x', chart_repo_url='https://charts.example')),
    ('chart_version', args(chart_version='1.0; rm -rf /')),
    ('registry_password', args(chart_ref='repo/x', registry_username='u', registry_password=PASSWORD)),
    ('plain_http', args(chart_ref='repo/x', plain_http=True)),
    ('values_files', args(values_files=['/nonexistent/values.yaml'])),
    ('set_values[0].value', args(set_values=[{'value': 'novalue'}])),
    ('set_values[1].value', args(set_values=[{'value': 'a=1'}, {'value': '=1'}])),
    ('set_values[0].value', args(set_values=[{'value': 'a={bad json', 'value_type': 'json'}])),
    ('set_values[0].value', args(set_values=[{'value': 'a=/nonexistent/file', 'value_type': 'file'}])),
    ('render_dir', args(state='rendered')),
    ('render_dir', args(render_dir='/tmp')),
    ('render_dir', args(state='rendered', render_dir='/etc/hostname')),
    ('post_renderer', args(post_renderer='/nonexistent/post-renderer')),
    ('post_renderer', args(post_renderer=os.path.join(CHART, 'Chart.yaml'))),  # a file, not executable
    ('post_renderer', args(post_renderer='/tmp')),  # a directory
]


@pytest.mark.parametrize('option,arguments', BAD, ids=['%02d-%s' % (i, o) for i, (o, _a) in enumerate(BAD)])
def test_bad_input_fails_naming_option_before_helm_runs(run_module, no_helm, option, arguments):
    result, failed = run_module(helm_release, arguments)
    assert failed, result
    assert option in [e['option'] for e in result['errors']], result['msg']
    assert PASSWORD not in json.dumps(result)


CONNECTION_BAD = [
    ('client_key', dict(client_cert=CHART + '/Chart.yaml')),
    ('proxy_headers', dict(proxy_headers={'user_agent': 'me'}, proxy='http://proxy:3128')),
    ('impersonate_groups', dict(impersonate_groups=['ops'])),
]


@pytest.mark.parametrize('option,extra', CONNECTION_BAD, ids=[o for o, _e in CONNECTION_BAD])
def test_connection_input_helm_cannot_use_fails_before_helm_runs(run_module, no_helm, option, extra):
    result, failed = run_module(helm_release, args(**extra))
    assert failed, result
    assert option in [e['option'] for e in result['errors']], result['msg']


@pytest.mark.parametrize('text,message', [('clusters: [unclosed\n', 'cannot give helm this connection'),
                                          ('current-context: nope\n', "no context 'nope'")])
def test_a_kubeconfig_helm_cannot_be_given_is_named(run_module, helm, tmp_path, text, message):
    """A connection that needs a private kubeconfig (here: a proxy) from a kubeconfig that cannot be read."""
    path = tmp_path / 'kubeconfig'
    path.write_text(text)
    result, failed = run_module(helm_release, args(helm, kubeconfig=str(path), proxy='http://proxy:3128'))
    assert failed, result
    assert result.get('option') == 'kubeconfig' and message in result['msg'], result


def test_values_file_not_a_mapping(run_module, no_helm, tmp_path):
    path = tmp_path / 'v.yaml'
    path.write_text('- a\n- b\n')
    result, failed = run_module(helm_release, args(values_files=[str(path)]))
    assert failed and result['errors'][0]['option'] == 'values_files'


def test_registry_credentials_required_together(run_module, no_helm):
    result, failed = run_module(helm_release, args(chart_ref='oci://r.local/c/x', registry_username='u'))
    assert failed and 'registry_username' in result['msg'] and 'registry_password' in result['msg']


# ---------------------------------------------------------------------------------------------
# life cycle

def test_install_noop_drift_and_uninstall(run_module, helm):
    result, failed = run_module(helm_release, args(helm, values={'replicaCount': 2}), diff=True)
    assert not failed, result
    assert result['changed'] and helm.writes == ['install']
    assert result['status'] == 'deployed' and result['revision'] == 1 and result['values'] == {'replicaCount': 2}
    assert PASSWORD not in json.dumps(result)  # the chart's Secret is masked in the diff
    secret = result['diff']['after']['objects']['Secret/default/echo-db']
    # Keyed per run: not the value's plain sha256, which anyone with the logs could test guesses against.
    assert secret['stringData']['password'].startswith('hmac-sha256:')
    assert hashlib.sha256(PASSWORD.encode()).hexdigest()[:16] not in json.dumps(result)

    helm.calls.clear()
    result, failed = run_module(helm_release, args(helm, values={'replicaCount': 2}), diff=True)
    assert not failed and not result['changed'] and helm.writes == []
    assert result['revision'] == 1 and result['drift'] == []

    # someone scales the Deployment by hand: drift, corrected by an upgrade
    helm.objects.overrides[('Deployment', 'echo-gpu-echo')] = lambda live: live['spec'].update(replicas=5)
    result, failed = run_module(helm_release, args(helm, values={'replicaCount': 2}), check_mode=True, diff=True)
    assert result['changed'] and helm.writes == []
    assert result['drift'] == ['Deployment/default/echo-gpu-echo spec.replicas']
    assert result['diff']['before']['objects']['Deployment/default/echo-gpu-echo']['spec'] == {'replicas': 5}
    result, failed = run_module(helm_release, args(helm, values={'replicaCount': 2}))
    assert result['changed'] and helm.writes == ['upgrade'] and result['revision'] == 2
    upgrade = [c for c in helm.calls if c[0] == 'upgrade'][0]
    assert '--reset-values' in upgrade and '--force-conflicts' not in upgrade
    helm.objects.overrides.clear()

    # a deleted object is drift too
    helm.objects.overrides[('ConfigMap', 'echo-gpu-echo')] = 'missing'
    result, _failed = run_module(helm_release, args(helm, values={'replicaCount': 2}), check_mode=True)
    assert result['changed'] and result['drift'] == ['ConfigMap/default/echo-gpu-echo (missing)']
    helm.objects.overrides.clear()

    helm.calls.clear()
    result, _failed = run_module(helm_release, args(helm, state='absent'), check_mode=True)
    assert result['changed'] and helm.writes == []
    result, _failed = run_module(helm_release, args(helm, state='absent'))
    assert result['changed'] and helm.writes == ['uninstall'] and result['status'] is None
    uninstall = [c for c in helm.calls if c[0] == 'uninstall'][0]
    assert '--wait' in uninstall
    result, _failed = run_module(helm_release, args(helm, state='absent'))
    assert not result['changed']


def test_first_install_of_a_chart_bringing_its_crds_is_previewed_client_side(run_module, helm):
    """helm's dry run refuses a chart whose custom resources need the CRDs the install itself creates
    (kube-prometheus-stack on a fresh cluster): the first install is previewed by helm template, then installed."""
    helm.crds_missing = True
    result, failed = run_module(helm_release, args(helm, values={'replicaCount': 2}), check_mode=True, diff=True)
    assert not failed, result
    assert result['changed'] and helm.writes == []
    assert [c[0] for c in helm.calls if c[0] in ('template', 'show')] == ['template', 'show']
    assert result['diff']['after']['chart'] == 'gpu-echo-0.1.0'
    assert result['diff']['after']['values'] == {'replicaCount': 2}
    assert 'Deployment/default/echo-gpu-echo' in result['diff']['after']['objects']
    result, failed = run_module(helm_release, args(helm, values={'replicaCount': 2}))
    assert not failed and result['changed'] and helm.writes == ['install']


def test_crds_missing_for_an_installed_release_is_told_as_such(run_module, helm):
    """Only a first install falls back: a release whose CRDs went missing is an error, and not a missing chart."""
    run_module(helm_release, args(helm, values={'message': 'one'}))
    helm.crds_missing = True
    result, failed = run_module(helm_release, args(helm, values={'message': 'two'}), check_mode=True)
    assert failed
    assert 'CustomResourceDefinitions' in result['msg'] and 'was not found' not in result['msg']
    assert helm.writes == ['install']


def test_values_change_upgrades_and_check_mode_shows_it(run_module, helm):
    run_module(helm_release, args(helm, values={'message': 'one'}))
    helm.calls.clear()
    result, _failed = run_module(helm_release, args(helm, values={'message': 'two'}), check_mode=True, diff=True)
    assert result['changed'] and helm.writes == []
    assert result['diff']['before']['values'] == {'message': 'one'}
    assert result['diff']['after']['values'] == {'message': 'two'}
    assert set(result['diff']['after']['objects']) == {'ConfigMap/default/echo-gpu-echo'}
    result, _failed = run_module(helm_release, args(helm, values={'message': 'two'}, set_values=[{'value': 'replicaCount=3'}]))
    assert result['changed'] and helm.writes == ['upgrade']
    assert result['values'] == {'message': 'two', 'replicaCount': _helm.MASK}  # set_values are no_log: their keys masked
    assert helm.releases['echo']['values'] == {'message': 'two', 'replicaCount': 3}


def test_precedence_files_then_values_then_set(run_module, helm, tmp_path):
    """The order the module hands helm: each values file in order, then its own values file (0600) holding the
    files' and `values`' merge with set_values applied as helm applies them; no --set flag. What helm makes of it
    (deep maps, lists, nulls, --set paths and types, --set flags applied by type) is checked against real helm in
    tests/sandbox/live/test_helm_precedence.py."""
    first, second = tmp_path / 'a.yaml', tmp_path / 'b.yaml'
    first.write_text('message: file-a\nreplicaCount: 4\n')
    second.write_text('message: file-b\n')
    run_module(helm_release, args(helm, values_files=[str(first), str(second)], values={'replicaCount': 6},
                                  set_values=[{'value': 'message=from-set'}, {'value': 'tag=1', 'value_type': 'string'}]))
    install = [c for c in helm.calls if c[0] == 'install' and '--dry-run=client' not in c][0]
    flags = [(a, install[i + 1]) for i, a in enumerate(install) if a in ('-f', '--set', '--set-string')]
    assert flags[:2] == [('-f', str(first)), ('-f', str(second))]
    text, mode = helm.files[flags[2][1]]
    assert flags[2][0] == '-f' and mode == 0o600
    assert json.loads(text) == {'replicaCount': 6, 'message': 'from-set', 'tag': '1'}
    assert len(flags) == 3 and not os.path.exists(flags[2][1])


@pytest.mark.parametrize('status,history,expected,recovered', [
    ('pending-install', [{'revision': 1, 'status': 'pending-install'}], ['uninstall', 'install'], 'reinstalled from pending-install'),
    ('failed', [{'revision': 1, 'status': 'failed'}], ['uninstall', 'install'], 'reinstalled from failed'),
    ('pending-upgrade', [{'revision': 1, 'status': 'deployed'}, {'revision': 2, 'status': 'pending-upgrade'}], ['rollback'],
     'rolled back from pending-upgrade to revision 1'),
    ('failed', [{'revision': 1, 'status': 'superseded'}, {'revision': 2, 'status': 'failed'}], ['upgrade'], None),
])
def test_stuck_releases_are_recovered(run_module, helm, status, history, expected, recovered):
    run_module(helm_release, args(helm))
    rel = helm.releases['echo']
    rel.update(status=status, history=history, revision=history[-1]['revision'])
    helm.calls.clear()
    result, _failed = run_module(helm_release, args(helm), check_mode=True)
    assert result['changed'] and helm.writes == []
    result, failed = run_module(helm_release, args(helm))
    assert not failed, result
    assert result['changed'] and helm.writes == expected
    assert result['recovered'] == recovered
    assert result['status'] == 'deployed'
    rollback = [c for c in helm.calls if c[0] == 'rollback']
    if rollback:
        assert rollback[0][1:3] == ['echo', '1']


def test_helm4_flags(run_module, helm):
    helm.version = 'v4.3.1'
    run_module(helm_release, args(helm, atomic=True, wait=True, wait_timeout='60s'))
    install = [c for c in helm.calls if c[0] == 'install' and '--dry-run=client' not in c][0]
    assert '--rollback-on-failure' in install and '--atomic' not in install
    assert install[install.index('--timeout') + 1] == '60s'
    run_module(helm_release, args(helm, values={'replicaCount': 3}))
    upgrade = [c for c in helm.calls if c[0] == 'upgrade'][0]
    assert '--force-conflicts' in upgrade
    listing = [c for c in helm.calls if c[0] == 'list'][0]
    assert '--all' not in listing and '--pending' in listing


@pytest.mark.parametrize('version, flag', [('v3.19.0', '--atomic'), ('v4.3.1', '--rollback-on-failure')])
def test_atomic_install_that_fails_reports_helm_and_tries_nothing_else(run_module, helm, monkeypatch, version, flag):
    helm.version = version
    original = helm.__call__
    stderr = 'Error: INSTALLATION FAILED: release echo failed, and has been uninstalled due to atomic being set: context deadline exceeded'

    def failing_install(module, argv, **kwargs):
        if argv[1] == 'install' and not any(a.startswith('--dry-run') for a in argv):
            helm.calls.append(argv[1:])
            return 1, '', stderr
        return original(module, argv, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: failing_install(self, argv, **kw))  # pylint: disable=unnecessary-lambda
    result, failed = run_module(helm_release, args(helm, atomic=True, wait_timeout='5s'))
    assert failed
    assert 'uninstalled due to atomic' in result['msg'] and 'context deadline exceeded' in result['msg']
    assert result['stderr'] == stderr and result['recovered'] is None
    assert helm.writes == ['install']
    install = [c for c in helm.calls if c[0] == 'install' and '--dry-run=client' not in c][0]
    assert flag in install and install[install.index('--timeout') + 1] == '5s'
    assert 'echo' not in helm.releases


def test_helm3_old_version_flags(run_module, helm):
    helm.version = 'v3.12.3'
    run_module(helm_release, args(helm, atomic=True))
    dry = [c for c in helm.calls if c[0] == 'install' and '--dry-run' in c]
    assert dry
    install = [c for c in helm.calls if c[0] == 'install' and '--dry-run' not in c][0]
    assert '--atomic' in install


def test_too_old_helm_fails(run_module, helm):
    helm.version = 'v3.7.2'
    result, failed = run_module(helm_release, args(helm))
    assert failed and '3.8' in result['msg']


@pytest.mark.parametrize('version', ['v3.19.0', 'v4.3.1'])
def test_registry_login_uses_stdin_and_private_config(run_module, helm, monkeypatch, version):
    helm.version = version
    seen = {}
    original = helm.__call__

    def spy(module, argv, **kwargs):
        if argv[1:3] == ['registry', 'login']:
            seen['env'] = dict(kwargs.get('environ_update') or {})
        return original(module, argv, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: spy(self, argv, **kw))  # pylint: disable=unnecessary-lambda
    result, failed = run_module(helm_release, args(helm, chart_ref='oci://127.0.0.1:5000/charts/gpu-echo', registry_username='ci',
                                                   registry_password=PASSWORD, plain_http=True))
    assert not failed, result
    login = [c for c in helm.calls if c[:2] == ['registry', 'login']][0]
    assert login[2] == '127.0.0.1:5000' and '--password-stdin' in login and '--plain-http' in login
    assert all(PASSWORD not in arg for call in helm.calls for arg in call)
    assert helm.stdin == [PASSWORD]
    config = seen['env']['HELM_REGISTRY_CONFIG']
    assert not config.startswith(os.path.expanduser('~/.config/helm'))
    assert result['helm_version'] == version
    assert PASSWORD not in json.dumps(result)
    assert any(c.startswith(helm.binary + ' registry login') for c in result['command'])


def test_secret_looking_values_masked(run_module, helm):
    result, _failed = run_module(helm_release, args(helm, values={'db': {'password': PASSWORD}, 'replicaCount': 1},
                                                    set_values=[{'value': 'apiToken=%s' % PASSWORD}]), diff=True)
    assert PASSWORD not in json.dumps(result)
    assert result['values']['db']['password'] == 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'
    assert result['values']['replicaCount'] == 1


def test_rendered_writes_one_file_per_object_and_removes_stale(run_module, helm, tmp_path):
    out = tmp_path / 'render'
    out.mkdir()
    (out / 'stale-object.yaml').write_text('kind: Old\n')
    (out / 'README.md').write_text('kept\n')
    result, failed = run_module(helm_release, args(helm, state='rendered', render_dir=str(out)), check_mode=True, diff=True)
    assert result['changed'] and sorted(os.listdir(out)) == ['README.md', 'stale-object.yaml']
    assert PASSWORD not in json.dumps(result)
    result, failed = run_module(helm_release, args(helm, state='rendered', render_dir=str(out)))
    assert not failed and result['changed']
    assert sorted(os.listdir(out)) == ['README.md', 'configmap-echo-gpu-echo.yaml', 'deployment-echo-gpu-echo.yaml', 'secret-echo-db.yaml']
    assert result['removed_files'] == ['stale-object.yaml']
    assert yaml.safe_load((out / 'deployment-echo-gpu-echo.yaml').read_text())['kind'] == 'Deployment'
    result, _failed = run_module(helm_release, args(helm, state='rendered', render_dir=str(out)))
    assert not result['changed']
    assert helm.writes == []


def test_no_log_on_password():
    spec = helm_release.argument_spec()
    assert spec['registry_password']['no_log'] is True
    assert spec['api_key']['no_log'] is True


# ---------------------------------------------------------------------------------------------
# a re-run decided from the stored release (no registry, no chart pull, no render)

OCI_REF = 'oci://127.0.0.1:5000/charts/gpu-echo'


def oci(helm, **kw):
    base = dict(chart_ref=OCI_REF, chart_version='0.1.0', registry_username='ci', registry_password=PASSWORD, plain_http=True,
                values={'replicaCount': 2})
    base.update(kw)
    return args(helm, **base)


def ran(helm):
    """The helm commands run, as `list`, `get values`, `install --dry-run`, `registry login`..."""
    shown = []
    for call in helm.calls:
        word = ' '.join(call[:2]) if call[0] in ('get', 'registry') else call[0]
        if call[0] == 'install' and any(a.startswith('--dry-run') for a in call):
            word = 'install --dry-run'
        shown.append(word)
    return shown


def full_path_ran(helm):
    return 'install --dry-run' in ran(helm)


@pytest.fixture
def no_kube_client(monkeypatch):
    def refuse(module):
        raise AssertionError('the Kubernetes client was built')
    monkeypatch.setattr(helm_release, 'get_client', refuse)
    # The first install of these tests reads the namespace through the client; that check is the
    # subject of the bad-input catalogue and the integration target, not of these tests.
    monkeypatch.setattr(helm_release, 'missing_namespace', lambda *args: None)


def test_stored_noop_helm3_runs_three_reads(run_module, helm, monkeypatch):
    result, failed = run_module(helm_release, oci(helm, values={'replicaCount': 2, 'db': {'password': PASSWORD}}))
    assert not failed and result['changed']
    helm.calls.clear()
    helm.stdin.clear()
    monkeypatch.setattr(helm_release, 'get_client', lambda module: pytest.fail('the Kubernetes client was built'))
    result, failed = run_module(helm_release, oci(helm, values={'replicaCount': 2, 'db': {'password': PASSWORD}}))
    assert not failed, result
    assert ran(helm) == ['version', 'list', 'status']
    assert not any(c[0] in ('registry', 'install', 'upgrade', 'template', 'pull', 'show') for c in helm.calls)
    assert helm.stdin == []
    assert result['changed'] is False and result['command'] == []
    assert result['status'] == 'deployed' and result['revision'] == 1
    assert result['chart'] == 'gpu-echo-0.1.0' and result['app_version'] == '1.0.0'
    assert result['values'] == {'replicaCount': 2, 'db': {'password': 'VALUE_SPECIFIED_IN_NO_LOG_PARAMETER'}}
    assert result['drift'] == [] and result['recovered'] is None and result['helm_version'] == 'v3.19.0'
    assert PASSWORD not in json.dumps(result)


def words(calls):
    return [c[0] for c in calls]


def test_noop_reads_the_version_the_release_and_its_status_once_each(run_module, helm):
    run_module(helm_release, oci(helm))
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm))
    assert not failed and not result['changed'], result
    assert words(helm.calls) == ['version', 'list', 'status']
    assert helm.calls[2][-3:] == ['--show-resources', '-o', 'json']


@pytest.mark.parametrize('kw', [
    {'chart_version': '^0.1.0'},                 # a range is resolved by helm: full path
    {'set_values': [{'value': 'message=x'}]},    # --set parsing is helm's: full path
])
def test_status_not_read_when_the_stored_decision_cannot_use_it(run_module, helm, kw):
    run_module(helm_release, oci(helm))
    helm.calls.clear()
    run_module(helm_release, oci(helm, **kw))
    assert 'status' not in words(helm.calls)


@pytest.mark.parametrize('version', ['v4.3.1', 'v3.9.4'])
def test_status_not_read_when_this_helm_cannot_show_resources(run_module, helm, version):
    run_module(helm_release, oci(helm, plain_http=False))
    helm.version = version
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm, plain_http=False))
    assert not failed and not result['changed'], result
    assert not any(c[0] == 'status' and '--show-resources' in c for c in helm.calls)


def test_local_chart_and_rendered_read_no_status(run_module, helm, tmp_path):
    run_module(helm_release, args(helm))
    helm.calls.clear()
    run_module(helm_release, args(helm))
    assert 'status' not in words(helm.calls)
    helm.calls.clear()
    run_module(helm_release, args(helm, state='rendered', render_dir=str(tmp_path / 'out')))
    assert not {'status', 'list'} & set(words(helm.calls))


def test_the_release_is_read_again_after_a_write(run_module, helm):
    run_module(helm_release, oci(helm))
    rel = helm.releases['echo']
    rel.update(status='failed', history=[{'revision': 1, 'status': 'failed'}])
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm))
    assert not failed and result['recovered'] == 'reinstalled from failed', result
    # the failed release sent the run down the full path; the release reported is read after the reinstall
    calls = words(helm.calls)
    assert calls.count('list') == 2 and calls.index('install') < len(calls) - 1 - calls[::-1].index('list')
    assert result['status'] == 'deployed' and result['revision'] == 1


def test_stored_noop_helm4_reads_values_manifest_and_live_objects(run_module, helm, monkeypatch):
    helm.version = 'v4.3.1'
    run_module(helm_release, oci(helm))
    helm.calls.clear()
    seen = []
    monkeypatch.setattr(helm_release, 'get_object', lambda *a, **kw: seen.append(a[2]) or helm.objects.get(*a, **kw))
    result, failed = run_module(helm_release, oci(helm))
    assert not failed, result
    # helm 4 has no `status --show-resources`; the live objects come from the API
    assert ran(helm) == ['version', 'list', 'get values', 'get manifest']
    assert sorted(seen) == ['ConfigMap', 'Deployment', 'Secret']
    assert not result['changed'] and result['command'] == [] and result['revision'] == 1


def test_stored_noop_check_mode_and_diff_show_no_change(run_module, helm, no_kube_client):
    run_module(helm_release, oci(helm))
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm), check_mode=True, diff=True)
    assert not failed, result
    assert not full_path_ran(helm) and 'registry login' not in ran(helm) and ran(helm).count('list') == 1
    assert not result['changed']
    assert result['diff']['before'] == result['diff']['after']
    assert result['diff']['after']['objects'] == {} and result['diff']['after']['values'] == {'replicaCount': 2}
    assert result['chart'] == 'gpu-echo-0.1.0' and result['revision'] == 1 and result['status'] == 'deployed'


def test_full_path_noop_diff_matches_the_stored_decision(run_module, helm):
    run_module(helm_release, oci(helm))
    fast, _failed = run_module(helm_release, oci(helm), check_mode=True, diff=True)
    helm.calls.clear()
    full, _failed = run_module(helm_release, oci(helm, chart_version='^0.1.0'), check_mode=True, diff=True)
    assert full_path_ran(helm)
    assert not full['changed'] and full['diff'] == fast['diff']
    for key in ('status', 'revision', 'chart', 'app_version', 'values', 'drift'):
        assert full[key] == fast[key], key


def test_yaml_integer_equals_json_float(run_module, helm, tmp_path, no_kube_client):
    values = tmp_path / 'v.yaml'
    values.write_text('replicaCount: 2\nratio: 1\n')
    run_module(helm_release, oci(helm, values={}, values_files=[str(values)]))
    helm.releases['echo']['values'] = {'replicaCount': 2.0, 'ratio': 1.0}  # what helm's JSON may say
    helm.calls.clear()
    result, _failed = run_module(helm_release, oci(helm, values={}, values_files=[str(values)]))
    assert not result['changed'] and not full_path_ran(helm)


def test_values_files_and_values_merged_like_helm(run_module, helm, tmp_path, no_kube_client):
    """The stored decision takes the deep merge as equal to what helm stored (the stored values here are
    written by hand; that helm merges so is checked against real helm in tests/sandbox/live/test_helm_precedence.py)."""
    first, second = tmp_path / 'a.yaml', tmp_path / 'b.yaml'
    first.write_text('gpu:\n  enabled: true\n  count: 1\nmessage: a\n')
    second.write_text('gpu:\n  count: 2\n')
    run_module(helm_release, oci(helm))
    helm.releases['echo']['values'] = {'gpu': {'enabled': False, 'count': 2}, 'message': 'a'}
    helm.calls.clear()
    result, _failed = run_module(helm_release, oci(helm, values_files=[str(first), str(second)], values={'gpu': {'enabled': False}}))
    assert not result['changed'] and not full_path_ran(helm)


def _stored(helm, **changes):
    helm.releases['echo'].update(changes)


BLOCKED = [
    ('local chart', dict(chart_ref=CHART, registry_username=None, registry_password=None, plain_http=False), None),
    ('no chart_version', dict(chart_version=None), None),
    ('version constraint', dict(chart_version='^0.1.0'), None),
    ('other version', dict(chart_version='0.2.0'), None),
    ('other chart name', dict(chart_ref='oci://127.0.0.1:5000/charts/other'), None),
    ('stored chart differs', {}, {'chart': 'gpu-echo-0.0.9'}),
    ('set_values', dict(set_values=[{'value': 'replicaCount=2'}]), None),
    ('values differ', dict(values={'replicaCount': 3}), None),
    ('string is not a number', dict(values={'replicaCount': '2'}), None),
    ('bool is not a number', {}, {'values': {'replicaCount': True}}),
    ('stored values have more', {}, {'values': {'replicaCount': 2, 'extra': None}}),
    ('status failed', {}, {'status': 'failed', 'history': [{'revision': 1, 'status': 'failed'}]}),
    ('status pending-upgrade', {}, {'status': 'pending-upgrade', 'revision': 2,
                                    'history': [{'revision': 1, 'status': 'deployed'}, {'revision': 2, 'status': 'pending-upgrade'}]}),
]


@pytest.mark.parametrize('why,changed_args,stored', BLOCKED, ids=[b[0] for b in BLOCKED])
def test_stored_noop_not_taken(run_module, helm, why, changed_args, stored):
    run_module(helm_release, oci(helm))
    if stored:
        _stored(helm, **stored)
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm, **changed_args), check_mode=True)
    assert not failed, result
    assert full_path_ran(helm), why
    if oci(helm, **changed_args).get('registry_username'):
        assert 'registry login' in ran(helm)


def test_ambiguous_values_file_goes_the_full_path(run_module, helm, tmp_path):
    values = tmp_path / 'v.yaml'
    values.write_text('enabled: y\n')  # `y` is true to helm, "y" to PyYAML
    run_module(helm_release, oci(helm, values={}, values_files=[str(values)]))
    helm.calls.clear()
    run_module(helm_release, oci(helm, values={}, values_files=[str(values)]), check_mode=True)
    assert full_path_ran(helm)


@pytest.mark.parametrize('version', ['v3.19.0', 'v4.3.1'])
def test_drift_after_stored_noop_is_detected_and_corrected(run_module, helm, version):
    helm.version = version
    run_module(helm_release, oci(helm))
    result, _failed = run_module(helm_release, oci(helm))
    assert not result['changed']
    helm.objects.overrides[('Deployment', 'echo-gpu-echo')] = lambda live: live['spec'].update(replicas=5)
    helm.calls.clear()
    result, _failed = run_module(helm_release, oci(helm), check_mode=True, diff=True)
    assert result['changed'] and full_path_ran(helm) and helm.writes == []
    assert result['drift'] == ['Deployment/default/echo-gpu-echo spec.replicas']
    assert result['diff']['before']['objects']['Deployment/default/echo-gpu-echo']['spec'] == {'replicas': 5}
    result, _failed = run_module(helm_release, oci(helm))
    assert result['changed'] and helm.writes == ['upgrade'] and result['revision'] == 2
    helm.objects.overrides.clear()
    helm.calls.clear()
    result, _failed = run_module(helm_release, oci(helm))
    assert not result['changed'] and not full_path_ran(helm) and result['revision'] == 2


def test_missing_object_after_stored_noop_is_detected(run_module, helm):
    run_module(helm_release, oci(helm))
    helm.objects.overrides[('Secret', 'echo-db')] = 'missing'
    helm.calls.clear()
    result, _failed = run_module(helm_release, oci(helm), check_mode=True)
    assert result['changed'] and full_path_ran(helm)
    assert result['drift'] == ['Secret/default/echo-db (missing)']


@pytest.mark.parametrize('trouble', ['status_fails', 'status_revision_offset'])
def test_status_not_usable_falls_back_to_reading_the_api(run_module, helm, trouble):
    run_module(helm_release, oci(helm))
    setattr(helm, trouble, 1 if trouble == 'status_revision_offset' else True)
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm))
    assert not failed and not result['changed']
    assert ran(helm) == ['version', 'list', 'status', 'get values', 'get manifest']


def test_full_path_reuses_the_reads_of_a_declined_decision(run_module, helm):
    run_module(helm_release, oci(helm))
    helm.calls.clear()
    result, _failed = run_module(helm_release, oci(helm, values={'replicaCount': 3}))
    assert result['changed'] and helm.writes == ['upgrade']
    assert ran(helm) == ['version', 'list', 'status', 'registry login', 'install --dry-run', 'upgrade', 'list', 'get values']


@pytest.mark.parametrize('before,after', [
    ({'db': {'password': 'First-Pa55-shown-nowhere'}}, {'db': {'password': 'Second-Pa55-shown-nowhere'}}),
    ({'auth': {'enabled': False}}, {'auth': {'enabled': True}}),
    ({'replicaCount': True}, {'replicaCount': 1}),
])
def test_full_path_sees_a_change_that_masking_or_python_equality_hides(run_module, helm, before, after):
    """The full path decides on the values themselves (as values_equal tells them apart), not on their masked
    copies nor on Python's ==, where True == 1: a new password of a remote chart's release is upgraded."""
    run_module(helm_release, oci(helm, values=before))
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm, values=after), diff=True)
    assert not failed, result
    assert full_path_ran(helm) and result['changed'] and helm.writes == ['upgrade'], ran(helm)
    assert helm.releases['echo']['values'] == after
    assert 'Pa55-shown-nowhere' not in json.dumps(result)


# ---------------------------------------------------------------------------------------------
# post_renderer

def post_renderer(tmp_path, label):
    """An executable that adds a label to every Deployment, as a post-renderer prints it."""
    path = tmp_path / 'post-render.sh'
    path.write_text('#!/bin/sh\nsed "s/^kind: Deployment$/kind: Deployment\\n# post-rendered\\nlabel: %s/"\n' % label)
    path.chmod(0o700)
    return str(path)


def test_post_renderer_is_used_by_every_rendering(run_module, helm, tmp_path):
    script = post_renderer(tmp_path, 'one')
    result, failed = run_module(helm_release, oci(helm, post_renderer=script))
    assert not failed and result['changed'], result
    rendering = [c for c in helm.calls if c[0] in ('install', 'upgrade', 'template')]
    assert rendering and all(c[c.index('--post-renderer') + 1] == script for c in rendering)
    assert 'label: one' in helm.releases['echo']['manifest']
    run_module(helm_release, oci(helm, post_renderer=script, values={'replicaCount': 3}))
    upgrade = [c for c in helm.calls if c[0] == 'upgrade'][0]
    assert upgrade[upgrade.index('--post-renderer') + 1] == script
    result, failed = run_module(helm_release, args(helm, state='rendered', render_dir=str(tmp_path / 'out'), post_renderer=script))
    assert not failed and 'label: one' in (tmp_path / 'out' / 'deployment-echo-gpu-echo.yaml').read_text()
    # uninstall ignores it (nothing is rendered)
    helm.calls.clear()
    result, failed = run_module(helm_release, args(helm, state='absent', post_renderer=script))
    assert not failed and all('--post-renderer' not in c for c in helm.calls)


def test_post_renderer_output_change_upgrades_without_a_value_change(run_module, helm, tmp_path):
    script = post_renderer(tmp_path, 'one')
    run_module(helm_release, oci(helm, post_renderer=script))
    helm.calls.clear()
    result, failed = run_module(helm_release, oci(helm, post_renderer=script))
    # same output: rendered (never decided from the stored release alone), compared, no write
    assert not failed and not result['changed'] and helm.writes == [] and full_path_ran(helm), result
    script = post_renderer(tmp_path, 'two')
    result, failed = run_module(helm_release, oci(helm, post_renderer=script), check_mode=True)
    assert not failed and result['changed'] and helm.writes == []
    result, failed = run_module(helm_release, oci(helm, post_renderer=script))
    assert not failed and result['changed'] and helm.writes == ['upgrade']
    assert 'label: two' in helm.releases['echo']['manifest']


def test_post_renderer_needs_helm3(run_module, helm, tmp_path):
    helm.version = 'v4.3.1'
    result, failed = run_module(helm_release, oci(helm, post_renderer=post_renderer(tmp_path, 'one')))
    assert failed and result['errors'][0]['option'] == 'post_renderer' and 'helm 4' in result['msg']
    assert helm.writes == []
