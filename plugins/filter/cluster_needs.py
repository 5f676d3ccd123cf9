# -*- coding: utf-8 -*-
# Copyright: genai.stack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rules of genai.stack.common's cluster_needs step: what a stack needs the cluster to run (its IngressClass, the
metrics API, a StorageClass, a GPU stack), judged against what was read, each rule naming the add-on that is missing
and the variable that installs it."""

from __future__ import annotations

from ansible_collections.genai.stack.plugins.plugin_utils.k8s_results import resources as _resources

DEFAULT_CLASS = 'storageclass.kubernetes.io/is-default-class'


def _names(objects):
    return [(o.get('metadata') or {}).get('name', '') for o in objects]


def gpu_stacks(found):
    """What makes nvidia.com/gpu allocatable: NVIDIA device plugin DaemonSets, the GPU operator's ClusterPolicies, and
    Bottlerocket NVIDIA nodes (their OS runs the device plugin, with no Kubernetes object for it)."""
    stacks = ['device plugin %s/%s' % ((d.get('metadata') or {}).get('namespace', ''), (d.get('metadata') or {}).get('name', ''))
              for d in _resources(found.get('device_plugins'))]
    stacks += ['GPU operator ClusterPolicy %s' % name for name in _names(_resources(found.get('cluster_policies')))]
    for node in _resources(found.get('nodes')):
        status = node.get('status') or {}
        if str((status.get('nodeInfo') or {}).get('osImage', '')).startswith('Bottlerocket') and 'nvidia.com/gpu' in (status.get('allocatable') or {}):
            stacks.append('Bottlerocket NVIDIA node %s' % (node.get('metadata') or {}).get('name', ''))
    return stacks


def _ingress_rule(needs, found):
    name = needs.get('ingress_class') or ''
    present = name in _names(_resources(found.get('ingress_classes')))
    return {'name': needs['ingress_class_variable'], 'ok': present,
            'rule': 'no IngressClass %s in the cluster: install the ingress controller that owns it (genai.stack.cluster_addons: '
                    'cluster_addons_ingress_enabled, with cluster_addons_ingress_class_name %s)' % (name or "''", name or "''")}


def _metrics_rule(needs, found):
    present = 'v1beta1.metrics.k8s.io' in _names(_resources(found.get('api_services')))
    return {'name': needs['metrics_api_variable'], 'ok': present,
            'rule': 'turns a HorizontalPodAutoscaler on, and the cluster has no metrics API (APIService v1beta1.metrics.k8s.io) for it '
                    'to read: install metrics-server (genai.stack.cluster_addons: cluster_addons_metrics_server_enabled), or turn the '
                    'autoscaler off'}


def _storage_rule(needs, found):
    classes = _resources(found.get('storage_classes'))
    names = _names(classes)
    wanted = needs.get('storage_class') or ''
    if wanted:
        ok, what = wanted in names, 'no StorageClass named %s' % wanted
    else:
        defaults = [c for c in classes if ((c.get('metadata') or {}).get('annotations') or {}).get(DEFAULT_CLASS) == 'true']
        ok, what = bool(defaults), 'the volumes take the default StorageClass, and the cluster has none'
    return {'name': needs['storage_class_variable'], 'ok': ok,
            'rule': '%s (StorageClasses: %s; on EKS the Amazon EBS CSI driver add-on provisions volumes, with a StorageClass of '
                    'provisioner ebs.csi.aws.com)' % (what, ', '.join(names) or 'none')}


def _gpu_rule(needs, found):
    return {'name': needs['gpu_variable'], 'ok': bool(gpu_stacks(found)),
            'rule': 'GPU mode needs a GPU stack to make nvidia.com/gpu allocatable, and the cluster runs none: install the NVIDIA device '
                    'plugin (genai.stack.cluster_gpu: cluster_gpu_device_plugin_enabled) or the NVIDIA GPU operator '
                    '(genai.stack.cluster_addons: cluster_addons_gpu_operator_enabled), one of the two'}


RULES = (('ingress_class_variable', _ingress_rule), ('metrics_api_variable', _metrics_rule),
         ('storage_class_variable', _storage_rule), ('gpu_variable', _gpu_rule))


def cluster_needs_rules(needs, found=None):
    """The rules (``{name, ok, rule}``) of the needs whose variable is set, in the order ingress, metrics, storage, GPU."""
    needs, found = needs or {}, found or {}
    return [make(needs, found) for key, make in RULES if needs.get(key)]


class FilterModule:
    def filters(self):
        return {'cluster_needs_rules': cluster_needs_rules}
