# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: which of the value paths a role computes and checks do the user's extra chart values set?"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def _sets(values, path):
    """Whether ``values`` sets the dotted ``path``: every key on the way is present, or a
    non-mapping stands in for a mapping on the way (it would replace the whole mapping)."""
    node = values
    for key in path.split('.'):
        if not isinstance(node, Mapping):
            return True
        if key not in node:
            return False
        node = node[key]
    return True


def overridden_values(values, checked, prefix='values'):
    """``[{name: '<prefix>.<path>', option}]`` for each path of ``checked`` (path -> the variable to set
    instead) that ``values`` sets, in the order of ``checked``."""
    if not isinstance(checked, Mapping):
        raise AnsibleFilterError('overridden_values: checked must be a mapping of value path to variable, got %s' % type(checked).__name__)
    if not values:
        return []
    if not isinstance(values, Mapping):
        raise AnsibleFilterError('overridden_values: the input must be a mapping of chart values, got %s' % type(values).__name__)
    return [{'name': '%s.%s' % (prefix, path), 'option': option} for path, option in checked.items() if _sets(values, path)]


class FilterModule:
    def filters(self):
        return {'overridden_values': overridden_values}
