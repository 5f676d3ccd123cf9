# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the collection's filters that read kubernetes.core.k8s_info results."""

from __future__ import annotations


def resources(result):
    """The objects of a k8s_info result (its ``resources``), or the list given; none for a skipped or empty result."""
    if isinstance(result, dict):
        return result.get('resources') or []
    return list(result or [])


def node_ready(node):
    """Whether a Node object's ``Ready`` condition is ``True`` (a Node without the condition is not)."""
    conditions = (node.get('status') or {}).get('conditions') or []
    return any(c.get('type') == 'Ready' and c.get('status') == 'True' for c in conditions)
