"""Run playbooks of the collection against the sandbox and read what they did.

`run_playbook(path, *args)` runs ansible-playbook from the checkout root (so ansible.cfg, the
sandbox inventory and the checkout-as-collection apply) and returns an object with the exit
code, the combined output, the PLAY RECAP counts per host and what the sandbox journal and
audit log recorded during the run.
"""
import json
import os
import re
import subprocess
import sys
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'tools'))

import sandbox_journal  # noqa: E402  pylint: disable=wrong-import-position
import steady_load  # noqa: E402  pylint: disable=wrong-import-position
from playbook_helpers import decoy_kubeconfig  # noqa: E402  pylint: disable=wrong-import-position


def pytest_configure(config):
    # make test runs the tests marked so on the reliability suite's sandbox, alongside the main
    # sandbox's suites (Makefile: alongside); make integration alone runs them with the rest.
    config.addinivalue_line('markers', 'alongside: needs only a seeded sandbox and leaves nothing behind (refusals before any '
                            'change, private sandboxes); make test runs it on a sandbox of its own, off the critical path')


RECAP = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)', re.M)


class PlaybookRun:
    def __init__(self, returncode, output, activity):
        self.returncode = returncode
        self.output = output
        self.activity = activity
        self.recap = {m.group(1): {'ok': int(m.group(2)), 'changed': int(m.group(3)), 'failed': int(m.group(5))}
                      for m in RECAP.finditer(output)}

    @property
    def changed(self):
        return sum(host['changed'] for host in self.recap.values())

    @property
    def admin_writes(self):
        """Kubernetes writes of the admin user (the playbooks' identity) during the run: a full count."""
        return self.activity['kube_writes_by_user'].get(sandbox_journal.admin_user(), 0)

    @property
    def admin_write_sample(self):
        """The first few of those writes, for messages; never counted from."""
        return self.activity['kube_write_sample'].get(sandbox_journal.admin_user(), [])

    def assert_wrote(self):
        """The positive control of a no-write claim: this run (a first converge) did write, as
        counted by the same code, so a count of zero elsewhere is not a reader seeing nothing."""
        assert self.admin_writes > 0, 'a first converge recorded no admin write: %r' % self

    def assert_no_write(self, aws=True):
        """No Kubernetes write of the admin user and (unless aws=False) no mutating AWS request."""
        assert self.admin_writes == 0, (self.admin_writes, self.admin_write_sample)
        if aws:
            assert self.activity['aws_mutating'] == 0, self.activity['aws_mutating_operations']

    def __repr__(self):
        return 'PlaybookRun(rc=%s, recap=%s, activity=%s)\n%s' % (self.returncode, self.recap, self.activity, self.output[-6000:])


@pytest.fixture(scope='session', autouse=True)
def steady_gpu_load(sandbox_env):
    """The GPU Nodes hold still: see tests/tools/steady_load.py."""
    with steady_load.holding(steady_load.STEADY):
        yield


@pytest.fixture(scope='session', autouse=True)
def sandbox_env():
    if not os.environ.get('AWS_ENDPOINT_URL'):
        pytest.fail('the sandbox is not configured: run `make sandbox` and source .sandbox/env (make integration does both)')
    # Every no-write claim is counted from the journal and the audit log: without them the counts
    # would be zero whatever the playbooks did, so their absence fails the session.
    try:
        sandbox_journal.mark()
    except sandbox_journal.SandboxLogMissing as exc:
        pytest.fail('the no-write checks cannot be counted: %s' % exc)


# What every run_playbook run does unless the test sets the connection itself: the controller's
# KUBECONFIG names a cluster that does not exist (an API server on the discard port), and the sandbox's
# real kubeconfig comes only as the host's genai_stack_kube. A task of any role that does not follow
# the host's connection fails the run, in every test of every stack.
CONNECTION_VARIABLES = ('KUBECONFIG', 'K8S_AUTH_KUBECONFIG', 'K8S_AUTH_CONTEXT', 'K8S_AUTH_HOST')


def host_connection(args, env_extra):
    """(args, env_extra) for a run whose Kubernetes connection is the host's genai_stack_kube only."""
    if any(name in (env_extra or {}) for name in CONNECTION_VARIABLES) or any('genai_stack_kube' in str(a) for a in args):
        return list(args), env_extra
    real = os.environ['KUBECONFIG']
    env = dict(env_extra or {}, KUBECONFIG=decoy_kubeconfig())
    return list(args) + ['-e', json.dumps({'genai_stack_kube': {'kubeconfig': real}})], env


def _run_counted(argv, timeout, env_extra):
    """Runs argv from the checkout root and returns a PlaybookRun with what the sandbox recorded."""
    mark = sandbox_journal.mark()
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0')
    for name, value in (env_extra or {}).items():  # None: the variable is unset
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env['PATH'] = os.path.join(ROOT, '.venv', 'bin') + os.pathsep + env.get('PATH', '')
    proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          check=False)
    return PlaybookRun(proc.returncode, proc.stdout, sandbox_journal.since(mark, with_requests=True))


@pytest.fixture
def run_playbook():
    def runner(playbook, *args, timeout=900, env_extra=None):
        args, env_extra = host_connection(args, env_extra)
        return _run_counted([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), playbook] + args, timeout, env_extra)

    return runner


@pytest.fixture
def run_molecule():
    """One step of the molecule/default scenario (`molecule prepare`, `converge`, ...), counted like
    run_playbook: molecule runs the scenario's playbooks with ansible-playbook, whose PLAY RECAP
    and sandbox activity the returned object holds."""
    def runner(step, *args, timeout=1200, env_extra=None):
        return _run_counted([os.path.join(ROOT, '.venv', 'bin', 'molecule'), step] + list(args), timeout, env_extra)

    return runner


@pytest.fixture
def run_counted():
    """Any command from the checkout root (a make target that runs a playbook, as the README
    prints it), counted like run_playbook, without the decoy connection."""
    def runner(argv, timeout=1200, env_extra=None):
        return _run_counted(list(argv), timeout, env_extra)

    return runner


@pytest.fixture
def sandbox_faults():
    """Queue injected errors in the AWS emulator; cleared again after the test."""
    url = os.environ['AWS_ENDPOINT_URL'].rstrip('/') + '/_sandbox/faults'

    def send(method, body=None):
        request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                         headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read()

    def queue(operations, code='ThrottlingException', status=400, times=1):
        for operation in operations:
            send('POST', {'operation': operation, 'code': code, 'status': status, 'times': times})

    yield queue
    send('DELETE')


def _ready_gpu_nodes():
    """Names of Ready Nodes labelled capability=gpu with a GPU allocatable (through kubectl)."""
    proc = subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl'), 'get', 'nodes', '-l', 'capability=gpu', '-o', 'json'],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return []
    names = []
    for node in json.loads(proc.stdout).get('items', []):
        status = node.get('status', {})
        ready = any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in status.get('conditions', []))
        if ready and int(status.get('allocatable', {}).get('nvidia.com/gpu', '0')) > 0:
            names.append(node['metadata']['name'])
    return names


def _cluster_gpu(*extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'))
    return subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), 'playbooks/cluster_gpu.yml'] + list(extra),
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)


@pytest.fixture(scope='session')
def _gpu_capacity_session():
    """Removes the GPU capacity once, at the end of the session, if a test created it."""
    state = {'created': False}
    yield state
    if state['created']:
        _cluster_gpu('-e', 'cluster_gpu_state=absent')


@pytest.fixture(scope='module')
def gpu_capacity(_gpu_capacity_session):
    """GPU Nodes (and the capability=cpu label) from playbooks/cluster_gpu.yml, shared by the stack tests.

    Converged only when no Ready GPU Node exists, so the stack tests of one session pay for it
    once instead of once per file; removed at the end of the session.
    """
    if not _ready_gpu_nodes():
        run = _cluster_gpu()
        assert run.returncode == 0, run.stdout[-4000:]
        _gpu_capacity_session['created'] = True
    return _ready_gpu_nodes()
