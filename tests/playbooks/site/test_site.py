"""site.yml and teardown.yml on the sandbox, as a user runs them.

make test runs this after the molecule scenario, which converges site.yml, checks that a second
converge reports changed=0 and verifies the stacks. Here: converge again (from whatever state is
there, empty included), then a re-run must report changed=0 with no mutating AWS request and no
Kubernetes write by the admin user, `--check --diff` must change nothing, and teardown.yml must
leave no release, secret, stack namespace, GPU node group, alarm or scaling policy behind.
"""
import json
import os
import subprocess

import boto3

ADMIN = os.environ.get('SANDBOX_KUBE_ADMIN_USER', 'sandbox-admin')
STACK_NAMESPACES = ['arthur', 'adaptive', 'monitoring', 'opea', 'saxml', 'genai-postgres', 'nvidia-device-plugin']


def _kubectl(*args):
    proc = subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl')] + list(args) + ['-o', 'json'],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)['items']


def _admin_writes(run):
    return [w for w in run.activity['kube_write_list'] if w['user'] == ADMIN]


def test_site_converges_reruns_clean_and_tears_down(run_playbook):
    try:
        first = run_playbook('site.yml')
        assert first.returncode == 0, first

        again = run_playbook('site.yml')
        assert again.returncode == 0, again
        assert again.changed == 0, again
        assert again.activity['aws_mutating'] == 0, again.activity['aws_mutating_operations']
        assert _admin_writes(again) == [], _admin_writes(again)

        check = run_playbook('site.yml', '--check', '--diff')
        assert check.returncode == 0, check
        assert check.changed == 0, check
        assert check.activity['aws_mutating'] == 0, check.activity['aws_mutating_operations']
        assert _admin_writes(check) == [], _admin_writes(check)

        # GPU pods of the stacks run on the GPU Nodes that came from the EKS node group.
        gpu_nodes = {n['metadata']['name'] for n in _kubectl('get', 'nodes', '-l', 'capability=gpu')}
        gpu_pods = [p for p in _kubectl('get', 'pods', '-A')
                    if any('nvidia.com/gpu' in (c.get('resources', {}).get('limits') or {}) for c in p['spec']['containers'])]
        assert gpu_pods, 'no pod requests nvidia.com/gpu'
        for pod in gpu_pods:
            assert pod['status']['phase'] == 'Running', pod['metadata']['name']
            assert pod['spec']['nodeName'] in gpu_nodes, (pod['metadata']['name'], pod['spec']['nodeName'])
    finally:
        down = run_playbook('playbooks/teardown.yml')
    assert down.returncode == 0, down

    namespaces = {n['metadata']['name'] for n in _kubectl('get', 'namespaces')}
    assert not namespaces & set(STACK_NAMESPACES), namespaces & set(STACK_NAMESPACES)
    releases = _kubectl('get', 'secrets', '-A', '-l', 'owner=helm')
    assert releases == [], [r['metadata']['name'] for r in releases]
    eks = boto3.client('eks')
    assert eks.list_nodegroups(clusterName='sandbox')['nodegroups'] == ['sandbox-cpu']
    assert boto3.client('cloudwatch').describe_alarms(AlarmNamePrefix='sandbox-gpu-nodes-')['MetricAlarms'] == []
    policies = boto3.client('autoscaling').describe_policies()['ScalingPolicies']
    assert [p['PolicyName'] for p in policies if p['PolicyName'].startswith('sandbox-gpu-nodes-')] == []


def test_check_mode_on_a_new_cluster_shows_the_plan_and_changes_nothing(run_playbook):
    """`ansible-playbook site.yml --check --diff` is what a user runs first on a new cluster (the
    previous test left the sandbox torn down). Every play's objects are only planned there: the
    namespaces, the GPU nodes, the CPU label and the postgres Secret that later plays look for do
    not exist, so those checks are reported, not fatal, and nothing is written."""
    assert boto3.client('eks').list_nodegroups(clusterName='sandbox')['nodegroups'] == ['sandbox-cpu'], 'not a new cluster'
    check = run_playbook('site.yml', '--check', '--diff')
    assert check.returncode == 0, check
    assert check.changed > 0, 'a new cluster must show planned changes'
    assert check.activity['aws_mutating'] == 0, check.activity['aws_mutating_operations']
    assert _admin_writes(check) == [], _admin_writes(check)
    # The plan names what it would create, and says which checks it could only report.
    assert 'node group gpu-nodes does not exist yet' in check.output, check
    assert 'check mode: reported, not fatal' in check.output, check
    namespaces = {n['metadata']['name'] for n in _kubectl('get', 'namespaces')}
    assert not namespaces & set(STACK_NAMESPACES), namespaces & set(STACK_NAMESPACES)
