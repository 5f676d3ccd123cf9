"""Read the sandbox's AWS request journal and Kubernetes audit log from tests.

  sandbox_journal.py mark                 print a mark (line counts of journal and audit log)
  sandbox_journal.py since MARK [--json]  what happened after MARK: AWS requests, mutating
                                          AWS requests (with operations), Kubernetes writes

Marks are "<journal lines>:<audit lines>" so a test needs no state of its own.

Every "nothing was written" claim of the suite is computed here, so two rules hold:
- counts cover the whole range after the mark, per user (`kube_writes_by_user`); only the
  samples kept for messages (`kube_write_sample`, a few writes per user) are capped;
- a journal or audit log that is not configured, missing, or shorter than the mark (replaced
  or truncated after it) raises SandboxLogMissing: an absent log would otherwise read as
  "no activity" and every no-write check would pass.
"""
import argparse
import json
import os
import sys

WRITE_VERBS = {'create', 'update', 'patch', 'delete', 'deletecollection'}
# AWS clients of the sandbox itself (the node mirror polls the emulator); their requests are not
# the work of the code under test.
SANDBOX_CLIENTS = set(os.environ.get('SANDBOX_INTERNAL_AWS_CLIENTS', 'sandbox-nodemirror').split(','))
# Writes kept per user for messages; counts are never taken from this sample.
SAMPLE_PER_USER = 20
LOGS = {'aws': 'SANDBOX_AWS_JOURNAL', 'kube': 'SANDBOX_KUBE_AUDIT'}


class SandboxLogMissing(RuntimeError):
    """The journal or audit log a count would be taken from is not there."""


def admin_user():
    """The Kubernetes user the playbooks act as (the sandbox's admin kubeconfig)."""
    return os.environ.get('SANDBOX_KUBE_ADMIN_USER') or 'sandbox-admin'


def _path(which):
    variable = LOGS[which]
    path = os.environ.get(variable)
    if not path:
        raise SandboxLogMissing('%s is not set: source the sandbox env file' % variable)
    if not os.path.isfile(path):
        raise SandboxLogMissing('%s=%s does not exist: is the sandbox up?' % (variable, path))
    return path


def _lines(which, start=0):
    with open(_path(which), encoding='utf-8', errors='replace') as handle:
        lines = handle.read().splitlines()
    if len(lines) < start:
        raise SandboxLogMissing('%s has %d lines, fewer than the mark (%d): it was replaced or truncated after the mark'
                                % (LOGS[which], len(lines), start))
    return lines[start:]


def mark():
    return '%d:%d' % (len(_lines('aws')), len(_lines('kube')))


def kube_write(event):
    """The write an audit event records, or None (reads, earlier stages, server-side dry runs)."""
    if event.get('stage') not in (None, 'ResponseComplete'):
        return None
    if event.get('verb') not in WRITE_VERBS:
        return None
    if 'dryRun=All' in (event.get('requestURI') or ''):
        return None  # a server-side dry run (kubernetes.core in check mode) persists nothing
    ref = event.get('objectRef') or {}
    return {'verb': event.get('verb'), 'user': (event.get('user') or {}).get('username'),
            'resource': ref.get('resource'), 'name': ref.get('name'), 'namespace': ref.get('namespace')}


def since(mark_text, kube_user=None, with_requests=False):
    aws_from, kube_from = (int(x) for x in mark_text.split(':'))
    requests = [json.loads(x) for x in _lines('aws', aws_from) if x.strip()]
    requests = [r for r in requests if r.get('client') not in SANDBOX_CLIENTS]
    mutating = [r for r in requests if r.get('mutating')]
    by_user, sample = {}, {}
    for line in _lines('kube', kube_from):
        if not line.strip():
            continue
        write = kube_write(json.loads(line))
        if write is None:
            continue
        user = write['user']
        by_user[user] = by_user.get(user, 0) + 1
        if len(sample.setdefault(user, [])) < SAMPLE_PER_USER:
            sample[user].append(write)
    result = {
        'aws_requests': len(requests),
        'aws_mutating': len(mutating),
        'aws_mutating_operations': sorted({'%s:%s' % (r.get('service'), r.get('operation')) for r in mutating}),
        # Every request in order, as service:operation (reads included), for tests that bound reads.
        'aws_operations': ['%s:%s' % (r.get('service'), r.get('operation')) for r in requests],
        # Writes of kube_user if one is given, else of everyone (the sandbox's own controllers included).
        'kube_writes': by_user.get(kube_user, 0) if kube_user else sum(by_user.values()),
        'kube_writes_by_user': by_user,
        'kube_write_sample': {u: s for u, s in sample.items() if not kube_user or u == kube_user},
    }
    if with_requests:
        result['aws_request_list'] = requests
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='cmd', required=True)
    sub.add_parser('mark')
    since_p = sub.add_parser('since')
    since_p.add_argument('mark')
    since_p.add_argument('--kube-user', help='count only writes made by this Kubernetes user')
    args = parser.parse_args(argv)
    try:
        if args.cmd == 'mark':
            print(mark())
        else:
            print(json.dumps(since(args.mark, args.kube_user)))
    except SandboxLogMissing as exc:
        print('sandbox_journal: %s' % exc, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
