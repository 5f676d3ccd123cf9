"""Helpers of the reliability suite: run playbooks against the sandbox, read what they did,
break the sandbox on purpose (faults, SIGKILL, stopped components) and count what exists.

Everything here reads the variables of a sandbox env file (`.sandbox/env`, or a private
instance's `$SANDBOX_DIR/env`); the suite is meant to run on a private instance so that other
runs do not add to the journal and audit log it counts (see tests/reliability/README.md).
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools'))

# Every fixed wait and timeout below is what an idle machine needs, times GENAI_TEST_SLOWDOWN.
from slowdown import scaled  # noqa: E402  pylint: disable=wrong-import-position

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
OUTPUT_DIR = os.path.join(ROOT, 'tests', 'output', 'reliability')
WRITE_VERBS = {'create', 'update', 'patch', 'delete', 'deletecollection'}
RECAP = re.compile(r'^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)', re.M)


def sandbox_dir():
    """The state directory of the sandbox instance the environment points at."""
    return os.path.dirname(os.path.dirname(os.environ['SANDBOX_AWS_JOURNAL']))


def admin_user():
    return os.environ.get('SANDBOX_KUBE_ADMIN_USER', 'sandbox-admin')


# --- journal and audit log --------------------------------------------------------------------

class SandboxLogMissing(RuntimeError):
    """The journal or audit log a count would be taken from is not there."""


def _read_lines(variable, start=0):
    """Non-empty lines of the log named by `variable` from line `start` on. A log that is not
    configured, missing, or shorter than the mark raises: read as empty, it would make every
    "nothing was written" check of the suite pass."""
    path = os.environ.get(variable)
    if not path:
        raise SandboxLogMissing('%s is not set: source the sandbox env file' % variable)
    if not os.path.isfile(path):
        raise SandboxLogMissing('%s=%s does not exist: is the sandbox up?' % (variable, path))
    with open(path, encoding='utf-8', errors='replace') as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    if len(lines) < start:
        raise SandboxLogMissing('%s has %d lines, fewer than the mark (%d): it was replaced or truncated after the mark'
                                % (variable, len(lines), start))
    return lines[start:]


def mark():
    return (len(_read_lines('SANDBOX_AWS_JOURNAL')), len(_read_lines('SANDBOX_KUBE_AUDIT')))


def aws_requests(since_mark):
    return [json.loads(x) for x in _read_lines('SANDBOX_AWS_JOURNAL', since_mark[0])]


def kube_events(since_mark):
    return [json.loads(x) for x in _read_lines('SANDBOX_KUBE_AUDIT', since_mark[1])]


def kube_writes(since_mark, user=None):
    """Every completed write request of `user` (the admin identity the playbooks use by default)
    after the mark, uncapped: no-write claims are counted from it."""
    user = user or admin_user()
    found = []
    for event in kube_events(since_mark):
        if event.get('stage') not in (None, 'ResponseComplete') or event.get('verb') not in WRITE_VERBS \
                or 'dryRun=All' in (event.get('requestURI') or ''):  # a server-side dry run persists nothing
            continue
        if (event.get('user') or {}).get('username') != user:
            continue
        ref = event.get('objectRef') or {}
        found.append({'verb': event['verb'], 'resource': ref.get('resource'), 'namespace': ref.get('namespace'),
                      'name': ref.get('name'), 'code': (event.get('responseStatus') or {}).get('code'),
                      'ts': event.get('stageTimestamp')})
    return found


class Activity:
    """What the sandbox recorded from a mark on."""

    def __init__(self, since_mark, kube_user=None):
        self.requests = aws_requests(since_mark)
        self.mutating = [r for r in self.requests if r.get('mutating')]
        self.writes = kube_writes(since_mark, kube_user)
        user = kube_user or admin_user()
        # Every audited request of the user (the audit policy also records reads of Secrets).
        self.kube_requests = [{'verb': e.get('verb'), 'namespace': (e.get('objectRef') or {}).get('namespace'),
                               'resource': (e.get('objectRef') or {}).get('resource'),
                               'code': (e.get('responseStatus') or {}).get('code')}
                              for e in kube_events(since_mark)
                              if e.get('stage') in (None, 'ResponseComplete') and (e.get('user') or {}).get('username') == user]

    def statuses(self, operation, service=None):
        return [r['status'] for r in self.requests
                if r.get('operation') == operation and (service is None or r.get('service') == service)]

    def mutating_operations(self):
        return sorted({(r['service'], r['operation']) for r in self.mutating})

    def __repr__(self):
        return 'Activity(aws=%d, mutating=%s, kube_writes=%s)' % (
            len(self.requests), [r['operation'] for r in self.mutating], self.writes[:20])


# --- running playbooks ------------------------------------------------------------------------

def playbook_env(extra=None):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_FORCE_COLOR='0', PYTHONUNBUFFERED='1')
    env['PATH'] = VENV_BIN + os.pathsep + env.get('PATH', '')
    env.update(extra or {})
    return env


class Run:
    def __init__(self, args, returncode, output, activity, duration):
        self.args = args
        self.returncode = returncode
        self.output = output
        self.activity = activity
        self.duration = duration
        self.recap = {m.group(1): {'ok': int(m.group(2)), 'changed': int(m.group(3)), 'failed': int(m.group(5))}
                      for m in RECAP.finditer(output)}

    @property
    def changed(self):
        return sum(host['changed'] for host in self.recap.values())

    def json(self):
        """The result of ANSIBLE_STDOUT_CALLBACK=json (stdout only)."""
        start = self.output.find('{\n')
        return json.loads(self.output[start:self.output.rfind('}') + 1])

    def __repr__(self):
        return 'Run(%s rc=%s, %.0fs, %r)\n%s' % (' '.join(self.args), self.returncode, self.duration, self.activity,
                                                 self.output[-5000:])


def run_playbook(playbook, *args, env_extra=None, timeout=1200, kube_user=None, separate_stderr=False):
    start_mark = mark()
    started = time.monotonic()
    command = [os.path.join(VENV_BIN, 'ansible-playbook'), playbook] + list(args)
    proc = subprocess.run(command, cwd=ROOT, env=playbook_env(env_extra), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE if separate_stderr else subprocess.STDOUT, text=True,
                          timeout=scaled(timeout), check=False)
    output = proc.stdout if not separate_stderr else proc.stdout
    run = Run(command[1:], proc.returncode, output, Activity(start_mark, kube_user), time.monotonic() - started)
    if separate_stderr:
        run.stderr = proc.stderr
    return run


def _children():
    """{ppid: [pid, ...]} of every process, from /proc."""
    found = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, encoding='ascii', errors='replace') as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        found.setdefault(int(fields[1]), []).append(int(entry))
    return found


def _descendants(pid):
    children, seen, todo = _children(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.append(child)
                todo.append(child)
    return seen


def kill_tree(pid):
    """SIGKILL a process and every descendant. ansible-core's WorkerProcess calls setsid(), so
    the worker and the module it runs are not in ansible-playbook's process group: a killpg
    alone leaves the module running to completion. The tree is frozen with SIGSTOP first (no
    new child escapes between listing and killing), then killed. Returns the pids killed."""
    stopped = [pid]
    for _unused in range(50):
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
        new = [p for p in _descendants(pid) if p not in stopped]
        if not new:
            break
        for child in new:
            try:
                os.kill(child, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        stopped += new
    for target in stopped:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return stopped


def _running(pid):
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return False


def run_and_kill(playbook, *args, task, trigger, env_extra=None, timeout=900, operation=None):  # pylint: disable=too-many-locals
    """Run a playbook and SIGKILL its whole process tree (ansible-playbook, its workers, the
    module and any helm child) as soon as task `task` has made its first change: a mutating
    AWS request (`trigger='aws'`) or a Kubernetes write (`trigger='kube'`) after the task's
    banner; with `operation`, the first AWS request of that operation after the banner (whatever
    its status: a request held back by a queued fault counts, so the kill lands before it
    took effect). Returns (killed, Run)."""
    start_mark = mark()
    started = time.monotonic()
    command = [os.path.join(VENV_BIN, 'ansible-playbook'), playbook] + list(args)
    proc = subprocess.Popen(command, cwd=ROOT, env=playbook_env(env_extra), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    task_mark = []
    banner = ' : %s' % task  # TASK [<role> : <task name ...>]; a prefix of the name is enough

    task_over = []

    def reader():
        for line in proc.stdout:
            lines.append(line)
            if not line.startswith('TASK ['):
                continue
            if not task_mark and (banner in line or line.startswith('TASK [%s' % task)):
                task_mark.append(mark())
            elif task_mark and not task_over:
                task_over.append(True)  # the next task started: changes from now on are not the task's

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    killed = False
    deadline = time.monotonic() + scaled(timeout)
    while proc.poll() is None and time.monotonic() < deadline:
        # A named operation is the kill point whatever task sends it (the one after a task's last change).
        if task_mark and (operation or not task_over):
            since = task_mark[0]
            if operation:
                hit = any(r.get('operation') == operation for r in aws_requests(since))
            elif trigger == 'aws':
                hit = any(r.get('mutating') for r in aws_requests(since))
            else:
                hit = bool(kube_writes(since))
            if hit:
                victims = kill_tree(proc.pid)
                killed = True
                break
        time.sleep(0.02)
    if proc.poll() is None and not killed:
        victims = kill_tree(proc.pid)
    proc.wait()
    if killed:
        gone_by = time.monotonic() + scaled(5)
        while any(_running(p) for p in victims) and time.monotonic() < gone_by:
            time.sleep(0.05)
        survivors = [p for p in victims if _running(p)]
        if survivors:
            raise AssertionError('processes of the killed run still run: %s' % survivors)
    thread.join(timeout=scaled(10))
    run = Run(command[1:], proc.returncode, ''.join(lines), Activity(start_mark), time.monotonic() - started)
    return killed, run


# --- fault injection --------------------------------------------------------------------------

def _faults_request(method, body=None):
    url = os.environ['AWS_ENDPOINT_URL'].rstrip('/') + '/_sandbox/faults'
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body is not None else None,
                                     headers={'Content-Type': 'application/json'})
    with urllib.request.urlopen(request, timeout=scaled(10)) as response:
        return json.loads(response.read() or b'null')


def queue_faults(specs):
    return _faults_request('POST', list(specs))


def queued_faults():
    return _faults_request('GET')


def clear_faults():
    return _faults_request('DELETE')


# --- sandbox components (through the components' own pid files and `up`) ----------------------

def _component(script, action):
    env = dict(os.environ, REPO_ROOT=ROOT, SANDBOX_DIR=sandbox_dir(),
               SANDBOX_PYTHON=os.path.join(VENV_BIN, 'python'))
    env.setdefault('SANDBOX_CACHE', os.path.join(os.path.expanduser('~'), '.cache', 'genai-stack'))
    subprocess.run(['bash', os.path.join(ROOT, 'sandbox', 'components', script), action], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=scaled(300))


def _pid(name):
    path = os.path.join(sandbox_dir(), 'kube', 'run', name + '.pid')
    with open(path, encoding='ascii') as handle:
        return int(handle.read().strip())


def _alive(pid):
    return os.path.exists('/proc/%d' % pid)


def stop_component_process(name, sig=signal.SIGKILL):
    """Kill one process of the sandbox (kube-apiserver, registry, ...) by its pid file."""
    pid = _pid(name)
    os.kill(pid, sig)
    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        if not _alive(pid):
            return pid
        time.sleep(0.05)
    raise AssertionError('%s (pid %d) did not stop' % (name, pid))


def start_kube():
    """20-kube.sh up starts what is not running (its start_proc skips live processes)."""
    _component('20-kube.sh', 'up')


def start_registry():
    _component('30-registry.sh', 'up')


def component_running(name):
    try:
        return _alive(_pid(name))
    except (OSError, ValueError):
        return False


def process_state(pid):
    """The state letter of /proc/<pid>/stat ('T': stopped by a signal), None when gone."""
    try:
        with open('/proc/%d/stat' % pid, encoding='ascii', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def process_running(pid):
    return _running(pid)


def suspend_component(name):
    """SIGSTOP one process of the sandbox by its pid file; returns its pid once it is stopped.

    The caller resumes it with resume_component in a `finally`; if the test process itself
    dies first (SIGKILL, a CI timeout), the next `sandboxctl up` resumes every stopped process
    of the sandbox (tests/sandbox/live/test_up_resumes_stopped_parts.py)."""
    pid = _pid(name)
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + scaled(10)
    while process_state(pid) != 'T':
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGCONT)
            raise AssertionError('%s (pid %d) did not stop: state %r' % (name, pid, process_state(pid)))
        time.sleep(0.02)
    return pid


def resume_component(pid):
    """SIGCONT a process suspend_component stopped, and wait until it runs again."""
    os.kill(pid, signal.SIGCONT)
    deadline = time.monotonic() + scaled(10)
    while process_state(pid) == 'T':
        if time.monotonic() > deadline:
            raise AssertionError('pid %d is still stopped after SIGCONT' % pid)
        time.sleep(0.02)


# --- counting what exists ---------------------------------------------------------------------

def kubectl(*args, kubeconfig=None, check=True):
    command = [os.environ.get('KUBECTL_BIN', 'kubectl')] + list(args)
    if kubeconfig:
        command[1:1] = ['--kubeconfig', kubeconfig]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=scaled(120))


def kubectl_json(*args, **kwargs):
    return json.loads(kubectl(*(list(args) + ['-o', 'json']), **kwargs).stdout)


def helm_releases(namespace):
    """Every release in the namespace, whatever its status (helm list -a)."""
    out = subprocess.run([os.environ.get('HELM_BIN', 'helm'), 'list', '-a', '-n', namespace, '-o', 'json'],
                         capture_output=True, text=True, check=True, timeout=scaled(120)).stdout
    return json.loads(out or '[]')


def helm_history(name, namespace):
    proc = subprocess.run([os.environ.get('HELM_BIN', 'helm'), 'history', name, '-n', namespace, '-o', 'json'],
                          capture_output=True, text=True, check=False, timeout=scaled(120))
    return json.loads(proc.stdout) if proc.returncode == 0 else []


# --- counts for docs/security.md ---------------------------------------------------------------
# One run's counts, in tests/output/reliability/counts.json: started afresh by every session
# (start_counts, from conftest.py), so nothing carries over from an earlier run, and taken only
# from tests that passed: record() and record_item() keep a test's values pending until conftest's
# hooks report the test's outcome (test_finished); the values of a test that failed, errored or
# was skipped are dropped. record_finding() is for what a check found (a leak), which counts
# whatever the outcome of the test that found it. tests/docs/security_counts.py renders the
# numbers of docs/security.md from this file.

# RELIABILITY_COUNTS: another file, for the unit tests of this counting (tests/docs/test_generated_docs.py).
COUNTS_PATH = os.environ.get('RELIABILITY_COUNTS') or os.path.join(OUTPUT_DIR, 'counts.json')
_COUNTS = {}
_PENDING = {}
CURRENT_TEST = None   # the node id of the running test, set by conftest.py


def start_counts(run_info):
    """A new run: forget every count, write the run's description."""
    _COUNTS.clear()
    _PENDING.clear()
    _COUNTS.update({'run': dict(run_info), 'tests': {}})
    _write_counts()


def update_run(**values):
    _COUNTS.setdefault('run', {}).update(values)
    _write_counts()


def _pending(kind, section, values):
    if CURRENT_TEST is None:
        # A fixture's values would belong to no test's outcome: record from the test instead.
        raise RuntimeError('record() outside a test (section %r): record after the assertions of a test' % section)
    _PENDING.setdefault(CURRENT_TEST, []).append((kind, section, values))


def record(section, **values):
    """Set counts of `section`, kept if the calling test passes."""
    _pending('set', section, values)


def record_item(section, key, item):
    """Append `item` to the list `key` of `section`, kept if the calling test passes."""
    _pending('add', section, {key: item})


def record_finding(section, key, item):
    """Append what a check found to `section`.`key` at once, whatever the test's outcome."""
    _apply('add', section, {key: item})
    _write_counts()


def test_finished(nodeid, outcome):
    """The test's outcome (passed, failed, error, skipped): its pending counts are kept only if passed."""
    _COUNTS.setdefault('tests', {})[nodeid] = outcome
    for kind, section, values in _PENDING.pop(nodeid, []):
        if outcome == 'passed':
            _apply(kind, section, values)
    _write_counts()


test_finished.__test__ = False   # not a test, despite its name (pytest collects test_* from imports)


def counts():
    """A copy of this run's counts so far."""
    return json.loads(json.dumps(_COUNTS))


def _apply(kind, section, values):
    target = _COUNTS.setdefault(section, {})
    for key, value in values.items():
        if kind == 'set':
            target[key] = value
        else:
            target.setdefault(key, []).append(value)


def _write_counts():
    os.makedirs(os.path.dirname(COUNTS_PATH), exist_ok=True)
    with open(COUNTS_PATH + '.tmp', 'w', encoding='utf-8') as handle:
        json.dump(_COUNTS, handle, indent=2, sort_keys=True, default=str)
    os.replace(COUNTS_PATH + '.tmp', COUNTS_PATH)


def faults_answered(runs, service, operation):
    """The injected faults the journal shows `operation` answered with, the first three requests of
    each run that sent it (the order the fault tests assert)."""
    found = []
    for run in runs:
        requests = [r for r in run.activity.requests if r.get('service') == service and r.get('operation') == operation]
        found += [r.get('fault') for r in requests[:3] if r.get('fault')]
    return found


def reruns_past_kill(killed, final_rc):
    """Of a chain of runs, each the re-run of the one before: how many kills were followed by a run
    that got past the killed point (the next run was killed at a later point, or the final run
    after the chain succeeded)."""
    following = list(killed[1:]) + [final_rc == 0]
    return sum(1 for was_killed, next_ok in zip(killed, following) if was_killed and next_ok)
