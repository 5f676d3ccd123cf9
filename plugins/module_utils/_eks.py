# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Internal to genai.stack; not a public API.

The EKS service layer of the node group modules (reading a cluster or node group, starting and
waiting for node group updates, EKS's waiters) and the request planning they share.
"""

from __future__ import annotations

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing library

from ansible_collections.genai.stack.plugins.module_utils._aws import AWSService, AWSServiceError, eks_problems, wait_until

# EKS answers ResourceNotFoundException for a missing cluster, node group or update.
NOT_FOUND = ('ResourceNotFoundException',)
# Seconds between two polls of EKS's waiters (NodegroupActive, NodegroupDeleted) and the
# longest pause between two reads of an update's status.
WAITER_DELAY = 15
UPDATE_POLL_INTERVAL = 15


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


def autoscaling_group_of(nodegroup):
    """The name of the node group's (first) Auto Scaling group, or None while it has none."""
    groups = ((nodegroup or {}).get('resources') or {}).get('autoScalingGroups') or []
    return groups[0].get('name') if groups else None


class EKSUpdateFailed(Exception):
    """An EKS update that ended Failed or Cancelled; `update` is EKS's DescribeUpdate entry."""

    def __init__(self, what, update):
        errors = update.get('errors') or []
        super().__init__('%s ended %s: %s' % (what, update['status'], eks_problems(errors, 'errorCode', 'errorMessage')))
        self.update = update

    def result(self):
        """The `eks_update` a module returns with the failure."""
        return {'id': self.update.get('id'), 'status': self.update['status'], 'type': self.update.get('type'),
                'errors': self.update.get('errors') or []}


def run_or_fail(module, action, *args):
    """Run a node group module's `action(*args)` and end the module on what it raises: an AWS call
    that failed (with botocore's detail), an update EKS ended Failed or Cancelled (returned as
    `eks_update`), a wait that timed out."""
    try:
        return action(*args)
    except AWSServiceError as exc:
        module.fail_service(exc)
    except EKSUpdateFailed as exc:
        module.fail_json(msg=str(exc), eks_update=exc.result())
    except TimeoutError as exc:
        module.fail_json(msg=str(exc))
    return None


class EKS(AWSService):
    """EKS calls for one cluster's node groups."""

    def describe_cluster(self, cluster_name):
        """The cluster, or None when there is none of that name."""
        found = self.lookup('describe EKS cluster %r' % cluster_name, 'describe_cluster', NOT_FOUND, name=cluster_name)
        return found and found['cluster']

    def describe_nodegroup(self, cluster_name, nodegroup_name):
        """The node group, or None when it (or its cluster) does not exist."""
        found = self.lookup('describe node group %r' % nodegroup_name, 'describe_nodegroup', NOT_FOUND,
                            clusterName=cluster_name, nodegroupName=nodegroup_name)
        return found and found['nodegroup']

    def create_nodegroup(self, **request):
        return self.call('create node group %s' % request['nodegroupName'], 'create_nodegroup', **request)['nodegroup']

    def delete_nodegroup(self, cluster_name, nodegroup_name):
        self.call('delete node group %s' % nodegroup_name, 'delete_nodegroup', clusterName=cluster_name, nodegroupName=nodegroup_name)

    def update_nodegroup_config(self, cluster_name, nodegroup_name, what, **config):
        """Start an UpdateNodegroupConfig; returns EKS's update (id, type, status)."""
        return self.call(what, 'update_nodegroup_config', clusterName=cluster_name, nodegroupName=nodegroup_name, **config)['update']

    def update_nodegroup_version(self, cluster_name, nodegroup_name, what, **request):
        """Start an UpdateNodegroupVersion; returns EKS's update (id, type, status)."""
        return self.call(what, 'update_nodegroup_version', clusterName=cluster_name, nodegroupName=nodegroup_name, **request)['update']

    def tag_resource(self, arn, tags, what):
        self.call('tag %s' % what, 'tag_resource', resourceArn=arn, tags=tags)

    def untag_resource(self, arn, keys, what):
        self.call('untag %s' % what, 'untag_resource', resourceArn=arn, tagKeys=keys)

    def wait_for_update(self, cluster_name, nodegroup_name, update_id, what, timeout):
        """Wait for a node group update to end Successful and return it. EKSUpdateFailed when it
        ends Failed or Cancelled, TimeoutError after `timeout` seconds (EKS has no waiter for updates)."""
        def probe():
            update = self.call('describe %s' % what, 'describe_update', name=cluster_name, nodegroupName=nodegroup_name,
                               updateId=update_id)['update']
            if update.get('status') in ('Failed', 'Cancelled'):
                raise EKSUpdateFailed(what, dict(update, id=update_id))
            return update if update.get('status') == 'Successful' else None

        return wait_until('%s to finish' % what, probe, timeout, interval=UPDATE_POLL_INTERVAL)

    def wait(self, waiter_name, cluster_name, nodegroup_name, timeout):
        """Run EKS's waiter `waiter_name` (nodegroup_active, nodegroup_deleted) for at most `timeout`
        seconds. botocore's WaiterError is left to the caller: a node group that ended
        CREATE_FAILED or DELETE_FAILED and a timeout read differently (see its last_response)."""
        self.client.get_waiter(waiter_name).wait(clusterName=cluster_name, nodegroupName=nodegroup_name,
                                                 WaiterConfig=waiter_config(timeout))


def waiter_config(timeout, delay=WAITER_DELAY):
    """A waiter's WaiterConfig that gives up after about `timeout` seconds: a poll every `delay`
    seconds (every `timeout` seconds when that is shorter), the first one at once."""
    delay = max(1, min(delay, int(timeout)))
    return {'Delay': delay, 'MaxAttempts': int(timeout) // delay + 1}


def waiter_timed_out(exc):
    """True for a botocore WaiterError that ran out of attempts (not one that met a failure state)."""
    return isinstance(exc, botocore.exceptions.WaiterError) and 'Max attempts exceeded' in str(exc)


__all__ = ['AWSServiceError', 'EKS', 'EKSUpdateFailed', 'autoscaling_group_of', 'plan_label_update', 'run_or_fail', 'waiter_config', 'waiter_timed_out']
