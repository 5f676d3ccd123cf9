"""The vendors' real charts of genai.stack.cluster_addons, rendered with the values the role computes.

The values come from the role's own defaults/main.yml and vars/main.yml (templated by Ansible's Templar with the
option under test as an extra variable, as a play would), rendered by the real helm against the real package at
the pinned version (../shared/vendor-charts, or GENAI_STACK_CHART_DIR). Asserted: what the role promises of each
chart - the cluster autoscaler discovers exactly the GPU node group's Auto Scaling group by its tags, cert-manager
brings its CRDs with the release, the GPU operator leaves the AMI's driver and toolkit alone, the ingress
controllers own the IngressClass the engines name and their webhooks take the role's failure policy, metrics-server
registers the metrics API - and that the role sets no value key the chart does not know.
"""
import functools
import json

import pytest

from test_real_charts_observability import chart_defaults, find, render, role_values

REGION = {'cluster_addons_region': 'us-east-2'}


def addon(key, extra=None):
    """The role's entry for one add-on as it installs it (chart, version, namespace, values with the GPU affinity), with `extra` as extra vars."""
    values = role_values('cluster_addons', dict(REGION, **(extra or {})))
    (entry,) = [a for a in values('_cluster_addons_charts') if a['key'] == key]
    return entry


def rendered(key, **extra):
    return _rendered(key, json.dumps(extra, sort_keys=True))


@functools.lru_cache(maxsize=None)
def _rendered(key, extra_json):
    entry = addon(key, json.loads(extra_json))
    objects = render('%s-%s' % (entry['chart'], entry['version']), entry['release'], entry['namespace'], entry['chart_values'])
    # helm creates the items of a rendered `kind: List` (the ALB controller's IngressClass comes in one).
    flat = []
    for obj in objects:
        flat.extend(obj.get('items') or [] if obj['kind'].endswith('List') else [obj])
    return entry, flat


# Free-form maps of the charts: their keys are command-line flags, not values the chart declares.
OPEN_MAPS = {'extraArgs'}
# Kubernetes objects in the values: the key must be the chart's, its content is the API's, not the chart's.
API_OBJECTS = {'affinity'}


def unknown_keys(values, defaults, path=''):
    """Keys of the role's values that the chart's values.yaml lacks (a misspelt key would be ignored by the chart)."""
    out = []
    for key, value in values.items():
        where = path + key
        if key in OPEN_MAPS:
            continue
        if key not in (defaults or {}):
            out.append(where)
        elif isinstance(value, dict) and isinstance(defaults.get(key), dict) and defaults.get(key) and key not in API_OBJECTS:
            out.extend(unknown_keys(value, defaults[key], where + '.'))
    return out


KEYS = ['cert_manager', 'metrics_server', 'ingress', 'cluster_autoscaler', 'gpu_operator']


@pytest.mark.parametrize('key', KEYS)
def test_every_value_is_a_key_the_chart_knows(key):
    entry, _objects = rendered(key)
    assert unknown_keys(entry['chart_values'], chart_defaults('%s-%s' % (entry['chart'], entry['version']))) == []


def test_ingress_nginx_value_keys_are_known_too():
    entry, _objects = rendered('ingress', cluster_addons_ingress_controller='ingress-nginx')
    assert entry['chart'] == 'ingress-nginx' and entry['version'] == '4.15.1'
    assert unknown_keys(entry['chart_values'], chart_defaults('ingress-nginx-4.15.1')) == []


def _args(deployment):
    """The container's command line (the cluster autoscaler puts its flags in command, the others in args)."""
    container = deployment['spec']['template']['spec']['containers'][0]
    return (container.get('command') or []) + (container.get('args') or [])


def test_cluster_autoscaler_discovers_the_gpu_node_group_by_its_tags():
    _entry, objects = rendered('cluster_autoscaler', cluster_addons_cluster_name='arthur', cluster_gpu_nodegroup_name='gpu-pool')
    deployment = find(objects, 'Deployment')[0]
    args = _args(deployment)
    # The two auto-discovery tags EKS puts on every managed node group's Auto Scaling group, and its own
    # eks:nodegroup-name tag, which keeps the CPU node groups out.
    assert ('--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/arthur,'
            'eks:nodegroup-name=gpu-pool') in args, args
    assert '--cloud-provider=aws' in args and '--scale-down-unneeded-time=600s' in args
    assert '--balance-similar-node-groups=true' in args
    env = {e['name']: e.get('value') for e in deployment['spec']['template']['spec']['containers'][0].get('env', [])}
    assert env['AWS_REGION'] == 'us-east-2'
    account = find(objects, 'ServiceAccount', 'cluster-autoscaler')
    assert account['metadata'].get('annotations') in (None, {})


def test_cluster_autoscaler_service_account_takes_the_irsa_annotation():
    role = 'arn:aws:iam::111122223333:role/ca'
    _entry, objects = rendered('cluster_autoscaler', cluster_addons_cluster_autoscaler_service_account_annotations={'eks.amazonaws.com/role-arn': role})
    assert find(objects, 'ServiceAccount', 'cluster-autoscaler')['metadata']['annotations'] == {'eks.amazonaws.com/role-arn': role}


def test_cert_manager_installs_its_crds_with_the_release():
    _entry, objects = rendered('cert_manager')
    crds = {o['metadata']['name'] for o in objects if o['kind'] == 'CustomResourceDefinition'}
    assert {'certificates.cert-manager.io', 'clusterissuers.cert-manager.io', 'issuers.cert-manager.io',
            'certificaterequests.cert-manager.io', 'orders.acme.cert-manager.io', 'challenges.acme.cert-manager.io'} <= crds
    groups = {o['spec']['group'] for o in objects if o['kind'] == 'CustomResourceDefinition'}
    # The teardown removes the CRDs of exactly these groups (helm keeps them: resource-policy keep).
    assert groups == set(addon('cert_manager')['crd_groups'])
    webhook = find(objects, 'ValidatingWebhookConfiguration')[0]
    assert {w['failurePolicy'] for w in webhook['webhooks']} == {'Fail'}


def test_gpu_operator_leaves_the_amis_driver_and_toolkit_alone():
    _entry, objects = rendered('gpu_operator')
    policy = find(objects, 'ClusterPolicy', 'cluster-policy')['spec']
    assert policy['driver']['enabled'] is False and policy['toolkit']['enabled'] is False
    assert policy['devicePlugin']['enabled'] is True and policy['dcgmExporter']['enabled'] is False
    _entry, objects = rendered('gpu_operator', cluster_addons_gpu_operator_driver_enabled=True, cluster_addons_gpu_operator_toolkit_enabled=True)
    policy = find(objects, 'ClusterPolicy', 'cluster-policy')['spec']
    assert policy['driver']['enabled'] is True and policy['toolkit']['enabled'] is True


def test_alb_controller_owns_the_ingress_class_and_takes_the_webhook_policy():
    _entry, objects = rendered('ingress', cluster_addons_cluster_name='arthur', cluster_addons_ingress_webhook_failure_policy='Ignore')
    assert find(objects, 'IngressClass', 'alb')['spec']['controller'] == 'ingress.k8s.aws/alb'
    args = _args(find(objects, 'Deployment')[0])
    assert '--cluster-name=arthur' in args and '--ingress-class=alb' in args and '--aws-region=us-east-2' in args
    webhooks = {w['name']: w['failurePolicy'] for c in find(objects, 'MutatingWebhookConfiguration') + find(objects, 'ValidatingWebhookConfiguration')
                for w in c['webhooks']}
    # The two webhooks on objects every stack writes (any Service, any Ingress) follow the role's policy.
    assert webhooks['mservice.elbv2.k8s.aws'] == 'Ignore' and webhooks['vingress.elbv2.k8s.aws'] == 'Ignore'
    _entry, objects = rendered('ingress')
    webhooks = {w['name']: w['failurePolicy'] for c in find(objects, 'MutatingWebhookConfiguration') for w in c['webhooks']}
    assert webhooks['mservice.elbv2.k8s.aws'] == 'Fail'
    assert find(objects, 'ServiceAccount', 'aws-load-balancer-controller')


def test_ingress_nginx_owns_the_ingress_class_of_its_name():
    _entry, objects = rendered('ingress', cluster_addons_ingress_controller='ingress-nginx', cluster_addons_ingress_nginx_service_type='NodePort')
    assert find(objects, 'IngressClass', 'nginx')['spec']['controller'] == 'k8s.io/ingress-nginx'
    assert '--ingress-class=nginx' in _args(find(objects, 'Deployment')[0])
    controller = [s for s in find(objects, 'Service') if s['metadata']['name'] == 'ingress-nginx-controller']
    assert controller and controller[0]['spec']['type'] == 'NodePort'
    webhook = find(objects, 'ValidatingWebhookConfiguration')[0]
    assert {w['failurePolicy'] for w in webhook['webhooks']} == {'Fail'}


def test_metrics_server_registers_the_metrics_api():
    _entry, objects = rendered('metrics_server')
    api = find(objects, 'APIService', 'v1beta1.metrics.k8s.io')['spec']
    assert api['group'] == 'metrics.k8s.io' and api['service']['namespace'] == 'kube-system'


POD_KINDS = ('Deployment', 'StatefulSet', 'Job', 'CronJob', 'DaemonSet')
# The labels the role keeps the add-ons off by default (cluster_gpu's default labels).
GPU_TERM = {'matchExpressions': [{'key': 'capability', 'operator': 'NotIn', 'values': ['gpu']}]}


def _pod_spec(obj):
    template = obj['spec']['jobTemplate']['spec']['template'] if obj['kind'] == 'CronJob' else obj['spec']['template']
    return template['spec']


def _placements(objects):
    """{(kind, name): the required node selector terms of its Pods (None: no required node affinity)}."""
    out = {}
    for obj in objects:
        if obj['kind'] in POD_KINDS:
            required = ((_pod_spec(obj).get('affinity') or {}).get('nodeAffinity') or {}).get('requiredDuringSchedulingIgnoredDuringExecution')
            out[(obj['kind'], obj['metadata']['name'])] = (required or {}).get('nodeSelectorTerms')
    return out


# Where each chart puts its Pods, controller by controller, as the real chart renders them with the role's values.
ADDON_CASES = [('cert_manager', {}), ('metrics_server', {}), ('ingress', {}), ('cluster_autoscaler', {}), ('gpu_operator', {}),
               ('ingress', {'cluster_addons_ingress_controller': 'ingress-nginx'})]


EXEMPT_JOBS = {
    'ingress-ingress-nginx': ('ingress-nginx-admission-create', 'ingress-nginx-admission-patch'),
    'gpu_operator': ('gpu-operator-cleanup-gpucluster', 'gpu-operator-upgrade-crd'),
}


@pytest.mark.parametrize('key,extra', ADDON_CASES, ids=[k + ('-' + '-'.join(e.values()) if e else '') for k, e in ADDON_CASES])
def test_every_controller_and_job_stays_off_the_gpu_nodes(key, extra):
    _entry, objects = rendered(key, **extra)
    placements = _placements(objects)
    workloads = {ref: terms for ref, terms in placements.items() if ref[0] != 'DaemonSet'}
    assert any(kind == 'Deployment' for kind, _name in workloads), placements
    # The hook Jobs whose chart takes a nodeSelector only, no affinity: the exceptions the role's documentation names.
    exempt = {('Job', name) for name in EXEMPT_JOBS.get(key + ('-' + '-'.join(extra.values()) if extra else ''), ())}
    assert exempt <= set(workloads), workloads
    assert {ref: terms for ref, terms in workloads.items() if ref not in exempt and terms != [GPU_TERM]} == {}
    # DaemonSets are left as the chart makes them: the GPU operator's node-feature-discovery worker runs on every Node.
    assert all(GPU_TERM not in (terms or []) for ref, terms in placements.items() if ref[0] == 'DaemonSet'), placements


@pytest.mark.parametrize('key', ['cert_manager', 'metrics_server', 'ingress', 'cluster_autoscaler', 'gpu_operator'])
def test_turned_off_the_charts_place_their_pods_as_they_would(key):
    _entry, objects = rendered(key, cluster_addons_avoid_gpu_nodes=False)
    assert all(GPU_TERM not in (terms or []) for terms in _placements(objects).values())


def test_a_node_is_refused_only_when_it_has_every_gpu_label():
    _entry, objects = rendered('metrics_server', cluster_gpu_labels={'capability': 'gpu', 'pool': 'a100'})
    (terms,) = list(_placements(objects).values())
    # The terms are ORed: a Node passes when any one label differs or is missing.
    assert terms == [GPU_TERM, {'matchExpressions': [{'key': 'pool', 'operator': 'NotIn', 'values': ['a100']}]}]
    # The role's own labels win over cluster_gpu's.
    _entry, objects = rendered('metrics_server', cluster_gpu_labels={'capability': 'gpu'}, cluster_addons_gpu_node_labels={'accelerator': 'h100'})
    (terms,) = list(_placements(objects).values())
    assert terms == [{'matchExpressions': [{'key': 'accelerator', 'operator': 'NotIn', 'values': ['h100']}]}]


def test_alb_controller_keeps_its_spread_over_nodes_beside_the_gpu_affinity():
    _entry, objects = rendered('ingress')
    affinity = _pod_spec(find(objects, 'Deployment')[0])['affinity']
    (spread,) = affinity['podAntiAffinity']['preferredDuringSchedulingIgnoredDuringExecution']
    assert spread['podAffinityTerm']['topologyKey'] == 'kubernetes.io/hostname'
    # Without the GPU affinity the chart's own default spread applies, and the role sets no affinity.
    entry, objects = rendered('ingress', cluster_addons_avoid_gpu_nodes=False)
    assert 'affinity' not in entry['chart_values']
    assert _pod_spec(find(objects, 'Deployment')[0])['affinity']['podAntiAffinity']


def test_gpu_operator_keeps_its_preference_for_the_control_plane():
    _entry, objects = rendered('gpu_operator')
    operator = [d for d in find(objects, 'Deployment') if d['metadata']['name'] == 'gpu-operator'][0]
    node_affinity = _pod_spec(operator)['affinity']['nodeAffinity']
    assert node_affinity['requiredDuringSchedulingIgnoredDuringExecution']['nodeSelectorTerms'] == [GPU_TERM]
    assert node_affinity['preferredDuringSchedulingIgnoredDuringExecution']
