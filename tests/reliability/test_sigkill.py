"""SIGKILL during each changing task, then run again: no duplicates, and the run converges.

For cluster_gpu and for the genai_engine role, the playbook is run once per changing task and
its whole process tree (ansible-playbook, the forked worker, the module, helm; the worker has a
session of its own, so not a process group) is killed with
SIGKILL as soon as that task made its first change (first mutating AWS request, or first
Kubernetes write, seen in the journal / audit log). The runs are chained: the run that is
killed in task N is also the re-run of the run killed in task N-1, so it must get through
tasks 1..N-1 again without failing. After every run the resources are counted (nothing may
exist twice), and a last uninterrupted run must converge to exactly one of each.

The node group task makes several changes, so it is killed at each of them: the kill points name
an AWS operation, and "held" ones queue throttling errors for that operation first, so the kill
lands after the operations before it took effect and before it did (between PutRolePolicy and
CreateLaunchTemplate, between CreateLaunchTemplate and CreateNodegroup), and after its last (the next task's PutScalingPolicy held).
A second chain does the same during a roll (a new instance type: CreateLaunchTemplateVersion,
ModifyLaunchTemplate, UpdateNodegroupVersion, then the module's wait: DescribeUpdate held):
the roll must end with exactly one new template version, the default one, in the node group.
"""
import hashlib

import boto3
import pytest

import _support
from conftest import CLUSTER, NODEGROUP

CLUSTER_GPU = 'playbooks/cluster_gpu.yml'
ENGINE = 'playbooks/genai_engine.yml'
ENGINE_NS = 'arthur'
ENGINE_RELEASE = 'arthur-engine'
ENGINE_SECRETS = {'postgres-secret', 'genai-engine-secret-admin-key', 'genai-engine-secret-store-key',
                  'genai-engine-secret-open-ai-gpt-model-names-endpoints-keys', 'arthur-repository-credentials'}
# The seeded CPU node group's label, so the engine's chain does not depend on cluster_gpu's.
ENGINE_VARS = ['-e', '{"genai_engine_cpu_node_labels": {"sandbox/pool": "cpu"}}',
               '-e', 'genai_engine_postgres_password=sigkill-pg-password-1234',
               '-e', 'genai_engine_registry_username=sigkill-user', '-e', 'genai_engine_registry_password=sigkill-registry-pw']

NODEGROUP_TASK = 'Converge the GPU node group'
# (task name or the start of it, what its first change shows up in, the AWS operation to kill at
# (None: the task's first change), whether that operation is held back so the kill comes before it)
CLUSTER_GPU_TASKS = [
    (NODEGROUP_TASK, 'aws', 'CreateLaunchTemplate', True),   # the inline policy is written, no template yet
    (NODEGROUP_TASK, 'aws', 'CreateNodegroup', True),        # the template exists, no node group yet
    # The node group is created and ACTIVE, the alarms not yet (the next task's first change, held).
    (NODEGROUP_TASK, 'aws', 'PutScalingPolicy', True),
    ('Scale on GPU and CPU utilisation', 'aws', None, False),
    ('Label the CPU node group for CPU-mode workloads', 'aws', None, False),
    ('NVIDIA device plugin', 'kube', None, False),
]
# A roll (another instance type: a new template version rolled into the node group), killed in it.
ROLL_VARS = ['-e', 'cluster_gpu_instance_type=g5.xlarge']
ROLL_KILLS = [
    (NODEGROUP_TASK, 'aws', 'ModifyLaunchTemplate', True),     # the new version exists, not yet the default
    (NODEGROUP_TASK, 'aws', 'UpdateNodegroupVersion', True),   # the default is set, nothing rolled yet
    (NODEGROUP_TASK, 'aws', 'DescribeUpdate', True),           # the roll is requested, the module waits for it
]
HOLD = {'code': 'ThrottlingException', 'status': 400, 'times': 200}
ENGINE_TASKS = [
    ('Create the namespace', 'kube'),
    ('Secret-store key (adopted by the release)', 'kube'),
    ('Database credentials (postgres-secret)', 'kube'),
    ('Admin key', 'kube'),
    ('OpenAI GPT model names, endpoints and keys', 'kube'),
    ('Container registry credentials (only when given)', 'kube'),
    ('Install or upgrade the chart', 'kube'),
]


def _in_role_order(role, tasks, files):
    """The tasks sorted as the role runs them (its task files change; the chain depends on order)."""
    import os
    import yaml
    names = []
    for name in files:
        with open(os.path.join(_support.ROOT, 'roles', role, 'tasks', name), encoding='utf-8') as handle:
            names += [t.get('name', '') for t in yaml.safe_load(handle) or []]

    def position(entry):
        for index, name in enumerate(names):
            if name.startswith(entry[0]):
                return index
        raise AssertionError('role %s has no task named %r... any more: update the test' % (role, entry[0]))
    return sorted(tasks, key=position)  # stable: the kill points of one task keep their order


def _aws_counts():
    ec2, eks, asg, cw, iam = (boto3.client(s) for s in ('ec2', 'eks', 'autoscaling', 'cloudwatch', 'iam'))
    templates = ec2.describe_launch_templates()['LaunchTemplates']
    ours = [t for t in templates if t['LaunchTemplateName'] == '%s-%s' % (CLUSTER, NODEGROUP)]
    versions, default_version, group_version = 0, None, None
    if ours:
        versions = len(ec2.describe_launch_template_versions(LaunchTemplateId=ours[0]['LaunchTemplateId'])['LaunchTemplateVersions'])
        default_version = ours[0].get('DefaultVersionNumber')
    groups = eks.list_nodegroups(clusterName=CLUSTER)['nodegroups']
    if NODEGROUP in groups:
        used = eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP)['nodegroup'].get('launchTemplate') or {}
        group_version = int(used['version']) if used.get('version') else None
    gpu_asgs = [g for g in asg.describe_auto_scaling_groups()['AutoScalingGroups']
                if any(t['Key'] == 'eks:nodegroup-name' and t['Value'] == NODEGROUP for t in g.get('Tags', []))]
    policies = []
    for group in gpu_asgs:
        policies += asg.describe_policies(AutoScalingGroupName=group['AutoScalingGroupName'])['ScalingPolicies']
    return {
        'launch_templates': len(templates), 'our_templates': len(ours), 'template_versions': versions,
        'default_version': default_version, 'nodegroup_template_version': group_version,
        'nodegroups': len(groups), 'gpu_nodegroups': groups.count(NODEGROUP), 'gpu_asgs': len(gpu_asgs),
        'scaling_policies': len(policies),
        'alarms': len(cw.describe_alarms(AlarmNamePrefix='%s-%s-' % (CLUSTER, NODEGROUP))['MetricAlarms']),
        'inline_policies': iam.list_role_policies(RoleName='sandbox-eks-node-role')['PolicyNames'],
    }


def _assert_no_duplicates(counts, baseline, where, max_versions=1):
    assert counts['our_templates'] <= 1, (where, counts)
    assert counts['launch_templates'] <= baseline['launch_templates'] + 2, (where, counts)  # ours + the ASG's generated one at most
    assert counts['template_versions'] <= max_versions, (where, counts)
    assert counts['gpu_nodegroups'] <= 1 and counts['nodegroups'] <= baseline['nodegroups'] + 1, (where, counts)
    assert counts['gpu_asgs'] <= 1, (where, counts)
    assert counts['scaling_policies'] <= 4, (where, counts)
    assert counts['alarms'] <= 4, (where, counts)
    assert len(counts['inline_policies']) == len(set(counts['inline_policies'])), (where, counts)
    releases = _support.helm_releases('nvidia-device-plugin') if _namespace_exists('nvidia-device-plugin') else []
    assert len(releases) <= 1, (where, releases)


def _namespace_exists(name):
    return _support.kubectl('get', 'namespace', name, check=False).returncode == 0


def _engine_state():
    if not _namespace_exists(ENGINE_NS):
        return {'secrets': [], 'releases': [], 'admin_key': None}
    secrets = _support.kubectl_json('get', 'secrets', '-n', ENGINE_NS)['items']
    admin = [s for s in secrets if s['metadata']['name'] == 'genai-engine-secret-admin-key']
    admin_hash = hashlib.sha256(admin[0]['data']['key'].encode()).hexdigest() if admin and admin[0].get('data') else None
    return {'secrets': sorted(s['metadata']['name'] for s in secrets if not s['metadata']['name'].startswith('sh.helm.release.')),
            'releases': _support.helm_releases(ENGINE_NS), 'admin_key': admin_hash,
            'release_revisions': len([s for s in secrets if s['metadata']['name'].startswith('sh.helm.release.v1.%s.' % ENGINE_RELEASE)])}


def _kill(point, *args):
    task, trigger, operation, held = point
    if held:
        _support.queue_faults([dict(HOLD, operation=operation)])
    try:
        killed, run = _support.run_and_kill(CLUSTER_GPU, *args, task=task, trigger=trigger, operation=operation)
    finally:
        _support.clear_faults()
    return {'point': point, 'killed': killed, 'run': run, 'counts': _aws_counts(),
            'mutating': [(r['operation'], r['status']) for r in run.activity.mutating]}


def _where(entry):
    task, _trigger, operation, held = entry['point']
    return '%s: %s %s' % (task, 'before' if held else 'at', operation or 'its first change')


@pytest.fixture(scope='module')
def cluster_gpu_chain():
    results = {'runs': [], 'roll_runs': [], 'baseline': _aws_counts()}
    try:
        for point in _in_role_order('cluster_gpu', CLUSTER_GPU_TASKS, ['present.yml', 'kubernetes.yml']):
            results['runs'].append(_kill(point))
        results['final'] = _support.run_playbook(CLUSTER_GPU)
        results['final_counts'] = _aws_counts()
        if results['final'].returncode == 0:
            for point in ROLL_KILLS:
                results['roll_runs'].append(_kill(point, *ROLL_VARS))
            results['roll_final'] = _support.run_playbook(CLUSTER_GPU, *ROLL_VARS)
            results['roll_counts'] = _aws_counts()
        yield results
    finally:
        down = _support.run_playbook(CLUSTER_GPU, '-e', 'cluster_gpu_state=absent')
        # A failed cleanup shows as an error of this module's last test.
        assert down.returncode == 0, down


@pytest.fixture(scope='module')
def engine_chain(engine_addons):  # pylint: disable=unused-argument
    results = {'runs': []}
    admin_keys = set()
    try:
        for task, trigger in _in_role_order('genai_engine', ENGINE_TASKS, ['present.yml']):
            killed, run = _support.run_and_kill(ENGINE, *ENGINE_VARS, task=task, trigger=trigger)
            state = _engine_state()
            if state['admin_key']:
                admin_keys.add(state['admin_key'])
            results['runs'].append((task, killed, run, state))
        results['final'] = _support.run_playbook(ENGINE, *ENGINE_VARS)
        results['final_state'] = _engine_state()
        if results['final_state']['admin_key']:
            admin_keys.add(results['final_state']['admin_key'])
        results['admin_keys'] = admin_keys
        yield results
    finally:
        down = _support.run_playbook(ENGINE, '-e', 'genai_engine_state=absent')
        assert down.returncode == 0, down


def _assert_killed_there(entry):
    where, run = _where(entry), entry['run']
    assert entry['killed'], 'the run never reached %s (it should have: earlier tasks must pass on re-run)\n%r' % (where, run)
    assert run.returncode == -9, (where, run.returncode)
    operation, held = entry['point'][2], entry['point'][3]
    if operation:
        statuses = run.activity.statuses(operation)
        # Held: the operation was sent and refused, so it had no effect; otherwise it succeeded.
        assert statuses and (set(statuses) == {400} if held else 200 in statuses), (where, entry['mutating'])


def test_cluster_gpu_killed_in_each_task_then_converges(cluster_gpu_chain):
    chains = cluster_gpu_chain
    baseline = chains['baseline']
    for entry in chains['runs']:
        _assert_killed_there(entry)
        _assert_no_duplicates(entry['counts'], baseline, 'after SIGKILL in %s' % _where(entry))
    final = chains['final']
    assert final.returncode == 0, final
    counts = chains['final_counts']
    _assert_no_duplicates(counts, baseline, 'final run')
    assert counts['our_templates'] == 1 and counts['template_versions'] == 1, counts
    assert counts['gpu_nodegroups'] == 1 and counts['gpu_asgs'] == 1, counts
    assert counts['scaling_policies'] == 4 and counts['alarms'] == 4, counts
    assert 'genai-stack-cloudwatch-metrics' in counts['inline_policies'], counts
    releases = _support.helm_releases('nvidia-device-plugin')
    assert [r['status'] for r in releases] == ['deployed'], releases
    _support.record('sigkill', cluster_gpu_kills=sum(1 for c in chains['runs'] if c['killed']),
                    cluster_gpu_reruns_past_kill=_support.reruns_past_kill([c['killed'] for c in chains['runs']], final.returncode),
                    cluster_gpu_tasks=sorted({p[0] for p in CLUSTER_GPU_TASKS}),
                    cluster_gpu_kill_points=[_where(c) for c in chains['runs']])


def test_cluster_gpu_killed_during_a_roll_then_converges(cluster_gpu_chain):
    chains = cluster_gpu_chain
    assert chains['final'].returncode == 0, chains['final']
    baseline = chains['baseline']
    for entry in chains['roll_runs']:
        _assert_killed_there(entry)
        # A roll adds one version; a re-run after a kill must reuse it, not add another.
        _assert_no_duplicates(entry['counts'], baseline, 'after SIGKILL in the roll, %s' % _where(entry), max_versions=2)
    final = chains['roll_final']
    assert final.returncode == 0, final
    counts = chains['roll_counts']
    _assert_no_duplicates(counts, baseline, 'final roll run', max_versions=2)
    assert counts['our_templates'] == 1 and counts['template_versions'] == 2, counts
    assert counts['gpu_nodegroups'] == 1 and counts['gpu_asgs'] == 1, counts
    # The node group runs the new version, and the template's default is that version too.
    assert counts['nodegroup_template_version'] == 2 and counts['default_version'] == 2, counts
    _support.record('sigkill', roll_kills=sum(1 for c in chains['roll_runs'] if c['killed']),
                    roll_reruns_past_kill=_support.reruns_past_kill([c['killed'] for c in chains['roll_runs']], final.returncode),
                    roll_kill_points=[_where(c) for c in chains['roll_runs']], roll_template_versions=counts['template_versions'])


def test_engine_killed_in_each_task_then_converges(engine_chain):
    chains = engine_chain
    for task, killed, run, state in chains['runs']:
        assert killed, 'the run never reached a change in task %r\n%r' % (task, run)
        assert len(state['releases']) <= 1, (task, state)
        assert set(state['secrets']) <= ENGINE_SECRETS, (task, state)
    final = chains['final']
    assert final.returncode == 0, final
    state = chains['final_state']
    assert set(state['secrets']) == ENGINE_SECRETS, state
    assert [r['status'] for r in state['releases']] == ['deployed'], state
    # The generated admin key is generated once and kept, whatever run was killed when.
    assert len(chains['admin_keys']) == 1, chains['admin_keys']
    _support.record('sigkill', engine_kills=sum(1 for c in chains['runs'] if c[1]), engine_tasks=[t for t, _unused in ENGINE_TASKS],
                    engine_reruns_past_kill=_support.reruns_past_kill([c[1] for c in chains['runs']], final.returncode),
                    engine_release_revisions=state['release_revisions'])
