"""Small readers the playbook tests share: kubectl and helm as the user has them, and a poll."""
import json
import os
import subprocess
import time

from slowdown import scaled  # tests/tools, on sys.path (tests/playbooks/conftest.py)


def kubectl(*args, check=True):
    proc = subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl')] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def kube_get(*args):
    """`kubectl get -o json ARGS`, parsed."""
    return json.loads(kubectl('get', '-o', 'json', *args).stdout)


def helm_releases(namespace):
    """Every release of the namespace, whatever its status, by name."""
    out = subprocess.run([os.environ.get('HELM_BIN', 'helm'), 'list', '-n', namespace, '-a', '-o', 'json'],
                         capture_output=True, text=True, check=True).stdout
    return {r['name']: r for r in json.loads(out or '[]')}


def wait_for(predicate, timeout=60):
    """Poll `predicate` every second; True as soon as it holds, False after `timeout` seconds
    (what an idle machine needs, times GENAI_TEST_SLOWDOWN: see tests/tools/slowdown.py)."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True
