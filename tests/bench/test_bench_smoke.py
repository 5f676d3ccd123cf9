"""The benchmark harness must not rot: `bench/run.py --smoke` runs every comparison once at its
smallest size against the running sandbox and writes a results file with the expected keys.
Every section of that file is checked for its structure and for sane figures (numbers present
and non-negative, mutating requests within the total, summaries equal to the runs they sum up,
the runs smoke mode makes and only those), and bench/report.py must render the benchmarks page
from it. Targets are judged again here from their own figures: a missed one is reported (a warning
in the test summary, "missed" on the page) and fails nothing, but is never passed off as met.

Needs the sandbox (`make sandbox`); its variables come from the environment or .sandbox/env.
"""
import glob
import json
import os
import re
import subprocess
import sys
import warnings

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ENV_FILE = os.path.join(ROOT, '.sandbox', 'env')
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import report  # noqa: E402  pylint: disable=wrong-import-position,import-error


def _sandbox_env():
    env = dict(os.environ)
    if not env.get('AWS_ENDPOINT_URL') and os.path.exists(ENV_FILE):
        with open(ENV_FILE, encoding='utf-8') as handle:
            for line in handle:
                line = line.strip()
                if line.startswith('export ') and '=' in line:
                    key, _unused, value = line[len('export '):].partition('=')
                    env[key] = os.path.expandvars(value.strip().strip('"\''))
    return env


@pytest.fixture(scope='module')
def smoke_results(tmp_path_factory):
    env = _sandbox_env()
    if not env.get('AWS_ENDPOINT_URL') or not env.get('SANDBOX_AWS_JOURNAL'):
        pytest.fail('the sandbox is not running: run make sandbox (make bench-smoke does) before the smoke test')
    out = tmp_path_factory.mktemp('bench-results')
    # On the vendors' real charts the site's converge and teardown alone took 15 min on a 2-core
    # host at load 6-14 (2026-12-05); 30 min was not enough at load 16.
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'bench', 'run.py'), '--smoke', '--results-dir', str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600, check=False)
    files = glob.glob(os.path.join(str(out), '*.json'))
    assert files, 'no results written\n%s\n%s' % (proc.stdout[-4000:], proc.stderr[-4000:])
    with open(files[0], encoding='utf-8') as handle:
        return proc, json.load(handle), files[0]


def _check_run(run, where, ansible=True):
    """One measured command: its figures are there, are numbers, are >= 0 and add up."""
    assert isinstance(run, dict), where
    keys = ['wall_s', 'rc', 'aws_requests', 'aws_reads', 'aws_mutating', 'aws_errors', 'kube_writes']
    if ansible:
        keys += ['tasks_changed', 'tasks_s']
    for key in keys:
        value = run.get(key)
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (where, key, value)
        assert value >= 0, (where, key, value)
    assert run['rc'] == 0, (where, run.get('failures') or run.get('stderr_tail'))
    assert run['wall_s'] > 0, where
    assert run['aws_mutating'] <= run['aws_requests'], where
    assert run['aws_errors'] <= run['aws_requests'], where
    assert run['aws_reads'] + run['aws_mutating'] == run['aws_requests'], where
    assert sum(run['aws_requests_by_operation'].values()) == run['aws_requests'], where
    assert len(run['aws_mutating_operations']) <= run['aws_mutating'], where
    assert run['kube_writes'] >= len(run['kube_write_list']), where
    _check_memory(run.get('memory'), where)
    if ansible:
        for task in run['task_profile']:
            assert task['aws_requests'] >= 0 and task['aws_api_ms'] >= 0, (where, task['name'])
        assert sum(t['aws_requests'] for t in run['task_profile']) <= run['aws_requests'], where


def _check_memory(memory, where):
    """The peak RSS of a run's process tree, sampled from /proc while it ran."""
    assert isinstance(memory, dict), (where, memory)
    assert memory['interval_s'] == 0.5 and memory['samples'] >= 1, (where, memory)
    assert memory['peak_tree_processes'] >= 1, (where, memory)
    # ansible-playbook alone is some tens of MB; no sandbox host has 64 GB for one run.
    assert 10 <= memory['peak_tree_rss_mb'] < 64 * 1024, (where, memory)
    # The largest process of a sample is part of that sample's sum, which is at most the peak.
    assert 0 < memory['largest_process_rss_mb'] <= memory['peak_tree_rss_mb'], (where, memory)


def _sandbox_dir(env):
    for candidate in (env.get('SANDBOX_DIR'), os.path.dirname(env.get('KUBECONFIG') or '')):
        if candidate and os.path.exists(os.path.join(candidate, 'kube', 'fleet.json')):
            return candidate
    return None


def test_results_have_the_expected_keys(smoke_results):
    proc, results, _path = smoke_results
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for key in ('versions', 'comparisons', 'summary', 'targets', 'minimum_reads', 'mode'):
        assert key in results
    assert results['mode'] == 'smoke'
    versions = results['versions']
    for key in ('ansible_core', 'python', 'helm', 'collections'):
        assert versions.get(key), key
    assert set(results['comparisons']) == {'gpu', 'manual', 'fleet', 'helm', 'site'}
    assert set(results['targets']) == {'noop_zero_mutations', 'noop_time_half_upstream', 'noop_reads_near_minimum',
                                       'helm_noop_no_revision', 'helm_noop_time_half_upstream', 'fleet_sublinear'}


def test_versions_are_recorded(smoke_results):
    results = smoke_results[1]
    versions = results['versions']
    assert re.match(r'^2\.\d+\.\d+', versions['ansible_core']), versions['ansible_core']
    assert re.match(r'^3\.\d+\.\d+$', versions['python']), versions['python']
    assert re.match(r'^v[34]\.\d+', versions['helm']), versions['helm']
    with open(os.path.join(ROOT, 'galaxy.yml'), encoding='utf-8') as handle:
        version = re.search(r'^version:\s*["\']?([^"\'\s]+)', handle.read(), re.M).group(1)
    assert versions['collections'].get('genai.stack') == version, versions['collections']
    for name in ('amazon.aws', 'kubernetes.core'):
        assert versions['collections'].get(name), name
    assert results['repeat'] == 1 and results['sandbox'] == 'running'
    assert results['elapsed_s'] > 0
    assert 'error' not in results, results.get('error')


def test_gpu_comparison(smoke_results):
    results = smoke_results[1]
    gpu = results['comparisons']['gpu']
    for side in ('ours', 'upstream'):
        _check_run(gpu[side]['first'], 'gpu %s first' % side)
        assert len(gpu[side]['noop']) == results['repeat'], side
        for run in gpu[side]['noop']:
            _check_run(run, 'gpu %s noop' % side)
    assert gpu['ours']['first']['aws_mutating'] > 0, 'a first converge that writes nothing did not converge'
    assert gpu['ours']['noop'][0]['aws_requests'] > 0, 'the proxy saw no AWS request: attribution broken'
    for phase in ('first', 'noop'):
        row = results['summary']['gpu'][phase]
        for key in ('wall_s', 'aws_requests', 'aws_mutating', 'tasks_changed', 'kube_writes'):
            for side in ('ours', 'upstream'):
                assert row[key][side] is not None and row[key][side] >= 0, (phase, key, side)
        assert row['aws_mutating']['ours'] <= row['aws_requests']['ours'], phase
        assert row['wall_s']['ratio'] == round(row['wall_s']['ours'] / row['wall_s']['upstream'], 3), phase
    reads = results['targets']['noop_reads_near_minimum']
    assert reads['measured'] == gpu['ours']['noop'][0]['aws_requests']
    assert reads['minimum_managed'] == len(results['minimum_reads']['managed']) - 1  # no CPU label in smoke mode
    assert reads['minimum_with_inputs'] == reads['minimum_managed'] + len(results['minimum_reads']['inputs'])


def test_manual_comparison(smoke_results):
    results = smoke_results[1]
    manual = results['comparisons']['manual']
    _check_run(manual['first'], 'manual first', ansible=False)
    assert manual['first']['aws_mutating'] > 0, 'the AWS CLI script created nothing'
    assert manual['commands'] == manual['first']['aws_requests']
    assert 'rerun' not in manual, 'smoke mode does not re-run the script'
    row = results['summary']['manual']
    for key in ('wall_s', 'aws_requests', 'aws_mutating'):
        assert row[key]['manual'] == manual['first'][key], key
        assert row[key]['ours'] == results['comparisons']['gpu']['ours']['first'][key], key


def test_fleet_comparison(smoke_results):
    results = smoke_results[1]
    fleet = results['comparisons']['fleet']
    sizes = fleet['sizes']
    assert set(sizes) == {'1'}, 'smoke mode measures the smallest fleet only'
    entry = sizes['1']
    for phase in ('first', 'noop'):
        _check_run(entry[phase], 'fleet 1 %s' % phase)
        row = results['summary']['fleet']['1'][phase]
        assert row['wall_s'] == entry[phase]['wall_s']
        assert row['peak_tree_rss_mb'] == entry[phase]['memory']['peak_tree_rss_mb']
        assert row['largest_process_rss_mb'] == entry[phase]['memory']['largest_process_rss_mb']
    assert 'reused_from' not in entry, 'the fleet measures its own size 1 (the gpu comparison runs AWS-only)'
    # The running sandbox's first cluster has a control plane (fleet.json): size 1 runs the Kubernetes steps
    # against it through eks_connection; the smoke run does not grow the sandbox to more clusters.
    assert fleet['kube_fleet_max'] == 4
    assert 'sandbox' in fleet['control_planes'], fleet['control_planes']
    assert entry['mode'] == 'kubernetes' and 'mode_reason' not in entry, entry.get('mode_reason')
    assert results['summary']['fleet']['1']['mode'] == 'kubernetes'
    assert entry['first']['kube_writes'] > 0, 'the Kubernetes steps wrote nothing on the cluster\'s API server'
    directory = _sandbox_dir(_sandbox_env())
    if directory:
        with open(os.path.join(directory, 'kube', 'fleet.json'), encoding='utf-8') as handle:
            now = [c['name'] for c in json.load(handle)['clusters']]
        assert now == fleet['control_planes'], 'the smoke run changed the sandbox\'s control planes: %s -> %s' % (
            fleet['control_planes'], now)
    planes = entry['control_planes_rss']
    assert planes['control_planes'] == len(planes['clusters']) == len(fleet['control_planes']), planes
    assert 'sandbox' in planes['clusters'] and all(v > 0 for v in planes['clusters'].values()), planes
    assert abs(planes['total_mb'] - sum(planes['clusters'].values())) < 0.2, planes
    assert any(p.endswith('/kube-apiserver') for p in planes['processes']), planes['processes']
    assert 50 < planes['total_mb'] < 64 * 1024, planes
    assert results['summary']['fleet']['1']['control_planes_rss_mb'] == planes['total_mb']
    # One size gives no growth to judge: the target says so rather than passing.
    assert results['targets']['fleet_sublinear']['met'] is None
    assert 'fleet_growth' not in results['summary']
    text = report.markdown(results, smoke_results[2], False)
    assert '| 1 | Kubernetes | %s |' % report._fmt(entry['first']['wall_s']) in text  # pylint: disable=protected-access


def test_helm_comparison(smoke_results):
    results = smoke_results[1]
    helm = results['comparisons']['helm']
    assert 'pending' not in helm['ours'], helm['ours'].get('pending')
    for side in ('ours', 'upstream'):
        assert len(helm[side]['noop']) == results['repeat'], side
        assert 'upgrade' not in helm[side], 'smoke mode does not upgrade'
        for phase, run in [('install', helm[side]['install'])] + [('noop', r) for r in helm[side]['noop']]:
            _check_run(run, 'helm %s %s' % (side, phase))
            assert run['new_revisions'] == run['revisions_after'] - run['revisions_before'], (side, phase)
            assert run['revisions_after'] >= 1, (side, phase)
        assert helm[side]['install']['new_revisions'] >= 1, side
    assert len(helm['floor']) == results['repeat']
    for run in helm['floor']:
        _check_run(run, 'helm floor')
    target = results['targets']['helm_noop_time_half_upstream']
    assert target['ours_s'] == results['summary']['helm']['noop']['wall_s']['ours']
    assert target['floor_s'] is not None and target['floor_s'] > 0
    assert results['targets']['helm_noop_no_revision']['measured'] == [r['new_revisions'] for r in helm['ours']['noop']]


def test_site_comparison(smoke_results):
    results = smoke_results[1]
    site = results['comparisons']['site']
    with open(os.path.join(ROOT, 'playbooks', 'site.yml'), encoding='utf-8') as handle:
        imported = re.findall(r'import_playbook:\s*(\S+)', handle.read())
    assert imported and site['imports'] == imported
    _check_run(site['first'], 'site first')
    assert site['first']['tasks_changed'] > 0, 'a first converge of the site changed nothing'
    assert 'noop' not in site, 'smoke mode does not re-run the site'
    assert results['summary']['site']['first']['wall_s'] == site['first']['wall_s']
    assert results['summary']['failed_runs'] == []


def _pins():
    import yaml  # pylint: disable=import-outside-toplevel
    with open(os.path.join(ROOT, 'playbooks', 'vars', 'chart_pins.yml'), encoding='utf-8') as handle:
        return {str(p['name']): str(p['version']) for p in yaml.safe_load(handle)['genai_stack_chart_pins']}


def test_site_records_its_charts(smoke_results):
    """The site's figures say what they ran on: for each release, the vendor's package, a stand-in
    or the collection's own chart (from the chart the release stored), the mirror's content per pin,
    the chart directory, and site.yml's stand-in summary; all of it consistent with itself and with
    the sandbox's own list of stand-ins (SANDBOX_STANDIN_CHARTS)."""
    results = smoke_results[1]
    charts = results['comparisons']['site'].get('charts')
    assert charts, 'the site results do not say which charts they ran on'
    assert 'error' not in charts, charts.get('error')
    assert 'chart_dir' in charts and charts['chart_dir_source'], charts
    pins = _pins()
    assert set(charts['mirror']) == set(pins), 'the mirror record is not one entry per pin'
    for name, entry in charts['mirror'].items():
        assert entry['version'] == pins[name], name
        assert entry['source'] in ('vendor', 'stand-in', 'absent', 'unknown'), (name, entry)
        if entry['digest'] and entry['vendor_package_digest']:
            assert (entry['source'] == 'vendor') == (entry['digest'] == entry['vendor_package_digest']), (name, entry)
    releases = charts['releases']
    assert releases, 'no helm release recorded after the first converge of the site'
    sources = {}
    for release in releases:
        assert release['source'] in ('vendor', 'stand-in', 'collection'), ('a release on a chart matching none known', release)
        if release['chart'] in pins:
            assert release['version'] == pins[release['chart']], release
        sources.setdefault(release['source'], []).append('%s (%s %s)' % (release['release'], release['chart'], release['version']))
        # The release ran what the mirror holds for its chart.
        mirrored = charts['mirror'].get(release['chart'])
        if mirrored and release['source'] in ('vendor', 'stand-in'):
            assert mirrored['source'] == release['source'], (release, mirrored)
    assert {k: sorted(v) for k, v in sources.items()} == {k: v for k, v in charts['releases_by_source'].items() if v}
    assert charts['real_charts'] == bool(sources.get('vendor'))
    if not charts['chart_dir']:
        assert not sources.get('vendor'), 'vendor charts without a chart directory'
    # Another route: the sandbox's own list of the charts it mirrored as stand-ins.
    env_standins = sorted(n for n in (_sandbox_env().get('SANDBOX_STANDIN_CHARTS') or '').split(',') if n)
    assert charts['mirror_standins'] == env_standins, (charts['mirror_standins'], env_standins)
    for release in releases:
        if release['chart'] in pins:
            assert (release['source'] == 'stand-in') == (release['chart'] in env_standins), release
    assert charts['summary_standins'] == env_standins and charts['summary_agrees'] is True, \
        ('site.yml\'s summary named other stand-ins than the mirror holds', charts['summary_standins'], env_standins)
    summary = results['summary']['site']['charts']
    assert summary['recorded'] and summary['real_charts'] == charts['real_charts']
    text = report.markdown(results, smoke_results[2], False)
    label = "**Charts: the vendors' real charts**" if charts['real_charts'] else "**Charts: the project's stand-ins only**"
    assert label in text, 'the page does not say what the site ran on'


def _judged_here(key, target):
    """The verdict on a target, recomputed here from its own figures (not from bench/run.py)."""
    measured = target.get('measured')
    if key == 'noop_zero_mutations':
        sides = [measured] + ([target['site']] if target.get('site') else [])
        return all(side['aws_mutating'] == 0 and side['kube_writes'] == 0 for side in sides)
    if key == 'noop_time_half_upstream':
        assert measured == round(target['ours_s'] / target['upstream_s'], 3), target
        return measured <= 0.5
    if key == 'noop_reads_near_minimum':
        return measured <= 1.5 * target['minimum_managed']
    if key == 'helm_noop_no_revision':
        return bool(measured) and all(r == 0 for r in measured)
    if key == 'helm_noop_time_half_upstream':
        return measured <= 0.5 and target['measured_tasks'] <= 0.5
    if key == 'fleet_sublinear':  # growth within each mode (Kubernetes, AWS only)
        return all(g['wall_ratio'] < g['clusters_ratio'] for phases in measured.values() for g in phases.values())
    raise AssertionError('a target this test does not know how to judge: %s (add it here)' % key)


def test_targets_are_judged_or_say_why_not(smoke_results):
    """A missed target fails nothing (smoke figures on a loaded host are not a verdict on the
    code), but it is never accepted silently, which here means any of: reported met although its
    own figures miss it; missing from the "target ... MISSED" lines of bench/run.py's output or from
    the "Missed:" sentence and the **missed** row of the rendered page; or left out of this test's
    output (each one is a pytest warning, shown in the summary of every run)."""
    proc, results, path = smoke_results
    text = report.markdown(results, path, False)
    missed_sentence = re.search(r'^Met: \d+ of \d+\. Missed: (.*)\. Not judged: (.*)\.$', text, re.M)
    assert missed_sentence, 'the page has no Met/Missed sentence under its targets table'
    for key, target in results['targets'].items():
        assert target['target_text'], key
        assert target['met'] in (True, False, None), key
        row = [line for line in text.splitlines() if line.startswith('| %s |' % target['target_text'])]
        assert len(row) == 1, (key, row)
        if target['met'] is None:
            if key != 'fleet_sublinear':
                assert target.get('pending') or target.get('invalid'), key
            assert '| pending |' in row[0] and target['target_text'] in missed_sentence.group(2), (key, row)
            continue
        assert 'measured' in target, key
        assert target['met'] == _judged_here(key, target), ('bench/run.py judged %s as met=%s against its own figures'
                                                            % (key, target['met']), target)
        if target['met'] is False:
            assert re.search(r'target %s\s+MISSED' % re.escape(key), proc.stdout + proc.stderr), \
                'bench/run.py did not report %s as MISSED' % key
            assert '| **missed** |' in row[0] and target['target_text'] in missed_sentence.group(1), (key, row)
            warnings.warn(UserWarning('bench smoke: target missed (reported, not a failure): %s: %s'
                                      % (target['target_text'], report._measured_text(key, target))))  # pylint: disable=protected-access
        else:
            assert '| met |' in row[0] and target['target_text'] not in missed_sentence.group(1), (key, row)
    assert results['targets']['noop_zero_mutations']['measured'] == {
        'aws_mutating': results['summary']['gpu']['noop']['aws_mutating']['ours'],
        'kube_writes': results['summary']['gpu']['noop']['kube_writes']['ours']}


def test_report_renders_from_the_smoke_results(smoke_results):
    _proc, results, path = smoke_results
    text = report.markdown(results, path, False)
    assert text.startswith('# Benchmarks\n')
    assert results['started'] in text and 'smoke mode' in text
    for heading in ('## Targets', '## 2. Helm', '## 3. The manual procedure', '## 4. Fleet', '## 5. The whole site',
                    '## How it is measured', '## Findings and proposals'):
        assert heading in text, heading
    for target in results['targets'].values():
        assert target['target_text'] in text, target['target_text']
    assert '![benchmarks]' not in text, 'no plot was made, so none may be linked'
    assert 'site.yml imports today: %s.' % ', '.join(results['comparisons']['site']['imports']) in text
