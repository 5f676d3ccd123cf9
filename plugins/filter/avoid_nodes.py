# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter: chart values with a required node affinity that keeps Pods off the Nodes carrying given labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


from ansible.errors import AnsibleFilterError

_NODE_AFFINITY = 'nodeAffinity'


def _copy(value):
    """A copy of plain data: new dicts and lists, the same scalars. (copy.deepcopy is far slower on the values Ansible
    passes in, which carry its templating tags: about 0.2 s per role evaluation of five charts' values.)"""
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(item) for item in value]
    return value


def _merge(into, extra):
    """``extra`` merged into the mapping ``into`` (in place): mappings merge key by key, anything else replaces."""
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), Mapping):
            into[key] = dict(into[key])
            _merge(into[key], value)
        else:
            into[key] = _copy(value)
    return into


def node_affinity(labels):
    """The node affinity refusing a Node that carries every label of ``labels``: one term per label, which the
    scheduler ORs, each matching a Node whose label is missing or different (NotIn)."""
    terms = [{'matchExpressions': [{'key': key, 'operator': 'NotIn', 'values': [str(labels[key])]}]} for key in sorted(labels)]
    return {'requiredDuringSchedulingIgnoredDuringExecution': {'nodeSelectorTerms': terms}}


def avoid_nodes(values, paths, labels):
    """A copy of ``values`` with the node affinity of ``labels`` merged at each dotted path of ``paths``: a path
    ending in ``nodeAffinity`` takes the node affinity itself, any other (``affinity``, ``webhook.affinity``) a
    Kubernetes affinity holding it. Empty ``labels``: ``values`` unchanged."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise AnsibleFilterError('avoid_nodes: the input must be a mapping of chart values, got %s' % type(values).__name__)
    if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence) or not all(isinstance(p, str) and p.strip('.') == p and p for p in paths):
        raise AnsibleFilterError('avoid_nodes: paths must be a list of dotted value paths such as webhook.affinity, got %r' % (paths,))
    if labels is None:
        labels = {}
    if not isinstance(labels, Mapping):
        raise AnsibleFilterError('avoid_nodes: labels must be a mapping of Node label to value, got %s' % type(labels).__name__)
    for key, value in labels.items():
        if not isinstance(key, str) or not key or isinstance(value, (Mapping, list, tuple)) or value is None:
            raise AnsibleFilterError('avoid_nodes: labels must map a label key to a single value, got %r: %r' % (key, value))
    out = _merge({}, values)
    if not labels:
        return out
    affinity = node_affinity(labels)
    for path in paths:
        keys = path.split('.')
        if '' in keys:
            raise AnsibleFilterError('avoid_nodes: %r is not a dotted value path' % path)
        nested = affinity if keys[-1] == _NODE_AFFINITY else {_NODE_AFFINITY: affinity}
        for key in reversed(keys):
            nested = {key: nested}
        _merge(out, nested)
    return out


class FilterModule:
    def filters(self):
        return {'avoid_nodes': avoid_nodes}
