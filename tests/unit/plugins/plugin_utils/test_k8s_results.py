"""resources: the objects the collection's filters read from a k8s_info result."""
import pytest

from ansible_collections.genai.stack.plugins.plugin_utils.k8s_results import resources


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
