# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over kubernetes.core.k8s_info results of Nodes: are the GPU Nodes ready?"""

from __future__ import annotations

from ansible_collections.genai.stack.plugins.plugin_utils.k8s_results import node_ready, resources as _nodes


def _node_state(node):
    status = node.get('status') or {}
    try:
        gpus = int(str((status.get('allocatable') or {}).get('nvidia.com/gpu', '0')))
    except ValueError:
        gpus = 0
    return {'name': (node.get('metadata') or {}).get('name'), 'ready': node_ready(node), 'gpus': gpus}


def gpu_nodes_ready(result, expected):
    """True when exactly `expected` Nodes are listed and each is Ready with at least one GPU."""
    states = [_node_state(n) for n in _nodes(result)]
    return len(states) == int(expected) and all(s['ready'] and s['gpus'] > 0 for s in states)


def gpu_node_report(result):
    """One line per Node: name, Ready, allocatable GPUs — for error messages and summaries."""
    states = [_node_state(n) for n in _nodes(result)]
    if not states:
        return 'no Node'
    return ', '.join('%s (%s, %d GPU)' % (s['name'], 'Ready' if s['ready'] else 'NotReady', s['gpus']) for s in states)


def gpu_total(result):
    """Allocatable NVIDIA GPUs over the Ready Nodes."""
    return sum(s['gpus'] for s in (_node_state(n) for n in _nodes(result)) if s['ready'])


class FilterModule:
    def filters(self):
        return {'gpu_nodes_ready': gpu_nodes_ready, 'gpu_node_report': gpu_node_report, 'gpu_total': gpu_total}
