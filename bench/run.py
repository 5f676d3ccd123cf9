#!/usr/bin/env python
"""genai.stack benchmarks (`make bench`): the project side by side with the upstream
collections, the manual AWS CLI procedure, a fleet of clusters and the whole site.

    python bench/run.py                      all comparisons, in a private sandbox (16 clusters,
                                             Kubernetes control planes for the first 4)
    python bench/run.py --only gpu,helm      some of: gpu manual fleet helm site
    python bench/run.py --smoke              every harness once at its smallest size against the
                                             running sandbox (.sandbox/env); make test. About 2 min
                                             on stand-in charts; on the vendors' charts the site's
                                             converge and teardown take 15 min or more on 2 cores
    python bench/run.py --docs-only          regenerate docs/benchmarks.{md,png} from the latest
                                             results file

Results: bench/results/<UTC timestamp>.json (smoke: bench/results/smoke/), then
docs/benchmarks.md and docs/benchmarks.png from the latest full results.

Attribution: AWS requests are counted per measured command through bench/awsproxy.py (the
measured process alone talks to it), because the sandbox journal does not say who made a
request and the node mirror polls the same read operations. The journal window is read too and
the difference reported as `aws_requests_other`. Kubernetes writes are the audit log's write
verbs by the admin user ($SANDBOX_KUBE_ADMIN_USER), which excludes the node mirror and the
control plane's own controllers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'tools'))

import awsproxy  # noqa: E402
import charts  # noqa: E402

COMPARISONS = ('gpu', 'manual', 'fleet', 'helm', 'site')
FLEET_SIZES = (1, 2, 4, 16)
# Fleet sizes up to this run cluster_gpu's Kubernetes steps too, each host against its own cluster's
# API server (eks_connection); larger ones stay AWS-only. The private sandbox starts control planes
# for this many clusters only (SANDBOX_KUBE_CLUSTERS): each further one costs ~0.5 GB and CPU.
KUBE_FLEET_MAX = 4
# The identity the sandbox env's AWS keys belong to: an EKS token of theirs is this user on the API servers.
IAM_ADMIN = 'arn:aws:iam::123456789012:user/sandbox-admin'
# Every bench run with the device plugin installs it here, so a smoke run on the shared sandbox
# never touches (nor, in its teardown, removes) the nvidia-device-plugin namespace of site.yml.
BENCH_DEVICE_PLUGIN_NAMESPACE = 'bench-nvidia-device-plugin'
MEMORY_SAMPLE_S = 0.5
# The Kubernetes processes of a sandbox control plane (sandbox/components/20-kube.sh); etcd is the first cluster's.
CONTROL_PLANE_PROCESSES = ('etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok')
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
AWSCLI_PIN = 'awscli==1.46.2'
MATPLOTLIB_PIN = 'matplotlib==3.11.2'
BENCH_VENV = os.environ.get('GENAI_BENCH_VENV') or os.path.join(
    os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'genai-stack', 'bench-venv')
NODE_ROLE_ARN = 'arn:aws:iam::123456789012:role/sandbox-eks-node-role'
WRITE_VERBS = {'create', 'update', 'patch', 'delete', 'deletecollection'}
# Minimum reads of the resources cluster_gpu manages, per cluster (see docs/benchmarks.md).
MIN_READS_MANAGED = {
    'iam:GetRolePolicy': 'the inline policy document on the node role',
    'eks:DescribeNodegroup (GPU)': 'GPU node group: scaling, labels, taints, tags, template id+version, ASG name',
    'ec2:DescribeLaunchTemplateVersions': 'the in-use template version (by id + version from the node group)',
    'autoscaling:DescribePolicies': 'the four step policies, one call filtered by ASG and names',
    'cloudwatch:DescribeAlarms': 'the four alarms, one call with AlarmNames',
    'eks:DescribeNodegroup (CPU)': 'labels of the CPU node group',
}
MIN_READS_INPUTS = {
    'eks:DescribeCluster': 'endpoint, CA, service CIDR and version the user data and AMI depend on',
    'ssm:GetParameter': 'the recommended AMI id for that version',
}
TARGETS = [
    ('noop_zero_mutations', 'A no-op re-run makes zero mutating AWS requests and zero Kubernetes writes'),
    ('noop_time_half_upstream', 'No-op re-run wall time <= 0.5x the upstream equivalent (cluster_gpu vs upstream playbook)'),
    ('noop_reads_near_minimum', 'No-op re-run AWS requests <= 1.5x the minimum needed to read the managed resources'),
    ('helm_noop_no_revision', 'A no-op helm_release creates no revision'),
    ('helm_noop_time_half_upstream', 'A no-op helm_release takes <= 0.5x kubernetes.core.helm\'s time'),
    ('fleet_sublinear', 'Fleet wall time grows less than linearly with clusters'),
]


# ---------------------------------------------------------------------------------------------
# Environment

def read_env_file(path):
    env = {}
    with open(path, encoding='utf-8') as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith('export '):
                continue
            key, _, value = line[len('export '):].partition('=')
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in '"\'':
                value = value[1:-1]
            env[key] = os.path.expandvars(value) if '$' in value else value
    return env


def start_private_sandbox(sandbox_dir, clusters, log, chart_dir='', kube_clusters=1):
    """chart_dir: the vendors' chart packages its mirror is filled from ('' for stand-ins only).
    kube_clusters: Kubernetes control planes for the first that many EKS clusters only
    (SANDBOX_KUBE_CLUSTERS; a sandbox without that knob starts one for every cluster, and
    fleet_control_planes() reads which it has)."""
    env = dict(os.environ, SANDBOX_DIR=sandbox_dir, SANDBOX_EKS_CLUSTERS=str(clusters), GENAI_STACK_CHART_DIR=chart_dir,
               SANDBOX_KUBE_CLUSTERS=str(min(kube_clusters, clusters)))
    log('starting a private sandbox in %s with %d clusters (control planes for %d), charts from %s' % (
        sandbox_dir, clusters, min(kube_clusters, clusters), chart_dir or 'stand-ins only'))
    subprocess.run([os.path.join(ROOT, 'sandbox', 'sandboxctl'), 'up'], env=env, check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return read_env_file(os.path.join(sandbox_dir, 'env'))


def stop_private_sandbox(sandbox_dir, log):
    log('stopping the private sandbox %s' % sandbox_dir)
    subprocess.run([os.path.join(ROOT, 'sandbox', 'sandboxctl'), 'down'], env=dict(os.environ, SANDBOX_DIR=sandbox_dir),
                   cwd=ROOT, stdout=subprocess.DEVNULL, check=False)


def ensure_bench_venv(log):
    """A bench-only venv with the AWS CLI (it vendors its own botocore) and matplotlib."""
    aws = os.path.join(BENCH_VENV, 'bin', 'aws')
    py = os.path.join(BENCH_VENV, 'bin', 'python')
    if not (os.path.exists(aws) and subprocess.run([py, '-c', 'import matplotlib'], capture_output=True).returncode == 0):
        log('creating %s (%s, %s)' % (BENCH_VENV, AWSCLI_PIN, MATPLOTLIB_PIN))
        base = shutil.which('python3.11') or sys.executable
        subprocess.run([base, '-m', 'venv', BENCH_VENV], check=True)
        subprocess.run([os.path.join(BENCH_VENV, 'bin', 'pip'), 'install', '-q', AWSCLI_PIN, MATPLOTLIB_PIN], check=True)
    return aws, py


def versions(env):
    out = {'python': platform.python_version(), 'platform': platform.platform()}

    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    core = cmd([os.path.join(VENV_BIN, 'ansible'), '--version']) or ''
    match = re.search(r'core ([\d.]+)', core)
    out['ansible_core'] = match.group(1) if match else core.splitlines()[0:1]
    try:
        from importlib.metadata import version as dist_version
        out['ansible'] = dist_version('ansible')
        out['boto3'] = dist_version('boto3')
        out['botocore'] = dist_version('botocore')
    except Exception:  # noqa: BLE001
        pass
    collections = {}
    listing = cmd([os.path.join(VENV_BIN, 'ansible-galaxy'), 'collection', 'list', '--format', 'json']) or '{}'
    try:
        for _path, entries in json.loads(listing).items():
            for name, meta in entries.items():
                if name in ('genai.stack', 'amazon.aws', 'community.aws', 'kubernetes.core') and name not in collections:
                    collections[name] = meta.get('version')
    except ValueError:
        pass
    out['collections'] = collections
    helm = env.get('HELM_BIN') or shutil.which('helm', path=env.get('PATH'))
    out['helm'] = cmd([helm, 'version', '--short']) if helm else None
    aws = os.path.join(BENCH_VENV, 'bin', 'aws')
    out['aws_cli'] = cmd([aws, '--version']) if os.path.exists(aws) else None
    out['git_commit'] = cmd(['git', '-C', ROOT, 'rev-parse', '--short', 'HEAD'])
    out['git_dirty'] = bool(cmd(['git', '-C', ROOT, 'status', '--porcelain', '--', 'plugins', 'roles', 'playbooks']))
    out['cpus'] = os.cpu_count()
    return out


# ---------------------------------------------------------------------------------------------
# Measurement

def _count_lines(path):
    if not path or not os.path.exists(path):
        return 0
    with open(path, 'rb') as handle:
        return sum(1 for _ in handle)


def _read_from(path, start):
    if not path or not os.path.exists(path):
        return []
    out = []
    with open(path, encoding='utf-8') as handle:
        for index, line in enumerate(handle):
            if index >= start and line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def _children_map():
    """{ppid: [pid, ...]} of every process now."""
    tree = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry, 'rb') as handle:
                stat = handle.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields after the last ')' are fixed.
        fields = stat[stat.rfind(b')') + 2:].split()
        if len(fields) > 1:
            tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def rss_kb(pid):
    """Resident set size of pid in KiB (0 when it is gone)."""
    try:
        with open('/proc/%d/status' % pid, encoding='ascii', errors='replace') as handle:
            for line in handle:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_kb(root):
    """(sum of the RSS of root and all its descendants, largest single RSS, processes), KiB."""
    tree = _children_map()
    todo, total, largest, count = [root], 0, 0, 0
    while todo:
        pid = todo.pop()
        rss = rss_kb(pid)
        if rss:
            total, largest, count = total + rss, max(largest, rss), count + 1
        todo.extend(tree.get(pid, ()))
    return total, largest, count


class TreeMemory:
    """Peak RSS of a process tree, sampled from /proc every MEMORY_SAMPLE_S seconds while it runs:
    the peak of the sum over the process and its descendants (ansible-playbook, its forks, the
    modules they run, helm), and the largest single process seen. A process that lives less
    than one interval between two samples can be missed."""

    def __init__(self, pid, interval=MEMORY_SAMPLE_S):
        self.pid, self.interval = pid, interval
        self.peak_kb = self.largest_kb = self.peak_processes = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            total, largest, count = tree_rss_kb(self.pid)
            self.samples += 1
            if total > self.peak_kb:
                self.peak_kb, self.peak_processes = total, count
            self.largest_kb = max(self.largest_kb, largest)
            if self._stop.wait(self.interval):
                return

    def stop(self):
        self._stop.set()
        self._thread.join()
        return {'peak_tree_rss_mb': round(self.peak_kb / 1024.0, 1), 'peak_tree_processes': self.peak_processes,
                'largest_process_rss_mb': round(self.largest_kb / 1024.0, 1), 'samples': self.samples,
                'interval_s': self.interval}


def control_plane_rss(sandbox_dir):
    """The RSS of the sandbox's Kubernetes control planes now, from their pid files: the first
    cluster's and the shared etcd's in $SANDBOX_DIR/kube/run, each further cluster's in
    $SANDBOX_DIR/kube/clusters/NAME/run. None when the sandbox has no such directory."""
    kube = os.path.join(sandbox_dir or '', 'kube')
    if not sandbox_dir or not os.path.isdir(os.path.join(kube, 'run')):
        return None
    runs = [('sandbox', os.path.join(kube, 'run'))]
    clusters = os.path.join(kube, 'clusters')
    if os.path.isdir(clusters):
        runs += [(name, os.path.join(clusters, name, 'run')) for name in sorted(os.listdir(clusters))]
    out = {'clusters': {}, 'processes': {}}
    for name, run_dir in runs:
        total = 0
        for pid_file in sorted(os.listdir(run_dir)) if os.path.isdir(run_dir) else []:
            if not pid_file.endswith('.pid') or pid_file[:-4] not in CONTROL_PLANE_PROCESSES:
                continue  # kube/run also holds the node mirror's and the registry's
            try:
                with open(os.path.join(run_dir, pid_file), encoding='ascii') as handle:
                    rss = rss_kb(int(handle.read().strip()))
            except (OSError, ValueError):
                continue
            if rss:
                total += rss
                out['processes']['%s/%s' % (name, pid_file[:-4])] = round(rss / 1024.0, 1)
        if total:
            out['clusters'][name] = round(total / 1024.0, 1)
    out['control_planes'] = len(out['clusters'])
    out['total_mb'] = round(sum(out['clusters'].values()), 1)
    return out


def fleet_control_planes(sandbox_dir):
    """Names of the EKS clusters that have a control plane ($SANDBOX_DIR/kube/fleet.json), in
    seeded order; [] when there is no fleet file (an older sandbox: its one apiserver is not per
    cluster)."""
    try:
        with open(os.path.join(sandbox_dir or '', 'kube', 'fleet.json'), encoding='utf-8') as handle:
            return [c['name'] for c in json.load(handle)['clusters']]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def fleet_audit_logs(sandbox_dir):
    """{cluster: audit log} of every control plane in fleet.json."""
    try:
        with open(os.path.join(sandbox_dir or '', 'kube', 'fleet.json'), encoding='utf-8') as handle:
            return {c['name']: c['audit_log'] for c in json.load(handle)['clusters']}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


class Harness:
    def __init__(self, env, args, log):
        self.env = env
        self.args = args
        self.log = log
        self.proxy = awsproxy.CountingProxy(env['AWS_ENDPOINT_URL']).start()
        self.kube_user = env.get('SANDBOX_KUBE_ADMIN_USER')
        # --baseline: the collections path of the revision the no-op runs are compared with (set by main).
        self.baseline = None
        # The admin's EKS token (eks_connection) is the IAM user on the API servers.
        self.kube_users = {u for u in (self.kube_user, IAM_ADMIN) if u}
        self.journal_has_agent = None

    def close(self):
        self.proxy.stop()

    def child_env(self, extra=None):
        env = dict(os.environ)
        env.update(self.env)
        env['PATH'] = VENV_BIN + os.pathsep + self.env.get('PATH', os.environ.get('PATH', ''))
        env['AWS_ENDPOINT_URL'] = self.proxy.url
        env['ANSIBLE_FORCE_COLOR'] = '0'
        env['ANSIBLE_NOCOLOR'] = '1'
        env.update(extra or {})
        return env

    def measure(self, label, argv, extra_env=None, ansible=True, check=True, messages_of=None, audit_logs=None):
        """Run one command; wall time, AWS requests (proxy), journal window, kube writes, peak
        RSS of its process tree. messages_of: a task name prefix whose messages are kept
        (task_messages). audit_logs: {cluster: audit log} whose writes count (default: the
        first cluster's, SANDBOX_KUBE_AUDIT); with more than one, kube_writes_by_cluster too."""
        env = self.child_env(extra_env)
        if ansible:
            env['ANSIBLE_STDOUT_CALLBACK'] = 'ansible.builtin.json'
            env.pop('ANSIBLE_CALLBACKS_ENABLED', None)
            if self.args.profile:
                env['ANSIBLE_CALLBACKS_ENABLED'] = 'ansible.builtin.profile_tasks'
        jstart = _count_lines(self.env.get('SANDBOX_AWS_JOURNAL'))
        audits = audit_logs or {'sandbox': self.env.get('SANDBOX_KUBE_AUDIT')}
        astarts = {name: _count_lines(path) for name, path in audits.items()}
        pmark = self.proxy.mark()
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        popen = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        memory = TreeMemory(popen.pid)
        stdout, stderr = popen.communicate()
        wall = time.perf_counter() - t0
        memory = memory.stop()
        proc = subprocess.CompletedProcess(argv, popen.returncode, stdout, stderr)
        time.sleep(0.3)  # let the audit log catch up
        records = self.proxy.since(pmark)
        journal = _read_from(self.env.get('SANDBOX_AWS_JOURNAL'), jstart)
        writes, by_cluster = [], {}
        for name, path in audits.items():
            by_cluster[name] = 0
            for event in _read_from(path, astarts[name]):
                if event.get('stage') not in (None, 'ResponseComplete') or event.get('verb') not in WRITE_VERBS \
                        or 'dryRun=All' in (event.get('requestURI') or ''):  # a server-side dry run persists nothing
                    continue
                if self.kube_users and (event.get('user') or {}).get('username') not in self.kube_users:
                    continue
                ref = event.get('objectRef') or {}
                by_cluster[name] += 1
                writes.append('%s%s %s/%s' % ('' if len(audits) == 1 else name + ': ', event['verb'], ref.get('resource'), ref.get('name')))
        result = {'label': label, 'wall_s': round(wall, 3), 'rc': proc.returncode,
                  'loadavg_1m_before': round(load_before, 2), 'loadavg_1m_after': round(os.getloadavg()[0], 2),
                  'memory': memory}
        if len(audits) > 1:
            result['kube_writes_by_cluster'] = by_cluster
        result.update(awsproxy.summarise(records))
        result['aws_requests_journal_window'] = len(journal)
        result['aws_requests_other'] = len(journal) - len(records)
        if journal and self.journal_has_agent is None:
            self.journal_has_agent = any('user_agent' in r for r in journal)
        result['kube_writes'] = len(writes)
        result['kube_write_list'] = writes[:40]
        if ansible:
            result.update(parse_ansible_json(proc.stdout, records, messages_of))
        else:
            result['stdout_tail'] = proc.stdout[-1500:]
        if proc.returncode != 0:
            result['stderr_tail'] = (proc.stderr or '')[-3000:]
            if ansible and not result.get('failures'):
                result['stdout_tail'] = proc.stdout[-3000:]
        self.log('  %-38s %7.2f s  aws=%-4d mut=%-3d writes=%-3d changed=%s rc=%d  rss=%.0f MB  (load %.1f)' % (
            label, wall, result['aws_requests'], result['aws_mutating'], result['kube_writes'],
            result.get('tasks_changed', '-'), proc.returncode, memory['peak_tree_rss_mb'], load_before))
        if check and proc.returncode != 0:
            self.log('    failed: %s' % json.dumps(result.get('failures') or result.get('stderr_tail'))[:1500])
        return result

    def playbook(self, label, playbook, inventory=None, extra_vars=None, forks=None, check=True, extra_env=None, messages_of=None,
                 audit_logs=None):
        argv = [os.path.join(VENV_BIN, 'ansible-playbook'), playbook]
        if inventory:
            argv += ['-i', inventory]
        if forks:
            argv += ['--forks', str(forks)]
        if extra_vars:
            argv += ['-e', json.dumps(extra_vars)]
        return self.measure(label, argv, extra_env=extra_env, check=check, messages_of=messages_of, audit_logs=audit_logs)


def parse_ansible_json(stdout, records, messages_of=None):
    """Counts from the json callback: tasks changed, per-task durations and the API time in them;
    with messages_of, the messages of the tasks whose name starts so (task_messages: one per host
    that ran it, [] when every host skipped it, None when no such task ran)."""
    out = {'tasks_changed': None}
    if messages_of:
        out['task_messages'] = None
    start = stdout.find('{')
    try:
        data = json.loads(stdout[start:]) if start >= 0 else None
    except ValueError:
        data = None
    if not data:
        return out
    stats = data.get('stats') or {}
    out['tasks_changed'] = sum(h.get('changed', 0) for h in stats.values())
    out['tasks_failed'] = sum(h.get('failures', 0) for h in stats.values())
    out['hosts'] = len(stats)
    tasks, changed_tasks, failures = [], [], []
    for play in data.get('plays') or []:
        for task in play.get('tasks') or []:
            info = task.get('task') or {}
            duration = info.get('duration') or {}
            start_t, end_t = _iso(duration.get('start')), _iso(duration.get('end'))
            in_task = [r for r in records if start_t and end_t and start_t <= r['ts'] <= end_t]
            hosts = task.get('hosts') or {}
            name = info.get('name')
            if any(h.get('changed') for h in hosts.values()):
                changed_tasks.append(name)
            if messages_of and (name or '').startswith(messages_of):
                out['task_messages'] = (out['task_messages'] or []) + [
                    str(h.get('msg')) for h in hosts.values() if not h.get('skipped') and 'msg' in h]
            for host, res in hosts.items():
                if res.get('failed') or res.get('unreachable'):
                    failures.append({'task': name, 'host': host, 'msg': str(res.get('msg'))[:400]})
            if all(h.get('skipped') for h in hosts.values()) and hosts:
                continue
            tasks.append({'name': name, 'wall_s': round(end_t - start_t, 3) if start_t and end_t else None,
                          'aws_requests': len(in_task), 'aws_api_ms': round(sum(r['ms'] for r in in_task), 1)})
    out['changed_tasks'] = changed_tasks
    out['failures'] = failures
    out['task_profile'] = tasks
    # The tasks' own time (module runs), without ansible-playbook's start-up and play set-up, which
    # is the same for any playbook and hides a module's cost when the module is fast.
    out['tasks_s'] = round(sum(t['wall_s'] or 0 for t in tasks), 3)
    return out


def _iso(text):
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace('Z', '+00:00')).timestamp()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Inventories

def fleet_role_arn(cluster):
    return 'arn:aws:iam::123456789012:role/bench-node-role-%s' % cluster


def write_inventory(clusters, path=None, kube=False):
    """A fleet inventory. Each cluster has a node role of its own, as fleets normally do: with one
    role shared by all clusters, cluster_gpu's inline policy is one object written by every host at
    once (amazon.aws.iam_policy then fails with KeyError on the policy name under concurrency, and
    a teardown of one cluster removes the policy the others need); see docs/benchmarks.md.
    kube: the role's Kubernetes steps on (device plugin release, GPU Node check), as
    inventories/sandbox has them, each host connected to its own cluster's API server by
    genai.stack.eks_connection alone (the chart from the sandbox's chart mirror)."""
    names = ['sandbox'] + ['sandbox-%d' % i for i in range(2, clusters + 1)]
    path = path or os.path.join(BENCH, 'inventories', 'fleet-%d.yml' % clusters)
    lines = ['---', '# Generated by bench/run.py: %d EKS cluster(s) of the benchmark sandbox, one host each,' % clusters,
             '# each with a node role of its own (bench/run.py creates them in the sandbox).']
    if kube:
        lines += ['# Kubernetes steps on: each host\'s device plugin release and GPU Node check go to its own',
                  '# cluster\'s API server, through the eks_connection lookup (DescribeCluster + an EKS token).']
    else:
        lines += ['# AWS work only: cluster_gpu\'s Kubernetes steps are off.']
    lines += ['all:', '  vars:', '    ansible_connection: local', '    ansible_python_interpreter: "{{ ansible_playbook_python }}"',
              '    cluster_gpu_cpu_nodegroup_name: "{{ inventory_hostname }}-cpu"']
    if kube:
        lines += ['    genai_stack_kube: "{{ lookup(\'genai.stack.eks_connection\', inventory_hostname) }}"',
                  '    cluster_gpu_kubernetes_enabled: true',
                  '    cluster_gpu_verify_timeout: 60',
                  '    cluster_gpu_device_plugin_enabled: true',
                  '    cluster_gpu_device_plugin_namespace: %s' % BENCH_DEVICE_PLUGIN_NAMESPACE,
                  '    genai_stack_chart_mirror: "{{ lookup(\'ansible.builtin.env\', \'SANDBOX_CHART_MIRROR\') }}"',
                  '    genai_stack_chart_mirror_username: "{{ lookup(\'ansible.builtin.env\', \'SANDBOX_REGISTRY_USER\') }}"',
                  '    genai_stack_chart_mirror_password: "{{ lookup(\'ansible.builtin.env\', \'SANDBOX_REGISTRY_PASSWORD\') }}"',
                  '    genai_stack_chart_mirror_plain_http: true']
    lines += ['  children:', '    eks_clusters:', '      hosts:']
    for name in names:
        lines += ['        %s:' % name, '          cluster_gpu_node_role_arn: %s' % fleet_role_arn(name)]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(lines) + '\n')
    return path


def decoy_kubeconfig(path):
    """A kubeconfig whose only cluster listens nowhere: the fleet's Kubernetes runs get it as
    KUBECONFIG, so a call that did not go through the host's eks_connection fails instead of
    landing, unseen, on the first cluster."""
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n'
                     'clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:9"}}]\n'
                     'users: [{name: nobody, user: {token: none}}]\n'
                     'contexts: [{name: nowhere, context: {cluster: nowhere, user: nobody}}]\n')
    return path


def ensure_fleet_roles(env, clusters):
    """Node roles bench-node-role-<cluster> in the sandbox (setup, not measured: straight to the
    emulator, not through the counting proxy)."""
    import boto3
    iam = boto3.client('iam', endpoint_url=env['AWS_ENDPOINT_URL'], region_name=env.get('AWS_REGION', 'us-east-2'),
                       aws_access_key_id=env.get('AWS_ACCESS_KEY_ID', 'testing'),
                       aws_secret_access_key=env.get('AWS_SECRET_ACCESS_KEY', 'testing'))
    trust = json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Principal': {'Service': 'ec2.amazonaws.com'},
                                                                'Action': 'sts:AssumeRole'}]})
    for cluster in clusters:
        name = fleet_role_arn(cluster).rsplit('/', 1)[1]
        try:
            iam.get_role(RoleName=name)
        except iam.exceptions.NoSuchEntityException:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
            for policy in ('AmazonEKSWorkerNodePolicy', 'AmazonEKS_CNI_Policy', 'AmazonEC2ContainerRegistryReadOnly'):
                iam.attach_role_policy(RoleName=name, PolicyArn='arn:aws:iam::aws:policy/%s' % policy)


def single_inventory(cluster, path):
    lines = ['---', 'all:', '  vars:', '    ansible_connection: local', '    ansible_python_interpreter: "{{ ansible_playbook_python }}"',
             '    cluster_gpu_node_role_arn: %s' % NODE_ROLE_ARN,
             '    cluster_gpu_cpu_nodegroup_name: "{{ inventory_hostname }}-cpu"',
             '  children:', '    eks_clusters:', '      hosts:', '        %s:' % cluster]
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write('\n'.join(lines) + '\n')
    return path


# ---------------------------------------------------------------------------------------------
# Comparisons

CLUSTER_GPU = os.path.join(ROOT, 'playbooks', 'cluster_gpu.yml')
UPSTREAM = os.path.join(BENCH, 'playbooks', 'upstream_cluster_gpu.yml')


def ours_vars(smoke, state='present'):
    extra = {'cluster_gpu_nodegroup_name': 'bench-gpu', 'cluster_gpu_node_policy_name': 'bench-cloudwatch-metrics',
             'cluster_gpu_state': state}
    if smoke:
        extra['cluster_gpu_cpu_nodegroup_name'] = ''
    return extra


def upstream_vars(smoke, state='present'):
    extra = {'upstream_state': state}
    if smoke:
        extra['upstream_cpu_nodegroup'] = ''
    return extra


def run_gpu(h, clusters, smoke, repeat, tmp):
    """Comparison 1: cluster_gpu vs the upstream playbook: first converge, no-op re-runs."""
    ours_cluster, up_cluster = clusters[0], clusters[1] if len(clusters) > 1 else clusters[0]
    inv_ours = single_inventory(ours_cluster, os.path.join(tmp, 'inv-ours.yml'))
    inv_up = single_inventory(up_cluster, os.path.join(tmp, 'inv-upstream.yml'))
    res = {'clusters': {'ours': ours_cluster, 'upstream': up_cluster}, 'ours': {}, 'upstream': {}}
    h.log('gpu: cluster_gpu on %s, upstream playbook on %s' % (ours_cluster, up_cluster))
    try:
        res['ours']['first'] = h.playbook('ours first converge', CLUSTER_GPU, inv_ours, ours_vars(smoke))
        res['upstream']['first'] = h.playbook('upstream first converge', UPSTREAM, inv_up, upstream_vars(smoke), check=False)
        res['ours']['noop'], res['upstream']['noop'] = [], []
        if h.baseline:  # the same no-op from the baseline revision's collection, on the same cluster
            res['baseline'] = {'noop': []}
            baseline_env = {'ANSIBLE_COLLECTIONS_PATH': collections_path(h.baseline)}
        for index in range(repeat):  # interleaved, so load drift hits both sides alike
            if h.baseline and index % 2:
                res['baseline']['noop'].append(h.playbook('baseline no-op re-run', CLUSTER_GPU, inv_ours, ours_vars(smoke),
                                                          extra_env=baseline_env))
            res['ours']['noop'].append(h.playbook('ours no-op re-run', CLUSTER_GPU, inv_ours, ours_vars(smoke)))
            if h.baseline and not index % 2:
                res['baseline']['noop'].append(h.playbook('baseline no-op re-run', CLUSTER_GPU, inv_ours, ours_vars(smoke),
                                                          extra_env=baseline_env))
            res['upstream']['noop'].append(h.playbook('upstream no-op re-run', UPSTREAM, inv_up, upstream_vars(smoke), check=False))
    finally:
        h.playbook('(teardown ours)', CLUSTER_GPU, inv_ours, ours_vars(smoke, 'absent'), check=False)
        h.playbook('(teardown upstream)', UPSTREAM, inv_up, upstream_vars(smoke, 'absent'), check=False)
    return res


def run_candidate(h, cluster, role_path, repeat, tmp):
    """A candidate version of the role (a scratch copy outside the repo, for the lead's proposals)
    against the current one: first converge, then interleaved no-op re-runs."""
    playbook = os.path.join(tmp, 'candidate.yml')
    with open(playbook, 'w', encoding='utf-8') as handle:
        handle.write('- name: Candidate cluster_gpu\n  hosts: eks_clusters\n  gather_facts: false\n  roles:\n'
                     '    - role: %s\n' % os.path.abspath(role_path))
    inv = single_inventory(cluster, os.path.join(tmp, 'inv-candidate.yml'))
    res = {'cluster': cluster, 'role': os.path.abspath(role_path), 'current': {'noop': []}, 'candidate': {'noop': []}}
    h.log('candidate role %s on %s' % (role_path, cluster))
    try:
        res['candidate']['first'] = h.playbook('candidate first converge', playbook, inv, ours_vars(False))
        for _ in range(repeat):
            res['candidate']['noop'].append(h.playbook('candidate no-op re-run', playbook, inv, ours_vars(False)))
            res['current']['noop'].append(h.playbook('current no-op re-run', CLUSTER_GPU, inv, ours_vars(False)))
    finally:
        h.playbook('(teardown candidate)', CLUSTER_GPU, inv, ours_vars(False, 'absent'), check=False)
    return res


def run_manual(h, cluster, smoke, aws_cli):
    """Comparison 3: the guide's AWS CLI commands as a script, first converge only."""
    script = os.path.join(BENCH, 'manual', 'gpu_guide.sh')
    env = {'AWS_CLI': aws_cli, 'NODE_ROLE_ARN': NODE_ROLE_ARN}
    if smoke:
        env['CPU_NODEGROUP'] = ''
    h.log('manual: AWS CLI script on %s' % cluster)
    res = {'cluster': cluster, 'aws_cli': aws_cli}
    try:
        res['first'] = h.measure('manual (AWS CLI) first run', ['bash', script, 'create', cluster], extra_env=env, ansible=False)
        res['commands'] = res['first']['aws_requests']
        # The guide is not idempotent: a second run fails at create-launch-template.
        if not smoke:
            res['rerun'] = h.measure('manual (AWS CLI) second run', ['bash', script, 'create', cluster], extra_env=env,
                                     ansible=False, check=False)
    finally:
        h.measure('(teardown manual)', ['bash', script, 'delete', cluster], extra_env=env, ansible=False, check=False)
    return res


def fleet_mode(size, control_planes):
    """('kubernetes', None) when a fleet of size runs the Kubernetes steps, else ('aws-only', why)."""
    if size > KUBE_FLEET_MAX:
        return 'aws-only', 'more than %d clusters: AWS work only' % KUBE_FLEET_MAX
    names = ['sandbox'] + ['sandbox-%d' % i for i in range(2, size + 1)]
    missing = [n for n in names if n not in control_planes]
    if missing:
        return 'aws-only', 'no Kubernetes control plane for %s in the sandbox' % ', '.join(missing)
    return 'kubernetes', None


def run_fleet(h, sizes, smoke, reuse_one=None, sandbox_dir=None, tmp=None):
    """Comparison 4: cluster_gpu over 1, 2, 4 (with its Kubernetes steps, each host on its own
    cluster's API server) and 16 clusters (AWS work only), forks = clusters. Each run's peak RSS
    of the ansible-playbook tree; for the Kubernetes sizes, the control planes' RSS after the
    first converge."""
    control_planes = fleet_control_planes(sandbox_dir)
    audits = fleet_audit_logs(sandbox_dir)
    res = {'sizes': {}, 'node_roles': 'one per cluster (bench-node-role-<cluster>)', 'kube_fleet_max': KUBE_FLEET_MAX,
           'control_planes': control_planes,
           'memory_method': 'peak over samples every %.1f s of the summed RSS (/proc/PID/status VmRSS) of ansible-playbook '
                            'and all its descendants; control planes: RSS of the processes in the pid files under '
                            '$SANDBOX_DIR/kube/run and kube/clusters/*/run, read once after the first converge' % MEMORY_SAMPLE_S}
    modes = {size: fleet_mode(size, control_planes) for size in sizes}
    reused = {size for size in sizes if size == 1 and reuse_one is not None and modes[size][0] == 'aws-only'}
    if set(sizes) - reused:
        ensure_fleet_roles(h.env, ['sandbox'] + ['sandbox-%d' % i for i in range(2, max(sizes) + 1)])
    for size in sizes:
        mode, why = modes[size]
        kube = mode == 'kubernetes'
        inv = write_inventory(size, kube=kube)
        if size in reused:
            res['sizes']['1'] = {'first': reuse_one['first'], 'noop': reuse_one['noop'][0], 'reused_from': 'gpu comparison',
                                 'mode': mode, 'mode_reason': why}
            continue
        h.log('fleet: %d cluster(s), forks %d, %s' % (size, max(size, 1), mode))
        entry = {'inventory': os.path.relpath(inv, ROOT), 'forks': max(size, 1), 'mode': mode}
        if why:
            entry['mode_reason'] = why
        kwargs = {'forks': max(size, 1)}
        if kube:
            names = ['sandbox'] + ['sandbox-%d' % i for i in range(2, size + 1)]
            kwargs['audit_logs'] = {n: audits[n] for n in names if n in audits}
            # The EKS tokens are presigned STS URLs for the emulator itself (botocore's AWS_ENDPOINT_URL_STS wins
            # over AWS_ENDPOINT_URL): the token webhook accepts URLs for the emulator or STS, not the counting
            # proxy. Presigning sends nothing, and the role makes no STS call, so no request goes uncounted.
            kwargs['extra_env'] = {'KUBECONFIG': decoy_kubeconfig(os.path.join(tmp or '/tmp', 'decoy-kubeconfig-%d' % os.getpid())),
                                   'AWS_ENDPOINT_URL_STS': h.env['AWS_ENDPOINT_URL']}
        try:
            entry['first'] = h.playbook('fleet %2d first converge' % size, CLUSTER_GPU, inv, ours_vars(smoke), **kwargs)
            if kube:
                entry['control_planes_rss'] = control_plane_rss(sandbox_dir)
            entry['noop'] = h.playbook('fleet %2d no-op re-run' % size, CLUSTER_GPU, inv, ours_vars(smoke), **kwargs)
        finally:
            h.playbook('(teardown fleet %d)' % size, CLUSTER_GPU, inv, ours_vars(smoke, 'absent'), check=False, **kwargs)
        res['sizes'][str(size)] = entry
    # The AWS-only sizes' growth needs a one-cluster AWS-only run: the gpu comparison's when it ran,
    # else one of the fleet's own (a few seconds), so `--only fleet` judges both modes' growth.
    if any(e.get('mode') == 'aws-only' and int(k) > 1 for k, e in res['sizes'].items()) \
            and (res['sizes'].get('1') or {}).get('mode') != 'aws-only':
        if reuse_one is not None:
            res['aws_only_1'] = {'first': reuse_one['first'], 'noop': reuse_one['noop'][0], 'reused_from': 'gpu comparison',
                                 'mode': 'aws-only'}
        else:
            res['aws_only_1'] = _fleet_aws_only_1(h, smoke)
    return res


def _fleet_aws_only_1(h, smoke):
    """One cluster, AWS work only: the baseline of the AWS-only sizes' growth when no gpu comparison ran."""
    inv = write_inventory(1, path=os.path.join(BENCH, 'inventories', 'fleet-1-aws-only.yml'), kube=False)
    h.log('fleet: 1 cluster, forks 1, aws-only (the baseline of the AWS-only sizes)')
    entry = {'inventory': os.path.relpath(inv, ROOT), 'forks': 1, 'mode': 'aws-only'}
    try:
        entry['first'] = h.playbook('fleet  1 first converge (aws-only)', CLUSTER_GPU, inv, ours_vars(smoke))
        entry['noop'] = h.playbook('fleet  1 no-op re-run (aws-only)', CLUSTER_GPU, inv, ours_vars(smoke))
    finally:
        h.playbook('(teardown fleet 1, aws-only)', CLUSTER_GPU, inv, ours_vars(smoke, 'absent'), check=False)
    return entry


def helm_history(h, namespace):
    helm = h.env.get('HELM_BIN') or 'helm'
    proc = subprocess.run([helm, 'history', 'gpu-echo', '-n', namespace, '-o', 'json'], env=h.child_env(),
                          capture_output=True, text=True)
    try:
        return len(json.loads(proc.stdout)) if proc.returncode == 0 else 0
    except ValueError:
        return 0


# What a copy of the collection needs to run its roles and modules.
COLLECTION_PARTS = ('plugins', 'roles', 'meta', 'galaxy.yml')


def collection_copy(tmp, name, ref=None):
    """A copy of the collection in its own collections path (returned; put it first in
    ANSIBLE_COLLECTIONS_PATH): this checkout's files, or those of git revision `ref`. The bench
    runs the same no-op with a copy and with the checkout, interleaved, to weigh a difference."""
    base = os.path.join(tmp, name)
    target = os.path.join(base, 'ansible_collections', 'genai', 'stack')
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(target)
    if ref:
        archive = subprocess.run(['git', 'archive', '--format=tar', ref] + list(COLLECTION_PARTS), cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(['tar', '-x', '-C', target], input=archive, capture_output=True, check=True)
        return base
    for part in COLLECTION_PARTS:
        source = os.path.join(ROOT, part)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target, part), symlinks=True)
        else:
            shutil.copy(source, target)
    return base


def collections_path(base):
    """ANSIBLE_COLLECTIONS_PATH that finds a copy of the collection before the checkout."""
    return os.pathsep.join([base, os.path.join(ROOT, '.collections')])


def run_helm(h, repeat, tmp, smoke=False):
    """Comparison 2: genai.stack.helm_release vs kubernetes.core.helm (with --baseline, also ours from
    the baseline revision's collection: side `baseline`, the same playbook and release)."""
    sides = {'ours': (os.path.join(BENCH, 'playbooks', 'helm_ours.yml'), 'bench-helm-ours'),
             'upstream': (os.path.join(BENCH, 'playbooks', 'helm_upstream.yml'), 'bench-helm-upstream')}
    helm_env = {'HELM_REGISTRY_CONFIG': os.path.join(tmp, 'helm-registry.json'),
                'HELM_REPOSITORY_CONFIG': os.path.join(tmp, 'helm-repositories.yaml'),
                'HELM_REPOSITORY_CACHE': os.path.join(tmp, 'helm-cache'),
                'HELM_CACHE_HOME': os.path.join(tmp, 'helm-cache')}
    res = {'ours': {}, 'upstream': {}}
    probe = subprocess.run([os.path.join(VENV_BIN, 'ansible-doc'), '-t', 'module', 'genai.stack.helm_release'],
                           env=h.child_env(), cwd=ROOT, capture_output=True, text=True)
    if probe.returncode != 0:
        res['ours']['pending'] = 'genai.stack.helm_release is not loadable yet: %s' % probe.stderr.strip()[-300:]
    h.log('helm: gpu-echo from oci://%s/charts' % h.env.get('SANDBOX_REGISTRY'))

    side_env = {side: helm_env for side in sides}
    if h.baseline:
        sides['baseline'] = sides['ours']
        side_env['baseline'] = dict(helm_env, ANSIBLE_COLLECTIONS_PATH=collections_path(h.baseline))

    def step(side, label, message):
        playbook, namespace = sides[side]
        before = helm_history(h, namespace)
        out = h.playbook('%s %s' % (side, label), playbook, None, {'bench_helm_message': message}, extra_env=side_env[side],
                         check=(side != 'upstream'))
        out['revisions_before'] = before
        out['revisions_after'] = helm_history(h, namespace)
        out['new_revisions'] = out['revisions_after'] - before
        return out

    order = ['upstream'] if res['ours'].get('pending') else ['ours', 'upstream']
    try:
        for side in order:
            res[side]['install'] = step(side, 'helm install', 'v1')
        variants = [] if res['ours'].get('pending') else ['ours'] + (['baseline'] if h.baseline else [])
        for side in variants[1:]:
            res[side] = {'noop': []}
        for side in order:
            res[side]['noop'] = []
        res['floor'] = []
        for index in range(repeat):
            # Interleaved, and the variants of ours in turning order, so that none always runs right
            # after another (a warm page cache, a load spike) and they share the load.
            turn = index % len(variants) if variants else 0
            for side in (variants[turn:] + variants[:turn] + ['upstream'] if variants else order):
                res[side]['noop'].append(step(side, 'helm no-op re-run', 'v1'))
            # Interleaved too: what a one-task playbook costs before its module does anything.
            res['floor'].append(h.playbook('one-task floor (ping)', os.path.join(BENCH, 'playbooks', 'floor.yml')))
        for side in order if not smoke else ():
            res[side]['upgrade'] = step(side, 'helm values upgrade', 'v2')
    finally:
        helm = h.env.get('HELM_BIN') or 'helm'
        kubectl = h.env.get('KUBECTL_BIN') or 'kubectl'
        for ns in sorted({namespace for _playbook, namespace in sides.values()}):
            subprocess.run([helm, 'uninstall', 'gpu-echo', '-n', ns, '--wait', '--timeout', '120s'], env=h.child_env(helm_env),
                           capture_output=True)
            subprocess.run([kubectl, 'delete', 'namespace', ns, '--wait=false', '--ignore-not-found'], env=h.child_env(),
                           capture_output=True)
    return res


def run_site(h, smoke, tmp, chart_dir='', chart_dir_source=None):
    """Comparison 5: site.yml first converge and no-op re-run (whatever site.yml has today), with
    the default inventory (inventories/sandbox, Kubernetes steps on) as `make demo` runs it, on the
    charts of the sandbox's mirror. Which charts those were is measured after the first converge
    (bench/charts.py: the mirror's digests, the releases' stored charts, site.yml's stand-in summary)."""
    with open(os.path.join(ROOT, 'playbooks', 'site.yml'), encoding='utf-8') as handle:
        imported = re.findall(r'import_playbook:\s*(\S+)', handle.read())
    extra = None
    if smoke:  # the shared sandbox: names of our own, the device plugin in a namespace of its own
        extra = dict(ours_vars(smoke), cluster_gpu_device_plugin_namespace='bench-site-device-plugin')
        # The engines' CPU mode needs the CPU Nodes labelled (capability=cpu) as make demo does.
        extra.pop('cluster_gpu_cpu_nodegroup_name')
        # No stack needs cert-manager, the longest add-on to install and remove; site-check and the
        # add-ons' own tests run it, and the smoke run checks the harness, not these figures.
        extra['cluster_addons_cert_manager_enabled'] = False
    res = {'imports': imported}
    h.log('site: site.yml imports %s' % ', '.join(imported))
    try:
        res['first'] = h.playbook('site.yml first converge', os.path.join(ROOT, 'site.yml'), None, extra,
                                  messages_of=charts.SUMMARY_TASK)
        try:
            res['charts'] = charts.record(h.env, h.child_env(), chart_dir, chart_dir_source, res['first'].get('task_messages'))
            by_source = res['charts']['releases_by_source']
            h.log('site: charts from %s; vendor: %s; stand-in: %s; collection: %s; unknown: %s' % (
                chart_dir or 'stand-ins only', ', '.join(by_source['vendor']) or 'none', ', '.join(by_source['stand-in']) or 'none',
                ', '.join(by_source['collection']) or 'none', ', '.join(by_source['unknown']) or 'none'))
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
            res['charts'] = {'error': repr(exc), 'chart_dir': chart_dir or None, 'chart_dir_source': chart_dir_source}
            h.log('site: the charts could not be recorded: %r' % exc)
        if not smoke:
            res['noop'] = h.playbook('site.yml no-op re-run', os.path.join(ROOT, 'site.yml'), None, extra)
    finally:
        teardown = dict(extra or {}, cluster_gpu_state='absent')
        h.playbook('(teardown site)', os.path.join(ROOT, 'playbooks', 'teardown.yml'), None, teardown, check=False)
    return res


# ---------------------------------------------------------------------------------------------
# Summary, targets

def _median(runs, key):
    values = [r.get(key) for r in runs if r and r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def _ratio(ours, theirs):
    if ours is None or theirs in (None, 0):
        return None
    return round(ours / theirs, 3)


def site_charts(record):
    """What the site's figures ran on, for the page: real charts or stand-ins (from bench/charts.py's
    record; a run without one says so instead of passing for either)."""
    if not record or record.get('error'):
        return {'recorded': False, 'label': 'not recorded', 'error': (record or {}).get('error'),
                'chart_dir': (record or {}).get('chart_dir')}
    by_source = record.get('releases_by_source') or {}
    real = bool(by_source.get('vendor'))
    missing_package = sorted(name for name, entry in (record.get('mirror') or {}).items() if not entry.get('vendor_package_digest'))
    return {'recorded': True, 'real_charts': real, 'label': 'real charts' if real else 'stand-in charts only',
            'chart_dir': record.get('chart_dir'), 'chart_dir_source': record.get('chart_dir_source'),
            'releases': [{k: r.get(k) for k in ('release', 'namespace', 'chart', 'version', 'source')} for r in record.get('releases') or []],
            'by_source': {k: list(v) for k, v in by_source.items()},
            'no_vendor_package': missing_package, 'mirror_standins': record.get('mirror_standins'),
            'summary_standins': record.get('summary_standins'), 'summary_agrees': record.get('summary_agrees')}


def _fleet_row(entry):
    """One fleet size in the summary: its mode, each phase's figures and peak RSS, and the control
    planes' RSS after the first converge (Kubernetes sizes). Runs from before the modes were AWS-only."""
    row = {'mode': entry.get('mode') or 'aws-only'}
    if entry.get('reused_from'):
        row['reused_from'] = entry['reused_from']
    for phase in ('first', 'noop'):
        run = entry.get(phase) or {}
        row[phase] = {k: run.get(k) for k in ('wall_s', 'aws_requests', 'aws_mutating', 'tasks_changed', 'kube_writes')}
        memory = run.get('memory') or {}
        row[phase]['peak_tree_rss_mb'] = memory.get('peak_tree_rss_mb')
        row[phase]['largest_process_rss_mb'] = memory.get('largest_process_rss_mb')
    planes = entry.get('control_planes_rss')
    row['control_planes_rss_mb'] = planes.get('total_mb') if planes else None
    row['control_planes'] = planes.get('control_planes') if planes else None
    return row


def summarise(results):
    comp = results['comparisons']
    summary = {}
    targets = {}
    # Smoke mode does not label the CPU node group (shared sandbox): one managed resource less.
    minimum = len(MIN_READS_MANAGED) - (1 if results.get('mode') == 'smoke' else 0)
    if 'gpu' in comp:
        gpu = comp['gpu']
        rows = {}
        for phase in ('first', 'noop'):
            o, u = gpu['ours'].get(phase), gpu['upstream'].get(phase)
            o_runs = o if isinstance(o, list) else [o]
            u_runs = u if isinstance(u, list) else [u]
            row = {}
            for key in ('wall_s', 'aws_requests', 'aws_mutating', 'tasks_changed', 'kube_writes'):
                ov, uv = _median(o_runs, key), _median(u_runs, key)
                row[key] = {'ours': ov, 'upstream': uv, 'ratio': _ratio(ov, uv)}
            row['upstream_rc'] = [r.get('rc') for r in u_runs if r]
            row['upstream_changed_tasks'] = sorted({t for r in u_runs if r for t in r.get('changed_tasks') or []})
            rows[phase] = row
        summary['gpu'] = rows
        noop = rows['noop']
        mut = noop['aws_mutating']['ours']
        writes = noop['kube_writes']['ours']
        targets['noop_zero_mutations'] = {'measured': {'aws_mutating': mut, 'kube_writes': writes},
                                          'met': mut == 0 and writes == 0}
        ratio = noop['wall_s']['ratio']
        targets['noop_time_half_upstream'] = {'measured': ratio, 'target': 0.5, 'met': ratio is not None and ratio <= 0.5,
                                              'ours_s': noop['wall_s']['ours'], 'upstream_s': noop['wall_s']['upstream']}
        reads = noop['aws_requests']['ours']
        targets['noop_reads_near_minimum'] = {
            'measured': reads, 'minimum_managed': minimum, 'minimum_with_inputs': minimum + len(MIN_READS_INPUTS),
            'limit': 1.5 * minimum, 'ratio': _ratio(reads, minimum),
            'met': reads is not None and reads <= 1.5 * minimum,
            'by_operation': (gpu['ours']['noop'][0] or {}).get('aws_requests_by_operation')}
    if 'manual' in comp and 'gpu' in comp:
        m = comp['manual'].get('first') or {}
        o = comp['gpu']['ours'].get('first') or {}
        summary['manual'] = {k: {'ours': o.get(k), 'manual': m.get(k), 'ratio': _ratio(o.get(k), m.get(k))}
                             for k in ('wall_s', 'aws_requests', 'aws_mutating')}
        summary['manual']['manual_second_run_rc'] = (comp['manual'].get('rerun') or {}).get('rc')
    if 'fleet' in comp:
        sizes = comp['fleet']['sizes']
        rows = {}
        for size, entry in sorted(sizes.items(), key=lambda kv: int(kv[0])):
            rows[size] = _fleet_row(entry)
        summary['fleet'] = rows
        # Growth within a mode: the Kubernetes sizes among themselves; the AWS-only ones from a
        # one-cluster AWS-only run (the gpu comparison's) when the fleet's own size 1 ran the Kubernetes steps.
        by_mode = {}
        for size, row in rows.items():
            by_mode.setdefault(row['mode'], {})[size] = row
        baseline = comp['fleet'].get('aws_only_1')
        if baseline and '1' not in by_mode.get('aws-only', {}):
            summary['fleet_aws_only_1'] = _fleet_row(baseline)
            by_mode.setdefault('aws-only', {})['1'] = summary['fleet_aws_only_1']
        growth = {}
        for mode, mode_rows in sorted(by_mode.items()):
            keys = sorted(mode_rows, key=int)
            if len(keys) < 2:
                continue
            small, big = keys[0], keys[-1]
            growth[mode] = {}
            for phase in ('first', 'noop'):
                a, b = mode_rows[small][phase]['wall_s'], mode_rows[big][phase]['wall_s']
                growth[mode][phase] = {
                    'clusters': [int(small), int(big)], 'clusters_ratio': int(big) / int(small), 'wall_ratio': _ratio(b, a),
                    'per_cluster_s': {k: round(mode_rows[k][phase]['wall_s'] / int(k), 3) if mode_rows[k][phase]['wall_s'] else None
                                      for k in keys}}
        if growth:
            summary['fleet_growth'] = growth
            met = all(g['wall_ratio'] is not None and g['wall_ratio'] < g['clusters_ratio']
                      for phases in growth.values() for g in phases.values())
            targets['fleet_sublinear'] = {'measured': growth, 'met': met}
    if 'helm' in comp:
        helm = comp['helm']
        rows = {}
        for phase in ('install', 'noop', 'upgrade'):
            o, u = helm['ours'].get(phase), helm['upstream'].get(phase)
            o_runs = o if isinstance(o, list) else [o]
            u_runs = u if isinstance(u, list) else [u]
            rows[phase] = {k: {'ours': _median(o_runs, k), 'upstream': _median(u_runs, k),
                               'ratio': _ratio(_median(o_runs, k), _median(u_runs, k))}
                           for k in ('wall_s', 'tasks_s', 'kube_writes', 'new_revisions', 'tasks_changed')}
        summary['helm'] = rows
        if helm['ours'].get('pending'):
            targets['helm_noop_no_revision'] = {'met': None, 'pending': helm['ours']['pending']}
            targets['helm_noop_time_half_upstream'] = {'met': None, 'pending': helm['ours']['pending']}
        else:
            revs = [r.get('new_revisions') for r in helm['ours'].get('noop') or []]
            targets['helm_noop_no_revision'] = {'measured': revs, 'met': bool(revs) and all(r == 0 for r in revs)}
            # Met only when both the tasks' time (the modules' own work: helm_release vs helm_registry_auth +
            # helm) and the whole playbook's wall time are at most half.
            ratio = rows['noop']['wall_s']['ratio']
            task_ratio = rows['noop']['tasks_s']['ratio']
            targets['helm_noop_time_half_upstream'] = {
                'measured': ratio, 'measured_tasks': task_ratio, 'target': 0.5,
                'met': ratio is not None and ratio <= 0.5 and task_ratio is not None and task_ratio <= 0.5,
                'ours_s': rows['noop']['wall_s']['ours'], 'upstream_s': rows['noop']['wall_s']['upstream'],
                'ours_tasks_s': rows['noop']['tasks_s']['ours'], 'upstream_tasks_s': rows['noop']['tasks_s']['upstream'],
                'floor_s': _median(helm.get('floor') or [], 'wall_s'), 'floor_tasks_s': _median(helm.get('floor') or [], 'tasks_s')}
    if 'site' in comp:
        s = comp['site']
        summary['site'] = {phase: {k: (s.get(phase) or {}).get(k) for k in ('wall_s', 'aws_requests', 'aws_mutating', 'kube_writes', 'tasks_changed', 'rc')}
                           for phase in ('first', 'noop')}
        summary['site']['imports'] = s.get('imports')
        summary['site']['charts'] = site_charts(s.get('charts'))
        if 'noop_zero_mutations' in targets and s.get('noop'):
            targets['noop_zero_mutations']['site'] = {'aws_mutating': s['noop'].get('aws_mutating'), 'kube_writes': s['noop'].get('kube_writes')}
            targets['noop_zero_mutations']['met'] = targets['noop_zero_mutations']['met'] and s['noop'].get('aws_mutating') == 0 \
                and s['noop'].get('kube_writes') == 0
    if 'candidate' in comp:
        c = comp['candidate']
        summary['candidate'] = {k: {'current': _median(c['current']['noop'], k), 'candidate': _median(c['candidate']['noop'], k),
                                    'ratio': _ratio(_median(c['candidate']['noop'], k), _median(c['current']['noop'], k))}
                                for k in ('wall_s', 'aws_requests', 'aws_mutating', 'tasks_changed')}
        summary['candidate']['role'] = c['role']
    if results.get('baseline'):
        summary['baseline'] = baseline_change(results)
    # A target is only judged on successful runs of our side.
    failed_ours = []
    for name, side in (('gpu', 'ours'), ('helm', 'ours'), ('fleet', None), ('site', None)):
        if name not in comp:
            continue
        node = comp[name].get(side) or {} if side else comp[name]
        for run in _walk_runs(node):
            if run.get('rc') not in (0, None) and not run.get('label', '').startswith('('):
                failed_ours.append('%s: %s (rc %s)' % (name, run.get('label'), run.get('rc')))
    summary['failed_runs'] = failed_ours
    invalid = {'noop_zero_mutations': 'gpu', 'noop_time_half_upstream': 'gpu', 'noop_reads_near_minimum': 'gpu',
               'helm_noop_no_revision': 'helm', 'helm_noop_time_half_upstream': 'helm', 'fleet_sublinear': 'fleet'}
    for key, name in invalid.items():
        if key in targets and any(f.startswith(name + ':') for f in failed_ours):
            targets[key]['met'] = None
            targets[key]['invalid'] = 'a run of ours failed; see summary.failed_runs'
    for key, text in TARGETS:
        targets.setdefault(key, {'met': None, 'pending': 'not measured in this run'})
        targets[key]['target_text'] = text
    return summary, targets


# helm_release keeps its reads started ahead only if they save at least this share of its no-op task's time.
PREFETCH_KEEP_SHARE = 0.2


def prefetch_gain(helm):
    """helm_release's no-op task time with and without its reads started ahead (interleaved runs of
    the same task on the same release, in results recorded before the prefetch was removed):
    medians, the share of the task's time the prefetch saved, and whether that was the fifth it had
    to save to be kept. None when the variant did not run."""
    with_runs = [r for r in helm['ours'].get('noop') or [] if r.get('rc') == 0]
    without_runs = [r for r in (helm.get('ours_no_prefetch') or {}).get('noop') or [] if r.get('rc') == 0]
    if not with_runs or not without_runs:
        return None
    with_s, without_s = _median(with_runs, 'tasks_s'), _median(without_runs, 'tasks_s')
    if not without_s:
        return None
    saved = round(1 - with_s / without_s, 3)
    # Paired differences too: each pair ran back to back, so load changes between pairs cancel out.
    pairs = [round(b['tasks_s'] - a['tasks_s'], 3) for a, b in zip(with_runs, without_runs)]
    return {'with_s': with_s, 'without_s': without_s, 'saved_share': saved, 'runs': [len(with_runs), len(without_runs)],
            'pair_savings_s': pairs, 'keep_share': PREFETCH_KEEP_SHARE, 'keep': saved >= PREFETCH_KEEP_SHARE}


# A no-op whose task time is more than this many times the baseline's counts as slower.
BASELINE_SLOWER = 1.1


def baseline_change(results):
    """The checkout's no-ops against the baseline revision's (--baseline), comparison by comparison:
    medians of the tasks' time, wall time and AWS requests, their ratios, and whether each stayed
    within BASELINE_SLOWER of the baseline and made no change."""
    out = {'ref': results['baseline']['ref'], 'commit': results['baseline']['commit'], 'slower_above': BASELINE_SLOWER,
           'subject': results['baseline'].get('subject')}
    for name in ('gpu', 'helm'):
        comp = (results['comparisons'].get(name) or {})
        ours = [r for r in (comp.get('ours') or {}).get('noop') or [] if r.get('rc') == 0]
        base = [r for r in (comp.get('baseline') or {}).get('noop') or [] if r.get('rc') == 0]
        if not ours or not base:
            continue
        row = {k: {'ours': _median(ours, k), 'baseline': _median(base, k), 'ratio': _ratio(_median(ours, k), _median(base, k))}
               for k in ('tasks_s', 'wall_s', 'aws_requests')}
        row['runs'] = [len(ours), len(base)]
        row['baseline_changed'] = sum(r.get('tasks_changed') or 0 for r in base)
        ratio = row['tasks_s']['ratio']
        row['not_slower'] = ratio is not None and ratio <= BASELINE_SLOWER and row['baseline_changed'] == 0
        out[name] = row
    return out


# ---------------------------------------------------------------------------------------------

def _walk_runs(node):
    if isinstance(node, dict):
        if 'wall_s' in node and 'rc' in node:
            yield node
        else:
            for value in node.values():
                yield from _walk_runs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk_runs(value)


def latest_results(results_dir):
    files = sorted(f for f in os.listdir(results_dir) if f.endswith('.json')) if os.path.isdir(results_dir) else []
    return os.path.join(results_dir, files[-1]) if files else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--only', default=','.join(COMPARISONS), help='comma-separated subset of: %s' % ' '.join(COMPARISONS))
    parser.add_argument('--smoke', action='store_true', help='each harness once at its smallest size on the running sandbox')
    parser.add_argument('--repeat', type=int, default=3, help='no-op re-runs per side (median reported)')
    parser.add_argument('--fleet-sizes', default=','.join(str(s) for s in FLEET_SIZES))
    parser.add_argument('--sandbox', choices=('private', 'running'), default=None,
                        help='private (default; its own sandbox with 16 clusters) or running (.sandbox/env or the environment)')
    parser.add_argument('--sandbox-dir', default=os.environ.get('GENAI_BENCH_SANDBOX_DIR', '/tmp/genai-bench/sbx'))
    parser.add_argument('--keep-sandbox', action='store_true', help='leave the private sandbox running')
    parser.add_argument('--results-dir', default=None)
    parser.add_argument('--no-docs', action='store_true')
    parser.add_argument('--docs-only', action='store_true')
    parser.add_argument('--candidate-role', help='also compare a scratch copy of roles/cluster_gpu (path) with the current role')
    parser.add_argument('--baseline', metavar='REV',
                        help='also run the gpu and helm no-ops from the collection of git revision REV, interleaved with '
                             "the checkout's, to show whether a change made them slower")
    parser.add_argument('--profile', action='store_true', help='also enable profile_tasks (the json callback already times tasks)')
    args = parser.parse_args(argv)

    def log(msg):
        print('[bench %s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)

    results_dir = args.results_dir or os.path.join(BENCH, 'results', 'smoke' if args.smoke else '')
    results_dir = results_dir.rstrip('/')
    if args.docs_only:
        import report
        path = report.latest(lambda d: 'gpu' in (d.get('comparisons') or {}) and d.get('mode') == 'full')[0]
        if not path:
            log('no full results yet')
            return 1
        report.write_docs(path, log)
        return 0

    only = [c.strip() for c in args.only.split(',') if c.strip()]
    unknown = set(only) - set(COMPARISONS)
    if unknown:
        parser.error('unknown comparison(s): %s' % ', '.join(sorted(unknown)))
    sandbox_mode = args.sandbox or ('running' if args.smoke else 'private')
    repeat = 1 if args.smoke else max(1, args.repeat)
    sizes = [1] if args.smoke else [int(s) for s in args.fleet_sizes.split(',')]
    max_clusters = max(sizes + [3])

    if sandbox_mode == 'private':
        # The vendors' real charts, as .ci/run gives them to the sandbox (GENAI_STACK_CHART_DIR, else
        # ../shared/vendor-charts when it exists; set and empty: the stand-ins only).
        chart_dir, chart_dir_source = charts.choose_chart_dir(os.environ)
        kube_sizes = [s for s in sizes if s <= KUBE_FLEET_MAX] if 'fleet' in only else []
        env = start_private_sandbox(args.sandbox_dir, max(max_clusters, 3), log, chart_dir, kube_clusters=max(kube_sizes + [1]))
        recorded = charts.sandbox_chart_dir(args.sandbox_dir)
        sandbox_dir = args.sandbox_dir
    else:
        if os.environ.get('AWS_ENDPOINT_URL') and os.environ.get('SANDBOX_AWS_JOURNAL'):
            env = {k: v for k, v in os.environ.items() if k.startswith(('AWS_', 'SANDBOX_', 'KUBECONFIG', 'HELM', 'KUBECTL', 'PATH'))}
        else:
            env = read_env_file(os.path.join(ROOT, '.sandbox', 'env'))
        # The running sandbox was filled from the directory it recorded, whatever this shell says.
        sandbox_dir = charts.sandbox_dir_of(env)
        recorded = charts.sandbox_chart_dir(sandbox_dir)
        chart_dir, chart_dir_source = charts.choose_chart_dir(os.environ) if recorded is None else (recorded, 'the running sandbox\'s record')
    if recorded is not None and recorded != chart_dir:  # what the sandbox did wins over what was asked
        log('the sandbox says its mirror was filled from %r, not %r' % (recorded, chart_dir))
        chart_dir, chart_dir_source = recorded, '%s; the sandbox recorded %r' % (chart_dir_source, recorded)
    clusters = ['sandbox'] + ['sandbox-%d' % i for i in range(2, max_clusters + 1)]
    if sandbox_mode == 'running':
        clusters = ['sandbox']  # the shared sandbox has one cluster; names below keep out of others' way

    tmp = os.path.join(args.sandbox_dir if sandbox_mode == 'private' else '/tmp', 'genai-bench-work-%d' % os.getpid())
    os.makedirs(tmp, exist_ok=True)
    aws_cli, _ = ensure_bench_venv(log) if ('manual' in only or not args.no_docs) else (None, None)
    results = {'schema': 1, 'started': dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'),
               'mode': 'smoke' if args.smoke else 'full', 'sandbox': sandbox_mode, 'repeat': repeat,
               'versions': versions(dict(os.environ, **env)), 'attribution': 'proxy', 'comparisons': {},
               'minimum_reads': {'managed': MIN_READS_MANAGED, 'inputs': MIN_READS_INPUTS}}
    harness = Harness(env, args, log)
    if args.baseline:
        harness.baseline = collection_copy(tmp, 'baseline', args.baseline)
        results['baseline'] = {'ref': args.baseline, 'commit': subprocess.run(
            ['git', 'rev-parse', '--short', args.baseline], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip(),
            # What that revision is, for the page: its commit subject (the page is rendered where git history may be shallow).
            'subject': subprocess.run(['git', 'log', '-1', '--format=%s', args.baseline], cwd=ROOT, capture_output=True, text=True,
                                      check=True).stdout.strip()[:160]}
    started = time.perf_counter()
    rc = 0
    try:
        if 'gpu' in only:
            results['comparisons']['gpu'] = run_gpu(harness, clusters, args.smoke, repeat, tmp)
        if 'manual' in only:
            results['comparisons']['manual'] = run_manual(harness, clusters[2] if len(clusters) > 2 else clusters[0], args.smoke, aws_cli)
        if 'fleet' in only:
            reuse = results['comparisons'].get('gpu', {}).get('ours') if 'gpu' in only else None
            results['comparisons']['fleet'] = run_fleet(harness, sizes, args.smoke, reuse_one=reuse, sandbox_dir=sandbox_dir, tmp=tmp)
        if 'helm' in only:
            results['comparisons']['helm'] = run_helm(harness, repeat, tmp, args.smoke)
        if 'site' in only:
            results['comparisons']['site'] = run_site(harness, args.smoke, tmp, chart_dir, chart_dir_source)
        if args.candidate_role:
            results['comparisons']['candidate'] = run_candidate(harness, clusters[-1], args.candidate_role, repeat, tmp)
    except Exception as exc:  # noqa: BLE001 - keep what was measured
        log('error: %r' % exc)
        results['error'] = repr(exc)
        rc = 1
    finally:
        harness.close()
        if sandbox_mode == 'private' and not args.keep_sandbox:
            stop_private_sandbox(args.sandbox_dir, log)
        shutil.rmtree(tmp, ignore_errors=True)
    results['journal_records_client'] = bool(harness.journal_has_agent)
    results['elapsed_s'] = round(time.perf_counter() - started, 1)
    results['summary'], results['targets'] = summarise(results)
    os.makedirs(results_dir, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    path = os.path.join(results_dir, '%s.json' % stamp)
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(results, handle, indent=1, sort_keys=True)
    log('results: %s (%.0f s)' % (os.path.relpath(path, ROOT), results['elapsed_s']))
    for key, target in results['targets'].items():
        state = {True: 'met', False: 'MISSED', None: 'pending'}[target.get('met')]
        log('target %-30s %s' % (key, state))
    if not args.smoke and not args.no_docs:
        import report
        # The page's base is the latest full run with the gpu comparison, as for --docs-only and
        # report.py --check: a run of --only site adds its site figures to it instead of replacing it.
        report.write_docs(report.latest(lambda d: 'gpu' in (d.get('comparisons') or {}) and d.get('mode') == 'full')[0] or path, log)
    return rc


if __name__ == '__main__':
    sys.exit(main())
