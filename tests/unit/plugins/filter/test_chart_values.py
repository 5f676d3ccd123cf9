"""overridden_values: the checked chart values that a role's extra values may not set."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.genai.stack.plugins.filter.chart_values import FilterModule, overridden_values

CHECKED = {
    'containerRegistry': 'demo_registry',
    'harmony.image': 'demo_image',
    'harmony.nodeSelector': 'demo_selector',
    'lgtm.persistence.size': 'demo_size',
}


def names(values):
    return [o['name'] for o in overridden_values(values, CHECKED, 'demo_extra_values')]


def test_a_set_path_is_named_with_the_variable_to_set_instead():
    assert overridden_values({'harmony': {'image': {'tag': 'x'}}}, CHECKED, 'demo_extra_values') == [
        {'name': 'demo_extra_values.harmony.image', 'option': 'demo_image'}]


@pytest.mark.parametrize('values,expected', [
    ({}, []),
    (None, []),
    ({'other': 1, 'harmony': {'resources': {}}}, []),                            # neighbours of checked paths
    ({'containerRegistry': ''}, ['demo_extra_values.containerRegistry']),          # set, even to an empty value
    ({'harmony': None}, ['demo_extra_values.harmony.image', 'demo_extra_values.harmony.nodeSelector']),  # replaces the mapping
    ({'lgtm': {'persistence': 'off'}}, ['demo_extra_values.lgtm.persistence.size']),
    ({'lgtm': {'persistence': {'enabled': False}}}, []),
    ({'harmony': {'nodeSelector': {}}, 'containerRegistry': 'r'},                 # in the order of the checked paths
     ['demo_extra_values.containerRegistry', 'demo_extra_values.harmony.nodeSelector']),
])
def test_which_paths_are_set(values, expected):
    assert names(values) == expected


def test_the_prefix_defaults_to_values():
    assert overridden_values({'containerRegistry': 'r'}, CHECKED)[0]['name'] == 'values.containerRegistry'


@pytest.mark.parametrize('values,checked', [(['containerRegistry'], CHECKED), ({'a': 1}, ['a'])])
def test_inputs_that_are_not_mappings_are_refused(values, checked):
    with pytest.raises(AnsibleFilterError, match='overridden_values'):
        overridden_values(values, checked)


def test_the_filter_is_registered():
    assert FilterModule().filters()['overridden_values'] is overridden_values
