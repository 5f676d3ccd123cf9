"""observability_chart_mode=reference on the real ai-ml-observability 0.1.0 chart, rendered by the real helm.

The values are the role's own (defaults/main.yml and vars/main.yml through Ansible's Templar, as a play computes
them) and the manifests go through the role's post-renderer (files/reference_post_renderer.py) with the
configuration the role writes, as helm_release runs it. What is asserted is what the role promises for this
chart: none of its default credentials and no password anywhere (values or output), no Secret of the chart's
own credentials, every reference to it pointing at the role's Secret, the security config carrying the hashes
the role stored, the Grafana datasource reading the password from the container's environment, Grafana's admin
from the role's Secret, the same output on every render (the chart bcrypts with a new salt each time), and every
Pod but the daemons' kept off the GPU Nodes.
"""
import importlib.util
import json
import os
import stat
import subprocess
import sys

import pytest
import yaml
from real_charts import CHART_DIR, helm_binary, missing_helm
from test_real_charts_observability import EKS_LABELS, GPU_NODE, KUBE_VERSION, YAML_LOADER, chart_defaults, pod_specs, role_values, schedulable

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
PACKAGE = os.path.join(CHART_DIR, 'ai-ml-observability-0.1.0.tgz')
POST_RENDERER = os.path.join(ROOT, 'roles', 'observability', 'files', 'reference_post_renderer.py')
NAMESPACE = 'monitoring'
# Hashes as credentials.yml stores them (helm's bcrypt: $2a$, cost 10), and passwords a user could supply.
HASHES = {'admin': '$2a$10$' + 'A' * 53, 'dashboarduser': '$2a$10$' + 'B' * 53}
SUPPLIED = {'observability_opensearch_admin_password': 'Supplied-Search-Pw-9c1e', 'observability_grafana_admin_password': 'Supplied-Grafana-Pw-3b7d',
            'observability_opensearch_dashboards_password': 'Supplied-Dash-Pw-4f2a'}
DEFAULTS = ('admin123', 'prom-operator')


def _load_post_renderer():
    spec = importlib.util.spec_from_file_location('reference_post_renderer', POST_RENDERER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _role(extra=None):
    variables = {'observability_chart_mode': 'reference', 'genai_stack_chart_mirror': 'oci://registry.example/mirror',
                 'observability_namespace': NAMESPACE, '_observability_reference_hashes': HASHES}
    variables.update(extra or {})
    return role_values('observability', variables)


@pytest.fixture(scope='module')
def helm():
    if not os.path.isfile(PACKAGE):
        pytest.skip('ai-ml-observability-0.1.0.tgz is not in %s (set GENAI_STACK_CHART_DIR): the reference chart cannot be rendered' % CHART_DIR)
    found = helm_binary()
    if not found:
        missing_helm('the reference chart cannot be rendered')
    return found


def _post_renderer(directory, config):
    """The post-renderer as post_renderer.yml writes it: this interpreter on its first line, the config beside it."""
    path = os.path.join(directory, 'reference_post_renderer.py')
    with open(POST_RENDERER) as source, open(path, 'w') as out:
        out.write('#!%s\n%s' % (sys.executable, source.read()))
    os.chmod(path, stat.S_IRWXU)
    with open(os.path.join(directory, 'reference_post_renderer.json'), 'w') as out:
        json.dump(config, out)
    return path


def _render(helm, values, post_renderer=None):
    args = [helm, 'template', 'ai-ml-observability', PACKAGE, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, '-f', '-']
    if post_renderer:
        args += ['--post-renderer', post_renderer]
    result = subprocess.run(args, input=json.dumps(values), capture_output=True, text=True, check=False)
    assert result.returncode == 0, 'helm template refused: %s' % result.stderr
    return result.stdout


@pytest.fixture(scope='module')
def rendered(helm, tmp_path_factory):
    """Two renders of the role's values (with supplied passwords: they must not reach the chart) through the post-renderer."""
    role = _role(SUPPLIED)
    (reference,) = [r for r in role('_observability_reference_releases') if r['key'] == 'reference']
    values = reference['values']
    path = _post_renderer(str(tmp_path_factory.mktemp('post-render')), role('_observability_reference_post_render'))
    first, second = _render(helm, values, path), _render(helm, values, path)
    return {'values': values, 'text': first, 'again': second,
            'objects': [doc for doc in yaml.load_all(first, Loader=YAML_LOADER) if doc]}


def _find(objects, kind, name):
    found = [o for o in objects if o['kind'] == kind and o['metadata']['name'] == name]
    assert len(found) == 1, '%s %s: %d rendered' % (kind, name, len(found))
    return found[0]


def _coalesce(values, defaults):
    """Values over the chart's defaults as helm merges them for COMPUTED VALUES: maps recursively, null deletes."""
    merged = dict(defaults)
    for key, value in values.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _coalesce(value, merged[key])
        else:
            merged[key] = value
    return merged


def test_no_default_or_supplied_credential_in_values_or_output(rendered):
    # `helm get all` prints the values merged over the chart's defaults too (COMPUTED VALUES).
    computed = json.dumps(_coalesce(rendered['values'], chart_defaults('ai-ml-observability-0.1.0')))
    for secret in DEFAULTS:
        assert secret not in computed, 'the computed values carry %r' % secret
    values_text = json.dumps(rendered['values'])
    for secret in DEFAULTS + tuple(SUPPLIED.values()):
        assert secret not in values_text, 'the values carry %r' % secret
        assert secret not in rendered['text'], 'the rendered release carries %r' % secret


def test_the_chart_credential_secret_is_replaced_by_the_role_secret(rendered):
    objects = rendered['objects']
    assert not [o for o in objects if o['kind'] == 'Secret' and o['metadata']['name'] == 'admin-credentials-secret']
    assert 'admin-credentials-secret' not in rendered['text']
    cluster = _find(objects, 'OpenSearchCluster', 'opensearch')
    assert cluster['spec']['security']['config']['adminCredentialsSecret'] == {'name': 'opensearch-admin-credentials'}
    assert cluster['spec']['dashboards']['opensearchCredentialsSecret'] == {'name': 'opensearch-admin-credentials'}
    output = _find(objects, 'ClusterOutput', 'opensearch')['spec']['opensearch']
    for field in ('httpUser', 'httpPassword'):
        assert output[field]['valueFrom']['secretKeyRef']['name'] == 'opensearch-admin-credentials'


def test_security_config_carries_the_stored_hashes(rendered):
    config = _find(rendered['objects'], 'Secret', 'securityconfig-secret')
    users = yaml.safe_load(config['stringData']['internal_users.yml'])
    assert {user: spec['hash'] for user, spec in users.items() if isinstance(spec, dict) and 'hash' in spec} == HASHES


def test_render_is_stable(rendered):
    """The chart bcrypts its values with a new salt on every render; with the stored hashes nothing drifts."""
    assert rendered['text'] == rendered['again']


def test_datasource_and_grafana_read_their_passwords_from_secrets(rendered):
    objects = rendered['objects']
    datasource = yaml.safe_load(_find(objects, 'ConfigMap', 'opensearch-datasource')['data']['opensearch-datasource.yaml'])
    (source,) = datasource['datasources']
    assert source['basicAuthUser'] == 'admin' and source['secureJsonData'] == {'basicAuthPassword': '${OPENSEARCH_PASSWORD}'}
    grafana = _find(objects, 'Deployment', 'kube-prometheus-stack-grafana')['spec']['template']['spec']
    env = {e['name']: e for c in grafana['containers'] if c['name'] == 'grafana' for e in c.get('env', [])}
    assert env['OPENSEARCH_PASSWORD']['valueFrom']['secretKeyRef'] == {'name': 'opensearch-admin-credentials', 'key': 'password'}
    assert env['GF_SECURITY_ADMIN_PASSWORD']['valueFrom']['secretKeyRef']['name'] == 'grafana-admin-credentials'
    # No Secret of Grafana's own (it would hold the chart's default admin password).
    assert not [o for o in objects if o['kind'] == 'Secret' and o['metadata']['name'] == 'kube-prometheus-stack-grafana']


def test_without_the_post_renderer_the_chart_leaks_and_drifts(helm):
    """The control: the chart alone writes the credentials out and changes on every render."""
    (reference,) = [r for r in _role()('_observability_reference_releases') if r['key'] == 'reference']
    first, second = _render(helm, reference['values']), _render(helm, reference['values'])
    assert first != second
    assert 'admin-credentials-secret' in first


def test_first_install_leaves_out_the_kinds_of_the_chart_own_crds(helm, tmp_path):
    role = _role()
    (reference,) = [r for r in role('_observability_reference_releases') if r['key'] == 'reference']
    config = dict(role('_observability_reference_post_render'), defer_kinds=role('_observability_reference_template_crd_kinds'))
    objects = [d for d in yaml.load_all(_render(helm, reference['values'], _post_renderer(str(tmp_path), config)), Loader=YAML_LOADER) if d]
    kinds = {o['kind'] for o in objects}
    assert 'OpenSearchCluster' not in kinds and 'CustomResourceDefinition' in kinds


def test_post_renderer_refuses_a_literal_datasource_password():
    module = _load_post_renderer()
    config_map = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'extra', 'labels': {'grafana_datasource': '1'}},
                  'data': {'ds.yaml': yaml.safe_dump({'datasources': [{'name': 'loki', 'type': 'loki', 'secureJsonData': {'password': 'hunter2'}}]})}}
    with pytest.raises(module.RenderError, match=r'ConfigMap /extra: datasource .loki. has secureJsonData.password in clear'):
        module.post_render([config_map], {'datasource': {'user': 'admin', 'password_env': 'OPENSEARCH_PASSWORD'}})


def test_post_renderer_refuses_users_it_has_no_hash_for():
    module = _load_post_renderer()
    secret = {'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'securityconfig-secret'},
              'stringData': {'internal_users.yml': yaml.safe_dump({'admin': {'hash': 'x'}, 'reader': {'hash': 'y'}})}}
    with pytest.raises(module.RenderError, match=r"unmanaged: \['reader'\]"):
        module.post_render([secret], {'security_config': {'name': 'securityconfig-secret', 'hashes': {'admin': 'h'}}})


def _placed(objects):
    """Every Pod spec of the release, the OpenSearch operator's node pools and dashboards included."""
    specs = pod_specs(objects)
    cluster = [o for o in objects if o['kind'] == 'OpenSearchCluster']
    for obj in cluster:
        for pool in obj['spec']['nodePools']:
            specs[('OpenSearchCluster', 'nodePool ' + pool['component'])] = pool
        specs[('OpenSearchCluster', 'dashboards')] = obj['spec']['dashboards']
    return specs


def test_every_pod_but_the_daemons_stays_off_the_gpu_nodes(rendered):
    specs = _placed(rendered['objects'])
    workloads = {ref: spec for ref, spec in specs.items() if ref[0] != 'DaemonSet'}
    # The operators and the OpenSearch nodes, which the chart gives no affinity value for, are among them.
    assert {('Deployment', 'fluent-operator'), ('Deployment', 'opensearch-operator-controller-manager'), ('OpenSearchCluster', 'nodePool masters'),
            ('OpenSearchCluster', 'dashboards'), ('Prometheus', 'kube-prometheus-stack-prometheus'),
            ('Deployment', 'kube-prometheus-stack-grafana')} <= set(workloads), sorted(workloads)
    assert [ref for ref, spec in workloads.items() if schedulable(spec, GPU_NODE) or not schedulable(spec, EKS_LABELS)] == []
    node_exporter = [spec for ref, spec in specs.items() if ref[0] == 'DaemonSet']
    assert node_exporter and all(schedulable(spec, GPU_NODE) for spec in node_exporter)


def test_turned_off_the_reference_pods_may_run_on_the_gpu_nodes(helm, tmp_path):
    """The control: without the role's affinity the operators would take GPU capacity."""
    role = _role({'observability_avoid_gpu_nodes': False})
    (reference,) = [r for r in role('_observability_reference_releases') if r['key'] == 'reference']
    config = role('_observability_reference_post_render')
    assert config['node_affinity'] == {}
    objects = [d for d in yaml.load_all(_render(helm, reference['values'], _post_renderer(str(tmp_path), config)), Loader=YAML_LOADER) if d]
    specs = _placed(objects)
    assert schedulable(specs[('Deployment', 'fluent-operator')], GPU_NODE)
    assert schedulable(specs[('OpenSearchCluster', 'nodePool masters')], GPU_NODE)


def test_post_renderer_keeps_a_required_node_affinity_already_there():
    module = _load_post_renderer()
    own = {'nodeSelectorTerms': [{'matchExpressions': [{'key': 'pool', 'operator': 'In', 'values': ['monitoring']}]}]}
    gpu = {'requiredDuringSchedulingIgnoredDuringExecution': {'nodeSelectorTerms': [
        {'matchExpressions': [{'key': 'capability', 'operator': 'NotIn', 'values': ['gpu']}]}]}}
    mine = {'kind': 'Deployment', 'metadata': {'name': 'mine'}, 'spec': {'template': {'spec': {'affinity': {
        'nodeAffinity': {'requiredDuringSchedulingIgnoredDuringExecution': own}}}}}}
    bare = {'kind': 'StatefulSet', 'metadata': {'name': 'bare'}, 'spec': {'template': {'spec': {'affinity': {'podAntiAffinity': {'x': 1}}}}}}
    daemon = {'kind': 'DaemonSet', 'metadata': {'name': 'daemon'}, 'spec': {'template': {'spec': {}}}}
    out = module.post_render([mine, bare, daemon], {'node_affinity': gpu})
    assert out[0]['spec']['template']['spec']['affinity']['nodeAffinity']['requiredDuringSchedulingIgnoredDuringExecution'] == own
    assert out[1]['spec']['template']['spec']['affinity'] == {'podAntiAffinity': {'x': 1}, 'nodeAffinity': gpu}
    assert out[2]['spec']['template']['spec'] == {}
    # The role's object is copied, not shared between Pods (the YAML dumper would write anchors).
    assert out[1]['spec']['template']['spec']['affinity']['nodeAffinity'] is not gpu
