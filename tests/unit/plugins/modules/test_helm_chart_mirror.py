"""genai.stack.helm_chart_mirror through main(): validation and package checks before anything is pushed, and the
decisions (push, unchanged, differing, overwrite, missing, check mode, sources) against a fake helm and registry.
The real helm and registry are exercised by tests/integration/targets/helm_chart_mirror."""
import io
import os
import tarfile

import pytest
from ansible.module_utils import basic

from ansible_collections.genai.stack.plugins.modules import helm_chart_mirror

MIRROR = 'oci://registry.example.com/genai-charts'
PASSWORD = 'M1rror-Pa55-distinctive'


def make_package(directory, name, version, file_name=None, extra=''):
    """A chart package as `helm package` writes it: <name>/Chart.yaml inside <name>-<version>.tgz."""
    path = os.path.join(str(directory), file_name or '%s-%s.tgz' % (name, version))
    with tarfile.open(path, 'w:gz') as archive:
        for member, text in (('%s/Chart.yaml' % name, 'apiVersion: v2\nname: %s\nversion: %s\n%s' % (name, version, extra)),
                             ('%s/values.yaml' % name, 'x: 1\n')):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


class FakeHelm:
    """helm version / registry login / pull / push against an in-memory registry {(base, name, version): bytes}."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.registry = {}
        self.sources = {}  # (source ref or (repo_url, name), version) -> package path
        self.calls = []
        self.stdin = []
        self.env = []
        self.login_fails = None
        self.unreachable = False

    def __call__(self, module, argv, environ_update=None, data=None, binary_data=False, **_kwargs):
        args = list(argv[1:])
        self.calls.append(args)
        self.env.append(dict(environ_update or {}))
        if data is not None:
            self.stdin.append(data)
        if args[:2] == ['version', '--short']:
            return 0, 'v3.19.0+g3d8990f\n', ''
        if args[:2] == ['registry', 'login']:
            if self.unreachable:
                return 1, '', 'Error: Get "https://registry.example.com/v2/": dial tcp: connect: connection refused\n'
            if data != PASSWORD:
                return 1, '', 'Error: login attempt failed with status: 401 Unauthorized\n'
            return 0, 'Login Succeeded\n', ''
        if args[0] == 'pull':
            ref, version, dest = args[1], args[args.index('--version') + 1], args[args.index('--destination') + 1]
            if ref.startswith(MIRROR + '/'):
                content = self.registry.get((MIRROR, ref[len(MIRROR) + 1:], version))
                if content is None:
                    return 1, '', 'Error: failed to perform "FetchReference" on source: %s:%s: not found\n' % (ref[6:], version)
                with open(os.path.join(dest, '%s-%s.tgz' % (ref.rsplit('/', 1)[1], version)), 'wb') as handle:
                    handle.write(content)
                return 0, 'Pulled: %s:%s\n' % (ref, version), ''
            key = ((args[args.index('--repo') + 1], ref) if '--repo' in args else ref, version)
            if key not in self.sources:
                return 1, '', 'Error: chart "%s" version "%s" not found\n' % (ref, version)
            with open(self.sources[key], 'rb') as src, open(os.path.join(dest, os.path.basename(self.sources[key])), 'wb') as out:
                out.write(src.read())
            return 0, '', ''
        if args[0] == 'push':
            package, base = args[1], args[2]
            with tarfile.open(package) as archive:
                name, version = None, None
                for member in archive:
                    if member.name.endswith('/Chart.yaml'):
                        text = archive.extractfile(member).read().decode()
                        meta = dict(line.split(': ', 1) for line in text.splitlines() if ': ' in line)
                        name, version = meta['name'], meta['version']
            with open(package, 'rb') as handle:
                self.registry[(base, name, version)] = handle.read()
            return 0, 'Pushed: %s/%s:%s\n' % (base[6:], name, version), ''
        raise AssertionError('unexpected helm call %r' % args)

    def pushes(self):
        return [c for c in self.calls if c[0] == 'push']


@pytest.fixture
def helm(monkeypatch, tmp_path):
    fake = FakeHelm(tmp_path)

    def run_command(module, argv, **kwargs):
        return fake(module, argv, **kwargs)
    monkeypatch.setattr(basic.AnsibleModule, 'run_command', run_command)
    monkeypatch.setattr(basic.AnsibleModule, 'get_bin_path', lambda module, name, *a, **kw: '/usr/bin/helm')
    return fake


@pytest.fixture
def charts(tmp_path):
    directory = tmp_path / 'charts'
    directory.mkdir()
    make_package(directory, 'dcgm-exporter', '4.8.2')
    make_package(directory, 'fluent-bit', '0.58.1')
    return directory


def args(chart_dir=None, **extra):
    base = dict(mirror=MIRROR, registry_username='mirror', registry_password=PASSWORD,
                charts=[{'name': 'dcgm-exporter', 'version': '4.8.2'}, {'name': 'fluent-bit', 'version': '0.58.1'}])
    if chart_dir is not None:
        base['chart_dir'] = str(chart_dir)
    base.update(extra)
    return base


def test_pushes_what_the_mirror_lacks_then_nothing(run_module, helm, charts):
    result, failed = run_module(helm_chart_mirror, args(charts), diff=True)
    assert not failed, result
    assert result['changed'] and result['pushed'] == ['dcgm-exporter:4.8.2', 'fluent-bit:0.58.1']
    with open(str(charts / 'dcgm-exporter-4.8.2.tgz'), 'rb') as handle:
        assert helm.registry[(MIRROR, 'dcgm-exporter', '4.8.2')] == handle.read()
    assert [p[2] for p in helm.pushes()] == [MIRROR, MIRROR]
    assert result['diff']['before']['charts'] == {}
    assert sorted(result['diff']['after']['charts']) == ['dcgm-exporter:4.8.2', 'fluent-bit:0.58.1']
    assert [c['ref'] for c in result['charts']] == [MIRROR + '/dcgm-exporter:4.8.2', MIRROR + '/fluent-bit:0.58.1']

    helm.calls.clear()
    again, failed = run_module(helm_chart_mirror, args(charts), diff=True)
    assert not failed and not again['changed']
    assert again['pushed'] == [] and again['unchanged'] == ['dcgm-exporter:4.8.2', 'fluent-bit:0.58.1']
    assert helm.pushes() == []
    assert again['diff']['before'] == again['diff']['after']


def test_password_only_on_stdin_and_a_private_registry_config(run_module, helm, charts):
    result, failed = run_module(helm_chart_mirror, args(charts))
    assert not failed
    assert helm.stdin == [PASSWORD]
    assert all(PASSWORD not in ' '.join(c) for c in helm.calls)
    assert PASSWORD not in repr(result)
    configs = set(env.get('HELM_REGISTRY_CONFIG') for env in helm.env)
    assert len(configs) == 1 and None not in configs
    assert not os.path.exists(configs.pop())  # removed with the task's scratch directory


def test_check_mode_never_pushes(run_module, helm, charts):
    result, failed = run_module(helm_chart_mirror, args(charts), check_mode=True, diff=True)
    assert not failed and result['changed']
    assert result['pushed'] == ['dcgm-exporter:4.8.2', 'fluent-bit:0.58.1']
    assert helm.pushes() == [] and helm.registry == {}
    assert sorted(result['diff']['after']['charts']) == ['dcgm-exporter:4.8.2', 'fluent-bit:0.58.1']


def test_missing_package_fails_before_anything_naming_chart_version_and_directory(run_module, helm, charts):
    task = args(charts)
    task['charts'].append({'name': 'opensearch', 'version': '3.6.0'})
    result, failed = run_module(helm_chart_mirror, task)
    assert failed
    assert result['option'] == 'chart_dir'
    assert 'opensearch:3.6.0' in result['msg'] and str(charts) in result['msg'] and 'opensearch-3.6.0.tgz' in result['msg']
    assert helm.calls == []  # not even a login: nothing can have been pushed


def test_missing_package_warn_leaves_it_out(run_module, helm, charts):
    task = args(charts, missing_package='warn')
    task['charts'].append({'name': 'opensearch', 'version': '3.6.0'})
    result, failed = run_module(helm_chart_mirror, task)
    assert not failed
    assert result['missing'] == ['opensearch:3.6.0']
    assert result['pushed'] == ['dcgm-exporter:4.8.2', 'fluent-bit:0.58.1']
    assert [c['action'] for c in result['charts']] == ['pushed', 'pushed', 'missing']
    assert not any('opensearch' in ' '.join(c) for c in helm.calls)


def test_package_that_is_another_chart_fails_before_anything(run_module, helm, charts):
    # The right file name, the wrong content: Chart.yaml decides.
    make_package(charts, 'dcgm-exporter', '4.8.1', file_name='dcgm-exporter-4.8.2.tgz')
    result, failed = run_module(helm_chart_mirror, args(charts))
    assert failed and result['option'] == 'charts[0]'
    assert 'version 4.8.1, not dcgm-exporter 4.8.2' in result['msg']
    assert helm.calls == []


def test_not_a_package_fails_naming_the_chart(run_module, helm, charts):
    (charts / 'fluent-bit-0.58.1.tgz').write_text('not gzip')
    result, failed = run_module(helm_chart_mirror, args(charts))
    assert failed and result['option'] == 'charts[1]' and 'not a chart package' in result['msg']
    assert helm.calls == []


def test_same_version_other_content_reported_and_left_alone_unless_overwrite(run_module, helm, charts, tmp_path, capsys):
    other = tmp_path / 'other'
    other.mkdir()
    with open(make_package(other, 'dcgm-exporter', '4.8.2', extra='description: a stand-in\n'), 'rb') as handle:
        helm.registry[(MIRROR, 'dcgm-exporter', '4.8.2')] = stand_in = handle.read()
    result, failed = run_module(helm_chart_mirror, args(charts))
    assert not failed
    assert result['differing'] == ['dcgm-exporter:4.8.2'] and result['pushed'] == ['fluent-bit:0.58.1']
    assert 'dcgm-exporter:4.8.2 holds a different content' in capsys.readouterr().err  # the warning
    assert helm.registry[(MIRROR, 'dcgm-exporter', '4.8.2')] == stand_in
    entry = result['charts'][0]
    assert entry['action'] == 'differing' and entry['digest'] != entry['mirror_digest']

    result, failed = run_module(helm_chart_mirror, args(charts, overwrite=True))
    assert not failed and result['pushed'] == ['dcgm-exporter:4.8.2'] and result['unchanged'] == ['fluent-bit:0.58.1']
    with open(str(charts / 'dcgm-exporter-4.8.2.tgz'), 'rb') as handle:
        assert helm.registry[(MIRROR, 'dcgm-exporter', '4.8.2')] == handle.read()


def test_from_sources_pulls_only_what_the_mirror_lacks(run_module, helm, tmp_path):
    vendor = tmp_path / 'vendor'
    vendor.mkdir()
    helm.sources[('oci://ghcr.io/opea-project/charts/chatqna', '1.4.0')] = make_package(vendor, 'chatqna', '1.4.0')
    helm.sources[(('https://fluent.github.io/helm-charts', 'fluent-bit'), '0.58.1')] = make_package(vendor, 'fluent-bit', '0.58.1')
    task = args(charts=[{'name': 'chatqna', 'version': '1.4.0', 'source': 'oci://ghcr.io/opea-project/charts/chatqna'},
                        {'name': 'fluent-bit', 'version': '0.58.1', 'source': 'fluent-bit',
                         'repo_url': 'https://fluent.github.io/helm-charts'}])
    result, failed = run_module(helm_chart_mirror, task, check_mode=True)
    assert not failed and result['pushed'] == ['chatqna:1.4.0', 'fluent-bit:0.58.1']
    assert not [c for c in helm.calls if c[0] == 'pull' and not c[1].startswith(MIRROR)]  # no source pulled in check mode

    result, failed = run_module(helm_chart_mirror, task)
    assert not failed and result['pushed'] == ['chatqna:1.4.0', 'fluent-bit:0.58.1']
    assert ['pull', 'fluent-bit', '--repo', 'https://fluent.github.io/helm-charts', '--version', '0.58.1'] in [c[:6] for c in helm.calls]
    assert set(helm.registry) == {(MIRROR, 'chatqna', '1.4.0'), (MIRROR, 'fluent-bit', '0.58.1')}

    helm.calls.clear()
    result, failed = run_module(helm_chart_mirror, task)
    assert not failed and not result['changed'] and result['unchanged'] == ['chatqna:1.4.0', 'fluent-bit:0.58.1']
    assert [c[1] for c in helm.calls if c[0] == 'pull'] == [MIRROR + '/chatqna', MIRROR + '/fluent-bit']


def test_source_that_has_no_such_version_fails_naming_it(run_module, helm):
    task = args(charts=[{'name': 'chatqna', 'version': '1.4.0', 'source': 'oci://ghcr.io/opea-project/charts/chatqna'}])
    result, failed = run_module(helm_chart_mirror, task)
    assert failed and result['option'] == 'charts[0].source'
    assert 'chatqna 1.4.0' in result['msg'] and helm.pushes() == []


def test_login_refused_names_the_password(run_module, helm, charts):
    result, failed = run_module(helm_chart_mirror, args(charts, registry_password='wrong'))
    assert failed and result['option'] == 'registry_password'
    assert 'refused' in result['msg'] and helm.pushes() == []


def test_unreachable_registry_names_the_mirror(run_module, helm, charts):
    helm.unreachable = True
    result, failed = run_module(helm_chart_mirror, args(charts))
    assert failed and result['option'] == 'mirror' and 'could not be reached' in result['msg']


@pytest.mark.parametrize('change, option', [
    ({'mirror': 'registry.example.com/charts'}, 'mirror'),
    ({'mirror': 'oci://registry.example.com/charts/'}, 'mirror'),
    ({'charts': [{'name': 'dcgm-exporter', 'version': '^4.8'}]}, 'charts[0].version'),
    ({'charts': [{'name': 'Dcgm', 'version': '4.8.2'}]}, 'charts[0].name'),
    ({'charts': [{'name': 'a', 'version': '1.0.0'}, {'name': 'a', 'version': '1.0.0'}]}, 'charts[1]'),
    ({'chart_dir': '/nonexistent/charts'}, 'chart_dir'),
    ({'registry_password': None}, 'registry_password'),
])
def test_bad_input_fails_naming_the_option(run_module, helm, charts, change, option):
    task = args(charts)
    task.update(change)
    if task.get('registry_password') is None:
        task.pop('registry_password')
    result, failed = run_module(helm_chart_mirror, task)
    assert failed
    assert option in result['msg']
    assert helm.calls == []


@pytest.mark.parametrize('chart, option', [
    ({'name': 'chatqna', 'version': '1.4.0'}, 'charts[0].source'),
    ({'name': 'opensearch', 'version': '3.6.0', 'source': 'opensearch'}, 'charts[0].repo_url'),
    ({'name': 'chatqna', 'version': '1.4.0', 'source': 'oci://ghcr.io/x/chatqna', 'repo_url': 'https://x'}, 'charts[0].repo_url'),
])
def test_sources_without_chart_dir_are_checked(run_module, helm, chart, option):
    result, failed = run_module(helm_chart_mirror, args(charts=[chart]))
    assert failed and option in result['msg'] and helm.calls == []
