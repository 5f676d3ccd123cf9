"""Role cluster_gpu through playbooks/cluster_gpu.yml on the sandbox inventory, as a user runs it."""
import json
import os
import re
import signal
import subprocess
import uuid

import boto3
import pytest

import aws_state
from playbook_helpers import assert_absent_previewed, wait_for

PLAYBOOK = 'playbooks/cluster_gpu.yml'
CLUSTER = 'sandbox'
NODEGROUP = 'gpu-nodes'
ROLE_NAME = 'sandbox-eks-node-role'
POLICY = 'genai-stack-cloudwatch-metrics'


def _alarms():
    found = boto3.client('cloudwatch').describe_alarms(AlarmNamePrefix='%s-%s-' % (CLUSTER, NODEGROUP))['MetricAlarms']
    return {a['AlarmName']: a for a in found}


def _kubectl_json(*args):
    out = subprocess.run([os.environ['KUBECTL_BIN']] + list(args) + ['-o', 'json'], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _gpu_nodes():
    items = _kubectl_json('get', 'nodes', '-l', 'eks.amazonaws.com/nodegroup=%s' % NODEGROUP)['items']
    return {n['metadata']['name']: int(n['status'].get('allocatable', {}).get('nvidia.com/gpu', '0')) for n in items}


def _nodegroup():
    try:
        return boto3.client('eks').describe_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP)['nodegroup']
    except boto3.client('eks').exceptions.ResourceNotFoundException:
        return None


def _template_data(group):
    """LaunchTemplateData of the version the node group runs."""
    template = group['launchTemplate']
    return boto3.client('ec2').describe_launch_template_versions(
        LaunchTemplateId=template['id'], Versions=[str(template['version'])])['LaunchTemplateVersions'][0]['LaunchTemplateData']


def _assert_rolled_in_place(run, before, instance_type):
    """The run moved the same node group and template to the next version with UpdateNodegroupVersion."""
    after = _nodegroup()
    assert after['nodegroupArn'] == before['nodegroupArn'], (before['nodegroupArn'], after['nodegroupArn'])
    assert after['launchTemplate']['id'] == before['launchTemplate']['id']
    assert int(after['launchTemplate']['version']) == int(before['launchTemplate']['version']) + 1, (before['launchTemplate'], after['launchTemplate'])
    assert _template_data(after)['InstanceType'] == instance_type
    operations = run.activity['aws_mutating_operations']
    assert 'eks:UpdateNodegroupVersion' in operations, operations
    assert 'ec2:CreateLaunchTemplateVersion' in operations, operations
    assert not {'eks:CreateNodegroup', 'eks:DeleteNodegroup', 'ec2:CreateLaunchTemplate', 'ec2:DeleteLaunchTemplate'} & set(operations), operations
    return after


# Every mutating operation the role sends, creating and removing.
CONVERGE_OPERATIONS = ['PutRolePolicy', 'CreateLaunchTemplate', 'CreateNodegroup', 'PutScalingPolicy', 'PutMetricAlarm', 'UpdateNodegroupConfig']
TEARDOWN_OPERATIONS = ['DeleteAlarms', 'DeletePolicy', 'DeleteNodegroup', 'DeleteLaunchTemplate', 'DeleteRolePolicy', 'UpdateNodegroupConfig']
SECRET = 'sandbox-secret-' + uuid.uuid4().hex


def _assert_retried(run, operations):
    """Each operation met its injected throttling error and then succeeded."""
    requests = run.activity['aws_request_list']
    for operation in operations:
        statuses = [r['status'] for r in requests if r['operation'] == operation]
        assert statuses[:1] == [400] and 200 in statuses, (operation, statuses)


def _assert_verify_fails_clearly(run_playbook):
    """A GPU Node that advertises no GPU (the device plugin not running on it) fails the verify
    step with a report naming that Node. The node mirror, which would restore the Node's GPUs
    within 2 s, is paused meanwhile and resumed after."""
    pidfile = os.path.join(os.path.dirname(os.environ['SANDBOX_KUBECONFIG_NODEMIRROR']), 'run', 'nodemirror.pid')
    with open(pidfile, encoding='utf-8') as handle:
        mirror = int(handle.read().strip())
    # Verify wants at least cluster_gpu_min_size (4 in the sandbox inventory) GPU Nodes: with 4,
    # two without GPUs leave two.
    nodes = sorted(_gpu_nodes())
    victims = nodes[:2]
    no_gpu = json.dumps({'status': {'capacity': {'nvidia.com/gpu': '0'}, 'allocatable': {'nvidia.com/gpu': '0'}}})
    os.kill(mirror, signal.SIGSTOP)
    try:
        for victim in victims:
            subprocess.run([os.environ['KUBECTL_BIN'], 'patch', 'node', victim, '--subresource=status', '--type=merge', '-p', no_gpu],
                           check=True, capture_output=True, text=True)
        assert [_gpu_nodes()[victim] for victim in victims] == [0] * len(victims)
        failed = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_verify_timeout=6')
    finally:
        os.kill(mirror, signal.SIGCONT)
    assert failed.returncode != 0, failed
    assert ('cluster_gpu verify: expected at least 4 (cluster_gpu_min_size) Ready Node(s) with nvidia.com/gpu allocatable in node group %s'
            ' after 6 s' % NODEGROUP) in failed.output, failed
    for victim in victims:
        assert '%s (Ready, 0 GPU)' % victim in failed.output, failed
    assert failed.activity['aws_mutating'] == 0, failed
    assert wait_for(lambda: all(_gpu_nodes()[victim] == 1 for victim in victims)), _gpu_nodes()


def test_converge_rerun_check_and_teardown(run_playbook, sandbox_faults):
    # A distinctive secret key (the emulator accepts any) that must never reach the output.
    secret_env = {'AWS_SECRET_ACCESS_KEY': SECRET}
    # Start from no GPU capacity, whatever other tests of the session left (the stack tests share it).
    assert run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent').returncode == 0
    try:
        sandbox_faults(CONVERGE_OPERATIONS)
        first = run_playbook(PLAYBOOK, '-vvv', '--diff', env_extra=secret_env)
        assert first.returncode == 0, first
        assert SECRET not in first.output
        _assert_retried(first, CONVERGE_OPERATIONS)
        assert first.changed > 0, first
        # The positive control of the no-write checks below: the same counters see this converge.
        assert first.activity['aws_mutating'] > 0, first.activity
        first.assert_wrote()
        assert 'NVIDIA GPU(s) each, 4 in all' in first.output, first

        group = _nodegroup()
        # The sandbox inventory sizes the group for site.yml's GPU pods (4/6/4).
        assert group['scalingConfig'] == {'minSize': 4, 'maxSize': 6, 'desiredSize': 4}
        assert group['labels'] == {'capability': 'gpu'}
        assert group['tags']['k8s.io/cluster-autoscaler/%s' % CLUSTER] == 'owned'
        template = boto3.client('ec2').describe_launch_template_versions(
            LaunchTemplateId=group['launchTemplate']['id'], Versions=[str(group['launchTemplate']['version'])])['LaunchTemplateVersions'][0]
        data = template['LaunchTemplateData']
        assert data['InstanceType'] == 'g4dn.2xlarge'
        assert data['BlockDeviceMappings'][0]['Ebs'] == {'VolumeSize': 60, 'VolumeType': 'gp3', 'Encrypted': True, 'DeleteOnTermination': True}
        assert data['MetadataOptions']['HttpTokens'] == 'required'

        alarms = _alarms()
        gpu_out = alarms['%s-%s-gpu-scale-out' % (CLUSTER, NODEGROUP)]
        assert gpu_out['Threshold'] == 40.0 and gpu_out['ComparisonOperator'] == 'GreaterThanThreshold'
        assert gpu_out['EvaluationPeriods'] == 1
        assert gpu_out['Metrics'][0]['Period'] == 120
        assert 'nvidia_smi_utilization_gpu' in gpu_out['Metrics'][0]['Expression']
        assert alarms['%s-%s-gpu-scale-in' % (CLUSTER, NODEGROUP)]['Threshold'] == 10.0
        assert alarms['%s-%s-cpu-scale-out' % (CLUSTER, NODEGROUP)]['Threshold'] == 60.0
        assert alarms['%s-%s-cpu-scale-in' % (CLUSTER, NODEGROUP)]['Threshold'] == 5.0
        asg = group['resources']['autoScalingGroups'][0]['name']
        policies = {p['PolicyName']: p for p in boto3.client('autoscaling').describe_policies(AutoScalingGroupName=asg)['ScalingPolicies']}
        assert gpu_out['AlarmActions'] == [policies['%s-%s-gpu-scale-out' % (CLUSTER, NODEGROUP)]['PolicyARN']]
        assert policies['%s-%s-gpu-scale-in' % (CLUSTER, NODEGROUP)]['StepAdjustments'][0]['ScalingAdjustment'] == -1
        inline = boto3.client('iam').get_role_policy(RoleName=ROLE_NAME, PolicyName=POLICY)['PolicyDocument']
        if isinstance(inline, str):
            inline = json.loads(inline)
        with open(os.path.join(os.path.dirname(__file__), '..', '..', 'roles', 'cluster_gpu', 'files', 'cloudwatch-metrics-policy.json'),
                  encoding='utf-8') as handle:
            assert inline == json.load(handle)
        cpu_group = boto3.client('eks').describe_nodegroup(clusterName=CLUSTER, nodegroupName='%s-cpu' % CLUSTER)['nodegroup']
        assert cpu_group['labels'].get('capability') == 'cpu'
        # The Kubernetes side: two GPU Nodes with one allocatable GPU each, and the device plugin.
        assert sorted(_gpu_nodes().values()) == [1, 1, 1, 1]
        plugin = _kubectl_json('get', 'daemonset', '-n', 'nvidia-device-plugin', 'nvidia-device-plugin')
        assert plugin['spec']['template']['spec']['nodeSelector'] == {'capability': 'gpu'}

        second = run_playbook(PLAYBOOK)
        assert second.returncode == 0, second
        assert second.changed == 0, second
        second.assert_no_write()

        _assert_verify_fails_clearly(run_playbook)

        check = run_playbook(PLAYBOOK, '--check', '--diff', '-e', 'cluster_gpu_gpu_scale_out_threshold=55', '-e', 'cluster_gpu_instance_type=g5.2xlarge')
        assert check.returncode == 0, check
        assert check.changed >= 2, check
        check.assert_no_write()
        assert 'g5.2xlarge' in check.output, check
        assert _alarms()['%s-%s-gpu-scale-out' % (CLUSTER, NODEGROUP)]['Threshold'] == 40.0

        # The same change for real: a new template version rolled into the same node group.
        before = _nodegroup()
        rolled = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_instance_type=g5.2xlarge')
        assert rolled.returncode == 0, rolled
        assert rolled.changed >= 1, rolled
        after = _assert_rolled_in_place(rolled, before, 'g5.2xlarge')
        assert after['scalingConfig'] == group['scalingConfig']
        # Back to the inventory's instance type: one more version, still the same node group.
        restored = run_playbook(PLAYBOOK)
        assert restored.returncode == 0, restored
        _assert_rolled_in_place(restored, after, 'g4dn.2xlarge')
        settled = run_playbook(PLAYBOOK)
        assert settled.returncode == 0 and settled.changed == 0 and settled.activity['aws_mutating'] == 0, settled

        # The teardown previewed: planned and named, nothing removed.
        assert_absent_previewed(run_playbook, PLAYBOOK, 'cluster_gpu_state', env_extra=secret_env,
                                names=['%s-%s' % (CLUSTER, NODEGROUP), POLICY, '%s-%s-gpu-scale-out' % (CLUSTER, NODEGROUP), 'status: deployed'])
        assert _nodegroup() is not None and len(_alarms()) == 4
        assert sorted(_gpu_nodes().values()) == [1, 1, 1, 1]
    finally:
        sandbox_faults(TEARDOWN_OPERATIONS)
        down = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent', '-vvv', env_extra=secret_env)
    assert down.returncode == 0, down
    assert SECRET not in down.output
    _assert_retried(down, TEARDOWN_OPERATIONS)
    assert _nodegroup() is None
    assert _alarms() == {}
    assert POLICY not in boto3.client('iam').list_role_policies(RoleName=ROLE_NAME)['PolicyNames']
    # Nothing of ours by any other route either: template by name, tagged ASG, scaling policies.
    assert aws_state.leftovers(CLUSTER, NODEGROUP, role=ROLE_NAME, policy=POLICY) == {
        'nodegroup': None, 'launch_template': None, 'autoscaling_groups': [], 'scaling_policies': [], 'alarms': [], 'role_policy': None}
    cpu_group = boto3.client('eks').describe_nodegroup(clusterName=CLUSTER, nodegroupName='%s-cpu' % CLUSTER)['nodegroup']
    assert 'capability' not in cpu_group['labels']
    assert wait_for(lambda: _gpu_nodes() == {}), _gpu_nodes()
    namespaces = [n['metadata']['name'] for n in _kubectl_json('get', 'namespaces')['items']]
    assert 'nvidia-device-plugin' not in namespaces
    again = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent')
    assert again.returncode == 0 and again.changed == 0, again


BAD_VARS = [
    ('cluster_gpu_min_size=7', 'cluster_gpu_min_size: must be between'),
    ('cluster_gpu_desired_size=9', 'cluster_gpu_desired_size: must be between'),
    ('cluster_gpu_max_size=0', 'cluster_gpu_max_size: must be at least 1'),
    ('cluster_gpu_gpu_scale_in_threshold=50', 'cluster_gpu_gpu_scale_in_threshold: must be'),
    ('cluster_gpu_gpu_scale_out_threshold=120', 'cluster_gpu_gpu_scale_out_threshold: is a percentage'),
    ('cluster_gpu_cpu_scale_out_threshold=101', 'cluster_gpu_cpu_scale_out_threshold: is a percentage'),
    ('cluster_gpu_cpu_scale_in_threshold=-1', 'cluster_gpu_cpu_scale_in_threshold: must be'),
    ('cluster_gpu_alarm_period=90', 'cluster_gpu_alarm_period: must be 10, 30 or a multiple of 60'),
    ('cluster_gpu_alarm_evaluation_periods=0', 'cluster_gpu_alarm_evaluation_periods: must be at least 1'),
    ('cluster_gpu_scale_in_adjustment=1', 'cluster_gpu_scale_in_adjustment: must be negative'),
    ('cluster_gpu_scale_out_adjustment=0', 'cluster_gpu_scale_out_adjustment: must be positive'),
    ('cluster_gpu_instance_type=m5.xlarge', 'instance_type:'),
    ('cluster_gpu_instance_type=g5.huge', 'instance_type:'),
    ('cluster_gpu_ami_id=ami-nope', 'ami_id:'),
    ('cluster_gpu_disk_size=8', 'disk_size:'),
    ('cluster_gpu_cluster_name=nosuch', 'cluster_name: no EKS cluster'),
    ('cluster_gpu_node_role_arn=not-an-arn', 'node_role:'),
    # Structured values go as JSON: `-e key=[...]` would hand the role a string, refused for its type, not for its content.
    ({'cluster_gpu_subnets': ['subnet-0123456789abcdef0']}, "subnets: The subnet ID 'subnet-0123456789abcdef0' does not exist"),
    ('cluster_gpu_state=sideways', 'cluster_gpu_state'),
    ('cluster_gpu_disk_size=lots', 'cluster_gpu_disk_size'),
    ('cluster_gpu_ami_type=ubuntu', 'cluster_gpu_ami_type'),
    # Bottlerocket nodes publish no GPU metrics (no CloudWatch agent), so the alarms (on by default) are refused.
    ('cluster_gpu_ami_type=BOTTLEROCKET_x86_64_NVIDIA',
     'cluster_gpu preflight: cluster_gpu_alarms_enabled: must be false with cluster_gpu_ami_type BOTTLEROCKET_x86_64_NVIDIA'),
    ({'cluster_gpu_labels': {'bad key!': 'x'}}, "labels: key 'bad key!' is not a valid Kubernetes label key"),
    # A malformed subnet id (the case above is well-formed but does not exist).
    ({'cluster_gpu_subnets': ['subnet-xyz']}, "subnets: 'subnet-xyz' is not a subnet id"),
    # A well-formed ARN of a role that does not exist (the case above is not an ARN).
    ('cluster_gpu_node_role_arn=arn:aws:iam::123456789012:role/no-such-role', "node_role: IAM role 'no-such-role' does not exist"),
    ('cluster_gpu_node_role_arn=', 'cluster_gpu_node_role_arn: is required'),
    ('cluster_gpu_ami_id=ami-0123456789abcdef0', 'ami_id: AMI ami-0123456789abcdef0 does not exist'),
    ('cluster_gpu_nodegroup_name=-gpu', "name: '-gpu' is not a valid node group name"),
    ({'cluster_gpu_tags': {'aws:owner': 'me'}}, "tags: tag keys may not start with aws: ('aws:owner')"),
    ({'cluster_gpu_labels': {'capability': 'g' * 70}}, "labels: value of key 'capability' is not a valid Kubernetes label value"),
    ('cluster_gpu_labels=capability', "argument 'cluster_gpu_labels' is of type str"),
    ('cluster_gpu_wait_timeout=0', 'wait_timeout: must be >= 1'),
    ('cluster_gpu_min_size=two', 'cluster_gpu_min_size'),
    ('cluster_gpu_taint=sometimes', 'cluster_gpu_taint'),
]


def _extra_vars(extra):
    return extra if isinstance(extra, str) else json.dumps(extra)


# These refusals are the AWS side's: the device plugin, whose chart the preflight renders before the first
# AWS change (the test below), is left out so that each run does not pay for that render too.
@pytest.fixture
def no_gpu_nodegroup(run_playbook):
    """The refusals below are those of a new node group (an existing one is refused for other reasons,
    e.g. "cannot change the node role of existing node group"): a group an earlier module's
    gpu_capacity fixture made is removed first (that fixture makes it again for the modules after)."""
    if _nodegroup() is not None:
        down = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent')
        assert down.returncode == 0, down
    assert _nodegroup() is None, 'node group %s is still there: these refusals are those of a new node group' % NODEGROUP


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[re.sub(r'[^\w.=:/-]+', '_', _extra_vars(b[0]))[:60] for b in BAD_VARS])
def test_preflight_refuses_before_any_change(run_playbook, no_gpu_nodegroup, extra, message):  # pylint: disable=unused-argument,redefined-outer-name
    run = run_playbook(PLAYBOOK, '-e', _extra_vars(extra), '-e', '{"cluster_gpu_device_plugin_enabled": false}')
    assert run.returncode != 0, run
    assert message in run.output, run
    run.assert_no_write()  # no mutating AWS request, no Kubernetes write


VENDOR_DEVICE_PLUGIN = 'nvidia-device-plugin' not in os.environ.get('SANDBOX_STANDIN_CHARTS', 'nvidia-device-plugin').split(',')


# The NVIDIA device plugin chart's own judgement (a render of what would be installed), before the first AWS
# change, blamed on the variable to change: a pinned version the chart mirror lacks, and a value the chart's
# templates refuse (it has no values.schema.json; it refuses the default namespace).
STANDIN_DEVICE_PLUGIN = ("the sandbox's chart mirror holds the device plugin's stand-in, which has no such rule"
                         ' (GENAI_STACK_CHART_DIR without nvidia-device-plugin-0.20.0.tgz)')


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', [
    ('cluster_gpu_device_plugin_chart_version=9.9.9',
     'cluster_gpu_device_plugin_chart_version: helm cannot render the chart %s/nvidia-device-plugin 9.9.9' % os.environ.get('SANDBOX_CHART_MIRROR', '')),
    pytest.param('cluster_gpu_device_plugin_namespace=default',
                 "cluster_gpu_device_plugin_namespace: helm cannot render the chart %s/nvidia-device-plugin 0.20.0 with the values the role would"
                 " install: execution error at (nvidia-device-plugin/templates/validation.yml:19:4): Running in the 'default' namespace is not"
                 " recommended." % os.environ.get('SANDBOX_CHART_MIRROR', ''),
                 marks=pytest.mark.skipif(not VENDOR_DEVICE_PLUGIN, reason=STANDIN_DEVICE_PLUGIN)),
], ids=['chart_version', 'namespace'])
def test_device_plugin_chart_refusal_before_any_change(run_playbook, extra, message):
    # With an alarm setting that a converge would write (as it would a node group that does not exist yet),
    # so that no mutating AWS request shows the refusal came first.
    run = run_playbook(PLAYBOOK, '-e', extra, '-e', 'cluster_gpu_alarm_evaluation_periods=3')
    assert run.returncode != 0, run
    assert message in run.output, run
    run.assert_no_write()  # no mutating AWS request, no Kubernetes write


@pytest.fixture
def other_cluster():
    """create(name, version): an extra EKS cluster in the sandbox VPC, deleted after the test."""
    eks = boto3.client('eks')
    created = []

    def create(name, version):
        subnets = [s['SubnetId'] for s in boto3.client('ec2').describe_subnets(
            Filters=[{'Name': 'tag:sandbox:tier', 'Values': ['private']}])['Subnets']]
        role = boto3.client('iam').get_role(RoleName='sandbox-eks-cluster-role')['Role']['Arn']
        eks.create_cluster(name=name, version=version, roleArn=role, resourcesVpcConfig={'subnetIds': subnets})
        created.append(name)
        return name

    yield create
    for name in created:
        eks.delete_cluster(name=name)


@pytest.mark.alongside
@pytest.mark.parametrize('version,extra,message', [
    ('1.28', [], 'kubernetes_version: cluster {name} runs Kubernetes 1.28, which this module does not support'),
    # AWS publishes Amazon Linux 2 GPU AMIs up to 1.32 only.
    ('1.33', ['-e', 'cluster_gpu_ami_type=AL2_x86_64_GPU'], 'kubernetes_version: no AL2_x86_64_GPU AMI is published for Kubernetes 1.33'),
], ids=['1.28', '1.33-AL2'])
def test_unsupported_kubernetes_version_is_refused_before_any_change(run_playbook, other_cluster, version, extra, message):
    name = other_cluster('it-k8s-' + version.replace('.', '-') + '-' + uuid.uuid4().hex[:6], version)
    run = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_cluster_name=' + name, *extra)
    assert run.returncode != 0, run
    assert message.format(name=name) in run.output, run
    assert run.activity['aws_mutating'] == 0, run
    assert 'eks:DescribeCluster' in run.activity['aws_operations'], run
