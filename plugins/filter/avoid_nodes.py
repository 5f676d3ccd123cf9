# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters: chart values with a required node affinity that keeps Pods off the Nodes carrying given labels, and the
Nodes such Pods can still be scheduled on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


from ansible.errors import AnsibleFilterError

from ansible_collections.genai.stack.plugins.plugin_utils.k8s_results import node_ready, resources

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


def _check_labels(name, labels):
    """``labels`` as a mapping of label key to one value (none: empty), or an error naming the filter."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise AnsibleFilterError('%s: labels must be a mapping of Node label to value, got %s' % (name, type(labels).__name__))
    for key, value in labels.items():
        if not isinstance(key, str) or not key or isinstance(value, (Mapping, list, tuple)) or value is None:
            raise AnsibleFilterError('%s: labels must map a label key to a single value, got %r: %r' % (name, key, value))
    return labels


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
    labels = _check_labels('avoid_nodes', labels)
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


# The taint effects that keep a Pod without a matching toleration off a Node (PreferNoSchedule only discourages).
_BLOCKING_EFFECTS = ('NoSchedule', 'NoExecute')


def _tolerates(toleration, taint):
    """Whether one Pod toleration tolerates one Node taint, the way the scheduler matches them: an empty effect
    matches every effect, an empty key with Exists every key, Exists any value, Equal (the default) the same value."""
    if toleration.get('effect') and toleration['effect'] != taint.get('effect'):
        return False
    operator = toleration.get('operator') or 'Equal'
    if not toleration.get('key'):
        return operator == 'Exists'
    if toleration['key'] != taint.get('key'):
        return False
    return operator == 'Exists' or str(toleration.get('value') or '') == str(taint.get('value') or '')


def free_nodes(result, labels, tolerations=None):
    """The names of the Nodes a Pod kept off the Nodes with every label of ``labels`` (see avoid_nodes) can still be
    scheduled on: Ready, not cordoned, without all of ``labels``, and with no NoSchedule or NoExecute taint that one
    of ``tolerations`` (the Pod's) does not tolerate."""
    labels = _check_labels('free_nodes', labels)
    if tolerations is None:
        tolerations = []
    if isinstance(tolerations, Mapping) or not isinstance(tolerations, Sequence) or isinstance(tolerations, (str, bytes)) \
            or not all(isinstance(t, Mapping) for t in tolerations):
        raise AnsibleFilterError('free_nodes: tolerations must be a list of Pod tolerations (mappings), got %r' % (tolerations,))
    wanted = {key: str(value) for key, value in labels.items()}
    names = []
    for node in resources(result):
        metadata, spec = node.get('metadata') or {}, node.get('spec') or {}
        node_labels = metadata.get('labels') or {}
        if wanted and all(node_labels.get(key) == value for key, value in wanted.items()):
            continue
        if spec.get('unschedulable') or not node_ready(node):
            continue
        taints = [t for t in spec.get('taints') or [] if t.get('effect') in _BLOCKING_EFFECTS]
        if all(any(_tolerates(t, taint) for t in tolerations) for taint in taints):
            names.append(metadata.get('name'))
    return names


class FilterModule:
    def filters(self):
        return {'avoid_nodes': avoid_nodes, 'free_nodes': free_nodes}
