"""SIGKILL during each changing task, then run again: no duplicates, and the run converges.

For cluster_gpu and for the genai_engine role, the playbook is run once per changing task and
its whole process group (ansible-playbook, the forked worker, the module, helm) is killed with
SIGKILL as soon as that task made its first change (first mutating AWS request, or first
Kubernetes write, seen in the journal / audit log). The runs are chained: the run that is
killed in task N is also the re-run of the run killed in task N-1, so it must get through
tasks 1..N-1 again without failing. After every run the resources are counted (nothing may
exist twice), and a last uninterrupted run must converge to exactly one of each.
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
ENGINE_SECRETS = {'postgres-secret', 'genai-engine-secret-admin-key',
                  'genai-engine-secret-open-ai-gpt-model-names-endpoints-keys', 'arthur-repository-credentials'}
# The seeded CPU node group's label, so the engine's chain does not depend on cluster_gpu's.
ENGINE_VARS = ['-e', '{"genai_engine_cpu_node_labels": {"sandbox/pool": "cpu"}}',
               '-e', 'genai_engine_postgres_password=sigkill-pg-password-1234',
               '-e', 'genai_engine_registry_username=sigkill-user', '-e', 'genai_engine_registry_password=sigkill-registry-pw']

# (task name or the start of it, what its first change shows up in)
CLUSTER_GPU_TASKS = [
    ('Converge the GPU node group', 'aws'),
    ('Scale on GPU and CPU utilisation', 'aws'),
    ('Label the CPU node group for CPU-mode workloads', 'aws'),
    ('NVIDIA device plugin', 'kube'),
]
ENGINE_TASKS = [
    ('Create the namespace', 'kube'),
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
    return sorted(tasks, key=position)


def _aws_counts():
    ec2, eks, asg, cw, iam = (boto3.client(s) for s in ('ec2', 'eks', 'autoscaling', 'cloudwatch', 'iam'))
    templates = ec2.describe_launch_templates()['LaunchTemplates']
    ours = [t for t in templates if t['LaunchTemplateName'] == '%s-%s' % (CLUSTER, NODEGROUP)]
    versions = 0
    if ours:
        versions = len(ec2.describe_launch_template_versions(LaunchTemplateId=ours[0]['LaunchTemplateId'])['LaunchTemplateVersions'])
    groups = eks.list_nodegroups(clusterName=CLUSTER)['nodegroups']
    gpu_asgs = [g for g in asg.describe_auto_scaling_groups()['AutoScalingGroups']
                if any(t['Key'] == 'eks:nodegroup-name' and t['Value'] == NODEGROUP for t in g.get('Tags', []))]
    policies = []
    for group in gpu_asgs:
        policies += asg.describe_policies(AutoScalingGroupName=group['AutoScalingGroupName'])['ScalingPolicies']
    return {
        'launch_templates': len(templates), 'our_templates': len(ours), 'template_versions': versions,
        'nodegroups': len(groups), 'gpu_nodegroups': groups.count(NODEGROUP), 'gpu_asgs': len(gpu_asgs),
        'scaling_policies': len(policies),
        'alarms': len(cw.describe_alarms(AlarmNamePrefix='%s-%s-' % (CLUSTER, NODEGROUP))['MetricAlarms']),
        'inline_policies': iam.list_role_policies(RoleName='sandbox-eks-node-role')['PolicyNames'],
    }


def _assert_no_duplicates(counts, baseline, where):
    assert counts['our_templates'] <= 1, (where, counts)
    assert counts['launch_templates'] <= baseline['launch_templates'] + 2, (where, counts)  # ours + the ASG's generated one at most
    assert counts['template_versions'] <= 1, (where, counts)
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


@pytest.fixture(scope='module')
def cluster_gpu_chain():
    results = {'runs': [], 'baseline': _aws_counts()}
    try:
        for task, trigger in _in_role_order('cluster_gpu', CLUSTER_GPU_TASKS, ['present.yml', 'kubernetes.yml']):
            killed, run = _support.run_and_kill(CLUSTER_GPU, task=task, trigger=trigger)
            results['runs'].append((task, killed, run, _aws_counts()))
        results['final'] = _support.run_playbook(CLUSTER_GPU)
        results['final_counts'] = _aws_counts()
        yield results
    finally:
        down = _support.run_playbook(CLUSTER_GPU, '-e', 'cluster_gpu_state=absent')
        # A failed cleanup shows as an error of this module's last test.
        assert down.returncode == 0, down


@pytest.fixture(scope='module')
def engine_chain():
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


def test_cluster_gpu_killed_in_each_task_then_converges(cluster_gpu_chain):
    chains = cluster_gpu_chain
    baseline = chains['baseline']
    for task, killed, run, counts in chains['runs']:
        assert killed, 'the run never reached a change in task %r (it should have: earlier tasks must pass on re-run)\n%r' % (task, run)
        assert run.returncode == -9, (task, run.returncode)
        _assert_no_duplicates(counts, baseline, 'after SIGKILL in %r' % task)
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
    _support.record('sigkill', cluster_gpu_kills=sum(1 for c in chains['runs'] if c[1]),
                    cluster_gpu_tasks=[t for t, _unused in CLUSTER_GPU_TASKS])


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
                    engine_release_revisions=state['release_revisions'])
