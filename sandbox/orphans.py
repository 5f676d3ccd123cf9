#!/usr/bin/env python3
"""Sandbox processes whose sandbox directory is gone (`sandboxctl orphans [--kill]`).

`sandboxctl down` stops a sandbox through the pid files in its directory. When the directory
goes first (a checkout or a clone deleted while its sandbox ran, a CI workspace wiped), its
kube-apiserver, etcd, kwok, registry, PostgreSQL and emulator keep running, holding ports and
memory, and nothing can find them by pid file any more. They can still be told apart from
anything else: each runs one of the sandbox's programs with a path inside its sandbox directory
on its command line. This lists those whose directory no longer exists and, with --kill, stops
them (SIGTERM, then SIGKILL after --grace seconds). Processes of a sandbox whose directory
exists are never touched: `sandboxctl down` is the way to stop those.

Standard library only: it must run when the virtualenv went with the checkout.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time

# Program -> the argument that names a path inside its sandbox directory, and the part of that
# path below the sandbox directory (the layout sandbox/components/*.sh create). The control planes of
# a fleet's further clusters live in kube/clusters/<name>/ (20-kube).
_CLUSTER = r'/kube/(?:clusters/[^/]+/)?'
_PROGRAMS = {
    'etcd': r'/kube/etcd$',
    'kube-apiserver': _CLUSTER + r'pki/',
    'kube-controller-manager': _CLUSTER + r'[^/]+\.kubeconfig$',
    'kube-scheduler': _CLUSTER + r'[^/]+\.kubeconfig$',
    'kwok': _CLUSTER + r'[^/]+\.kubeconfig$',
    'postgres': r'/postgres/data$',
    'registry': r'/registry/config\.yml$',
    # a metrics-server or cert-manager (cm-sandbox) the pod network runs on the host (sandbox/kube/podnet.py)
    'metrics-server': _CLUSTER + r'run/podnet/',
    'cm-sandbox': _CLUSTER + r'run/podnet/',
}
_PYTHON_MARKS = {
    'sandbox.aws.server': r'/aws/journal\.jsonl$',
    'nodemirror.py': _CLUSTER + r'[^/]+\.kubeconfig$',
    'podnet.py': _CLUSTER + r'[^/]+\.kubeconfig$',
    'evaluator.py': r'/cloudwatch/clock\.json$',
    'publisher.py': r'/cloudwatch/clock\.json$',
}


def _component(argv):
    """(component name, the layout pattern of its sandbox paths) for a sandbox program, else None."""
    if not argv:
        return None
    program = os.path.basename(argv[0])
    if program in _PROGRAMS:
        return program, _PROGRAMS[program]
    if program.startswith('python'):
        for mark, pattern in _PYTHON_MARKS.items():
            if any(arg == mark or arg.endswith('/' + mark) for arg in argv[1:]):
                return mark.replace('.py', '').replace('sandbox.aws.server', 'aws-emulator'), pattern
    return None


def sandbox_dir(argv):
    """The sandbox directory a sandbox process belongs to, from its command line, or None."""
    found = _component(argv)
    if not found:
        return None
    pattern = re.compile(found[1])
    for arg in argv[1:]:
        value = arg.split('=', 1)[1] if arg.startswith('--') and '=' in arg else arg
        match = pattern.search(value)
        if value.startswith('/') and match:
            return value[:match.start()]
    return None


def processes(proc='/proc'):
    """(pid, argv) of every process that can be read."""
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, 'cmdline'), 'rb') as handle:
                raw = handle.read()
        except OSError:
            continue
        argv = [part.decode('utf-8', 'replace') for part in raw.split(b'\0') if part]
        if argv:
            yield int(entry), argv


def orphans(proc='/proc'):
    """[(pid, component, sandbox directory)] of sandbox processes whose directory is gone."""
    found = []
    for pid, argv in processes(proc):
        if pid == os.getpid():
            continue
        directory = sandbox_dir(argv)
        if directory and not os.path.isdir(directory):
            found.append((pid, _component(argv)[0], directory))
    return sorted(found)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open('/proc/%d/stat' % pid) as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def stop(pids, grace):
    """SIGTERM, then SIGKILL after `grace` seconds; returns the pids still alive (none, normally)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    left = [pid for pid in pids if _alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [pid for pid in left if _alive(pid)]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.2)
    return [pid for pid in left if _alive(pid)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('--kill', action='store_true', help='stop them (SIGTERM, then SIGKILL)')
    parser.add_argument('--grace', type=float, default=10.0, help='seconds between SIGTERM and SIGKILL (default 10)')
    parser.add_argument('--quiet', action='store_true', help='print nothing when there are none')
    args = parser.parse_args(argv)
    found = orphans()
    if not found:
        if not args.quiet:
            print('sandbox: no orphaned sandbox processes')
        return 0
    for pid, component, directory in found:
        print('sandbox: orphan pid %d %s (sandbox directory %s is gone)' % (pid, component, directory))
    if not args.kill:
        print('sandbox: stop them with: sandbox/sandboxctl orphans --kill')
        return 0
    left = stop([pid for pid, _c, _d in found], args.grace)
    if left:
        print('sandbox: still running after SIGKILL: %s' % ' '.join(map(str, left)), file=sys.stderr)
        return 1
    print('sandbox: stopped %d orphaned process(es)' % len(found))
    return 0


if __name__ == '__main__':
    sys.exit(main())
