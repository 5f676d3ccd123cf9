"""resources and node_ready: what the collection's filters read from a k8s_info result."""
import pytest

from ansible_collections.genai.stack.plugins.plugin_utils.k8s_results import node_ready, resources


@pytest.mark.parametrize('result,expected', [
    ({'changed': False, 'resources': [{'kind': 'Pod'}]}, [{'kind': 'Pod'}]),
    ({'changed': False, 'resources': []}, []),
    ({'skipped': True}, []),                   # a skipped task's result
    ([{'kind': 'Node'}], [{'kind': 'Node'}]),  # the list itself
    ((), []),
    (None, []),
])
def test_resources(result, expected):
    assert resources(result) == expected


@pytest.mark.parametrize('node,ready', [
    ({'status': {'conditions': [{'type': 'Ready', 'status': 'True'}]}}, True),
    ({'status': {'conditions': [{'type': 'DiskPressure', 'status': 'True'}, {'type': 'Ready', 'status': 'True'}]}}, True),
    ({'status': {'conditions': [{'type': 'Ready', 'status': 'False'}]}}, False),
    ({'status': {'conditions': [{'type': 'Ready', 'status': 'Unknown'}]}}, False),
    ({'status': {'conditions': [{'type': 'DiskPressure', 'status': 'True'}]}}, False),   # no Ready condition yet
    ({'status': {}}, False),
    ({}, False),
])
def test_node_ready(node, ready):
    assert node_ready(node) is ready
