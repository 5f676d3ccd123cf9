"""pytest hooks of the reliability suite's counts (see _support.record and tests/docs/security_counts.py).

Loaded by conftest.py. Every session starts the counts afresh (nothing of an earlier run carries
over) with a description of the run; every test's outcome is taken from all three phases (it
passed only if its setup, call and teardown did) and decides whether the values the test
recorded are kept.
"""
import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
import time

import pytest

import _support

_STARTED = pytest.StashKey[float]()
_PHASES = {}


def _git(*args):
    proc = subprocess.run(['git', '-C', _support.ROOT] + list(args), capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _kubernetes_version():
    try:
        proc = subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl'), 'version', '-o', 'json'],
                              capture_output=True, text=True, check=False, timeout=30)
        return json.loads(proc.stdout)['serverVersion']['gitVersion']
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired):
        return None


def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _start(session):
    session.config.stash[_STARTED] = time.monotonic()
    _PHASES.clear()
    _support.start_counts({
        'started': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
        'commit': _git('rev-parse', 'HEAD'), 'uncommitted_changes': bool(_git('status', '--porcelain', '--untracked-files=no')),
        'ansible_core': _version('ansible-core'), 'moto': _version('moto'), 'python': '%d.%d.%d' % sys.version_info[:3],
        'kubernetes': _kubernetes_version(), 'loadavg_1m_start': round(os.getloadavg()[0], 1), 'cpus': os.cpu_count(),
        'args': list(session.config.invocation_params.args)})


def pytest_sessionstart(session):
    _start(session)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):  # pylint: disable=unused-argument
    if _STARTED not in item.session.config.stash:
        # Not an initial conftest (pytest started from a parent directory): start here.
        _start(item.session)
    _support.CURRENT_TEST = item.nodeid
    try:
        yield
    finally:
        _support.CURRENT_TEST = None


def pytest_runtest_logreport(report):
    """A test's outcome from all three phases: passed only if setup, call and teardown passed."""
    outcomes = _PHASES.setdefault(report.nodeid, [])
    if report.failed:
        outcomes.append('failed' if report.when == 'call' else 'error')
    elif report.skipped:
        outcomes.append('xfailed' if hasattr(report, 'wasxfail') else 'skipped')
    elif report.when == 'call' and hasattr(report, 'wasxfail'):
        outcomes.append('xpassed')
    if report.when == 'teardown':
        _support.test_finished(report.nodeid, (_PHASES.pop(report.nodeid) or ['passed'])[0])


def pytest_sessionfinish(session, exitstatus):
    started = session.config.stash.get(_STARTED, None)
    if started is None:
        return
    _support.update_run(finished=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
                        duration_s=round(time.monotonic() - started), loadavg_1m_end=round(os.getloadavg()[0], 1),
                        exit_status=int(exitstatus))
