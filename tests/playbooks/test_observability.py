"""Role observability through playbooks/observability.yml on the sandbox inventory, as a user runs it.

Needs GPU nodes for the DCGM exporter: the module converges playbooks/cluster_gpu.yml first and
removes it again at the end. Both chart modes: the per-component releases (the default) and the
reference architecture's own chart (observability_chart_mode=reference), which needs the sandbox's
mirror to hold ai-ml-observability 0.1.0 (filled from GENAI_STACK_CHART_DIR).
"""
import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml
from kubernetes import client, config

import sandbox_journal
from playbook_helpers import assert_absent_previewed, helm_releases, kube_get

PLAYBOOK = 'playbooks/observability.yml'
NAMESPACE = 'monitoring'
RELEASES = {'kube-prometheus-stack', 'opensearch', 'fluent-bit', 'dcgm-exporter'}
ADMIN = os.environ.get('SANDBOX_KUBE_ADMIN_USER')
SUPPLIED = 'Supplied-Grafana-Pw-7f3c9e1a'


def _admin_writes(mark):
    return sandbox_journal.since(mark, kube_user=ADMIN)['kube_writes']


@pytest.fixture(scope='module')
def kube():
    config.load_kube_config()
    return client.CoreV1Api(), client.AppsV1Api()


@pytest.fixture(scope='module', autouse=True)
def gpu_nodes(gpu_capacity):
    """GPU nodes from playbooks/cluster_gpu.yml (the shared gpu_capacity fixture of conftest.py)."""
    return gpu_capacity


def _secret_values(core, name):
    data = core.read_namespaced_secret(name, NAMESPACE).data
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _namespaces(core):
    return {n.metadata.name for n in core.list_namespace().items}


def test_converge_rerun_check_and_teardown(run_playbook, kube):
    core, apps = kube
    try:
        first = run_playbook(PLAYBOOK, '-vvv')
        assert first.returncode == 0, first
        first.assert_wrote()  # the positive control of the no-write checks below

        # Generated credentials: strong, stored, never printed.
        grafana = _secret_values(core, 'grafana-admin-credentials')
        opensearch = _secret_values(core, 'opensearch-admin-credentials')
        assert grafana['admin-user'] == 'admin' and len(grafana['admin-password']) >= 32
        assert len(opensearch['password']) >= 32
        for value in (grafana['admin-password'], opensearch['password']):
            assert value not in first.output
        gpu_count = len(core.list_node(label_selector='capability=gpu').items)
        assert 'GPU capacity: %d GPU node(s), %d nvidia.com/gpu allocatable' % (gpu_count, gpu_count) in first.output, first

        # Verified by another route: helm, the objects, the placement on GPU nodes.
        releases = helm_releases(NAMESPACE)
        assert set(releases) == RELEASES and {r['status'] for r in releases.values()} == {'deployed'}, releases
        gpu_nodes = {n.metadata.name for n in core.list_node(label_selector='capability=gpu').items}
        dcgm = core.list_namespaced_pod(NAMESPACE, label_selector='app.kubernetes.io/instance=dcgm-exporter').items
        assert {p.spec.node_name for p in dcgm} == gpu_nodes and len(dcgm) == len(gpu_nodes)
        assert all(p.status.phase == 'Running' for p in dcgm)
        grafana_env = {e.name: e for e in apps.read_namespaced_deployment('kube-prometheus-stack-grafana', NAMESPACE)
                       .spec.template.spec.containers[-1].env}
        assert grafana_env['GF_SECURITY_ADMIN_PASSWORD'].value_from.secret_key_ref.name == 'grafana-admin-credentials'
        assert grafana_env['OPENSEARCH_PASSWORD'].value_from.secret_key_ref.name == 'opensearch-admin-credentials'
        search_env = {e.name: e for e in apps.read_namespaced_stateful_set('opensearch-cluster-master', NAMESPACE)
                      .spec.template.spec.containers[0].env}
        assert search_env['OPENSEARCH_INITIAL_ADMIN_PASSWORD'].value_from.secret_key_ref.name == 'opensearch-admin-credentials'
        # The chart's default Grafana password is never used.
        for secret in core.list_namespaced_secret(NAMESPACE).items:
            for value in (secret.data or {}).values():
                assert b'prom-operator' not in base64.b64decode(value)
        dashboards = core.list_namespaced_config_map(NAMESPACE, label_selector='grafana_dashboard=1').items
        # The role's own two; the real kube-prometheus-stack brings its dashboards too, all named after its release.
        ours = [c for c in dashboards if c.metadata.name.startswith('grafana-dashboard-')]
        assert sorted(c.metadata.name for c in ours) == ['grafana-dashboard-gpu-inference', 'grafana-dashboard-gpu-training']
        assert all(c.metadata.name.startswith('kube-prometheus-stack-') for c in dashboards if c not in ours), dashboards
        for cm in ours:
            (body,) = cm.data.values()
            assert 'DCGM_FI_DEV_GPU_UTIL' in body and json.loads(body)['panels']
        datasources = core.read_namespaced_config_map('kube-prometheus-stack-grafana-datasource', NAMESPACE).data['datasource.yaml']
        assert 'uid: prometheus' in datasources and 'uid: opensearch-logs' in datasources

        # Second run: nothing changes, nothing is written, the passwords are kept.
        mark = sandbox_journal.mark()
        second = run_playbook(PLAYBOOK)
        assert second.returncode == 0 and second.changed == 0, second
        assert second.activity['aws_mutating'] == 0 and _admin_writes(mark) == 0, second
        assert _secret_values(core, 'grafana-admin-credentials') == grafana

        # Check mode with a change: reported, not made, and a supplied password is not printed.
        mark = sandbox_journal.mark()
        check = run_playbook(PLAYBOOK, '--check', '--diff', '-vvv', '-e', 'observability_prometheus_retention=30d',
                             '-e', 'observability_grafana_admin_password=' + SUPPLIED)
        assert check.returncode == 0 and check.changed >= 2, check
        assert _admin_writes(mark) == 0, check
        assert SUPPLIED not in check.output and grafana['admin-password'] not in check.output
        assert _secret_values(core, 'grafana-admin-credentials') == grafana
        mark = sandbox_journal.mark()
        unchanged = run_playbook(PLAYBOOK, '--check', '--diff')
        assert unchanged.returncode == 0 and unchanged.changed == 0, unchanged
        assert _admin_writes(mark) == 0, unchanged

        # The teardown previewed: planned and named, nothing removed.
        assert_absent_previewed(run_playbook, PLAYBOOK, 'observability_state', names=sorted(RELEASES) + ['grafana-admin-credentials'])
        assert set(helm_releases(NAMESPACE)) == RELEASES
        assert _secret_values(core, 'grafana-admin-credentials') == grafana
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'observability_state=absent')
    assert down.returncode == 0, down
    assert helm_releases(NAMESPACE) == {}
    assert NAMESPACE not in _namespaces(core)
    again = run_playbook(PLAYBOOK, '-e', 'observability_state=absent')
    assert again.returncode == 0 and again.changed == 0, again


BAD_VARS = [
    ('observability_grafana_admin_password=short', 'observability_grafana_admin_password: must be empty (generated) or at least 12'),
    ('observability_opensearch_admin_password=alllowercase123', 'observability_opensearch_admin_password: must be empty'),
    ('observability_namespace=Not_A_Namespace', 'observability_namespace: must be a DNS-1123 label'),
    ('observability_opensearch_replicas=0', 'observability_opensearch_replicas: must be at least 1'),
    ('observability_prometheus_retention=forever', 'observability_prometheus_retention: must be a Prometheus duration'),
    ('observability_opensearch_chart_version=""', 'observability_opensearch_chart_version'),
    ('{"observability_gpu_node_selector": {}}', 'observability_gpu_node_selector: must select the GPU nodes'),
    ('{"observability_opensearch_enabled": false}', 'observability_fluent_bit_enabled: fluent-bit ships logs to OpenSearch'),
    ('observability_state=sideways', 'observability_state'),
    # The charts' own judgement (a check-mode render before any write), naming the variable to change.
    ('observability_dcgm_exporter_chart_version=9.9.9', 'observability preflight: observability_dcgm_exporter_chart_version and'
     ' observability_dcgm_exporter_chart_ref (or genai_stack_chart_mirror): helm cannot render the chart dcgm-exporter 9.9.9'),
    ('{"observability_opensearch_values": {"persistence": "yes"}}',
     'observability preflight: observability_opensearch_values.persistence: helm cannot render the chart opensearch 3.6.0'),
    ('{"observability_chart_mode": "reference", "observability_reference_values": {"opensearch": {"credentials": {"adminPassword": "x"}}}}',
     'observability_reference_values: must not carry credentials'),
    ('{"observability_chart_mode": "reference", "observability_reference_values": {"fluentbit": "on"}}',
     'observability preflight: observability_reference_values.fluentbit: helm cannot render the chart ai-ml-observability 0.1.0'),
    ('{"observability_chart_mode": "reference", "genai_stack_chart_mirror": ""}',
     'observability_reference_chart_ref: is empty: the reference architecture'),
]


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[b[0].split('=')[0][:40] for b in BAD_VARS])
def test_preflight_refuses_before_any_change(run_playbook, extra, message):
    mark = sandbox_journal.mark()
    run = run_playbook(PLAYBOOK, '-e', extra)
    assert run.returncode != 0, run
    assert message in run.output, run
    assert _admin_writes(mark) == 0, run
    assert run.activity['aws_mutating'] == 0, run


REFERENCE = ('-e', 'observability_chart_mode=reference')
REFERENCE_RELEASES = {'ai-ml-observability', 'dcgm-exporter'}
CHART_DEFAULTS = ('admin123', 'prom-operator')


def _mirror_has_reference_chart():
    """Whether the sandbox's chart mirror holds ai-ml-observability 0.1.0 (asked through the registry's API)."""
    url = 'http://%s/v2/mirror/ai-ml-observability/tags/list' % os.environ['SANDBOX_REGISTRY']
    request = urllib.request.Request(url, headers={'Authorization': 'Basic ' + base64.b64encode(
        ('%s:%s' % (os.environ['SANDBOX_REGISTRY_USER'], os.environ['SANDBOX_REGISTRY_PASSWORD'])).encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return '0.1.0' in json.loads(response.read()).get('tags', [])
    except urllib.error.HTTPError:
        return False


def _helm_get_all(release):
    return subprocess.run([os.environ.get('HELM_BIN', 'helm'), 'get', 'all', release, '-n', NAMESPACE],
                          capture_output=True, text=True, check=True).stdout


def test_reference_chart_converge_rerun_check_and_teardown(run_playbook, kube):
    """The reference architecture's chart: converges, re-runs with changed=0, check mode writes nothing, no default or
    generated password in `helm get all` or any ConfigMap, verify passes (it runs in every converge), absent leaves nothing."""
    if not _mirror_has_reference_chart():
        pytest.skip('the sandbox chart mirror lacks ai-ml-observability 0.1.0 (start the sandbox with GENAI_STACK_CHART_DIR '
                    'naming a folder with its package)')
    core, _apps = kube
    try:
        first = run_playbook(PLAYBOOK, *REFERENCE, '-vvv')
        assert first.returncode == 0, first
        first.assert_wrote()
        assert 'reference mode' in first.output

        grafana = _secret_values(core, 'grafana-admin-credentials')
        opensearch = _secret_values(core, 'opensearch-admin-credentials')
        dashboards = _secret_values(core, 'opensearch-dashboards-credentials')
        passwords = [grafana['admin-password'], opensearch['password'], dashboards['password']]
        assert all(len(p) >= 32 for p in passwords)
        assert opensearch['hash'].startswith('$2') and dashboards['hash'].startswith('$2')
        for value in passwords:
            assert value not in first.output

        releases = helm_releases(NAMESPACE)
        assert set(releases) == REFERENCE_RELEASES and {r['status'] for r in releases.values()} == {'deployed'}, releases
        # No default and no generated password in what helm keeps (values, manifests, hooks, notes) ...
        everything = _helm_get_all('ai-ml-observability')
        for value in CHART_DEFAULTS + tuple(passwords):
            assert value not in everything
        # ... the security config carries the stored hashes (the operator reads it), the chart's own credential
        # Secret is not there, and the OpenSearchCluster names the role's Secret.
        config = core.read_namespaced_secret('securityconfig-secret', NAMESPACE).data['internal_users.yml']
        users = yaml.safe_load(base64.b64decode(config))
        assert users['admin']['hash'] == opensearch['hash'] and users['dashboarduser']['hash'] == dashboards['hash']
        assert 'admin-credentials-secret' not in {s.metadata.name for s in core.list_namespaced_secret(NAMESPACE).items}
        cluster = kube_get('opensearchclusters.opensearch.opster.io', 'opensearch', '-n', NAMESPACE)
        assert cluster['spec']['security']['config']['adminCredentialsSecret']['name'] == 'opensearch-admin-credentials'
        # No password in any ConfigMap of the namespace; the datasource reads it from Grafana's environment.
        for config_map in core.list_namespaced_config_map(NAMESPACE).items:
            text = json.dumps(config_map.data or {})
            for value in CHART_DEFAULTS + tuple(passwords):
                assert value not in text, config_map.metadata.name
        datasource = core.read_namespaced_config_map('opensearch-datasource', NAMESPACE).data['opensearch-datasource.yaml']
        assert 'basicAuthPassword: ${OPENSEARCH_PASSWORD}' in datasource

        mark = sandbox_journal.mark()
        second = run_playbook(PLAYBOOK, *REFERENCE)
        assert second.returncode == 0 and second.changed == 0, second
        assert _admin_writes(mark) == 0, second
        assert _secret_values(core, 'opensearch-admin-credentials') == opensearch

        mark = sandbox_journal.mark()
        check = run_playbook(PLAYBOOK, *REFERENCE, '--check', '-e', 'observability_prometheus_retention=30d')
        assert check.returncode == 0 and check.changed >= 1, check
        assert _admin_writes(mark) == 0, check
    finally:
        down = run_playbook(PLAYBOOK, *REFERENCE, '-e', 'observability_state=absent')
    assert down.returncode == 0, down
    assert helm_releases(NAMESPACE) == {}
    assert NAMESPACE not in _namespaces(core)
    # Nothing of the release is left cluster-wide (its ClusterRoles, cluster inputs, the OpenSearch operator's CRDs).
    left = [item['metadata']['name'] for kind in ('clusterroles', 'clusterrolebindings', 'customresourcedefinitions')
            for item in kube_get(kind)['items']
            if (item['metadata'].get('annotations') or {}).get('meta.helm.sh/release-name') == 'ai-ml-observability']
    assert left == []
