"""The sandbox's CloudWatch clock: the time the alarm evaluator and whoever publishes metrics for
it agree on. It may run faster than the wall clock (tests: minutes of alarm periods in seconds).

The clock file holds an anchor {"wall": w, "sandbox": s, "speed": k}: sandbox time is
s + (now - w) * k. Changing the speed re-anchors at the present moment, so sandbox time never
jumps. Absent file: the wall clock.
"""
from __future__ import annotations

import json
import os
import tempfile
import time


def read(path):
    try:
        with open(path, encoding='utf-8') as handle:
            anchor = json.load(handle)
        return float(anchor['wall']), float(anchor['sandbox']), float(anchor['speed'])
    except FileNotFoundError:
        now = time.time()
        return now, now, 1.0


def now(path, wall=None):
    """Sandbox time (epoch seconds) at wall time `wall` (default: now)."""
    w0, s0, speed = read(path)
    return s0 + ((time.time() if wall is None else wall) - w0) * speed


def set_speed(path, speed):
    """Run the clock at `speed` times the wall clock from now on; returns the sandbox time."""
    if not speed > 0:
        raise ValueError('the clock speed must be positive, got %r' % (speed,))
    wall = time.time()
    current = now(path, wall)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with tempfile.NamedTemporaryFile('w', dir=directory, delete=False, encoding='utf-8') as handle:
        json.dump({'wall': wall, 'sandbox': current, 'speed': float(speed)}, handle)
    os.replace(handle.name, path)
    return current
