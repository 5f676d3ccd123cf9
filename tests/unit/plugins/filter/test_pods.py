"""live_pods and ready_pods: what the roles' verify steps wait for."""
from ansible_collections.genai.stack.plugins.filter.pods import FilterModule, live_pods, ready_pods


def pod(name, phase='Running', ready='True', deleting=False, conditions=None):
    metadata = {'name': name}
    if deleting:
        metadata['deletionTimestamp'] = '2026-01-01T00:00:00Z'
    if conditions is None:
        conditions = [{'type': 'PodScheduled', 'status': 'True'}] + ([{'type': 'Ready', 'status': ready}] if ready else [])
    return {'metadata': metadata, 'status': {'phase': phase, 'conditions': conditions}}


def names(pods):
    return [p['metadata']['name'] for p in pods]


def test_live_pods_leave_out_those_being_deleted():
    result = {'changed': False, 'resources': [pod('a'), pod('b', deleting=True), pod('c', phase='Pending')]}
    assert names(live_pods(result)) == ['a', 'c']


def test_ready_pods_are_live_running_and_ready():
    pods = [
        pod('ok'),
        pod('old', deleting=True),
        pod('pending', phase='Pending', ready='False'),
        pod('not-ready', ready='False'),
        pod('no-ready-condition', ready=None),
        pod('done', phase='Succeeded', ready='False'),
        {'metadata': {'name': 'no-status'}},
        pod('ok2'),
    ]
    assert names(ready_pods(pods)) == ['ok', 'ok2']


def test_a_k8s_info_result_without_resources_has_no_pods():
    assert live_pods({'skipped': True}) == []
    assert ready_pods(None) == []


def test_the_filters_are_registered():
    assert FilterModule().filters() == {'live_pods': live_pods, 'ready_pods': ready_pods}
