"""Read the sandbox's AWS request journal and Kubernetes audit log from tests.

  sandbox_journal.py mark                 print a mark (line counts of journal and audit log)
  sandbox_journal.py since MARK [--json]  what happened after MARK: AWS requests, mutating
                                          AWS requests (with operations), Kubernetes writes

Marks are "<journal lines>:<audit lines>" so a test needs no state of its own.
"""
import argparse
import json
import os
import sys

WRITE_VERBS = {'create', 'update', 'patch', 'delete', 'deletecollection'}
# AWS clients of the sandbox itself (the node mirror polls the emulator); their requests are not
# the work of the code under test.
SANDBOX_CLIENTS = set(os.environ.get('SANDBOX_INTERNAL_AWS_CLIENTS', 'sandbox-nodemirror').split(','))


def _lines(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding='utf-8') as handle:
        return handle.read().splitlines()


def mark():
    journal = _lines(os.environ.get('SANDBOX_AWS_JOURNAL'))
    audit = _lines(os.environ.get('SANDBOX_KUBE_AUDIT'))
    return '%d:%d' % (len(journal), len(audit))


def since(mark_text, kube_user=None, with_requests=False):
    aws_from, kube_from = (int(x) for x in mark_text.split(':'))
    requests = [json.loads(x) for x in _lines(os.environ.get('SANDBOX_AWS_JOURNAL'))[aws_from:] if x.strip()]
    requests = [r for r in requests if r.get('client') not in SANDBOX_CLIENTS]
    mutating = [r for r in requests if r.get('mutating')]
    writes = []
    for line in _lines(os.environ.get('SANDBOX_KUBE_AUDIT'))[kube_from:]:
        if not line.strip():
            continue
        event = json.loads(line)
        if event.get('stage') not in (None, 'ResponseComplete'):
            continue
        if event.get('verb') not in WRITE_VERBS:
            continue
        if 'dryRun=All' in (event.get('requestURI') or ''):
            continue  # a server-side dry run (kubernetes.core in check mode) persists nothing
        user = (event.get('user') or {}).get('username')
        if kube_user and user != kube_user:
            continue
        writes.append({'verb': event.get('verb'), 'user': user,
                       'resource': (event.get('objectRef') or {}).get('resource'),
                       'name': (event.get('objectRef') or {}).get('name'),
                       'namespace': (event.get('objectRef') or {}).get('namespace')})
    result = {
        'aws_requests': len(requests),
        'aws_mutating': len(mutating),
        'aws_mutating_operations': sorted({'%s:%s' % (r.get('service'), r.get('operation')) for r in mutating}),
        # Every request in order, as service:operation (reads included), for tests that bound reads.
        'aws_operations': ['%s:%s' % (r.get('service'), r.get('operation')) for r in requests],
        'kube_writes': len(writes),
        'kube_write_list': writes[:50],
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
    if args.cmd == 'mark':
        print(mark())
    else:
        print(json.dumps(since(args.mark, args.kube_user)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
