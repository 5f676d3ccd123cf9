"""The benchmark harness must not rot: `bench/run.py --smoke` runs every comparison once at its
smallest size against the running sandbox and writes a results file with the expected keys.

Needs the sandbox (`make sandbox`); its variables come from the environment or .sandbox/env.
"""
import glob
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ENV_FILE = os.path.join(ROOT, '.sandbox', 'env')


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
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'bench', 'run.py'), '--smoke', '--results-dir', str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    files = glob.glob(os.path.join(str(out), '*.json'))
    assert files, 'no results written\n%s\n%s' % (proc.stdout[-4000:], proc.stderr[-4000:])
    with open(files[0], encoding='utf-8') as handle:
        return proc, json.load(handle)


def test_results_have_the_expected_keys(smoke_results):
    proc, results = smoke_results
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


def test_every_measurement_has_figures(smoke_results):
    _proc, results = smoke_results
    gpu = results['comparisons']['gpu']
    for side in ('ours', 'upstream'):
        for run in [gpu[side]['first']] + gpu[side]['noop']:
            for key in ('wall_s', 'aws_requests', 'aws_mutating', 'kube_writes', 'tasks_changed', 'rc'):
                assert key in run, (side, key)
    ours_noop = gpu['ours']['noop'][0]
    assert ours_noop['rc'] == 0
    assert ours_noop['aws_requests'] > 0, 'the proxy saw no AWS request: attribution broken'
    summary = results['summary']['gpu']['noop']
    assert summary['wall_s']['ratio'] is not None
    assert results['comparisons']['manual']['first']['aws_requests'] > 0
