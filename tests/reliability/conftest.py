"""Fixtures of the reliability suite.

The suite needs a sandbox of its own (counts of the journal and audit log must be its own, and
some tests stop sandbox components):

    SANDBOX_DIR=/tmp/rel/sbx sandbox/sandboxctl up
    set -a; . /tmp/rel/sbx/env; set +a
    .venv/bin/python -m pytest -p no:cacheprovider tests/reliability

`cluster_gpu_lifecycle` is shared by the fault, safe-default and secret tests: one converge and
one teardown of playbooks/cluster_gpu.yml with every mutating AWS operation failing first
(throttling, 500, 503), run with -vvv --diff and a distinctive AWS secret key.
"""
import os
import sys
import uuid

import boto3
import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'tools'))

import _support  # noqa: E402  pylint: disable=wrong-import-position
import steady_load  # noqa: E402  pylint: disable=wrong-import-position
# This run's counts (docs/security.md): reset per session, kept only for tests that passed. The
# hooks live in a module of their own so that a unit test can run them without a sandbox.
from _counts_plugin import (  # noqa: E402,F401  pylint: disable=wrong-import-position,unused-import
    pytest_runtest_logreport, pytest_runtest_protocol, pytest_sessionfinish, pytest_sessionstart)

CLUSTER = 'sandbox'
NODEGROUP = 'gpu-nodes'

PLAYBOOK = 'playbooks/cluster_gpu.yml'
COLLECTION_KEY_ID = 'AKIARELIABILITYSUITE'

# Mutating AWS operations the collection may send (code reading). The tests derive the ones
# actually used from the journal and fail when a run sends one that is not listed here.
# Every mutating operation the AWS modules send (grep the modules for their client calls); the
# lifecycle below sends each of them at least once. ec2:CreateTags is an authorisation action of
# CreateLaunchTemplate's tag specifications, not a request of its own.
CANDIDATE_OPERATIONS = [
    ('iam', 'PutRolePolicy'), ('iam', 'DeleteRolePolicy'),
    ('ec2', 'CreateLaunchTemplate'), ('ec2', 'CreateLaunchTemplateVersion'), ('ec2', 'ModifyLaunchTemplate'),
    ('ec2', 'DeleteLaunchTemplate'),
    ('eks', 'CreateNodegroup'), ('eks', 'UpdateNodegroupConfig'), ('eks', 'UpdateNodegroupVersion'),
    ('eks', 'DeleteNodegroup'), ('eks', 'TagResource'), ('eks', 'UntagResource'),
    ('autoscaling', 'PutScalingPolicy'), ('autoscaling', 'DeletePolicy'),
    ('cloudwatch', 'PutMetricAlarm'), ('cloudwatch', 'DeleteAlarms'),
]
# The lifecycle's phases, in order; each runs with a throttling error, a 500 and a 503 queued for
# every candidate operation. roll: a new instance type and a tag (a new template version rolled
# into the node group, the tag added); unroll: back, without the tag (another version, the tag removed).
FAULTED_PHASES = ('converge', 'roll', 'unroll', 'teardown')


def fault_specs(operations):
    """Per operation: a throttling error, a 500 and a 503, each in the protocol's format."""
    specs = []
    for service, operation in operations:
        internal = 'InternalError' if service == 'ec2' else 'InternalFailure'
        specs += [
            {'service': service, 'operation': operation, 'code': 'ThrottlingException', 'status': 400, 'times': 1},
            {'service': service, 'operation': operation, 'code': internal, 'status': 500, 'times': 1},
            {'service': service, 'operation': operation, 'code': 'ServiceUnavailable', 'status': 503, 'times': 1},
        ]
    return specs


def canary(label):
    """A distinctive value that must never show up in output, journal or audit log."""
    return 'LEAKCANARY%s%s' % (label.upper(), uuid.uuid4().hex)


@pytest.fixture(scope='session', autouse=True)
def sandbox_env():
    for name in ('AWS_ENDPOINT_URL', 'SANDBOX_AWS_JOURNAL', 'SANDBOX_KUBE_AUDIT', 'KUBECONFIG', 'SANDBOX_REGISTRY'):
        if not os.environ.get(name):
            pytest.fail('the sandbox is not configured (%s unset): start a private instance and source its env, '
                        'see tests/reliability/conftest.py' % name)
    _support.clear_faults()
    yield
    _support.clear_faults()


@pytest.fixture(autouse=True)
def no_leftover_faults():
    yield
    _support.clear_faults()


def _snapshot():
    eks = boto3.client('eks')
    ec2 = boto3.client('ec2')
    group = eks.describe_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP)['nodegroup']
    template = group['launchTemplate']
    data = ec2.describe_launch_template_versions(LaunchTemplateId=template['id'], Versions=[str(template['version'])])[
        'LaunchTemplateVersions'][0]['LaunchTemplateData']
    subnets = ec2.describe_subnets(SubnetIds=group['subnets'])['Subnets']
    return {'nodegroup': group, 'launch_template_data': data, 'subnets': subnets,
            'alarms': boto3.client('cloudwatch').describe_alarms(AlarmNamePrefix='%s-%s-' % (CLUSTER, NODEGROUP))['MetricAlarms']}


@pytest.fixture(scope='session')
def cluster_gpu_lifecycle():
    secret_key = canary('awskey')
    # A key id of its own: the journal attributes the collection's requests (the node mirror
    # polls the emulator with the sandbox's default key).
    env = {'AWS_SECRET_ACCESS_KEY': secret_key, 'AWS_ACCESS_KEY_ID': COLLECTION_KEY_ID}
    result = {'secret': secret_key}
    _support.clear_faults()
    if NODEGROUP in boto3.client('eks').list_nodegroups(clusterName=CLUSTER)['nodegroups']:
        # Left over from an interrupted run: the converge must start from nothing to send every operation.
        _support.run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent')
    _support.queue_faults(fault_specs(CANDIDATE_OPERATIONS))
    result['converge'] = _support.run_playbook(PLAYBOOK, '-vvv', '--diff', env_extra=env)
    result['queued_after_converge'] = _support.queued_faults()
    _support.clear_faults()
    try:
        if result['converge'].returncode == 0:
            result['snapshot'] = _snapshot()
            result['check'] = _support.run_playbook(PLAYBOOK, '--check', '--diff', '-vvv', '-e',
                                                    'cluster_gpu_gpu_scale_out_threshold=55', env_extra=env)
            for phase, extra in (('roll', ['-e', 'cluster_gpu_instance_type=g5.xlarge', '-e', '{"cluster_gpu_tags": {"rel-roll": "yes"}}']),
                                 ('unroll', [])):
                _support.queue_faults(fault_specs(CANDIDATE_OPERATIONS))
                result[phase] = _support.run_playbook(PLAYBOOK, '-vvv', *extra, env_extra=env)
                _support.clear_faults()
                result[phase + '_snapshot'] = _snapshot()
    finally:
        _support.queue_faults(fault_specs(CANDIDATE_OPERATIONS))
        result['teardown'] = _support.run_playbook(PLAYBOOK, '-vvv', '-e', 'cluster_gpu_state=absent', env_extra=env)
        _support.clear_faults()
    return result


@pytest.fixture(scope='session')
def engine_addons():
    """The cluster add-ons the engine's preflight asks for on the sandbox (its IngressClass alb, the metrics API
    of its HPA), installed once by an administrator, as a user's platform team would, and removed at the end.
    cert-manager stays off: the engine does not use it, and the add-ons' own suite runs it."""
    args = ('-e', 'cluster_addons_cert_manager_enabled=false')
    installed = _support.run_playbook('playbooks/cluster_addons.yml', *args)
    assert installed.returncode == 0, installed
    yield installed
    removed = _support.run_playbook('playbooks/cluster_addons.yml', '-e', 'cluster_addons_state=absent', *args)
    assert removed.returncode == 0, removed


@pytest.fixture(scope='session', autouse=True)
def steady_gpu_load():
    """The GPU Nodes hold still while the suite converges and compares (tests/tools/steady_load.py)."""
    with steady_load.holding(steady_load.STEADY):
        yield
