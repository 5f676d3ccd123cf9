# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter over kubernetes.core.k8s_info results of Nodes: each Node's readiness and allocatable GPUs,
read the way the gpu_nodes filters read them."""

from __future__ import annotations

from ansible_collections.genai.stack.plugins.filter.gpu_nodes import _node_state
from ansible_collections.genai.stack.plugins.plugin_utils.k8s_results import resources


def gpu_node_states(result):
    """``[{name, ready, gpus}]`` a Node: its name, whether it is Ready, its allocatable NVIDIA GPUs."""
    return [_node_state(n) for n in resources(result)]


class FilterModule:
    def filters(self):
        return {'gpu_node_states': gpu_node_states}
