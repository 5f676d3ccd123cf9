#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: eks_nodegroup_labels
short_description: Set Kubernetes labels on an existing EKS managed node group
version_added: 0.1.0
author:
  - genai.stack maintainers (@genai-stack)
description:
  - Adds or updates Kubernetes labels of an existing EKS managed node group (for example
    C(capability=cpu) on the CPU node group, so CPU-mode workloads can select it) through
    C(UpdateNodegroupConfig), and returns the node group.
  - Only the labels given are managed; others are kept unless O(purge_labels=true).
  - O(state=absent) removes the given label keys, for teardown.
options:
  name:
    description: Name of the node group.
    type: str
    required: true
  cluster_name:
    description: Name of the EKS cluster.
    type: str
    required: true
  labels:
    description: Labels to set.
    type: dict
    required: true
  purge_labels:
    description:
      - Remove labels of the node group that are not in O(labels).
      - Only with O(state=present); the module fails before any request when it is set with O(state=absent).
    type: bool
    default: false
  state:
    description:
      - V(present) sets the labels; V(absent) removes the labels whose keys are in O(labels) (values are ignored).
    type: str
    choices: [present, absent]
    default: present
  wait:
    description: Wait for the update to finish.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait.
      - When they pass, the module fails saying which update it waited for; a later run sees the labels as EKS then reports them.
      - An update that EKS ends C(Failed) or C(Cancelled) fails the module with the update id and EKS's errors
        (C(eks_update) in the result).
    type: int
    default: 600
extends_documentation_fragment:
  - genai.stack.attributes
  - genai.stack.attributes.actiongroup_aws
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Mark the CPU node group for CPU-mode engines
  genai.stack.eks_nodegroup_labels:
    cluster_name: arthur
    name: cpu-nodes
    labels:
      capability: cpu

- name: Take the label off again
  genai.stack.eks_nodegroup_labels:
    cluster_name: arthur
    name: cpu-nodes
    labels:
      capability: cpu
    state: absent
"""

RETURN = r"""
nodegroup:
  description: The node group as EKS describes it after the change (snake_case keys; labels as given).
  returned: always
  type: dict
update_id:
  description: The EKS update started, if any.
  returned: when changed and not in check mode
  type: str
"""

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.genai.stack.plugins.module_utils._aws import GenaiAWSModule
from ansible_collections.genai.stack.plugins.module_utils._diff import DifferenceTracker
from ansible_collections.genai.stack.plugins.module_utils._eks import EKS, plan_label_update, run_or_fail
from ansible_collections.genai.stack.plugins.module_utils._validation import EKS_NAME, Checker


def validate_params(params):
    check = Checker()
    check.match(EKS_NAME, params['name'], 'name', 'a valid node group name')
    check.match(EKS_NAME, params['cluster_name'], 'cluster_name', 'a valid EKS cluster name')
    check.labels(params['labels'], 'labels')
    check.in_range(params['wait_timeout'], 'wait_timeout', 1, 86400)
    check.require(not (params['purge_labels'] and params['state'] == 'absent'), 'purge_labels',
                  'applies to state=present only (state=absent removes just the keys of labels)')
    check.raise_if_any()


def argument_spec():
    return dict(
        name=dict(type='str', required=True),
        cluster_name=dict(type='str', required=True),
        labels=dict(type='dict', required=True),
        purge_labels=dict(type='bool', default=False),
        state=dict(type='str', default='present', choices=['present', 'absent']),
        wait=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=600),
    )


def desired_labels(current, wanted, state, purge):
    """The node group's labels after the run: without `wanted`'s keys (absent), exactly `wanted`
    (purge), or `wanted` merged over the current ones."""
    if state == 'absent':
        return {k: v for k, v in current.items() if k not in wanted}
    if purge:
        return dict(wanted)
    return dict(current, **wanted)


def plan(current, params):
    """The change to make: `labels` (before and after) and `request`, UpdateNodegroupConfig's
    labels payload, None when the node group already has the labels asked for."""
    current = dict(current or {})
    desired = desired_labels(current, dict(params['labels']), params['state'], params['purge_labels'])
    return {'before': current, 'after': desired, 'request': plan_label_update(current, desired)}


def read_nodegroup(module, eks):
    """The node group; a missing one (or its missing cluster) fails naming the option."""
    params = module.params
    nodegroup = eks.describe_nodegroup(params['cluster_name'], params['name'])
    if nodegroup is not None:
        return nodegroup
    if eks.describe_cluster(params['cluster_name']) is None:
        module.fail_option('cluster_name', 'no EKS cluster %r in this account and region' % params['cluster_name'])
    module.fail_option('name', 'no node group %r in EKS cluster %r' % (params['name'], params['cluster_name']))


def apply(module, eks, change):
    """Send the label change and wait for it when asked; returns the update's id."""
    params = module.params
    update = eks.update_nodegroup_config(params['cluster_name'], params['name'],
                                         'update the labels of node group %r' % params['name'], labels=change['request'])
    if params['wait']:
        what = 'label update %s of node group %s' % (update['id'], params['name'])
        eks.wait_for_update(params['cluster_name'], params['name'], update['id'], what, params['wait_timeout'])
    return update['id']


def run(module, eks):
    params = module.params
    nodegroup = read_nodegroup(module, eks)
    change = plan(nodegroup.get('labels'), params)
    tracker = DifferenceTracker()
    tracker.add('labels', change['before'], change['after'])
    result = dict(changed=tracker.has_differences)
    if change['request'] and not module.check_mode:
        result['update_id'] = apply(module, eks, change)
        nodegroup = read_nodegroup(module, eks)
    elif module.check_mode:
        nodegroup = dict(nodegroup, labels=change['after'])
    result['nodegroup'] = camel_dict_to_snake_dict(nodegroup, ignore_list=['labels', 'tags'])
    if module._diff:
        result['diff'] = tracker.diff()
    return result


def main():
    module = GenaiAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.validate(validate_params, module.params)
    result = run_or_fail(module, run, module, EKS(module.client('eks')))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
