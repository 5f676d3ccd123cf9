"""plan_label_update: the UpdateNodegroupConfig labels payload both node group modules send."""
import pytest

from ansible_collections.genai.stack.plugins.module_utils._eks import plan_label_update


@pytest.mark.parametrize('current, wanted, payload', [
    ({'a': '1'}, {'a': '1'}, None),
    (None, {}, None),
    ({}, {'a': '1'}, {'addOrUpdateLabels': {'a': '1'}}),
    ({'a': '1'}, {'a': '2'}, {'addOrUpdateLabels': {'a': '2'}}),
    ({'a': '1', 'b': '2', 'c': '3'}, {'a': '1'}, {'removeLabels': ['b', 'c']}),
    ({'b': '2', 'a': '1'}, {'a': '9', 'd': '4'}, {'addOrUpdateLabels': {'a': '9', 'd': '4'}, 'removeLabels': ['b']}),
])
def test_plan_label_update(current, wanted, payload):
    assert plan_label_update(current, wanted) == payload
