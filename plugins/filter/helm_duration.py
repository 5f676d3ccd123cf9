# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: a helm --timeout (a Go duration such as 10m0s, or plain seconds) in whole seconds."""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# Go's time.ParseDuration units, in seconds ('us' and the micro sign both mean microseconds).
_UNITS = {'h': 3600.0, 'm': 60.0, 's': 1.0, 'ms': 1e-3, 'us': 1e-6, '\u00b5s': 1e-6, '\u03bcs': 1e-6, 'ns': 1e-9}
_PART = re.compile(r'([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(h|ms|m|s|us|\u00b5s|\u03bcs|ns)')


def helm_duration_seconds(duration):
    """Seconds (rounded down) of a Go duration such as ``10m0s`` or ``1h30m``; digits alone are seconds."""
    if isinstance(duration, bool):
        raise AnsibleFilterError('helm_duration_seconds: expected a duration such as 10m0s, got %r' % (duration,))
    if isinstance(duration, int):
        return duration
    text = str(duration).strip()
    if text.isdigit():
        return int(text)
    parts = _PART.findall(text)
    if not parts or ''.join(number + unit for number, unit in parts) != text:
        raise AnsibleFilterError('helm_duration_seconds: expected a duration such as 10m0s, got %r' % (duration,))
    return int(sum(float(number) * _UNITS[unit] for number, unit in parts))


class FilterModule:
    def filters(self):
        return {'helm_duration_seconds': helm_duration_seconds}
