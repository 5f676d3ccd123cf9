"""Every mutating AWS operation of cluster_gpu (converge and teardown) survives a throttling
error, a 500 and a 503, and the run converges.

The operations are derived from the journal of the faulted runs themselves: whatever mutating
request a run sent must be one of CANDIDATE_OPERATIONS (so it had faults queued), and each one
sent must show the three injected errors and then a success.
"""
import os

import boto3
import yaml
import pytest

import _support
from conftest import CANDIDATE_OPERATIONS, CLUSTER, FAULTED_PHASES, NODEGROUP


def _used(lifecycle):
    used = set()
    for phase in FAULTED_PHASES:
        if lifecycle.get(phase):
            used.update(lifecycle[phase].activity.mutating_operations())
    return used


def test_runs_converge_under_faults(cluster_gpu_lifecycle):
    converge, teardown = cluster_gpu_lifecycle['converge'], cluster_gpu_lifecycle['teardown']
    assert converge.returncode == 0, converge
    assert teardown.returncode == 0, teardown
    group = cluster_gpu_lifecycle['snapshot']['nodegroup']
    with open(os.path.join(_support.ROOT, 'inventories', 'sandbox', 'group_vars', 'all', 'main.yml'), encoding='utf-8') as handle:
        asked = yaml.safe_load(handle)['cluster_gpu_desired_size']
    assert group['scalingConfig']['desiredSize'] == int(asked)
    assert len(cluster_gpu_lifecycle['snapshot']['alarms']) == 4
    # The roll and the way back converged under the same faults.
    for phase, instance_type, tagged in (('roll', 'g5.xlarge', True), ('unroll', None, False)):
        run, snapshot = cluster_gpu_lifecycle[phase], cluster_gpu_lifecycle[phase + '_snapshot']
        assert run.returncode == 0, run
        expected = instance_type or cluster_gpu_lifecycle['snapshot']['launch_template_data']['InstanceType']
        assert snapshot['launch_template_data']['InstanceType'] == expected, (phase, snapshot['launch_template_data'])
        assert ('rel-roll' in (snapshot['nodegroup'].get('tags') or {})) is tagged, (phase, snapshot['nodegroup'].get('tags'))
    # The teardown, under the same faults, left nothing behind.
    eks = boto3.client('eks')
    assert NODEGROUP not in eks.list_nodegroups(clusterName=CLUSTER)['nodegroups']
    assert boto3.client('cloudwatch').describe_alarms(AlarmNamePrefix='%s-%s-' % (CLUSTER, NODEGROUP))['MetricAlarms'] == []


def test_operations_derived_from_the_journal(cluster_gpu_lifecycle):
    used = _used(cluster_gpu_lifecycle)
    assert used, 'no mutating AWS operation in the journal of a converge + teardown'
    unlisted = used - set(CANDIDATE_OPERATIONS)
    assert not unlisted, 'mutating operations sent without injected faults (add them to CANDIDATE_OPERATIONS): %s' % unlisted
    _support.record('faults', operations=sorted('%s:%s' % x for x in used), operations_count=len(used),
                    faults_injected=sum(1 for p in FAULTED_PHASES for r in cluster_gpu_lifecycle[p].activity.requests if r.get('fault')))


@pytest.mark.parametrize('service,operation', CANDIDATE_OPERATIONS, ids=['%s:%s' % x for x in CANDIDATE_OPERATIONS])
def test_operation_retried_after_throttling_500_and_503(cluster_gpu_lifecycle, service, operation):
    if (service, operation) not in _used(cluster_gpu_lifecycle):
        pytest.fail('%s:%s was not sent by the lifecycle (converge, roll, unroll, teardown)' % (service, operation))
    for phase in FAULTED_PHASES:
        requests = [r for r in cluster_gpu_lifecycle[phase].activity.requests
                    if r.get('service') == service and r.get('operation') == operation]
        if not requests:
            continue
        first = requests[:3]
        assert [r['status'] for r in first] == [400, 500, 503], (phase, requests)
        assert first[0].get('fault') == 'ThrottlingException', first
        assert first[1].get('fault') in ('InternalFailure', 'InternalError'), first
        assert first[2].get('fault') == 'ServiceUnavailable', first
        assert any(r['status'] == 200 and not r.get('fault') for r in requests[3:]), (phase, requests)
        assert cluster_gpu_lifecycle[phase].returncode == 0
    _support.record_item('faults', 'survived', {'operation': '%s:%s' % (service, operation), 'faults': _support.faults_answered(
        [cluster_gpu_lifecycle[p] for p in FAULTED_PHASES], service, operation)})
