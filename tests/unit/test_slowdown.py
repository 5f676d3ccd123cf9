"""tests/tools/slowdown.py: the one factor by which the live tests' fixed waits grow on CI."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tools'))

from slowdown import VARIABLE, factor, scaled  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize('environ, expected', [
    ({}, 10),                       # unset: the idle machine's waits
    ({VARIABLE: ''}, 10),
    ({VARIABLE: '  '}, 10),
    ({VARIABLE: '1'}, 10),
    ({VARIABLE: '3'}, 30),
    ({VARIABLE: '2.5'}, 25),
    ({VARIABLE: ' 4 '}, 40),
])
def test_scaled_multiplies_by_the_factor(environ, expected):
    assert scaled(10, environ) == expected


@pytest.mark.parametrize('raw', ['three', '3x', '0', '0.5', '-2', 'nan', 'inf', '1e400'])
def test_invalid_factor_is_a_clear_error(raw):
    with pytest.raises(ValueError) as error:
        scaled(10, {VARIABLE: raw})
    # The message names the variable, repeats the value and says what is expected.
    assert VARIABLE in str(error.value) and repr(raw) in str(error.value) and '>= 1' in str(error.value)


@pytest.mark.parametrize('seconds', [-1, '10', None, True])
def test_invalid_seconds_is_an_error(seconds):
    with pytest.raises(ValueError, match='seconds'):
        scaled(seconds, {})


def test_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv(VARIABLE, '3')
    assert factor() == 3 and scaled(20) == 60
    monkeypatch.delenv(VARIABLE)
    assert factor() == 1 and scaled(20) == 20
