# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared `attributes` documentation: what every genai.stack module promises."""

from __future__ import annotations


class ModuleDocFragment:
    # Modules that support all three (the usual case).
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Check mode makes only read requests; the journal of mutating calls stays empty.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  idempotent:
    description: When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
    support: full
"""

    ACTIONGROUP_AWS = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/genai.stack.aws) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - genai.stack.aws
"""

    ACTIONGROUP_K8S = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/genai.stack.k8s) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - genai.stack.k8s
"""
