"""genai.stack.helm_release: kubernetes.core.helm's options (each one's flags on helm 3 and helm 4), secret_values,
and the values file (mode 0600, removed on every exit path, no value ever on helm's command line), through main()
against test_helm_release's fake helm."""
import json
import os
import stat

import pytest
from ansible.module_utils import basic

from ansible_collections.genai.stack.plugins.module_utils import _helm
from ansible_collections.genai.stack.plugins.modules import helm_release

from test_helm_release import CHART, FakeHelm, args, helm, no_helm  # noqa: F401  pylint: disable=unused-import

CANARY = 'Canary-7f3e9b21-secret'


def real_calls(fake, cmd):
    return [c for c in fake.calls if c[0] == cmd and not any(a.startswith('--dry-run') for a in c)]


def dry_runs(fake):
    return [c for c in fake.calls if any(a.startswith('--dry-run') for a in c)]


def installed(run_module, fake, **kw):
    result, failed = run_module(helm_release, args(fake, **kw))
    assert not failed, result
    return result


# ---------------------------------------------------------------------------------------------
# each option's flags


@pytest.mark.parametrize('version', ['v3.19.0', 'v4.3.1'])
def test_render_flags_on_every_rendering_write_flags_on_install_and_upgrade(run_module, helm, version):
    helm.version = version
    options = dict(dependency_update=True, skip_schema_validation=True, skip_crds=True, take_ownership=True)
    installed(run_module, helm, **options)
    installed(run_module, helm, values={'replicaCount': 2}, **options)
    for call in dry_runs(helm) + real_calls(helm, 'install') + real_calls(helm, 'upgrade'):
        assert '--dependency-update' in call and '--skip-schema-validation' in call and '--take-ownership' in call, call
    for call in real_calls(helm, 'install') + real_calls(helm, 'upgrade'):
        assert '--skip-crds' in call, call
    assert real_calls(helm, 'upgrade'), helm.calls


@pytest.mark.parametrize('version,flag', [('v3.19.0', '--force'), ('v4.3.1', '--force-replace')])
def test_force_and_history_max_are_upgrade_only(run_module, helm, version, flag):
    helm.version = version
    installed(run_module, helm, force=True, history_max=3)
    install = real_calls(helm, 'install')[0]
    assert flag not in install and '--history-max' not in install
    # Unchanged: force does not upgrade (idempotent, unlike kubernetes.core.helm).
    again = installed(run_module, helm, force=True, history_max=3)
    assert not again['changed'] and not real_calls(helm, 'upgrade')
    installed(run_module, helm, force=True, history_max=3, values={'replicaCount': 2})
    upgrade = real_calls(helm, 'upgrade')[0]
    assert flag in upgrade and upgrade[upgrade.index('--history-max') + 1] == '3'
    assert '--force-conflicts' not in upgrade  # helm 4 refuses it with --force-replace
    assert ('--server-side=false' in upgrade) == (version.startswith('v4'))  # helm 4 replaces client-side only


def test_insecure_skip_tls_verify_on_chart_reads_and_login(run_module, helm):
    installed(run_module, helm, chart_ref='oci://127.0.0.1:5000/charts/gpu-echo', registry_username='ci',
              registry_password='pw', insecure_skip_tls_verify=True)
    login = [c for c in helm.calls if c[:2] == ['registry', 'login']][0]
    assert '--insecure' in login
    for call in dry_runs(helm) + real_calls(helm, 'install'):
        assert '--insecure-skip-tls-verify' in call


def test_update_repo_cache_updates_only_the_charts_repository(run_module, helm):
    installed(run_module, helm, chart_ref='myrepo/gpu-echo', update_repo_cache=True)
    assert ['repo', 'update', 'myrepo'] in helm.calls
    first_read = next(i for i, c in enumerate(helm.calls) if c[0] == 'install')
    assert helm.calls.index(['repo', 'update', 'myrepo']) < first_read
    helm.calls.clear()
    installed(run_module, helm, chart_ref='oci://127.0.0.1:5000/charts/gpu-echo', update_repo_cache=True, values={'replicaCount': 2})
    assert not [c for c in helm.calls if c[0] == 'repo']


def test_kubernetes_core_spellings(run_module, helm):
    result, failed = run_module(helm_release, {'release_name': 'echo', 'chart_ref': CHART, 'binary_path': helm.binary,
                                               'release_state': 'present', 'release_values': {'replicaCount': 4},
                                               'timeout': '42s', 'kube_context': 'ctx-a'})
    assert not failed, result
    install = real_calls(helm, 'install')[0]
    assert install[install.index('--timeout') + 1] == '42s'
    assert install[install.index('--kube-context') + 1] == 'ctx-a'
    assert result['values'] == {'replicaCount': 4}
    result, failed = run_module(helm_release, {'release_name': 'echo', 'binary_path': helm.binary, 'release_state': 'absent'})
    assert not failed and result['changed'] and 'echo' not in helm.releases


@pytest.mark.parametrize('option,version', [('take_ownership', 'v3.16.4'), ('skip_schema_validation', 'v3.15.0')])
def test_options_needing_a_newer_helm_fail_naming_them_before_any_write(run_module, helm, option, version):
    helm.version = version
    result, failed = run_module(helm_release, args(helm, **{option: True}))
    assert failed and result['errors'][0]['option'] == option, result
    assert not helm.writes and not dry_runs(helm)


BAD = [
    # A chart name with chart_repo_url that helm would read as its --devel option.
    ('chart_ref', args(chart_ref='--devel', chart_repo_url='https://charts.example')),
    ('chart_ref', args(chart_ref='-x', chart_repo_url='https://charts.example')),
    ('reset_values', args(reset_values=True, reuse_values=True)),
    ('history_max', args(history_max=-1)),
    ('set_values[0].value', args(values={'a': 'scalar'}, set_values=[{'value': 'a.b=1'}])),
    ('set_values[1].value', args(set_values=[{'value': 'ok=1'}, {'value': 'list[x]=1'}])),
    ('set_values[0].value', args(set_values=[{'value': 'a={b,c'}])),
]


@pytest.mark.parametrize('option,arguments', BAD, ids=['%02d-%s' % (i, o) for i, (o, _a) in enumerate(BAD)])
def test_bad_new_input_fails_naming_option_before_helm_runs(run_module, no_helm, option, arguments):  # noqa: F811
    result, failed = run_module(helm_release, arguments)
    assert failed, result
    assert option in [e['option'] for e in result['errors']], result['msg']


def test_set_values_with_a_values_file_helm_may_read_differently_is_refused(run_module, no_helm, tmp_path):  # noqa: F811
    path = tmp_path / 'v.yaml'
    path.write_text('gpu: {y: 1}\n')
    result, failed = run_module(helm_release, args(values_files=[str(path)], set_values=[{'value': 'a=1'}]))
    assert failed and result['errors'][0]['option'] == 'values_files'


# ---------------------------------------------------------------------------------------------
# reset_values / reuse_values


class ReusingHelm(FakeHelm):
    """FakeHelm with helm's upgrade dry run: --reuse-values merges the given values over the stored ones."""

    def __call__(self, module, argv, **kwargs):
        args_ = argv[1:]
        if args_[0] == 'upgrade' and any(a.startswith('--dry-run') for a in args_):
            self.calls.append(args_)
            values = self.values_from(args_)
            if '--reuse-values' in args_:
                values = dict(self.releases[args_[1]]['values'], **values)
            return 0, json.dumps({'chart': {'metadata': {'name': 'gpu-echo', 'version': '0.1.0', 'appVersion': '1.0.0'}},
                                  'config': values, 'manifest': _render(args_[1], values)}), ''
        if args_[0] == 'upgrade' and '--reuse-values' in args_:
            self.calls.append(args_)
            rel = self.releases[args_[1]]
            rel['revision'] += 1
            rel['values'] = dict(rel['values'], **self.values_from(args_))
            rel.update(status='deployed', manifest=_render(args_[1], rel['values']))
            rel['history'].append({'revision': rel['revision'], 'status': 'deployed'})
            return 0, '', ''
        return super().__call__(module, argv, **kwargs)


def _render(name, values):
    from test_helm_release import render
    return render(name, values)


@pytest.fixture
def reusing(helm, monkeypatch):  # noqa: F811
    fake = ReusingHelm()
    fake.objects = helm.objects
    fake.objects.helm = fake
    fake.binary = helm.binary
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: fake(self, argv, **kw))  # pylint: disable=unnecessary-lambda
    return fake


def test_reuse_values_keeps_stored_values_and_compares_with_helms_upgrade_dry_run(run_module, reusing):
    installed(run_module, reusing, values={'message': 'kept'})
    result = installed(run_module, reusing, reuse_values=True, values={'replicaCount': 2})
    assert result['changed']
    upgrade = real_calls(reusing, 'upgrade')[0]
    assert '--reuse-values' in upgrade and '--reset-values' not in upgrade
    preview = [c for c in dry_runs(reusing) if c[0] == 'upgrade'][-1]
    assert '--reuse-values' in preview
    assert reusing.releases['echo']['values'] == {'message': 'kept', 'replicaCount': 2}
    # Re-run: the stored values already hold them: no upgrade.
    reusing.calls.clear()
    result = installed(run_module, reusing, reuse_values=True, values={'replicaCount': 2})
    assert not result['changed'] and not real_calls(reusing, 'upgrade'), result
    # Without reuse the default resets: message goes, so it changes.
    result, _failed = run_module(helm_release, args(reusing, values={'replicaCount': 2}), check_mode=True, diff=True)
    assert result['changed'] and result['diff']['before']['values'] == {'message': 'kept', 'replicaCount': 2}


def test_reset_values_false_leaves_it_to_helm(run_module, reusing):
    installed(run_module, reusing, values={'message': 'kept'})
    installed(run_module, reusing, reset_values=False, values={'replicaCount': 2})
    upgrade = real_calls(reusing, 'upgrade')[0]
    assert '--reset-values' not in upgrade and '--reuse-values' not in upgrade


# ---------------------------------------------------------------------------------------------
# secrets: the values file, the command line, the result


def test_values_file_is_0600_and_no_value_on_any_command_line(run_module, helm, tmp_path):
    secret_file = tmp_path / 'secret.txt'
    secret_file.write_text(CANARY + '-file')
    result, failed = run_module(helm_release, args(
        helm, values={'message': CANARY + '-values'}, secret_values={'db': {'password': CANARY + '-secret'}},
        set_values=[{'value': 'token=%s-raw' % CANARY}, {'value': 'tag=%s-string' % CANARY, 'value_type': 'string'},
                    {'value': 'j={"k":"%s-json"}' % CANARY, 'value_type': 'json'},
                    {'value': 'f=%s' % secret_file, 'value_type': 'file'}]), diff=True)
    assert not failed, result
    assert all(CANARY not in arg for call in helm.calls for arg in call), [c for c in helm.calls if CANARY in ' '.join(c)]
    assert not any(a.startswith('--set') for call in helm.calls for a in call)
    assert all(CANARY not in line for line in result['command'])
    own = [path for path in helm.files if os.path.basename(path) == 'values.json']
    assert own, helm.files
    for path in own:
        text, mode = helm.files[path]
        assert mode == 0o600 and (CANARY + '-secret') in text and (CANARY + '-file') in text
        assert not os.path.exists(os.path.dirname(path)), 'private directory left behind'
    stored = helm.releases['echo']['values']
    assert stored['db'] == {'password': CANARY + '-secret'} and stored['j'] == {'k': CANARY + '-json'}
    assert stored['tag'] == CANARY + '-string' and stored['f'] == CANARY + '-file'


@pytest.mark.parametrize('check_mode', [False, True])
def test_secret_values_masked_in_result_and_diff_but_a_change_still_shows(run_module, helm, check_mode):
    installed(run_module, helm, secret_values={'plain': CANARY})
    result, failed = run_module(helm_release, args(helm, secret_values={'plain': CANARY + '-new'}), check_mode=check_mode, diff=True)
    assert not failed and result['changed'], result
    text = json.dumps(result)
    assert CANARY not in text
    assert result['values']['plain'] == _helm.MASK if 'values' in result else True
    assert result['diff']['before']['values_digest'] != result['diff']['after']['values_digest']
    assert helm.releases['echo']['values']['plain'] == (CANARY if check_mode else CANARY + '-new')


def _private_dirs(fake):
    return {os.path.dirname(p) for p in fake.files if os.path.basename(p) == 'values.json'}


def test_values_file_removed_when_helm_fails(run_module, helm, monkeypatch):
    original = helm.__call__

    def failing(module, argv, **kwargs):
        if argv[1] == 'install' and not any(a.startswith('--dry-run') for a in argv):
            original(module, ['helm', 'version'], **kwargs)
            helm.calls.append(argv[1:])
            for i, arg in enumerate(argv[:-1]):
                if arg == '-f':
                    helm.files[argv[i + 1]] = ('', os.stat(argv[i + 1]).st_mode & 0o777)
            return 1, '', 'Error: INSTALLATION FAILED: boom'
        return original(module, argv, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, 'run_command', lambda self, argv, **kw: failing(self, argv, **kw))  # pylint: disable=unnecessary-lambda
    result, failed = run_module(helm_release, args(helm, secret_values={'password': CANARY}))
    assert failed and 'boom' in result['msg']
    dirs = _private_dirs(helm)
    assert dirs and not any(os.path.exists(d) for d in dirs)


def test_values_file_removed_when_the_module_raises(run_module, helm, monkeypatch):
    def explode(self, *a, **kw):
        raise RuntimeError('unexpected')

    installed(run_module, helm)
    monkeypatch.setattr(helm_release.ReleaseManager, 'live_drift', explode)
    with pytest.raises(RuntimeError):
        run_module(helm_release, args(helm, secret_values={'password': CANARY}))
    dirs = _private_dirs(helm)
    assert dirs and not any(os.path.exists(d) for d in dirs)


def test_values_file_removed_when_an_option_check_fails_after_helm_ran(run_module, helm):
    """fail_json from inside the run (here: take_ownership on an old helm) leaves nothing either."""
    helm.version = 'v3.16.0'
    seen = []
    original = _helm.HelmRunner.cleanup

    def spy(self):
        seen.append(self._private)
        original(self)
    try:
        _helm.HelmRunner.cleanup = spy
        result, failed = run_module(helm_release, args(helm, take_ownership=True, secret_values={'p': CANARY}))
    finally:
        _helm.HelmRunner.cleanup = original
    assert failed and seen, result


# ---------------------------------------------------------------------------------------------
# state=rendered files


def test_rendered_files_are_0600(run_module, helm, tmp_path):
    out = tmp_path / 'out'
    result, failed = run_module(helm_release, args(helm, state='rendered', render_dir=str(out)))
    assert not failed and result['files'], result
    for name in result['files']:
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o600, name


def test_rendered_write_error_leaves_no_tmp_file(run_module, helm, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    out.mkdir()

    def refuse(src, dst):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(helm_release.os, 'replace', refuse)
    with pytest.raises(OSError):
        run_module(helm_release, args(helm, state='rendered', render_dir=str(out)))
    assert sorted(os.listdir(out)) == []


# ---------------------------------------------------------------------------------------------
# set_values applied as helm applies them (the real binaries: tests/sandbox/live/test_helm_precedence.py)


@pytest.mark.parametrize('base,items,expected', [
    ({}, [('raw', 'a.b=1,c=true,d=null,e=0123,f=TRUE')], {'a': {'b': 1}, 'c': True, 'd': None, 'e': '0123', 'f': True}),
    ({'l': [{'n': 'a', 'p': 1}]}, [('raw', 'l[0].n=x'), ('raw', 'l[2]=z')], {'l': [{'n': 'x', 'p': 1}, None, 'z']}),
    ({}, [('raw', 'm={a,b}'), ('string', 's=10'), ('raw', r'ann.example\.com/x=1')],
     {'m': ['a', 'b'], 's': '10', 'ann': {'example.com/x': 1}}),
    ({}, [('string', 'k=s'), ('raw', 'k=2'), ('json', 'k="j"'), ('json', 'o={"a":[1,{"b":null}]} , p=')],
     {'k': 's', 'o': {'a': [1, {'b': None}]}, ' p': None}),  # helm too keeps the blank after the comma in the key
    ({'keep': 1}, [('raw', 'big=12345678901234567890,neg=-3,f=1.5,empty=')],
     {'keep': 1, 'big': '12345678901234567890', 'neg': -3, 'f': '1.5', 'empty': ''}),
])
def test_apply_set_values(base, items, expected):
    got = _helm.apply_set_values(base, [{'value': v, 'value_type': t} for t, v in items])
    assert got == expected
    assert _helm.values_equal(got, expected)


def test_write_private_is_0600_from_creation(tmp_path, monkeypatch):
    monkeypatch.setattr(os, 'umask', os.umask)
    old = os.umask(0)
    try:
        path = tmp_path / 'f'
        _helm.write_private(str(path), 'x')
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        os.umask(old)
