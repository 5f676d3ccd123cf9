"""gpu_node_states: each Node's readiness and allocatable GPUs, as the adaptive role's preflight reads them."""
from ansible_collections.genai.stack.plugins.filter.gpu_node_states import FilterModule, gpu_node_states


def node(name, ready=True, gpus='1'):
    status = {'conditions': [{'type': 'Ready', 'status': 'True' if ready else 'False'}]}
    if gpus is not None:
        status['allocatable'] = {'cpu': '8', 'nvidia.com/gpu': gpus}
    return {'metadata': {'name': name}, 'status': status}


def test_every_node_with_its_readiness_and_gpus():
    result = {'changed': False, 'resources': [node('a', gpus='8'), node('b', ready=False, gpus='4'), node('c', gpus=None), node('d', gpus='many')]}
    assert gpu_node_states(result) == [
        {'name': 'a', 'ready': True, 'gpus': 8},
        {'name': 'b', 'ready': False, 'gpus': 4},
        {'name': 'c', 'ready': True, 'gpus': 0},
        {'name': 'd', 'ready': True, 'gpus': 0},
    ]


def test_a_list_of_nodes_or_a_skipped_result():
    assert gpu_node_states([node('a', gpus='2')]) == [{'name': 'a', 'ready': True, 'gpus': 2}]
    assert gpu_node_states({'skipped': True}) == []


def test_the_filter_is_registered():
    assert FilterModule().filters() == {'gpu_node_states': gpu_node_states}
