"""The checks that keep docs/security.md and docs/benchmarks.md honest can fail (run by
tests/docs/check-generated.sh in make docs-check; no sandbox needed).

- an edited number in a copy of either doc is drift;
- the reliability suite's counts are started afresh by every session, and the values of a test
  that failed, errored or was skipped are not counted (the real pytest hooks, in a pytest run of
  their own);
- the secrets suite counts a run only when its expected outcome happened;
- a missing count renders as "not recorded", never as a number.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
import types

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
RELIABILITY = os.path.join(ROOT, 'tests', 'reliability')
sys.path.insert(0, os.path.join(ROOT, 'bench'))
sys.path.insert(0, RELIABILITY)

import _support  # noqa: E402  pylint: disable=wrong-import-position,import-error
import report  # noqa: E402  pylint: disable=wrong-import-position,import-error


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


security_counts = _load('security_counts', os.path.join(ROOT, 'tests', 'docs', 'security_counts.py'))


def _read(path):
    with open(path, encoding='utf-8') as handle:
        return handle.read()


# --- docs/security.md ------------------------------------------------------------------------------

def test_an_edited_count_in_the_security_doc_is_drift():
    doc, data = _read(security_counts.DOC), json.loads(_read(security_counts.COMMITTED))
    assert security_counts.drift(doc, data) == [], 'precondition: the committed doc matches its committed counts'
    table = re.search(r'\| secret leaks \| (\d+) runs', doc)
    assert table, 'the secrets row of the generated table'
    edited = doc[:table.start(1)] + str(int(table.group(1)) + 1) + doc[table.end(1):]
    assert security_counts.drift(edited, data, counts_only=True), 'an edited count must be drift for the suite\'s last test'
    assert security_counts.drift(edited, data), 'and for docs-check'


def test_the_run_block_is_checked_by_docs_check_only():
    doc, data = _read(security_counts.DOC), json.loads(_read(security_counts.COMMITTED))
    edited = re.sub(r'The suite took \d+ min', 'The suite took 99 min', doc, count=1)
    assert edited != doc
    assert security_counts.drift(edited, data), 'docs-check compares the run block with the committed run'
    assert security_counts.drift(edited, data, counts_only=True) == [], 'another run\'s duration is not drift of its counts'


def test_a_count_whose_test_did_not_pass_is_not_recorded_in_the_doc():
    doc, data = _read(security_counts.DOC), json.loads(_read(security_counts.COMMITTED))
    assert 'safe_defaults' in data, 'precondition: the committed run recorded the safe defaults'
    del data['safe_defaults']
    data['tests'] = {k: ('failed' if 'test_safe_defaults.py' in k else v) for k, v in data['tests'].items()}
    rendered = security_counts.render(doc, data)
    assert '| safe defaults | – secret-like role defaults, – module argspecs | – secret-like defaults with a value |' in rendered
    assert '–: not recorded (its test did not pass).' in rendered
    assert re.search(r'\| safe defaults \|[^\n]*\| 0 of \d+ passed \(\d+ failed\) \|', rendered), rendered
    assert security_counts.drift(doc, data, counts_only=True)


# --- the suite's counting: reset per run, kept only for passing tests -------------------------------

PLUGIN_RUN = '''
import pytest
import _support

@pytest.fixture
def breaks_in_teardown():
    yield
    raise RuntimeError('teardown fails')

def test_passes():
    _support.record('section', value=1)
    _support.record_item('section', 'survived', '{name} passed')

def test_fails_after_recording():
    _support.record_item('section', 'survived', '{name} failed')
    _support.record_finding('section', 'leaks', '{name} found')
    assert False

def test_errors_in_teardown(breaks_in_teardown):
    _support.record_item('section', 'survived', '{name} teardown error')

def test_skipped_after_recording():
    _support.record_item('section', 'survived', '{name} skipped')
    pytest.skip('skipped')
'''


def _plugin_session(tmp_path, name, counts):
    test = tmp_path / ('test_%s.py' % name)
    test.write_text(textwrap.dedent(PLUGIN_RUN).replace('{name}', name), encoding='utf-8')
    env = dict(os.environ, RELIABILITY_COUNTS=str(counts), PYTHONPATH=RELIABILITY + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', '_counts_plugin', str(test)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr   # one failure, one error: the session fails
    return json.loads(counts.read_text(encoding='utf-8'))


def test_counts_come_from_passed_tests_and_do_not_carry_over(tmp_path):
    counts = tmp_path / 'counts.json'
    first = _plugin_session(tmp_path, 'first', counts)
    assert first['section'] == {'value': 1, 'survived': ['first passed'], 'leaks': ['first found']}, first
    outcomes = {k.split('::')[1]: v for k, v in first['tests'].items()}
    assert outcomes == {'test_passes': 'passed', 'test_fails_after_recording': 'failed',
                        'test_errors_in_teardown': 'error', 'test_skipped_after_recording': 'skipped'}, outcomes
    assert first['run']['started'] and 'duration_s' in first['run']
    second = _plugin_session(tmp_path, 'second', counts)
    assert second['section'] == {'value': 1, 'survived': ['second passed'], 'leaks': ['second found']}, second
    assert not [k for k in second['tests'] if 'test_first' in k], second['tests']


def test_record_outside_a_test_is_refused():
    assert _support.CURRENT_TEST is None
    with pytest.raises(RuntimeError, match='outside a test'):
        _support.record('section', value=1)


# --- the secrets suite counts a run only when its expected outcome happened -------------------------

@pytest.fixture
def secrets_suite(tmp_path, monkeypatch):
    for name in ('SANDBOX_AWS_JOURNAL', 'SANDBOX_KUBE_AUDIT'):
        path = tmp_path / name
        path.write_text('', encoding='utf-8')
        monkeypatch.setenv(name, str(path))
    monkeypatch.setenv('SANDBOX_REGISTRY_PASSWORD', 'registry-password-canary')
    monkeypatch.setattr(_support, 'COUNTS_PATH', str(tmp_path / 'counts.json'))
    monkeypatch.setattr(_support, 'CURRENT_TEST', 'test_secrets.py::test_x')
    _support.start_counts({})
    yield _load('reliability_test_secrets', os.path.join(RELIABILITY, 'test_secrets.py'))
    _support.test_finished('test_secrets.py::test_x', 'failed')


def _run(returncode, output, secret_writes):
    writes = [{'resource': 'secrets', 'code': 201, 'name': 'x-%d' % i} for i in range(secret_writes)]
    return types.SimpleNamespace(returncode=returncode, output=output, activity=types.SimpleNamespace(writes=writes))


def _pending():
    return [values for _kind, _section, values in _support._PENDING.get(_support.CURRENT_TEST, [])]  # pylint: disable=protected-access


def test_a_forced_failure_that_failed_in_preflight_is_not_counted(secrets_suite):  # pylint: disable=redefined-outer-name
    preflight = _run(2, 'TASK [genai_engine : Preflight] fatal: chart version 9.9.9 ...', secret_writes=0)
    with pytest.raises(AssertionError, match='did not get as far as the secrets'):
        secrets_suite._check_run('x forced failure', preflight, {'key': 'canary'}, failure_text='9.9.9', wrote_secrets=True)
    assert _pending() == []
    wrong_error = _run(2, 'some other error', secret_writes=1)
    with pytest.raises(AssertionError, match='expected to fail'):
        secrets_suite._check_run('x forced failure', wrong_error, {'key': 'canary'}, failure_text='9.9.9', wrote_secrets=True)
    failed_converge = _run(2, 'fatal', secret_writes=1)
    with pytest.raises(AssertionError, match='expected to succeed'):
        secrets_suite._check_run('x converge', failed_converge, {'key': 'canary'})
    assert _pending() == []
    good = _run(2, 'fatal: chart version 9.9.9 not found', secret_writes=1)
    secrets_suite._check_run('x forced failure', good, {'key': 'canary'}, failure_text='9.9.9', wrote_secrets=True)
    assert _pending() == [{'runs': 'x forced failure'}]


def test_a_leak_is_counted_even_when_its_test_fails(secrets_suite):  # pylint: disable=redefined-outer-name
    leaky = _run(0, 'changed: password=canary-value', secret_writes=1)
    with pytest.raises(AssertionError):
        secrets_suite._check_run('x converge', leaky, {'password': 'canary-value'})
    assert _support.counts()['secrets']['leaks'] == ['x converge: password in the output']
    assert _pending() == []


# --- docs/benchmarks.md ------------------------------------------------------------------------------

def test_an_edited_figure_in_the_benchmarks_doc_fails_the_check(tmp_path):
    copy = tmp_path / 'benchmarks.md'
    doc = _read(os.path.join(ROOT, 'docs', 'benchmarks.md'))
    copy.write_text(doc, encoding='utf-8')
    logged = []
    assert report.check(log=logged.append, doc=str(copy)) == 0, logged
    match = re.search(r'\| wall time \(s\) \| (\d+\.\d+) \|', doc)
    copy.write_text(doc[:match.start(1)] + '0.01' + doc[match.end(1):], encoding='utf-8')
    logged = []
    assert report.check(log=logged.append, doc=str(copy)) == 1, logged
    assert any('differs from what bench/report.py renders' in line for line in logged), logged


def test_a_missed_target_is_named_as_missed_on_the_page():
    doc = _read(os.path.join(ROOT, 'docs', 'benchmarks.md'))
    path = report.latest(lambda d: 'gpu' in (d.get('comparisons') or {}) and d.get('mode') == 'full')[0]
    _text, results = report.render(path, log=lambda _m: None)
    missed = [t['target_text'] for t in results['targets'].values() if t['met'] is False]
    sentence = re.search(r'^Met: (\d+) of (\d+)\. Missed: (.*)\. Not judged: (.*)\.$', doc, re.M)
    assert sentence and sentence.group(3) == ('; '.join(missed) or 'none'), sentence
    for text in missed:
        assert '| %s | **missed** |' % text in doc, text


def test_what_the_benchmarks_page_says_about_the_code_is_checked():
    path = report.latest(lambda d: 'gpu' in (d.get('comparisons') or {}) and d.get('mode') == 'full')[0]
    _text, results = report.render(path, log=lambda _m: None)
    assert report.code_drift(results) == []
    stale = json.loads(json.dumps(results))
    stale['minimum_reads']['managed'].pop(sorted(stale['minimum_reads']['managed'])[0])
    stale['comparisons']['site']['imports'] = stale['comparisons']['site']['imports'][:-1]
    stale['targets'].pop('fleet_sublinear')
    problems = report.code_drift(stale)
    assert len(problems) == 3, problems
    assert problems[0].startswith('targets:') and problems[1].startswith('minimum reads:'), problems
    assert problems[2].startswith('site.yml imports'), problems
