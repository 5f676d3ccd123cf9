"""avoid_nodes: chart values with a required node affinity that keeps Pods off the Nodes with given labels."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.genai.stack.plugins.filter.avoid_nodes import FilterModule, avoid_nodes

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
