"""Role cluster_gpu through playbooks/cluster_gpu.yml on the sandbox inventory, as a user runs it."""
import json
import os
import subprocess
import uuid

import boto3
import pytest

from playbook_helpers import wait_for

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
        assert 'NVIDIA GPU(s) each, 4 in all' in first.output, first

        group = _nodegroup()
        # The sandbox inventory sizes the group for site.yml's GPU pods (2/6/4).
        assert group['scalingConfig'] == {'minSize': 2, 'maxSize': 6, 'desiredSize': 4}
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
        assert sorted(inline['Statement'][0]['Action']) == ['cloudwatch:ListMetrics', 'cloudwatch:PutMetricData', 'cloudwatch:PutMetricStream']
        cpu_group = boto3.client('eks').describe_nodegroup(clusterName=CLUSTER, nodegroupName='%s-cpu' % CLUSTER)['nodegroup']
        assert cpu_group['labels'].get('capability') == 'cpu'
        # The Kubernetes side: two GPU Nodes with one allocatable GPU each, and the device plugin.
        assert sorted(_gpu_nodes().values()) == [1, 1, 1, 1]
        plugin = _kubectl_json('get', 'daemonset', '-n', 'nvidia-device-plugin', 'nvidia-device-plugin')
        assert plugin['spec']['template']['spec']['nodeSelector'] == {'capability': 'gpu'}

        second = run_playbook(PLAYBOOK)
        assert second.returncode == 0, second
        assert second.changed == 0, second
        assert second.activity['aws_mutating'] == 0, second

        check = run_playbook(PLAYBOOK, '--check', '--diff', '-e', 'cluster_gpu_gpu_scale_out_threshold=55', '-e', 'cluster_gpu_instance_type=g5.2xlarge')
        assert check.returncode == 0, check
        assert check.changed >= 2, check
        assert check.activity['aws_mutating'] == 0, check
        assert 'g5.2xlarge' in check.output, check
        assert _alarms()['%s-%s-gpu-scale-out' % (CLUSTER, NODEGROUP)]['Threshold'] == 40.0
    finally:
        sandbox_faults(TEARDOWN_OPERATIONS)
        down = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent', '-vvv', env_extra=secret_env)
    assert down.returncode == 0, down
    assert SECRET not in down.output
    _assert_retried(down, TEARDOWN_OPERATIONS)
    assert _nodegroup() is None
    assert _alarms() == {}
    assert POLICY not in boto3.client('iam').list_role_policies(RoleName=ROLE_NAME)['PolicyNames']
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
    ('cluster_gpu_subnets=["subnet-0123456789abcdef0"]', 'subnets:'),
    ('cluster_gpu_state=sideways', 'cluster_gpu_state'),
    ('cluster_gpu_disk_size=lots', 'cluster_gpu_disk_size'),
    ('cluster_gpu_ami_type=ubuntu', 'cluster_gpu_ami_type'),
    ('cluster_gpu_labels={"bad key!": "x"}', 'labels:'),
]


@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[b[0].split('=')[0] + '=' + b[0].split('=')[1] for b in BAD_VARS])
def test_preflight_refuses_before_any_change(run_playbook, extra, message):
    run = run_playbook(PLAYBOOK, '-e', extra)
    assert run.returncode != 0, run
    assert message in run.output, run
    assert run.activity['aws_mutating'] == 0, run
