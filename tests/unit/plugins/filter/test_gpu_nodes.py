"""The GPU Node filters that cluster_gpu's verify step (and the stack roles' GPU checks) rely on:
what counts as a Ready GPU Node, the report a failed verify prints, and the GPU total."""
import pytest

from ansible_collections.genai.stack.plugins.filter.gpu_nodes import FilterModule, gpu_node_report, gpu_nodes_ready, gpu_total


def node(name, ready=True, gpus='1', conditions=None):
    status = {'conditions': conditions if conditions is not None else [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}
    if gpus is not None:
        status['allocatable'] = {'cpu': '8', 'nvidia.com/gpu': gpus}
    return {'metadata': {'name': name}, 'status': status}


def k8s_info(*nodes):
    return {'changed': False, 'resources': list(nodes)}


def test_all_ready_with_gpus_is_ready():
    assert gpu_nodes_ready(k8s_info(node('a'), node('b', gpus='4')), 2)


@pytest.mark.parametrize('result,expected', [
    (k8s_info(node('a')), 2),                                     # one Node missing
    (k8s_info(node('a'), node('b'), node('c')), 2),               # one Node too many
    (k8s_info(node('a'), node('b', ready=False)), 2),             # NotReady
    (k8s_info(node('a'), node('b', gpus='0')), 2),                # no GPU allocatable (device plugin absent)
    (k8s_info(node('a'), node('b', gpus=None)), 2),               # no allocatable at all
    (k8s_info(node('a'), node('b', gpus='lots')), 2),             # unparsable count
    (k8s_info(node('a'), node('b', conditions=[])), 2),           # no Ready condition yet
    (k8s_info(), 1),
])
def test_anything_less_is_not_ready(result, expected):
    assert not gpu_nodes_ready(result, expected)


def test_expected_may_come_as_a_string_from_templating():
    assert gpu_nodes_ready(k8s_info(node('a')), '1')
    assert not gpu_nodes_ready(k8s_info(node('a')), '2')


def test_zero_expected_with_no_nodes_is_ready():
    assert gpu_nodes_ready(k8s_info(), 0)


def test_report_names_each_node_its_state_and_gpus():
    report = gpu_node_report(k8s_info(node('ip-1', gpus='4'), node('ip-2', ready=False, gpus='0')))
    assert report == 'ip-1 (Ready, 4 GPU), ip-2 (NotReady, 0 GPU)'
    assert gpu_node_report(k8s_info()) == 'no Node'


def test_total_counts_ready_nodes_only():
    assert gpu_total(k8s_info(node('a', gpus='4'), node('b', gpus='8'), node('c', ready=False, gpus='8'))) == 12
    assert gpu_total([node('a', gpus='2')]) == 2        # a plain list of Nodes works too
    assert gpu_total(None) == 0


def test_filters_are_exported_under_their_names():
    assert set(FilterModule().filters()) == {'gpu_nodes_ready', 'gpu_node_report', 'gpu_total'}
