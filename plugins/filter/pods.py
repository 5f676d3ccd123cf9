# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over kubernetes.core.k8s_info results of Pods: which are live, which are Running and Ready?"""

from __future__ import annotations

from ansible_collections.genai.stack.plugins.plugin_utils.k8s_results import resources as _pods


def _is_ready(pod):
    status = pod.get('status') or {}
    conditions = status.get('conditions') or []
    return status.get('phase') == 'Running' and any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in conditions)


def live_pods(result):
    """The Pods that are not being deleted (no ``metadata.deletionTimestamp``)."""
    return [p for p in _pods(result) if 'deletionTimestamp' not in (p.get('metadata') or {})]


def ready_pods(result):
    """The live Pods whose phase is ``Running`` and whose ``Ready`` condition is ``True``."""
    return [p for p in live_pods(result) if _is_ready(p)]


class FilterModule:
    def filters(self):
        return {'live_pods': live_pods, 'ready_pods': ready_pods}
