"""The vendors' real charts with the values genai.stack.observability and cluster_gpu's device plugin compute.

The values come from each role's own defaults/main.yml and vars/main.yml, templated by Ansible's Templar
with the option under test as an extra variable (the same expressions and precedence as a play), and are
rendered by the real helm binary against the real chart package of the pinned version
(../shared/vendor-charts, or GENAI_STACK_CHART_DIR). What is asserted is what the roles promise: the
objects that carry their settings, no value key the chart does not know, and pods that a scheduler
would place on the GPU nodes the roles label (and taint) and on no other node.
"""
import functools
import io
import json
import os
import subprocess
import tarfile

import pytest
import yaml
from real_charts import CHART_DIR, helm_binary, missing_helm

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
KUBE_VERSION = '1.31.4'  # the sandbox's apiserver
# kube-prometheus-stack renders ~2 MB of YAML: the C loader when PyYAML has it.
YAML_LOADER = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)

# Nodes as the roles make them: cluster_gpu labels its GPU node group capability=gpu and, with
# cluster_gpu_taint, taints it as eks_gpu_nodegroup does (nvidia.com/gpu=present:NoSchedule); the CPU node
# group is labelled capability=cpu.
GPU_TAINT = {'key': 'nvidia.com/gpu', 'value': 'present', 'effect': 'NoSchedule'}
EKS_LABELS = {'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'eks.amazonaws.com/nodegroup': 'nodes'}


HELM = helm_binary()


def _need(package):
    path = os.path.join(CHART_DIR, package + '.tgz')
    if not os.path.isdir(CHART_DIR):
        pytest.skip('no vendor chart folder at %s (set GENAI_STACK_CHART_DIR): the real charts cannot be rendered' % CHART_DIR)
    if not os.path.exists(path):
        pytest.skip('%s is not in %s' % (package, CHART_DIR))
    if not HELM:
        missing_helm('the real charts cannot be rendered')
    return path


def role_values(role, extra=None):
    """A Templar over the role's defaults and vars with `extra` as extra vars (which win, as -e does)."""
    loader = DataLoader()
    variables = {'role_path': os.path.join(ROOT, 'roles', role), 'inventory_hostname': 'unit'}
    for part in ('defaults', 'vars'):
        variables.update(loader.load_from_file(os.path.join(ROOT, 'roles', role, part, 'main.yml'), trusted_as_template=True) or {})
    variables.update(extra or {})
    templar = Templar(loader=loader, variables=variables)
    return lambda expression: templar.template(trust_as_template('{{ %s }}' % expression))


def observability_releases(extra=None):
    return {release['key']: release for release in role_values('observability', extra)('_observability_releases')}


def render(package, release, namespace, values):
    result = subprocess.run(
        [HELM, 'template', release, _need(package), '--namespace', namespace, '--kube-version', KUBE_VERSION, '-f', '-'],
        input=json.dumps(values), capture_output=True, text=True, check=False)
    assert result.returncode == 0, 'helm template %s refused the role\'s values: %s' % (package, result.stderr)
    return [doc for doc in yaml.load_all(result.stdout, Loader=YAML_LOADER) if doc]


def find(objects, kind, name=None):
    found = [o for o in objects if o['kind'] == kind and (name is None or o['metadata']['name'] == name)]
    assert found, 'no %s %s rendered' % (kind, name or '')
    return found[0] if name else found


@functools.lru_cache(maxsize=None)
def chart_defaults(package):
    """The chart's default values, its subcharts' under their names (as helm merges them)."""
    defaults = {}
    with tarfile.open(_need(package)) as archive:
        for member in archive.getmembers():
            parts = member.name.split('/')
            if parts[-1] != 'values.yaml':
                continue
            # <chart>/values.yaml, <chart>/charts/<sub>/values.yaml (one level is what the role reaches).
            if len(parts) == 2:
                _merge(defaults, yaml.safe_load(archive.extractfile(member)) or {})
            elif len(parts) == 4 and parts[1] == 'charts':
                _merge(defaults.setdefault(parts[2], {}), yaml.safe_load(archive.extractfile(member)) or {})
    return defaults


def _merge(into, values):
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into.setdefault(key, value)


def unknown_keys(values, defaults, prefix=''):
    """Key paths of `values` the chart's defaults do not have. An empty map or null default is free-form
    (nodeSelector, additionalLabels): anything below it is the user's."""
    unknown = []
    for key, value in values.items():
        path = prefix + key
        if not isinstance(defaults, dict) or key not in defaults:
            unknown.append(path)
        elif isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key]:
            unknown.extend(unknown_keys(value, defaults[key], path + '.'))
    return unknown


def _expression_matches(expression, labels):
    key, operator, values = expression['key'], expression['operator'], expression.get('values', [])
    if operator == 'In':
        return labels.get(key) in values
    if operator == 'NotIn':
        return key not in labels or labels[key] not in values
    if operator == 'Exists':
        return key in labels
    if operator == 'DoesNotExist':
        return key not in labels
    raise AssertionError('operator %s not modelled' % operator)


def _tolerates(tolerations, taint):
    for toleration in tolerations or []:
        if toleration.get('effect') and toleration['effect'] != taint['effect']:
            continue
        if toleration.get('operator', 'Equal') == 'Exists':
            if not toleration.get('key') or toleration['key'] == taint['key']:
                return True
        elif toleration.get('key') == taint['key'] and toleration.get('value', '') == taint.get('value', ''):
            return True
    return False


def schedulable(pod_spec, labels, taints=()):
    """Whether the scheduler's node filters (nodeSelector, required node affinity, NoSchedule/NoExecute
    taints) admit this pod onto a node with these labels and taints."""
    if any(labels.get(k) != v for k, v in (pod_spec.get('nodeSelector') or {}).items()):
        return False
    required = (((pod_spec.get('affinity') or {}).get('nodeAffinity') or {})
                .get('requiredDuringSchedulingIgnoredDuringExecution') or {})
    terms = required.get('nodeSelectorTerms')
    if terms is not None and not any(all(_expression_matches(e, labels) for e in term.get('matchExpressions', [])) for term in terms):
        return False
    return all(_tolerates(pod_spec.get('tolerations'), t) for t in taints if t['effect'] in ('NoSchedule', 'NoExecute'))


def test_schedulable_models_the_filters():
    """The scheduling model itself can say no: each filter refuses on its own."""
    spec = {'nodeSelector': {'capability': 'gpu'}, 'tolerations': [{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}]}
    assert schedulable(spec, {'capability': 'gpu'}, [GPU_TAINT])
    assert not schedulable(spec, {'capability': 'cpu'})
    assert not schedulable(dict(spec, tolerations=[]), {'capability': 'gpu'}, [GPU_TAINT])
    nfd = {'nodeAffinity': {'requiredDuringSchedulingIgnoredDuringExecution': {'nodeSelectorTerms': [
        {'matchExpressions': [{'key': 'nvidia.com/gpu.present', 'operator': 'In', 'values': ['true']}]}]}}}
    assert not schedulable(dict(spec, affinity=nfd), {'capability': 'gpu'})
    assert schedulable(dict(spec, affinity=nfd), {'capability': 'gpu', 'nvidia.com/gpu.present': 'true'})


def test_unknown_keys_finds_a_misspelt_key():
    assert unknown_keys({'a': {'b': 1, 'c': 2}, 'free': {'x': 1}}, {'a': {'b': 0}, 'free': {}}) == ['a.c']


# ---- pins: the role's default version is the vendor package in the folder and the stand-in's version

PINS = [
    ('observability', 'observability_prometheus_stack_chart_version', 'kube-prometheus-stack'),
    ('observability', 'observability_opensearch_chart_version', 'opensearch'),
    ('observability', 'observability_fluent_bit_chart_version', 'fluent-bit'),
    ('observability', 'observability_dcgm_exporter_chart_version', 'dcgm-exporter'),
    ('cluster_gpu', 'cluster_gpu_device_plugin_chart_version', 'nvidia-device-plugin'),
]


@pytest.mark.parametrize('role,variable,chart', PINS, ids=[p[2] for p in PINS])
def test_pin_is_the_vendor_package_and_the_stand_in(role, variable, chart):
    version = str(role_values(role)(variable))
    with open(os.path.join(ROOT, 'tests', 'fixtures', 'charts', chart, 'Chart.yaml'), encoding='utf-8') as handle:
        assert str(yaml.safe_load(handle)['version']) == version, 'the stand-in chart %s is not at the pin %s' % (chart, version)
    with tarfile.open(_need('%s-%s' % (chart, version))) as archive:
        meta = yaml.safe_load(archive.extractfile('%s/Chart.yaml' % chart))
    assert (meta['name'], str(meta['version'])) == (chart, version)


# ---- the collection-wide chart mirror

MIRROR_CHARTS = {
    'observability': {'prometheus_stack': 'kube-prometheus-stack', 'opensearch': 'opensearch', 'fluent_bit': 'fluent-bit',
                      'dcgm_exporter': 'dcgm-exporter'},
}


def test_no_mirror_means_the_vendors_repositories():
    releases = observability_releases()
    for key, chart in MIRROR_CHARTS['observability'].items():
        assert releases[key]['chart_ref'] == chart
        assert releases[key]['chart_repo_url'].startswith('https://')
    common = role_values('observability')('_observability_helm_common')
    assert common['plain_http'] is False
    plugin = role_values('cluster_gpu')
    assert plugin('cluster_gpu_device_plugin_chart_ref') == 'nvidia-device-plugin'
    assert plugin('cluster_gpu_device_plugin_chart_repo_url') == 'https://nvidia.github.io/k8s-device-plugin'
    assert plugin('_cluster_gpu_device_plugin_plain_http') is False


MIRROR = {'genai_stack_chart_mirror': 'oci://registry.example.com/genai-charts/', 'genai_stack_chart_mirror_username': 'puller',
          'genai_stack_chart_mirror_password': 'secret', 'genai_stack_chart_mirror_plain_http': True}


def test_the_mirror_gives_chart_refs_and_login():
    releases = observability_releases(MIRROR)
    for key, chart in MIRROR_CHARTS['observability'].items():
        # <mirror>/<chart name from Chart.yaml>, the trailing slash of the mirror not doubled.
        assert releases[key]['chart_ref'] == 'oci://registry.example.com/genai-charts/' + chart
        assert releases[key]['chart_repo_url'] == ''
    get = role_values('observability', MIRROR)
    assert (get('observability_registry_username'), get('observability_registry_password')) == ('puller', 'secret')
    assert get('_observability_helm_common')['plain_http'] is True
    plugin = role_values('cluster_gpu', MIRROR)
    assert plugin('cluster_gpu_device_plugin_chart_ref') == 'oci://registry.example.com/genai-charts/nvidia-device-plugin'
    assert plugin('cluster_gpu_device_plugin_chart_repo_url') == ''
    assert plugin('cluster_gpu_device_plugin_registry_username') == 'puller'
    assert plugin('cluster_gpu_device_plugin_registry_password') == 'secret'
    assert plugin('_cluster_gpu_device_plugin_plain_http') is True


def test_explicit_role_settings_win_over_the_mirror():
    explicit = dict(MIRROR, observability_opensearch_chart_ref='oci://other/os', observability_opensearch_chart_repo_url='',
                    observability_registry_plain_http=False, cluster_gpu_device_plugin_chart_ref='./plugin',
                    cluster_gpu_device_plugin_registry_username='me', cluster_gpu_device_plugin_plain_http=False)
    releases = observability_releases(explicit)
    assert releases['opensearch']['chart_ref'] == 'oci://other/os'
    assert releases['fluent_bit']['chart_ref'] == 'oci://registry.example.com/genai-charts/fluent-bit'
    assert role_values('observability', explicit)('_observability_helm_common')['plain_http'] is False
    plugin = role_values('cluster_gpu', explicit)
    assert plugin('cluster_gpu_device_plugin_chart_ref') == './plugin'
    assert plugin('cluster_gpu_device_plugin_registry_username') == 'me'
    assert plugin('_cluster_gpu_device_plugin_plain_http') is False


# ---- observability: every option the role offers, rendered

OPTIONS = {
    'defaults': {},
    'sandbox': {'observability_opensearch_replicas': 1, 'observability_opensearch_persistence_enabled': False},
    'no-alertmanager-no-logs': {'observability_alertmanager_enabled': False, 'observability_opensearch_enabled': False,
                                'observability_fluent_bit_enabled': False},
    'fluent-bit-elsewhere': {'observability_opensearch_enabled': False,
                             'observability_fluent_bit_values': {'config': {'outputs': '[OUTPUT]\n    Name stdout\n    Match *\n'}}},
    'no-dcgm': {'observability_dcgm_exporter_enabled': False, 'observability_namespace': 'metrics',
                'observability_prometheus_stack_release': 'prom', 'observability_prometheus_retention': '30d'},
}
PACKAGES = {'prometheus_stack': 'kube-prometheus-stack', 'opensearch': 'opensearch', 'fluent_bit': 'fluent-bit',
            'dcgm_exporter': 'dcgm-exporter'}


def _env(container):
    return {e['name']: e for e in container.get('env', [])}


def _secret_ref(env, name):
    return env[name]['valueFrom']['secretKeyRef']


def check_prometheus_stack(objects, get):
    name = get('observability_prometheus_stack_release')
    namespace = get('observability_namespace')
    opensearch = get('observability_opensearch_enabled | bool')
    grafana = find(objects, 'Deployment', name + '-grafana')['spec']['template']['spec']
    env = _env(next(c for c in grafana['containers'] if c['name'] == 'grafana'))
    assert _secret_ref(env, 'GF_SECURITY_ADMIN_USER') == {'name': 'grafana-admin-credentials', 'key': 'admin-user'}
    assert _secret_ref(env, 'GF_SECURITY_ADMIN_PASSWORD') == {'name': 'grafana-admin-credentials', 'key': 'admin-password'}
    # The dashboard sidecar loads the role's ConfigMaps (label grafana_dashboard=1) from every namespace.
    sidecar = _env(next(c for c in grafana['containers'] if c['name'] == 'grafana-sc-dashboard'))
    assert (sidecar['LABEL']['value'], sidecar['LABEL_VALUE']['value'], sidecar['NAMESPACE']['value']) == ('grafana_dashboard', '1', 'ALL')
    # The datasources ConfigMaps that the datasource sidecar provisions (their names follow the chart's fullname).
    datasources = [o['data'] for o in find(objects, 'ConfigMap') if (o['metadata'].get('labels') or {}).get('grafana_datasource') == '1']
    provisioned = [d for data in datasources for text in data.values() for d in yaml.safe_load(text).get('datasources', [])]
    assert 'prometheus' in [d.get('uid') for d in provisioned]
    logs = [d for d in provisioned if d.get('uid') == 'opensearch-logs']
    if opensearch:
        # The password reaches Grafana from the Secret through the environment, never in values or a ConfigMap.
        assert _secret_ref(env, 'OPENSEARCH_PASSWORD') == {'name': 'opensearch-admin-credentials', 'key': 'password'}
        assert logs and logs[0]['secureJsonData'] == {'basicAuthPassword': '$OPENSEARCH_PASSWORD'}
        assert logs[0]['url'] == 'https://opensearch-cluster-master.%s.svc:9200' % namespace
        assert 'grafana-opensearch-datasource' in find(objects, 'ConfigMap', name + '-grafana')['data']['plugins']
    else:
        assert 'OPENSEARCH_PASSWORD' not in env and not logs
    prometheus = find(objects, 'Prometheus')[0]['spec']
    assert prometheus['retention'] == get('observability_prometheus_retention')
    # Every ServiceMonitor and PodMonitor in every namespace (the DCGM exporter's included).
    assert prometheus['serviceMonitorSelector'] == {} and prometheus['serviceMonitorNamespaceSelector'] == {}
    assert prometheus['podMonitorSelector'] == {}
    alertmanagers = [o for o in objects if o['kind'] == 'Alertmanager']
    assert len(alertmanagers) == (1 if get('observability_alertmanager_enabled | bool') else 0)


def check_opensearch(objects, get):
    replicas = get('observability_opensearch_replicas | int')
    statefulset = find(objects, 'StatefulSet', 'opensearch-cluster-master')
    assert statefulset['spec']['replicas'] == replicas
    container = next(c for c in statefulset['spec']['template']['spec']['containers'] if c['name'] == 'opensearch')
    env = _env(container)
    assert _secret_ref(env, 'OPENSEARCH_INITIAL_ADMIN_PASSWORD') == {'name': 'opensearch-admin-credentials', 'key': 'password'}
    assert env['OPENSEARCH_JAVA_OPTS']['value'] == get('observability_opensearch_java_opts')
    assert ('discovery.type' in env) == (replicas == 1)
    claims = statefulset['spec'].get('volumeClaimTemplates', [])
    if get('observability_opensearch_persistence_enabled | bool'):
        assert [c['spec']['resources']['requests']['storage'] for c in claims] == [get('observability_opensearch_storage_size')]
    else:
        assert claims == []
    # The Service the role's Grafana datasource and fluent-bit output name.
    service = find(objects, 'Service', 'opensearch-cluster-master')
    assert 9200 in [p['port'] for p in service['spec']['ports']]


def check_fluent_bit(objects, get):
    name = get('observability_fluent_bit_release')
    pod = find(objects, 'DaemonSet', name)['spec']['template']['spec']
    # Logs of the GPU nodes too: the daemon tolerates the GPU taint.
    assert schedulable(pod, dict(EKS_LABELS, capability='gpu'), [GPU_TAINT])
    config = '\n'.join(find(objects, 'ConfigMap', name)['data'].values())
    if get('observability_opensearch_enabled | bool'):
        assert _secret_ref(_env(pod['containers'][0]), 'OPENSEARCH_PASSWORD')['name'] == 'opensearch-admin-credentials'
        assert 'Host opensearch-cluster-master.%s.svc' % get('observability_namespace') in config
        assert 'Logstash_Prefix %s' % get('observability_log_index_prefix') in config
    else:
        assert 'Name stdout' in config and 'Name opensearch' not in config


def check_dcgm_exporter(objects, get):
    name = get('observability_dcgm_exporter_release')
    pod = find(objects, 'DaemonSet', name)['spec']['template']['spec']
    selector = get('observability_gpu_node_selector')
    # On every GPU node, tainted or not, and on no other node.
    assert schedulable(pod, dict(EKS_LABELS, **selector), [GPU_TAINT])
    assert schedulable(pod, dict(EKS_LABELS, **selector))
    assert not schedulable(pod, dict(EKS_LABELS, capability='cpu'))
    monitor = find(objects, 'ServiceMonitor', name)
    assert monitor['metadata']['labels']['release'] == get('observability_prometheus_stack_release')
    assert monitor['spec']['endpoints'][0]['interval'] == '15s'


CHECKS = {'prometheus_stack': check_prometheus_stack, 'opensearch': check_opensearch, 'fluent_bit': check_fluent_bit,
          'dcgm_exporter': check_dcgm_exporter}


@pytest.mark.parametrize('option', sorted(OPTIONS))
def test_observability_values_on_the_real_charts(option):
    extra = OPTIONS[option]
    get = role_values('observability', extra)
    releases = observability_releases(extra)
    enabled = [key for key, release in releases.items() if release['enabled']]
    expected_off = {key for key, variable in (('opensearch', 'observability_opensearch_enabled'),
                                              ('fluent_bit', 'observability_fluent_bit_enabled'),
                                              ('dcgm_exporter', 'observability_dcgm_exporter_enabled')) if extra.get(variable) is False}
    assert set(releases) - set(enabled) == expected_off
    for key in enabled:
        release = releases[key]
        package = '%s-%s' % (PACKAGES[key], release['chart_version'])
        values = release['values']
        assert unknown_keys(values, chart_defaults(package)) == [], 'values %s does not know' % package
        objects = render(package, release['name'], get('observability_namespace'), values)
        CHECKS[key](objects, get)


# The kinds whose Pods the scheduler places by a Pod template, and the Prometheus operator's kinds whose spec carries
# the Pod's affinity, nodeSelector and tolerations itself.
TEMPLATE_KINDS = ('Deployment', 'StatefulSet', 'Job', 'DaemonSet')
OPERATED_KINDS = ('Prometheus', 'Alertmanager', 'ThanosRuler')


def pod_specs(objects):
    """{(kind, name): the scheduling part of its Pods' spec} of every object that makes Pods."""
    specs = {}
    for obj in objects:
        if obj['kind'] in TEMPLATE_KINDS:
            specs[(obj['kind'], obj['metadata']['name'])] = obj['spec']['template']['spec']
        elif obj['kind'] in OPERATED_KINDS:
            specs[(obj['kind'], obj['metadata']['name'])] = obj['spec']
    return specs


GPU_NODE = dict(EKS_LABELS, capability='gpu')


@pytest.mark.parametrize('avoid', [True, False], ids=['avoid', 'turned-off'])
def test_the_stacks_own_pods_stay_off_the_gpu_nodes_and_the_daemons_stay_on(avoid):
    extra = {} if avoid else {'observability_avoid_gpu_nodes': False}
    get = role_values('observability', extra)
    placed = {}
    for key, release in observability_releases(extra).items():
        objects = render('%s-%s' % (PACKAGES[key], release['chart_version']), release['name'], get('observability_namespace'), release['values'])
        placed.update(pod_specs(objects))
    workloads = {ref: spec for ref, spec in placed.items() if ref[0] != 'DaemonSet'}
    # What the stack runs besides the daemons: the operator and its Prometheus and Alertmanager, Grafana, kube-state-metrics, OpenSearch.
    assert {('Prometheus', 'kube-prometheus-stack-prometheus'), ('Alertmanager', 'kube-prometheus-stack-alertmanager'),
            ('Deployment', 'kube-prometheus-stack-operator'), ('Deployment', 'kube-prometheus-stack-grafana'),
            ('Deployment', 'kube-prometheus-stack-kube-state-metrics'), ('StatefulSet', 'opensearch-cluster-master')} <= set(workloads), workloads
    for ref, spec in workloads.items():
        assert schedulable(spec, EKS_LABELS), ref
        assert schedulable(spec, GPU_NODE) is not avoid, ref
    # OpenSearch keeps its own spread over hosts beside the node affinity.
    assert workloads[('StatefulSet', 'opensearch-cluster-master')]['affinity']['podAntiAffinity']
    # The daemons run on every Node they did: fluent-bit and the node exporter everywhere, the DCGM exporter on the GPU Nodes.
    daemons = {ref[1]: spec for ref, spec in placed.items() if ref[0] == 'DaemonSet'}
    assert {'fluent-bit', 'dcgm-exporter', 'kube-prometheus-stack-prometheus-node-exporter'} <= set(daemons), daemons
    assert schedulable(daemons['dcgm-exporter'], GPU_NODE, [GPU_TAINT]) and not schedulable(daemons['dcgm-exporter'], EKS_LABELS)
    assert schedulable(daemons['fluent-bit'], GPU_NODE, [GPU_TAINT]) and schedulable(daemons['fluent-bit'], EKS_LABELS)
    assert schedulable(daemons['kube-prometheus-stack-prometheus-node-exporter'], GPU_NODE)


def test_extra_values_can_replace_the_gpu_affinity():
    """The user's extra values are merged last: a placement of their own wins over the role's."""
    own = {'nodeAffinity': {'requiredDuringSchedulingIgnoredDuringExecution': {'nodeSelectorTerms': [
        {'matchExpressions': [{'key': 'pool', 'operator': 'In', 'values': ['monitoring']}]}]}}}
    extra = {'observability_prometheus_stack_values': {'grafana': {'affinity': own}}}
    release = observability_releases(extra)['prometheus_stack']
    objects = render('kube-prometheus-stack-%s' % release['chart_version'], release['name'], 'monitoring', release['values'])
    grafana = pod_specs(objects)[('Deployment', 'kube-prometheus-stack-grafana')]
    assert schedulable(grafana, dict(EKS_LABELS, pool='monitoring')) and not schedulable(grafana, EKS_LABELS)
    assert not schedulable(pod_specs(objects)[('Prometheus', 'kube-prometheus-stack-prometheus')], GPU_NODE)


# ---- cluster_gpu: the NVIDIA device plugin

@pytest.mark.parametrize('labels', [None, {'capability': 'gpu', 'team': 'ml'}], ids=['default-labels', 'more-labels'])
def test_device_plugin_runs_on_the_gpu_nodes_the_role_labels(labels):
    extra = {'cluster_gpu_labels': labels} if labels else {}
    get = role_values('cluster_gpu', extra)
    values = get('_cluster_gpu_device_plugin_values')
    package = 'nvidia-device-plugin-%s' % get('cluster_gpu_device_plugin_chart_version')
    assert unknown_keys(values, chart_defaults(package)) == []
    objects = render(package, 'nvidia-device-plugin', get('cluster_gpu_device_plugin_namespace'), values)
    pod = find(objects, 'DaemonSet', 'nvidia-device-plugin')['spec']['template']['spec']
    node_labels = dict(EKS_LABELS, **get('cluster_gpu_labels'))
    # Plain EKS GPU nodes: no node-feature-discovery labels; with and without cluster_gpu_taint.
    assert schedulable(pod, node_labels), 'the device plugin would never be scheduled on a %s node' % node_labels
    assert schedulable(pod, node_labels, [GPU_TAINT])
    assert not schedulable(pod, dict(EKS_LABELS, **get('cluster_gpu_cpu_labels')))
    assert pod['containers'][0]['image'].endswith(':v' + get('cluster_gpu_device_plugin_chart_version'))


def test_the_stand_in_device_plugin_keeps_the_real_default_affinity():
    """The sandbox installs the stand-in when the real chart is absent: it must refuse plain GPU nodes as the real one does."""
    if not HELM:
        missing_helm('the real charts cannot be rendered')
    chart = os.path.join(ROOT, 'tests', 'fixtures', 'charts', 'nvidia-device-plugin')
    plain = dict(EKS_LABELS, capability='gpu')
    for path, values in ((chart, {}), (chart, role_values('cluster_gpu')('_cluster_gpu_device_plugin_values'))):
        result = subprocess.run([HELM, 'template', 'nvidia-device-plugin', path, '-n', 'nvidia-device-plugin', '-f', '-'],
                                input=json.dumps(values), capture_output=True, text=True, check=True)
        pod = find([d for d in yaml.safe_load_all(io.StringIO(result.stdout)) if d], 'DaemonSet')[0]['spec']['template']['spec']
        assert schedulable(pod, plain) == bool(values)


# ---- the verify step's reading of workload status (roles/observability/vars/main.yml)

def test_verify_names_the_workloads_short_of_replicas():
    def workload(kind, name, spec, status):
        return {'kind': kind, 'metadata': {'namespace': 'monitoring', 'name': name}, 'spec': spec, 'status': status}
    listed = [
        workload('Deployment', 'grafana', {'replicas': 1}, {'availableReplicas': 1}),
        workload('Deployment', 'operator', {'replicas': 2}, {'availableReplicas': 1}),
        workload('StatefulSet', 'opensearch-cluster-master', {'replicas': 3}, {}),
        workload('DaemonSet', 'dcgm-exporter', {}, {'desiredNumberScheduled': 2, 'numberAvailable': 2}),
        workload('DaemonSet', 'fluent-bit', {}, {'desiredNumberScheduled': 4, 'numberAvailable': 3}),
    ]
    unavailable = role_values('observability', {'_observability_workload_list': listed})('_observability_unavailable')
    assert unavailable == ['Deployment monitoring/operator: 1/2 available', 'StatefulSet monitoring/opensearch-cluster-master: 0/3 available',
                           'DaemonSet monitoring/fluent-bit: 3/4 available']
