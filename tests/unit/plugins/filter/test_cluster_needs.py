"""cluster_needs_rules: the engine roles' preflight rules about the cluster add-ons. Each missing add-on gives a rule
that fails naming the stack's variable and the variable that installs the add-on; what is there passes."""
import pytest

from ansible_collections.genai.stack.plugins.filter.cluster_needs import FilterModule, cluster_needs_rules, gpu_stacks

ALL_NEEDS = {'ingress_class': 'alb', 'ingress_class_variable': 'genai_engine_ingress_class_name',
             'metrics_api_variable': 'genai_engine_hpa_enabled', 'storage_class': '',
             'storage_class_variable': 'observability_opensearch_persistence_enabled', 'gpu_variable': 'genai_engine_mode'}


def obj(name, namespace=None, **extra):
    metadata = {'name': name}
    if namespace:
        metadata['namespace'] = namespace
    return dict({'metadata': metadata}, **extra)


DEFAULT_SC = obj('gp3', annotations=None)
DEFAULT_SC['metadata']['annotations'] = {'storageclass.kubernetes.io/is-default-class': 'true'}
EVERYTHING = {'ingress_classes': {'resources': [obj('alb')]}, 'api_services': {'resources': [obj('v1beta1.metrics.k8s.io')]},
              'storage_classes': {'resources': [DEFAULT_SC]},
              'device_plugins': {'resources': [obj('nvidia-device-plugin', 'nvidia-device-plugin')]},
              'cluster_policies': {'failed': True, 'msg': 'no ClusterPolicy kind'}, 'nodes': {'resources': []}}


def by_name(rules):
    return {r['name']: r for r in rules}


def test_everything_there_passes_in_order():
    rules = cluster_needs_rules(ALL_NEEDS, EVERYTHING)
    assert [r['name'] for r in rules] == ['genai_engine_ingress_class_name', 'genai_engine_hpa_enabled',
                                          'observability_opensearch_persistence_enabled', 'genai_engine_mode']
    assert all(r['ok'] for r in rules), rules


def test_only_the_needs_asked_for_are_checked():
    assert cluster_needs_rules({'ingress_class': 'alb', 'gpu_variable': ''}, {}) == []
    assert [r['name'] for r in cluster_needs_rules({'gpu_variable': 'opea_hardware'}, {})] == ['opea_hardware']


# (what is missing, the variable the rule names, words of the rule: the add-on and the variable that installs it)
MISSING = [
    ('ingress_classes', 'genai_engine_ingress_class_name', ['no IngressClass alb', 'cluster_addons_ingress_enabled', 'cluster_addons_ingress_class_name alb']),
    ('api_services', 'genai_engine_hpa_enabled', ['APIService v1beta1.metrics.k8s.io', 'metrics-server', 'cluster_addons_metrics_server_enabled']),
    ('storage_classes', 'observability_opensearch_persistence_enabled', ['default StorageClass, and the cluster has none', 'StorageClasses: none']),
    ('device_plugins', 'genai_engine_mode', ['GPU stack', 'cluster_gpu_device_plugin_enabled', 'cluster_addons_gpu_operator_enabled']),
]


@pytest.mark.parametrize('missing,variable,words', MISSING, ids=[m[0] for m in MISSING])
def test_each_missing_add_on_fails_naming_the_variable_that_installs_it(missing, variable, words):
    found = dict(EVERYTHING, **{missing: {'resources': []}})
    rules = by_name(cluster_needs_rules(ALL_NEEDS, found))
    assert not rules[variable]['ok']
    for word in words:
        assert word in rules[variable]['rule'], rules[variable]['rule']
    assert all(r['ok'] for name, r in rules.items() if name != variable)


def test_a_named_storage_class_must_exist_default_or_not():
    needs = {'storage_class': 'fast', 'storage_class_variable': 'adaptive_monitoring_storage_class'}
    (rule,) = cluster_needs_rules(needs, EVERYTHING)
    assert not rule['ok'] and rule['rule'].startswith('no StorageClass named fast (StorageClasses: gp3;')
    (rule,) = cluster_needs_rules(needs, {'storage_classes': [obj('fast')]})
    assert rule['ok']


def test_a_non_default_class_is_not_the_default():
    (rule,) = cluster_needs_rules({'storage_class_variable': 'observability_opensearch_persistence_enabled'},
                                  {'storage_classes': [obj('standard')]})
    assert not rule['ok'] and 'StorageClasses: standard' in rule['rule']


def test_gpu_stacks_the_operator_and_bottlerocket_count_a_plain_gpu_node_does_not():
    bottlerocket = obj('br-1', status={'nodeInfo': {'osImage': 'Bottlerocket OS 1.30.0 (aws-k8s-1.31-nvidia)'},
                                       'allocatable': {'nvidia.com/gpu': '1'}})
    al2023 = obj('al-1', status={'nodeInfo': {'osImage': 'Amazon Linux 2023'}, 'allocatable': {'nvidia.com/gpu': '1'}})
    assert gpu_stacks({'cluster_policies': [obj('cluster-policy')]}) == ['GPU operator ClusterPolicy cluster-policy']
    assert gpu_stacks({'nodes': [bottlerocket, al2023]}) == ['Bottlerocket NVIDIA node br-1']
    # A GPU node whose capacity no visible plugin explains is no GPU stack (the kwok nodes of the sandbox are such).
    assert gpu_stacks({'nodes': [al2023]}) == []
    (rule,) = cluster_needs_rules({'gpu_variable': 'adaptive_harmony_gpus_per_replica'}, {'nodes': [al2023]})
    assert not rule['ok']


def test_registered_as_a_filter():
    assert FilterModule().filters()['cluster_needs_rules'] is cluster_needs_rules
