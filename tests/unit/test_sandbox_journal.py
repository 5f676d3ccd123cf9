"""The readers every no-write claim of the suite is counted with (tests/tools/sandbox_journal.py
and the journal readers of tests/reliability/_support.py), on a synthetic AWS journal and
Kubernetes audit log: counts cover the whole range per user, and a missing, unset or replaced
log is an error, never an empty range."""
import datetime
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
TOOL = os.path.join(ROOT, 'tests', 'tools', 'sandbox_journal.py')
sys.path.insert(0, os.path.join(ROOT, 'tests', 'tools'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'reliability'))

import sandbox_journal  # noqa: E402  pylint: disable=wrong-import-position
import _support  # noqa: E402  pylint: disable=wrong-import-position

ADMIN = 'sandbox-admin'
START = datetime.datetime(2026, 12, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def _event(seconds, verb, user, resource='leases', name='kube-scheduler', namespace='kube-system', uri=None):
    when = (START + datetime.timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%S.%fZ')
    uri = uri or '/apis/coordination.k8s.io/v1/namespaces/%s/%s/%s' % (namespace, resource, name)
    return {'kind': 'Event', 'stage': 'ResponseComplete', 'verb': verb, 'requestURI': uri, 'user': {'username': user},
            'objectRef': {'resource': resource, 'namespace': namespace, 'name': name},
            'responseStatus': {'code': 200}, 'stageTimestamp': when}


def _append(path, records):
    with open(path, 'a', encoding='utf-8') as handle:
        for record in records:
            handle.write(json.dumps(record) + '\n')


def _idle(first, seconds):
    """What the sandbox writes on its own (lease renewals, endpoints): one write a second here,
    from `first` on, busier than the idle sandbox (about 24 a minute) so 50 are passed sooner."""
    return [_event(first + tick, 'update', 'system:kube-scheduler' if tick % 2 else 'system:kube-controller-manager')
            for tick in range(seconds)]


@pytest.fixture
def logs(tmp_path, monkeypatch):
    """An empty journal and audit log the readers are pointed at, with a few earlier lines."""
    journal, audit = tmp_path / 'journal.jsonl', tmp_path / 'kube-audit.jsonl'
    _append(journal, [{'service': 'eks', 'operation': 'DescribeCluster', 'mutating': False, 'status': 200}])
    _append(audit, [_event(-5, 'create', ADMIN, 'namespaces', 'before-the-mark', None)])
    monkeypatch.setenv('SANDBOX_AWS_JOURNAL', str(journal))
    monkeypatch.setenv('SANDBOX_KUBE_AUDIT', str(audit))
    monkeypatch.setenv('SANDBOX_KUBE_ADMIN_USER', ADMIN)
    return journal, audit


def test_an_admin_write_after_a_minute_of_other_writes_is_counted(logs):
    """The write the old reader missed: after 60 s and after more than 50 writes of other users."""
    journal, audit = logs
    mark = sandbox_journal.mark()
    support_mark = _support.mark()
    idle, after = _idle(0, 65), _idle(65, 5)
    late = _event(65, 'patch', ADMIN, 'configmaps', 'late-write', 'arthur')
    assert len(idle) > 50 and late['stageTimestamp'] > _event(60, 'get', ADMIN)['stageTimestamp']
    _append(audit, idle + [late] + after)
    _append(journal, [{'service': 'eks', 'operation': 'DescribeNodegroup', 'mutating': False, 'status': 200}])

    found = sandbox_journal.since(mark)
    assert found['kube_writes_by_user'][ADMIN] == 1
    assert found['kube_writes_by_user']['system:kube-scheduler'] + found['kube_writes_by_user']['system:kube-controller-manager'] \
        == len(idle) + len(after)
    assert found['kube_write_sample'][ADMIN] == [{'verb': 'patch', 'user': ADMIN, 'resource': 'configmaps', 'name': 'late-write',
                                                  'namespace': 'arthur'}]
    assert sandbox_journal.since(mark, kube_user=ADMIN)['kube_writes'] == 1
    assert found['aws_requests'] == 1 and found['aws_mutating'] == 0
    # The reliability suite's reader sees the same write.
    assert [w['name'] for w in _support.kube_writes(support_mark)] == ['late-write']
    assert len(_support.Activity(support_mark).writes) == 1


def test_writes_of_other_users_are_not_the_admins(logs):
    _journal, audit = logs
    mark = sandbox_journal.mark()
    support_mark = _support.mark()
    _append(audit, [_event(1, 'create', 'system:serviceaccount:kube-system:namespace-controller', 'namespaces', 'x', None),
                    _event(2, 'delete', 'genai-stack-modules', 'secrets', 's', 'arthur'),
                    _event(3, 'update', 'system:kube-scheduler')])
    found = sandbox_journal.since(mark)
    assert ADMIN not in found['kube_writes_by_user'] and sum(found['kube_writes_by_user'].values()) == 3
    assert sandbox_journal.since(mark, kube_user=ADMIN)['kube_writes'] == 0
    assert sandbox_journal.since(mark, kube_user='genai-stack-modules')['kube_writes'] == 1
    assert _support.kube_writes(support_mark) == []
    assert len(_support.kube_writes(support_mark, 'genai-stack-modules')) == 1


def test_reads_dry_runs_and_unfinished_stages_are_not_writes(logs):
    _journal, audit = logs
    mark = sandbox_journal.mark()
    support_mark = _support.mark()
    dry_run = _event(1, 'delete', ADMIN, 'namespaces', 'arthur', None, uri='/api/v1/namespaces/arthur?dryRun=All')
    started = dict(_event(2, 'create', ADMIN, 'secrets', 's', 'arthur'), stage='RequestReceived')
    _append(audit, [_event(1, 'get', ADMIN, 'secrets', 's', 'arthur'), _event(1, 'list', ADMIN, 'pods', None, 'arthur'), dry_run, started])
    assert sandbox_journal.since(mark)['kube_writes_by_user'] == {}
    assert _support.kube_writes(support_mark) == []
    _append(audit, [dict(started, stage='ResponseComplete')])
    assert sandbox_journal.since(mark)['kube_writes_by_user'] == {ADMIN: 1}
    assert len(_support.kube_writes(support_mark)) == 1


def test_aws_mutations_are_counted_without_the_sandboxs_own_clients(logs):
    journal, _audit = logs
    mark = sandbox_journal.mark()
    _append(journal, [{'service': 'ec2', 'operation': 'TerminateInstances', 'mutating': True, 'status': 200, 'client': 'sandbox-nodemirror'}]
            + [{'service': 'eks', 'operation': 'DescribeNodegroup', 'mutating': False, 'status': 200}] * 60
            + [{'service': 'eks', 'operation': 'DeleteNodegroup', 'mutating': True, 'status': 200}])
    found = sandbox_journal.since(mark)
    assert found['aws_mutating'] == 1 and found['aws_mutating_operations'] == ['eks:DeleteNodegroup']
    assert found['aws_requests'] == 61


@pytest.mark.parametrize('which', ['SANDBOX_AWS_JOURNAL', 'SANDBOX_KUBE_AUDIT'])
def test_a_deleted_log_raises(logs, which):
    mark = sandbox_journal.mark()
    support_mark = _support.mark()
    os.remove(os.environ[which])
    for read in (sandbox_journal.mark, lambda: sandbox_journal.since(mark)):
        with pytest.raises(sandbox_journal.SandboxLogMissing, match=which):
            read()
    for read in (_support.mark, lambda: _support.Activity(support_mark)):
        with pytest.raises(_support.SandboxLogMissing, match=which):
            read()


@pytest.mark.parametrize('which', ['SANDBOX_AWS_JOURNAL', 'SANDBOX_KUBE_AUDIT'])
def test_an_unset_log_raises(logs, monkeypatch, which):
    monkeypatch.delenv(which)
    with pytest.raises(sandbox_journal.SandboxLogMissing, match=which):
        sandbox_journal.mark()
    with pytest.raises(_support.SandboxLogMissing, match=which):
        _support.mark()


def test_a_log_replaced_after_the_mark_raises(logs):
    """A log recreated (shorter) after the mark would otherwise read as an empty range."""
    _journal, audit = logs
    _append(audit, _idle(0, 10))
    mark = sandbox_journal.mark()
    support_mark = _support.mark()
    audit.write_text('')
    with pytest.raises(sandbox_journal.SandboxLogMissing, match='fewer than the mark'):
        sandbox_journal.since(mark)
    with pytest.raises(_support.SandboxLogMissing, match='fewer than the mark'):
        _support.kube_writes(support_mark)


def test_the_command_line_fails_on_a_missing_log(logs):
    """The integration targets call the tool as a command: a missing log fails their task."""
    _journal, audit = logs
    env = dict(os.environ)
    mark = subprocess.run([sys.executable, TOOL, 'mark'], capture_output=True, text=True, env=env, check=True).stdout.strip()
    _append(audit, _idle(0, 65) + [_event(65, 'create', ADMIN, 'secrets', 's', 'arthur')])
    since = subprocess.run([sys.executable, TOOL, 'since', mark, '--kube-user', ADMIN], capture_output=True, text=True, env=env, check=True)
    assert json.loads(since.stdout)['kube_writes'] == 1
    os.remove(audit)
    for args in (['mark'], ['since', mark]):
        failed = subprocess.run([sys.executable, TOOL] + args, capture_output=True, text=True, env=env, check=False)
        assert failed.returncode != 0 and failed.stdout == '', failed
        assert 'SANDBOX_KUBE_AUDIT' in failed.stderr
