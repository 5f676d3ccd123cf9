"""Role cluster_gpu and its scaling alarms share the node group: a re-run keeps the desired size an
alarm (or the Cluster Autoscaler) set, and verify waits for at least cluster_gpu_min_size Ready GPU
Nodes, not for exactly cluster_gpu_desired_size."""
import json
import os
import subprocess

import boto3

from playbook_helpers import wait_for

PLAYBOOK = 'playbooks/cluster_gpu.yml'
CLUSTER = 'sandbox'
NODEGROUP = 'gpu-nodes'
MIN_2 = ('-e', 'cluster_gpu_min_size=2')


def _scaling():
    return boto3.client('eks').describe_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP)['nodegroup']['scalingConfig']


def _scale_to(size):
    """What a step-scaling alarm does through the Auto Scaling group, as EKS then reports it."""
    eks = boto3.client('eks')
    eks.update_nodegroup_config(clusterName=CLUSTER, nodegroupName=NODEGROUP, scalingConfig=dict(_scaling(), desiredSize=size))
    eks.get_waiter('nodegroup_active').wait(clusterName=CLUSTER, nodegroupName=NODEGROUP, WaiterConfig={'Delay': 1, 'MaxAttempts': 60})


def _gpu_node_names():
    out = subprocess.run([os.environ['KUBECTL_BIN'], 'get', 'nodes', '-l', 'eks.amazonaws.com/nodegroup=%s' % NODEGROUP, '-o', 'json'],
                         check=True, capture_output=True, text=True).stdout
    return sorted(n['metadata']['name'] for n in json.loads(out)['items'])


def test_rerun_keeps_the_alarms_desired_size_and_verify_accepts_it(run_playbook):
    # The sandbox inventory sizes the group 4/6/4; a minimum of 2 here leaves room below the
    # desired size for a scale-in.
    assert run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent').returncode == 0
    try:
        first = run_playbook(PLAYBOOK, *MIN_2)
        assert first.returncode == 0, first
        assert _scaling() == {'minSize': 2, 'maxSize': 6, 'desiredSize': 4}

        _scale_to(3)   # a scale-in alarm fired
        assert wait_for(lambda: len(_gpu_node_names()) == 3), _gpu_node_names()
        again = run_playbook(PLAYBOOK, *MIN_2)
        # Kept: no UpdateNodegroupConfig, and verify is content with 3 >= min 2 Ready GPU Nodes.
        assert again.returncode == 0, again
        assert again.changed == 0, again
        assert again.activity['aws_mutating'] == 0, again.activity['aws_mutating_operations']
        assert _scaling()['desiredSize'] == 3
        assert 'NVIDIA GPU(s) each, 3 in all' in again.output, again

        # A new minimum above the alarm's size moves it into the range, and only then is it written.
        raised = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_min_size=5', '-e', 'cluster_gpu_desired_size=5')
        assert raised.returncode == 0, raised
        assert 'eks:UpdateNodegroupConfig' in raised.activity['aws_mutating_operations'], raised.activity
        assert _scaling() == {'minSize': 5, 'maxSize': 6, 'desiredSize': 5}
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent')
    assert down.returncode == 0, down
