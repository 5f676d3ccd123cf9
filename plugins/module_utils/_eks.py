# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API. EKS request planning shared by the node group modules."""

from __future__ import annotations


def plan_label_update(current, wanted):
    """UpdateNodegroupConfig's `labels` payload (addOrUpdateLabels, removeLabels) that turns the
    node group's `current` labels into `wanted`, or None when they are equal."""
    current = current or {}
    payload = {}
    add = {k: v for k, v in wanted.items() if current.get(k) != v}
    remove = sorted(k for k in current if k not in wanted)
    if add:
        payload['addOrUpdateLabels'] = add
    if remove:
        payload['removeLabels'] = remove
    return payload or None
