"""The sandbox as a fleet: one kube-apiserver per EKS cluster (sandbox/components/20-kube.sh).

`ensure(count)` grows the running sandbox to `count` EKS clusters (`sandboxctl up` with
SANDBOX_EKS_CLUSTERS raised: the emulator seeds the missing clusters, 20-kube starts their control
planes, 40-nodes their node mirrors) and returns the clusters of $SANDBOX_DIR/kube/fleet.json, in
seeded order, each with its name, server, admin kubeconfig, audit log and CA.
"""
import json
import os
import subprocess

import sandbox_journal  # tests/tools, beside this file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))


def sandbox_dir():
    """The directory of the sandbox the tests run on (its env names its files, not itself)."""
    if os.environ.get('SANDBOX_DIR'):
        return os.environ['SANDBOX_DIR']
    # $SANDBOX_DIR/logs/kube-audit.jsonl
    return os.path.dirname(os.path.dirname(os.environ['SANDBOX_KUBE_AUDIT']))


def read(directory=None):
    with open(os.path.join(directory or sandbox_dir(), 'kube', 'fleet.json'), encoding='utf-8') as handle:
        return json.load(handle)['clusters']


def ensure(count, timeout=900):
    directory = sandbox_dir()
    clusters = read(directory)
    if len(clusters) >= count:
        return clusters[:count]
    env = dict(os.environ, SANDBOX_DIR=directory, SANDBOX_EKS_CLUSTERS=str(count))
    proc = subprocess.run([os.path.join(ROOT, 'sandbox', 'sandboxctl'), 'up'], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError('growing the sandbox to %d clusters failed:\n%s\n%s' % (count, proc.stdout[-3000:], proc.stderr[-3000:]))
    clusters = read(directory)
    if len(clusters) < count:
        raise RuntimeError('the sandbox has %d clusters after up with SANDBOX_EKS_CLUSTERS=%d' % (len(clusters), count))
    return clusters[:count]


def audit_writes(cluster, start, users):
    """Writes recorded in a cluster's audit log after line `start` by any of `users` (as sandbox_journal
    counts writes: completed, persisted), as sandbox_journal.kube_write dictionaries."""
    with open(cluster['audit_log'], encoding='utf-8', errors='replace') as handle:
        lines = handle.read().splitlines()[start:]
    writes = (sandbox_journal.kube_write(json.loads(line)) for line in lines if line.strip())
    return [w for w in writes if w and w['user'] in users]


def audit_mark(cluster):
    with open(cluster['audit_log'], encoding='utf-8', errors='replace') as handle:
        return len(handle.read().splitlines())
