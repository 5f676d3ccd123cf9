"""helm_duration_seconds: the helm timeouts the roles print in their task names, in seconds."""
import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.genai.stack.plugins.filter.helm_duration import FilterModule, helm_duration_seconds


@pytest.mark.parametrize('duration,seconds', [
    ('10m0s', 600),
    ('5m', 300),
    ('1h30m', 5400),
    ('1h0m30s', 3630),
    ('600s', 600),
    ('600', 600),
    (600, 600),
    ('1.5h', 5400),        # a fraction, which helm accepts
    ('1m500ms', 60),       # rounded down; ms is not minutes
    ('90s', 90),
    (' 2m ', 120),
])
def test_durations_in_seconds(duration, seconds):
    assert helm_duration_seconds(duration) == seconds


@pytest.mark.parametrize('duration', ['', 'ten minutes', '10x', '5m0', 'm5', '-5m', '5 m', True, None])
def test_anything_else_is_refused_with_the_value(duration):
    with pytest.raises(AnsibleFilterError, match='helm_duration_seconds'):
        helm_duration_seconds(duration)


def test_the_filter_is_registered():
    assert FilterModule().filters()['helm_duration_seconds'] is helm_duration_seconds
