"""helm_chart_mirror's planning functions: what the mirror holds and what is wanted in, the action
out, with no call to helm or the registry."""
import pytest

from ansible_collections.genai.stack.plugins.modules import helm_chart_mirror


@pytest.mark.parametrize('have_package, mirror_digest, overwrite, check_mode, pull', [
    (True, None, False, False, False),
    (True, 'sha256:a', True, False, False),
    (False, None, False, False, True),
    (False, None, True, True, False),
    (False, 'sha256:a', False, False, False),
    (False, 'sha256:a', True, False, True),
    (False, 'sha256:a', True, True, True),
])
def test_the_source_is_pulled_only_when_its_content_decides(have_package, mirror_digest, overwrite, check_mode, pull):
    assert helm_chart_mirror.needs_source_package(have_package, mirror_digest, overwrite, check_mode) is pull


@pytest.mark.parametrize('mirror_digest, digest, overwrite, action', [
    (None, 'sha256:a', False, 'pushed'),
    (None, None, False, 'pushed'),
    ('sha256:a', 'sha256:a', False, 'unchanged'),
    ('sha256:a', 'sha256:a', True, 'unchanged'),
    ('sha256:a', None, True, 'unchanged'),
    ('sha256:a', 'sha256:b', True, 'pushed'),
    ('sha256:a', 'sha256:b', False, 'differing'),
])
def test_plan_chart(mirror_digest, digest, overwrite, action):
    assert helm_chart_mirror.plan_chart(mirror_digest, digest, overwrite) == action


@pytest.mark.parametrize('action, digest, mirror_digest, diff', [
    ('pushed', 'sha256:b', None, (None, 'sha256:b')),
    ('pushed', 'sha256:b', 'sha256:a', ('sha256:a', 'sha256:b')),
    ('pushed', None, None, (None, 'from oci://vendor/charts/x')),
    ('unchanged', 'sha256:a', 'sha256:a', ('sha256:a', 'sha256:a')),
    ('differing', 'sha256:b', 'sha256:a', ('sha256:a', 'sha256:a')),
])
def test_chart_diff(action, digest, mirror_digest, diff):
    assert helm_chart_mirror.chart_diff(action, digest, mirror_digest, 'oci://vendor/charts/x') == diff
