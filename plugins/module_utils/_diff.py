# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. Records differences once, for `changed` and `diff`."""

from __future__ import annotations


class DifferenceTracker:
    """Collect (name, before, after) triples; the same record answers `changed` and builds the diff."""

    def __init__(self):
        self._items = []

    def add(self, name, before, after):
        """Record a field; returns True when it differs."""
        differs = before != after
        self._items.append((name, before, after, differs))
        return differs

    @property
    def has_differences(self):
        return any(item[3] for item in self._items)

    def changed_fields(self):
        """The names of the fields that differ, in the order they were recorded."""
        return [item[0] for item in self._items if item[3]]

    def diff(self):
        before, after = {}, {}
        for name, b, a, _differs in self._items:
            _put(before, name, b)
            _put(after, name, a)
        return {'before': before, 'after': after}


def _put(target, dotted, value):
    parts = dotted.split('.')
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
