"""One slowdown factor for the fixed waits and timeouts of the live tests.

A wait that is long enough on an idle machine can be too short on a loaded CI runner, where two
cores are shared by the sandbox, ansible and helm. Rather than raising every number by hand (and
making the idle run slower to fail), each fixed wait is written as `scaled(seconds)`: the seconds
it needs on an idle machine, multiplied by GENAI_TEST_SLOWDOWN (default 1; CI sets it).

Polls keep their interval; only deadlines and timeouts scale, so a test that passes returns as
soon as its condition holds, whatever the factor.
"""
import math
import os

VARIABLE = 'GENAI_TEST_SLOWDOWN'


def factor(environ=None):
    """The slowdown factor: GENAI_TEST_SLOWDOWN as a number >= 1, or 1 when unset or empty.

    Anything else is an error that names the variable: a typo must not quietly run the tests
    with the idle machine's waits (or, below 1, with waits shorter than those)."""
    raw = (os.environ if environ is None else environ).get(VARIABLE, '').strip()
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < 1:
        raise ValueError('%s=%r: expected a number >= 1 (the factor by which fixed waits and timeouts of the '
                         'tests grow, e.g. 3 on a loaded CI runner), or unset for 1' % (VARIABLE, raw))
    return value


def scaled(seconds, environ=None):
    """`seconds` (what the wait needs on an idle machine) times the slowdown factor."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError('scaled(%r): expected a number of seconds >= 0' % (seconds,))
    return seconds * factor(environ)
