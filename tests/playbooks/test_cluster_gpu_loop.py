"""The scaling loop end to end, through the role's own configuration: playbooks/cluster_gpu.yml
writes the launch template (whose user data starts the CloudWatch agent), the node group, the
step-scaling policies and the Metrics Insights alarms; the sandbox's node agents publish what that
agent would from what the GPU Nodes run (sandbox/cloudwatch/publisher.py), the evaluator
evaluates the alarms and applies the policies (sandbox/cloudwatch/evaluator.py), the node mirror
follows the Auto Scaling group. GPU pods that do not fit make the GPUs busy, the group grows to its
maximum and the pods get scheduled; a re-run in the middle changes nothing; with the pods gone
the group shrinks to its minimum. An alarm with a wrong dimension, beside the role's, never gets
data. The sandbox CloudWatch clock runs 60 times faster, so a 120 s period takes 2 s.

Set GENAI_LOOP_TIMELINE to a path to keep the run's timeline (make loop-picture draws it)."""
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time

import boto3
import pytest

import steady_load
from playbook_helpers import kube_get, kubectl, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from sandbox.cloudwatch import clock, evaluator  # noqa: E402  pylint: disable=wrong-import-position

PLAYBOOK = 'playbooks/cluster_gpu.yml'
CLUSTER = 'sandbox'
NODEGROUP = 'gpu-nodes'
NAMESPACE = 'gpu-loop-test'
# make loop-picture runs the clock slower (GENAI_LOOP_SPEED) for a finer picture.
SPEED = int(os.environ.get('GENAI_LOOP_SPEED') or 60)
SIZE = ('-e', 'cluster_gpu_min_size=1', '-e', 'cluster_gpu_max_size=3', '-e', 'cluster_gpu_desired_size=1')
ALARMS = ('gpu-scale-out', 'gpu-scale-in', 'cpu-scale-out', 'cpu-scale-in')
WRONG = '%s-%s-gpu-scale-out-wrong-dimension' % (CLUSTER, NODEGROUP)
GPU_LOAD = 85

pytestmark = pytest.mark.alongside


def _alarm_name(short):
    return '%s-%s-%s' % (CLUSTER, NODEGROUP, short)


def _group_name():
    group = boto3.client('eks').describe_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP)['nodegroup']
    return group['resources']['autoScalingGroups'][0]['name']


def _desired(group):
    return boto3.client('autoscaling').describe_auto_scaling_groups(AutoScalingGroupNames=[group])['AutoScalingGroups'][0]['DesiredCapacity']


def _gpu_nodes():
    """Ready Nodes of the node group and the GPUs each advertises."""
    nodes = {}
    for node in kube_get('nodes', '-l', 'eks.amazonaws.com/nodegroup=%s' % NODEGROUP)['items']:
        status = node.get('status', {})
        if any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in status.get('conditions', [])):
            nodes[node['metadata']['name']] = int(status.get('allocatable', {}).get('nvidia.com/gpu', '0'))
    return nodes


def _pods():
    """Phase of each GPU pod of the test and the Node it runs on."""
    return {p['metadata']['name']: (p['status'].get('phase'), p['spec'].get('nodeName'))
            for p in kube_get('pods', '-n', NAMESPACE)['items']}


def _states():
    found = boto3.client('cloudwatch').describe_alarms(AlarmNamePrefix='%s-%s-' % (CLUSTER, NODEGROUP))['MetricAlarms']
    return {a['AlarmName']: a['StateValue'] for a in found}


def _gpu_pods(replicas):
    """A Deployment of `replicas` pods holding one GPU each, busy at GPU_LOAD percent."""
    return {
        'apiVersion': 'apps/v1', 'kind': 'Deployment',
        'metadata': {'name': 'gpu-burst', 'namespace': NAMESPACE},
        'spec': {
            'replicas': replicas,
            'selector': {'matchLabels': {'app': 'gpu-burst'}},
            'template': {
                'metadata': {'labels': {'app': 'gpu-burst'}, 'annotations': {'sandbox.genai.stack/gpu-load': str(GPU_LOAD)}},
                'spec': {'nodeSelector': {'capability': 'gpu'},
                         'containers': [{'name': 'model', 'image': 'registry.invalid/model:1',
                                         'resources': {'limits': {'nvidia.com/gpu': '1'}}}]},
            },
        },
    }


def _apply(manifest):
    run = subprocess.run([os.environ['KUBECTL_BIN'], 'apply', '-f', '-'], input=json.dumps(manifest), capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr


class Timeline:
    """Samples what the loop does every half second: the value each of the role's GPU and CPU
    alarms computes, the alarms' states, the group's desired size, Ready GPU Nodes, pending pods."""

    def __init__(self, group):
        self.group = group
        self.samples = []
        self.phase = ''
        self.stop = threading.Event()
        self.aws = evaluator.Aws(os.environ['AWS_REGION'])
        self.start = clock.now(os.environ['SANDBOX_CLOUDWATCH_CLOCK'])
        self.thread = threading.Thread(target=self.run, daemon=True)

    def value(self, alarms, short, now):
        """The value the alarm computes for its latest complete period."""
        alarm = alarms.get(_alarm_name(short))
        if not alarm:
            return None
        query, period = evaluator.alarm_query(alarm)
        return evaluator.period_values(self.aws, query, period, 1, now)[0]

    def sample(self):
        now = clock.now(os.environ['SANDBOX_CLOUDWATCH_CLOCK'])
        self.aws.forget()
        alarms = {a['AlarmName']: a for a in self.aws.cloudwatch.describe_alarms(AlarmNamePrefix='%s-%s-' % (CLUSTER, NODEGROUP))['MetricAlarms']}
        pods = _pods()
        self.samples.append({
            't': round(now - self.start, 1), 'gpu': self.value(alarms, 'gpu-scale-out', now), 'cpu': self.value(alarms, 'cpu-scale-out', now),
            'alarms': {name[len('%s-%s-' % (CLUSTER, NODEGROUP)):]: a['StateValue'] for name, a in sorted(alarms.items())},
            'desired': _desired(self.group), 'nodes': len(_gpu_nodes()),
            'pending': sum(1 for phase, _node in pods.values() if phase == 'Pending'), 'phase': self.phase})

    def run(self):
        while not self.stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - a sample lost to a busy apiserver is only a gap in the picture
                pass
            self.stop.wait(0.5)

    def save(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        meta = {'title': 'cluster_gpu scaling loop on the sandbox (%dx clock)' % SPEED, 'min': 1, 'max': 3, 'gpu_out': 40,
                'gpu_in': 10, 'cpu_out': 60, 'cpu_in': 5, 'period': 120, 'speed': SPEED,
                'recorded': dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d')}
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(json.dumps({'meta': meta}) + '\n')
            for entry in self.samples:
                handle.write(json.dumps(entry, sort_keys=True) + '\n')


@pytest.fixture
def loop(run_playbook):
    """The GPU node group sized 1..3 by the role, the test namespace, the fast clock; all undone after."""
    assert run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent').returncode == 0
    clock_path = os.environ['SANDBOX_CLOUDWATCH_CLOCK']
    state = {}
    # Only what runs on the Nodes drives the load here: the session's steady load is lifted.
    before = steady_load.read()
    steady_load.write(None)
    try:
        first = run_playbook(PLAYBOOK, *SIZE)
        assert first.returncode == 0, first
        kubectl('create', 'namespace', NAMESPACE)
        state['group'] = _group_name()
        clock.set_speed(clock_path, SPEED)
        state['timeline'] = Timeline(state['group'])
        state['timeline'].thread.start()
        yield state
    finally:
        if 'timeline' in state:
            state['timeline'].stop.set()
            state['timeline'].thread.join(10)
            if os.environ.get('GENAI_LOOP_TIMELINE'):
                state['timeline'].save(os.environ['GENAI_LOOP_TIMELINE'])
        boto3.client('cloudwatch').delete_alarms(AlarmNames=[WRONG])
        kubectl('delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait=false', check=False)
        down = run_playbook(PLAYBOOK, '-e', 'cluster_gpu_state=absent')
        # Still on the fast clock, the idle Nodes' last datapoints age out of any period a node
        # group created later under the same names would read first (CloudWatch keeps metrics by
        # name and dimensions, not by node group): the removal alone takes minutes of sandbox time.
        clock.set_speed(clock_path, 1)
        steady_load.write(before)
        assert down.returncode == 0, down


def _history(alarm):
    """The evaluator's records (state changes and capacity changes) of one alarm."""
    with open(os.environ['SANDBOX_CLOUDWATCH_HISTORY'], encoding='utf-8') as handle:
        return [entry for entry in map(json.loads, handle) if entry.get('alarm') == alarm]


def _copy_with_wrong_dimension():
    """The role's GPU scale-out alarm with NodegroupName misspelt, as a hand-made alarm could be."""
    alarm = boto3.client('cloudwatch').describe_alarms(AlarmNames=[_alarm_name('gpu-scale-out')])['MetricAlarms'][0]
    metric = dict(alarm['Metrics'][0])
    assert "NodegroupName = '%s'" % NODEGROUP in metric['Expression'], metric
    metric['Expression'] = metric['Expression'].replace("NodegroupName = '%s'" % NODEGROUP, "NodegroupName = '%s-typo'" % NODEGROUP)
    boto3.client('cloudwatch').put_metric_alarm(
        AlarmName=WRONG, ComparisonOperator=alarm['ComparisonOperator'], EvaluationPeriods=alarm['EvaluationPeriods'],
        Threshold=alarm['Threshold'], Metrics=[metric], ActionsEnabled=False, TreatMissingData=alarm.get('TreatMissingData', 'missing'))


def test_gpu_load_grows_the_node_group_to_its_maximum_and_idle_gpus_shrink_it(loop, run_playbook):
    group, timeline = loop['group'], loop['timeline']
    # The evaluator's history outlives node groups: only what this test's loop records counts.
    earlier = {name: len(_history(_alarm_name(name))) for name in ('gpu-scale-out', 'gpu-scale-in', 'cpu-scale-in')}
    assert _desired(group) == 1
    assert wait_for(lambda: len(_gpu_nodes()) == 1), _gpu_nodes()
    _copy_with_wrong_dimension()

    # Three pods of one GPU each on one one-GPU Node: one runs, its GPU busy; two wait.
    timeline.phase = 'three 1-GPU pods at %d %%' % GPU_LOAD
    _apply(_gpu_pods(3))
    # The scale-out alarm fires, its policy adds a Node per step until the maximum; the pods follow.
    assert wait_for(lambda: _desired(group) == 3, 120), (_desired(group), _states(), _pods())
    assert wait_for(lambda: len(_gpu_nodes()) == 3 and all(phase == 'Running' for phase, _node in _pods().values()), 120), (_gpu_nodes(), _pods())
    assert sorted(_gpu_nodes().values()) == [1, 1, 1]
    assert len({node for _phase, node in _pods().values()}) == 3, _pods()
    grown = [entry['desired'] for entry in _history(_alarm_name('gpu-scale-out'))[earlier['gpu-scale-out']:] if 'desired' in entry]
    assert grown and grown[0][0] == 1 and grown[-1][1] == 3, grown
    assert all(after == before + 1 for before, after in grown), grown
    assert _states()[_alarm_name('gpu-scale-out')] == 'ALARM'

    # The alarm that selects no series never gets data, however long the GPUs are busy.
    assert wait_for(lambda: timeline.samples and timeline.samples[-1]['t'] >= 5 * 120, 60)
    assert _states()[WRONG] == 'INSUFFICIENT_DATA', _states()
    assert {entry['state'] for entry in _history(WRONG)} <= {'INSUFFICIENT_DATA'}, _history(WRONG)

    # A re-run while the alarms hold the group at its maximum keeps their size: no write at all.
    timeline.phase = 're-run of cluster_gpu.yml'
    again = run_playbook(PLAYBOOK, *SIZE)
    assert again.returncode == 0, again
    assert again.changed == 0, again
    assert again.activity['aws_mutating'] == 0, again.activity['aws_mutating_operations']
    assert _desired(group) == 3
    scaling = boto3.client('eks').describe_nodegroup(clusterName=CLUSTER, nodegroupName=NODEGROUP)['nodegroup']['scalingConfig']
    assert scaling == {'minSize': 1, 'maxSize': 3, 'desiredSize': 3}, scaling

    # The pods go, the GPUs idle: the scale-in alarm takes the group down to its minimum.
    timeline.phase = 'pods deleted'
    kubectl('delete', 'deployment', '-n', NAMESPACE, 'gpu-burst')
    assert wait_for(lambda: _desired(group) == 1, 120), (_desired(group), _states())
    assert wait_for(lambda: len(_gpu_nodes()) == 1, 60), _gpu_nodes()
    assert _states()[_alarm_name('gpu-scale-in')] == 'ALARM'
    shrunk = [entry['desired'] for entry in _history(_alarm_name('gpu-scale-in'))[earlier['gpu-scale-in']:]
              + _history(_alarm_name('cpu-scale-in'))[earlier['cpu-scale-in']:] if 'desired' in entry]
    assert shrunk and all(after == before - 1 for before, after in shrunk), shrunk
    # And stays there: at the minimum, the policy has nothing left to remove.
    time.sleep(3)
    assert _desired(group) == 1
    assert _states()[WRONG] == 'INSUFFICIENT_DATA'
    # The timeline saw the GPU value cross both thresholds.
    values = [s['gpu'] for s in timeline.samples if s['gpu'] is not None]
    assert max(values) > 40 and min(values) < 10, values
