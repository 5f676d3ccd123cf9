"""site.yml and teardown.yml on the sandbox, as a user runs them: the README's `make demo`, then
the collection's tarball, installed into an empty path (tests/docs/check-install.sh --into),
through the molecule/default scenario's steps a user runs too, then the README's teardown command.

make site-check (which make test runs) first runs tests/docs/check-demo.sh --keep: `make demo`
converges the sandbox (at once when .ci/run's own `make demo` did it already) and a further `make
demo` must report changed=0 and print how to tear down; the converged demo is kept for this test
and the teardown command written down. (This way make test converges the whole site from empty once,
not once for the demo and again from the tarball.)

Every run from the tarball below has ANSIBLE_COLLECTIONS_PATH naming only that path, which takes
precedence over the checkout's ansible.cfg (whose collections_path names the checkout):
genai.stack, its roles, modules and playbooks (the scenario's converge imports genai.stack.site)
come from the installed tarball, and the checkout is not on the path at all; check-install.sh
shows that genai.stack.site and genai.stack.teardown resolve there from this very directory.

On the demo's site, genai.stack.site from the tarball (what the scenario's converge imports) must
report changed=0 with no mutating AWS request and no Kubernetes write by the admin user (the
installed copy converges to what the checkout converged), molecule's verify checks the site by another route, `genai.stack.site
--check --diff` must change nothing, and `genai.stack.teardown --check --diff` must plan the
removals (and name them) without any write. Then the README's teardown command, run as `make demo`
printed it, must write (the positive control of every "no write" claim before it, counted by the
same code) and leave no release, secret, stack namespace, GPU node group, launch template,
node-role inline policy, alarm or scaling policy (none referring to the GPU Auto Scaling group),
dashboard ConfigMap, or stack database and owner (the sandbox drops them on absent) behind. Last,
check mode from the tarball on the cluster without the site plans it all and writes nothing.
"""
import json
import os
import shlex
import subprocess

import boto3
import pytest
import yaml

from playbook_helpers import SITE_STACK_NAMESPACES, planned_changes, psql

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
STACK_NAMESPACES = list(SITE_STACK_NAMESPACES)
# What the teardown's check-mode plan must show going, in its diff or changed items: releases,
# Secrets, the node group's launch template, its role's inline policy, an alarm.
PLANNED_REMOVALS = ['(item=adaptive)', 'adaptive-control-plane-secret', 'arthur/postgres-secret', 'kube-prometheus-stack',
                    'grafana-admin-credentials', 'sandbox-gpu-nodes', 'genai-stack-cloudwatch-metrics', 'sandbox-gpu-nodes-gpu-scale-out',
                    'status: deployed']

# The add-ons the sandbox inventory turns on (inventories/sandbox/group_vars/all/cluster_addons.yml): their releases.
ADDON_RELEASES = ('aws-load-balancer-controller', 'metrics-server', 'cert-manager')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """The environment of every run: the collection built and installed from its tarball."""
    into = tmp_path_factory.mktemp('installed')
    proc = subprocess.run([os.path.join(ROOT, 'tests', 'docs', 'check-install.sh'), '--into', str(into)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    name, _unused, path = proc.stdout.strip().splitlines()[-1].partition('=')
    manifest = os.path.join(path, 'ansible_collections', 'genai', 'stack', 'MANIFEST.json')
    assert name == 'ANSIBLE_COLLECTIONS_PATH' and os.path.isfile(manifest), proc.stdout[-2000:]
    return {'ANSIBLE_COLLECTIONS_PATH': path}


def _kubectl(*args):
    proc = subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl')] + list(args) + ['-o', 'json'],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)['items']


def _recap(run):
    """The PLAY RECAP counts; a run whose recap was not parsed would make changed == 0 vacuous."""
    assert run.recap, 'no PLAY RECAP parsed: %r' % run
    assert 'sandbox' in run.recap, run.recap
    return run.recap


def _hostvars():
    """The sandbox host's variables as the plays see them (inventory group_vars templated)."""
    proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-inventory'), '--host', 'sandbox'], cwd=ROOT,
                          env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg')), capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def _role_default(role, name):
    with open(os.path.join(ROOT, 'roles', role, 'defaults', 'main.yml'), encoding='utf-8') as handle:
        return yaml.safe_load(handle)[name]


def _psql(sql):
    proc = psql(sql)
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def _gpu_asg():
    groups = boto3.client('autoscaling').describe_auto_scaling_groups()['AutoScalingGroups']
    return [g['AutoScalingGroupName'] for g in groups
            if {'Key': 'eks:nodegroup-name', 'Value': _role_default('cluster_gpu', 'cluster_gpu_nodegroup_name')}
            in [{'Key': t['Key'], 'Value': t['Value']} for t in g.get('Tags', [])]]


def _teardown_command():
    """The teardown command `make demo` printed (tests/docs/check-demo.sh --keep wrote it down)."""
    path = os.path.join(ROOT, 'tests', 'output', 'demo-check', 'teardown-command')
    assert os.path.isfile(path), 'no converged demo to check: run make site-check (tests/docs/check-demo.sh --keep, then this test)'
    with open(path, encoding='utf-8') as handle:
        command = handle.read().strip()
    assert command == 'make teardown', 'make demo printed another teardown command than the README names: %r' % command
    return command


def _assert_demo_converged():
    """The demo's site, as tests/docs/check-demo.sh --keep left it: every stack namespace and the
    GPU node group (without them, "no change" below would hold for an empty sandbox too)."""
    groups = boto3.client('eks').list_nodegroups(clusterName='sandbox')['nodegroups']
    namespaces = {n['metadata']['name'] for n in _kubectl('get', 'namespaces')}
    gpu_group = _role_default('cluster_gpu', 'cluster_gpu_nodegroup_name')
    assert gpu_group in groups and set(STACK_NAMESPACES) <= namespaces, \
        'not the converged demo (node groups %s, stack namespaces missing %s): run make site-check' % (
            groups, sorted(set(STACK_NAMESPACES) - namespaces))


def _assert_teardown_previewed(run_playbook, gpu_asgs, installed):
    """`teardown.yml --check --diff` on the converged site, what a user reads before removing it:
    every stack's removal planned and named, and not one write, to AWS or to Kubernetes."""
    releases_before = _kubectl('get', 'secrets', '-A', '-l', 'owner=helm')
    plan = run_playbook('genai.stack.teardown', '--check', '--diff', env_extra=installed)
    assert plan.returncode == 0, plan
    assert _recap(plan)['sandbox']['changed'] > 0, plan
    plan.assert_no_write()
    shown = planned_changes(plan.output)
    missing = [name for name in PLANNED_REMOVALS if name not in shown]
    assert not missing, (missing, shown)
    # Nothing was removed, by another route than the journal and the audit log.
    assert _gpu_asg() == gpu_asgs
    namespaces = {n['metadata']['name'] for n in _kubectl('get', 'namespaces')}
    assert set(STACK_NAMESPACES) <= namespaces, set(STACK_NAMESPACES) - namespaces
    assert len(_kubectl('get', 'secrets', '-A', '-l', 'owner=helm')) == len(releases_before)


def test_site_from_the_tarball_on_the_demo_reruns_clean_then_tears_down(run_playbook, run_molecule, run_counted, installed):
    teardown_command = _teardown_command()
    _assert_demo_converged()
    gpu_asgs = _gpu_asg()
    assert len(gpu_asgs) == 1, gpu_asgs
    try:
        # molecule keeps which steps it ran in its own state: forgotten here, so verify really runs.
        reset = run_molecule('reset', env_extra=installed)
        assert reset.returncode == 0, reset

        # genai.stack.site from the tarball (what the scenario's converge imports) on the site the
        # checkout's make demo converged: what molecule's idempotence step asks of a re-run. (molecule's
        # own converge step would run its prepare first, which refuses a sandbox holding the site.)
        again = run_playbook('genai.stack.site', env_extra=installed)
        assert again.returncode == 0, again
        _recap(again)
        assert again.changed == 0, again
        again.assert_no_write()

        verify = run_molecule('verify', env_extra=installed)
        assert verify.returncode == 0, verify
        assert _recap(verify)['sandbox']['failed'] == 0, verify
        verify.assert_no_write()

        check = run_playbook('genai.stack.site', '--check', '--diff', env_extra=installed)
        assert check.returncode == 0, check
        _recap(check)
        assert check.changed == 0, check
        check.assert_no_write()

        # GPU pods of the stacks run on the GPU Nodes that came from the EKS node group.
        gpu_nodes = {n['metadata']['name'] for n in _kubectl('get', 'nodes', '-l', 'capability=gpu')}
        gpu_pods = [p for p in _kubectl('get', 'pods', '-A')
                    if any('nvidia.com/gpu' in (c.get('resources', {}).get('limits') or {}) for c in p['spec']['containers'])]
        assert gpu_pods, 'no pod requests nvidia.com/gpu'
        for pod in gpu_pods:
            assert pod['status']['phase'] == 'Running', pod['metadata']['name']
            assert pod['spec']['nodeName'] in gpu_nodes, (pod['metadata']['name'], pod['spec']['nodeName'])
        # The add-ons' own Pods (cluster_addons_avoid_gpu_nodes, on by default) run beside them, not on them: the scheduler
        # placed every Pod of the add-ons' Deployments on the CPU Nodes, while the GPU Nodes were there to take them.
        addon_pods = [p for p in _kubectl('get', 'pods', '-A', '-l', 'app.kubernetes.io/instance in (%s)' % ','.join(ADDON_RELEASES))
                      if not any(o['kind'] in ('DaemonSet', 'Job') for o in p['metadata'].get('ownerReferences', []))]
        assert {p['metadata']['labels']['app.kubernetes.io/instance'] for p in addon_pods} == set(ADDON_RELEASES), addon_pods
        assert gpu_nodes and [(p['metadata']['name'], p['spec']['nodeName']) for p in addon_pods if p['spec'].get('nodeName') in gpu_nodes] == []
        # So do the observability stack's (observability_avoid_gpu_nodes): Grafana, kube-state-metrics, the operator, OpenSearch; its
        # daemons (fluent-bit, the DCGM and node exporters) run on the GPU Nodes as they should.
        monitoring = _kubectl('get', 'pods', '-n', 'monitoring')
        daemon = [p for p in monitoring if any(o['kind'] == 'DaemonSet' for o in p['metadata'].get('ownerReferences', []))]
        stack = [p for p in monitoring if not any(o['kind'] in ('DaemonSet', 'Job') for o in p['metadata'].get('ownerReferences', []))]
        assert len(stack) >= 4 and [(p['metadata']['name'], p['spec']['nodeName']) for p in stack if p['spec'].get('nodeName') in gpu_nodes] == []
        assert {p['spec'].get('nodeName') for p in daemon} & gpu_nodes, [(p['metadata']['name'], p['spec'].get('nodeName')) for p in daemon]

        _assert_teardown_previewed(run_playbook, gpu_asgs, installed)
    finally:
        # The README's teardown command, as make demo printed it.
        down = run_counted(shlex.split(teardown_command) + ['--no-print-directory'])
    assert down.returncode == 0, down
    assert _recap(down)['sandbox']['changed'] > 0, down
    # The positive control: the counters that read zero above do see the teardown's writes.
    down.assert_wrote()
    assert down.activity['aws_mutating'] > 0, down.activity

    namespaces = {n['metadata']['name'] for n in _kubectl('get', 'namespaces')}
    assert not namespaces & set(STACK_NAMESPACES), namespaces & set(STACK_NAMESPACES)
    releases = _kubectl('get', 'secrets', '-A', '-l', 'owner=helm')
    assert releases == [], [r['metadata']['name'] for r in releases]
    eks = boto3.client('eks')
    assert eks.list_nodegroups(clusterName='sandbox')['nodegroups'] == ['sandbox-cpu']
    assert boto3.client('cloudwatch').describe_alarms(AlarmNamePrefix='sandbox-gpu-nodes-')['MetricAlarms'] == []
    policies = boto3.client('autoscaling').describe_policies()['ScalingPolicies']
    assert [p['PolicyName'] for p in policies if p['PolicyName'].startswith('sandbox-gpu-nodes-')] == []
    # Nothing refers to the GPU node group's Auto Scaling group any more.
    assert _gpu_asg() == []
    assert [p['PolicyName'] for p in policies if p['AutoScalingGroupName'] in gpu_asgs] == []
    alarms = boto3.client('cloudwatch').describe_alarms()['MetricAlarms']
    assert [a['AlarmName'] for a in alarms if any(asg in json.dumps(a, default=str) for asg in gpu_asgs)] == []
    # cluster_gpu's inline policy on the node role and the node group's launch template are gone.
    role = _hostvars()['cluster_gpu_node_role_arn'].rsplit('/', 1)[1]
    inline = boto3.client('iam').list_role_policies(RoleName=role)['PolicyNames']
    assert _role_default('cluster_gpu', 'cluster_gpu_node_policy_name') not in inline, inline
    template = 'sandbox-%s' % _role_default('cluster_gpu', 'cluster_gpu_nodegroup_name')
    templates = boto3.client('ec2').describe_launch_templates()['LaunchTemplates']
    assert template not in [t['LaunchTemplateName'] for t in templates], templates
    # No dashboard ConfigMap of the observability role anywhere.
    dashboards = _kubectl('get', 'configmaps', '-A', '-l', 'genai.stack/dashboards=observability')
    assert dashboards == [], [d['metadata']['name'] for d in dashboards]
    # The sandbox drops the stacks' databases and owners on absent (postgres_drop_on_absent).
    hostvars = _hostvars()
    assert hostvars['postgres_drop_on_absent'] is True
    stack_databases = hostvars.get('postgres_databases', _role_default('postgres', 'postgres_databases'))
    databases = [db['name'] for db in stack_databases]
    owners = [db['owner'] for db in stack_databases]
    assert databases and owners
    left = _psql("SELECT datname FROM pg_database WHERE datname IN (%s)" % ', '.join("'%s'" % d for d in databases))
    assert left == [], left
    left = _psql("SELECT rolname FROM pg_roles WHERE rolname IN (%s)" % ', '.join("'%s'" % o for o in owners))
    assert left == [], left


def test_check_mode_on_a_new_cluster_shows_the_plan_and_changes_nothing(run_playbook, installed):
    """`ansible-playbook site.yml --check --diff` is what a user runs first on a new cluster (the
    previous test left the sandbox torn down). Every play's objects are only planned there: the
    namespaces, the GPU nodes, the CPU label and the postgres Secret that later plays look for do
    not exist, so those checks are reported, not fatal, and nothing is written."""
    assert boto3.client('eks').list_nodegroups(clusterName='sandbox')['nodegroups'] == ['sandbox-cpu'], 'not a new cluster'
    check = run_playbook('genai.stack.site', '--check', '--diff', env_extra=installed)
    assert check.returncode == 0, check
    _recap(check)
    assert check.changed > 0, 'a new cluster must show planned changes'
    check.assert_no_write()
    # The plan names what it would create, and says which checks it could only report.
    assert 'node group gpu-nodes does not exist yet' in check.output, check
    assert 'check mode: reported, not fatal' in check.output, check
    namespaces = {n['metadata']['name'] for n in _kubectl('get', 'namespaces')}
    assert not namespaces & set(STACK_NAMESPACES), namespaces & set(STACK_NAMESPACES)
