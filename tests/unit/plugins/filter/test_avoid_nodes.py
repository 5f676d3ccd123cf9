"""avoid_nodes: chart values with a required node affinity that keeps Pods off the Nodes with given labels."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.genai.stack.plugins.filter.avoid_nodes import FilterModule, avoid_nodes, free_nodes

GPU = {'capability': 'gpu'}
GPU_NODE_AFFINITY = {'requiredDuringSchedulingIgnoredDuringExecution': {'nodeSelectorTerms': [
    {'matchExpressions': [{'key': 'capability', 'operator': 'NotIn', 'values': ['gpu']}]}]}}


def test_each_path_gets_an_affinity_holding_the_node_affinity():
    out = avoid_nodes({'crds': {'enabled': True}}, ['affinity', 'webhook.affinity'], GPU)
    assert out == {'crds': {'enabled': True}, 'affinity': {'nodeAffinity': GPU_NODE_AFFINITY},
                   'webhook': {'affinity': {'nodeAffinity': GPU_NODE_AFFINITY}}}


def test_a_node_affinity_path_gets_the_node_affinity_itself():
    assert avoid_nodes({}, ['nodeAffinity', 'master.nodeAffinity'], GPU) == {
        'nodeAffinity': GPU_NODE_AFFINITY, 'master': {'nodeAffinity': GPU_NODE_AFFINITY}}


def test_one_term_per_label_so_a_node_is_refused_only_with_every_label():
    out = avoid_nodes({}, ['affinity'], {'pool': 'a100', 'capability': 'gpu', 'gpus': 8})
    terms = out['affinity']['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution']['nodeSelectorTerms']
    # Sorted by key, values as the strings Kubernetes compares.
    assert terms == [{'matchExpressions': [{'key': k, 'operator': 'NotIn', 'values': [v]}]}
                     for k, v in (('capability', 'gpu'), ('gpus', '8'), ('pool', 'a100'))]


def test_what_is_at_the_path_already_stays_and_the_input_is_not_changed():
    values = {'affinity': {'podAntiAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': [{'weight': 1}]}}, 'replicas': 2}
    out = avoid_nodes(values, ['affinity'], GPU)
    assert out == {'affinity': {'podAntiAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': [{'weight': 1}]},
                                'nodeAffinity': GPU_NODE_AFFINITY}, 'replicas': 2}
    assert values == {'affinity': {'podAntiAffinity': {'preferredDuringSchedulingIgnoredDuringExecution': [{'weight': 1}]}}, 'replicas': 2}
    out['affinity']['podAntiAffinity']['preferredDuringSchedulingIgnoredDuringExecution'].append({'weight': 2})
    assert len(values['affinity']['podAntiAffinity']['preferredDuringSchedulingIgnoredDuringExecution']) == 1


@pytest.mark.parametrize('labels', [{}, None])
def test_no_labels_leave_the_values_as_they_are(labels):
    assert avoid_nodes({'a': {'b': 1}}, ['affinity'], labels) == {'a': {'b': 1}}
    assert avoid_nodes(None, ['affinity'], labels) == {}


@pytest.mark.parametrize('values,paths,labels,message', [
    ('x', ['affinity'], GPU, 'the input must be a mapping'),
    ({}, 'affinity', GPU, 'paths must be a list'),
    ({}, ['affinity', ''], GPU, 'paths must be a list'),
    ({}, ['.affinity'], GPU, 'paths must be a list'),
    ({}, ['a..affinity'], GPU, "'a..affinity' is not a dotted value path"),
    ({}, ['affinity'], ['capability=gpu'], 'labels must be a mapping'),
    ({}, ['affinity'], {'capability': ['gpu']}, 'labels must map a label key to a single value'),
    ({}, ['affinity'], {'capability': None}, 'labels must map a label key to a single value'),
])
def test_bad_input_is_refused_naming_it(values, paths, labels, message):
    with pytest.raises(AnsibleFilterError, match=message.replace('.', r'\.').replace('(', r'\(')):
        avoid_nodes(values, paths, labels)


def test_registered_under_its_name():
    assert FilterModule().filters()['avoid_nodes'] is avoid_nodes


def node(name, labels=None, ready='True', unschedulable=None, taints=None):
    spec = {}
    if unschedulable is not None:
        spec['unschedulable'] = unschedulable
    if taints is not None:
        spec['taints'] = taints
    status = {'conditions': [{'type': 'MemoryPressure', 'status': 'False'}] + ([{'type': 'Ready', 'status': ready}] if ready else [])}
    return {'metadata': {'name': name, 'labels': labels or {}}, 'spec': spec, 'status': status}


def test_free_nodes_are_ready_schedulable_and_without_every_label():
    result = {'changed': False, 'resources': [
        node('gpu', {'capability': 'gpu', 'pool': 'a100'}),
        node('cpu', {'capability': 'cpu'}),
        node('bare'),
        node('half', {'pool': 'a100'}),                      # one of the two labels: not a GPU Node
        node('not-ready', ready='False'),
        node('no-ready-condition', ready=None),
        node('unknown', ready='Unknown'),
        node('cordoned', unschedulable=True),
        node('uncordoned', unschedulable=False),
    ]}
    assert free_nodes(result, {'capability': 'gpu', 'pool': 'a100'}) == ['cpu', 'bare', 'half', 'uncordoned']
    assert free_nodes(result['resources'], {'capability': 'gpu'}) == ['cpu', 'bare', 'half', 'uncordoned']
    # Without labels every Ready, schedulable Node counts; a skipped read has none.
    assert free_nodes(result, {}) == ['gpu', 'cpu', 'bare', 'half', 'uncordoned']
    assert free_nodes({'skipped': True}, {'capability': 'gpu'}) == []


def test_label_values_compare_as_strings():
    assert free_nodes([node('a', {'gpus': '8'}), node('b', {'gpus': '4'})], {'gpus': 8}) == ['b']


SYSTEM = {'key': 'CriticalAddonsOnly', 'value': 'true', 'effect': 'NoSchedule'}


@pytest.mark.parametrize('taints,tolerations,free', [
    ([], [], True),
    ([{'key': 'spot', 'effect': 'PreferNoSchedule'}], [], True),            # only discourages
    ([SYSTEM], [], False),
    ([{'key': 'drain', 'effect': 'NoExecute'}], [], False),
    ([SYSTEM], [{'key': 'CriticalAddonsOnly', 'operator': 'Exists'}], True),
    ([SYSTEM], [{'key': 'CriticalAddonsOnly', 'value': 'true'}], True),       # Equal is the default operator
    ([SYSTEM], [{'key': 'CriticalAddonsOnly', 'operator': 'Equal', 'value': 'false'}], False),
    ([SYSTEM], [{'key': 'CriticalAddonsOnly', 'operator': 'Exists', 'effect': 'NoExecute'}], False),
    ([SYSTEM], [{'key': 'CriticalAddonsOnly', 'operator': 'Exists', 'effect': 'NoSchedule'}], True),
    ([SYSTEM], [{'operator': 'Exists'}], True),                              # tolerates everything
    ([SYSTEM], [{'value': 'true'}], False),                                  # an empty key needs Exists
    ([SYSTEM], [{'key': 'other', 'operator': 'Exists'}], False),
    ([SYSTEM, {'key': 'drain', 'effect': 'NoExecute'}], [{'key': 'CriticalAddonsOnly', 'operator': 'Exists'}], False),
])
def test_a_node_counts_only_when_each_blocking_taint_is_tolerated(taints, tolerations, free):
    assert free_nodes([node('system', taints=taints)], {'capability': 'gpu'}, tolerations) == (['system'] if free else [])


@pytest.mark.parametrize('labels,tolerations,message', [
    (['capability=gpu'], [], 'free_nodes: labels must be a mapping'),
    ({'capability': None}, [], 'free_nodes: labels must map a label key to a single value'),
    ({}, {'key': 'a'}, 'free_nodes: tolerations must be a list'),
    ({}, 'CriticalAddonsOnly', 'free_nodes: tolerations must be a list'),
    ({}, ['CriticalAddonsOnly'], 'free_nodes: tolerations must be a list'),
])
def test_free_nodes_refuses_bad_input_naming_it(labels, tolerations, message):
    with pytest.raises(AnsibleFilterError, match=message):
        free_nodes([node('a')], labels, tolerations)


def test_free_nodes_registered_under_its_name():
    assert FilterModule().filters()['free_nodes'] is free_nodes
