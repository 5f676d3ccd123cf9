"""Role adaptive through playbooks/adaptive.yml on the sandbox inventory, as a user runs it.

The stand-in chart tests/fixtures/charts/adaptive (0.48.2, the real chart's values interface, held to
it by tests/unit/test_adaptive_chart_interface.py) stands in for Adaptive ML's chart, monitoring
bundled; the harmony pods request nvidia.com/gpu on the GPU nodes that playbooks/cluster_gpu.yml
gives the sandbox. The run starts as a user upgrading from an earlier version of the role: a separate
monitoring release is already there and must go.
"""
import base64
import json
import os
import subprocess
import textwrap

import pytest

import sandbox_journal
from playbook_helpers import assert_absent_previewed, helm_releases, kube_get, kubectl

PLAYBOOK = 'playbooks/adaptive.yml'
NAMESPACE = 'adaptive'
ADMIN = os.environ.get('SANDBOX_KUBE_ADMIN_USER', 'sandbox-admin')


def _gpu_nodes():
    return {n['metadata']['name']: int(n['status'].get('allocatable', {}).get('nvidia.com/gpu', '0'))
            for n in kube_get('nodes', '-l', 'capability=gpu')['items']}


def _admin_writes(run_mark):
    return sandbox_journal.since(run_mark, kube_user=ADMIN)['kube_writes']


@pytest.fixture(scope='module')
def gpu_nodes(gpu_capacity):  # pylint: disable=unused-argument
    """GPU nodes from playbooks/cluster_gpu.yml (the shared gpu_capacity fixture of conftest.py)."""
    return _gpu_nodes()


def _old_monitoring_release(tmp_path):
    """What an earlier version of the role left: release adaptive-monitoring of chart monitoring 0.1.5
    (here a one-ConfigMap chart, since only the release's presence matters)."""
    chart = tmp_path / 'monitoring'
    (chart / 'templates').mkdir(parents=True)
    (chart / 'Chart.yaml').write_text('apiVersion: v2\nname: monitoring\nversion: 0.1.5\n', encoding='utf-8')
    (chart / 'templates' / 'cm.yaml').write_text(textwrap.dedent('''\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: grafana-old
        '''), encoding='utf-8')
    subprocess.run([os.environ['HELM_BIN'], 'install', 'adaptive-monitoring', str(chart), '-n', NAMESPACE, '--create-namespace'],
                   stdout=subprocess.DEVNULL, check=True)


def test_converge_rerun_check_verify_and_teardown(run_playbook, gpu_nodes, tmp_path):
    assert gpu_nodes and all(count == 1 for count in gpu_nodes.values()), gpu_nodes
    secrets_in_env = [os.environ['PGPASSWORD'], os.environ['SANDBOX_REGISTRY_PASSWORD']]
    try:
        _old_monitoring_release(tmp_path)
        assert {r['name'] for r in helm_releases(NAMESPACE).values()} == {'adaptive-monitoring'}
        mark = sandbox_journal.mark()
        first = run_playbook(PLAYBOOK, '-vvv', '--diff')
        assert first.returncode == 0, first
        assert first.changed > 0, first
        assert first.activity['aws_mutating'] == 0, first
        assert '%d GPU node(s) with 1 nvidia.com/gpu' % len(gpu_nodes) in first.output, first

        # By another route: helm's own view, the pods and where they run, the Secrets' contents.
        releases = json.loads(subprocess.run([os.environ['HELM_BIN'], 'list', '-n', NAMESPACE, '-o', 'json'], stdout=subprocess.PIPE,
                                             text=True, check=True).stdout)
        # The old separate monitoring release is gone; the bundled monitoring came with the engine.
        assert {(r['name'], r['chart'], r['status']) for r in releases} == {('adaptive', 'adaptive-0.48.2', 'deployed')}
        pods = kube_get('pods', '-n', NAMESPACE)['items']
        assert pods and all(p['status']['phase'] == 'Running' for p in pods), [(p['metadata']['name'], p['status']['phase']) for p in pods]
        harmony = [p for p in pods if any('nvidia.com/gpu' in c.get('resources', {}).get('requests', {}) for c in p['spec']['containers'])]
        # One StatefulSet per compute pool of the sandbox inventory (default, inference), one replica each.
        assert sorted(p['metadata']['name'] for p in harmony) == ['adaptive-harmony-default-0', 'adaptive-harmony-inference-0'], \
            [p['metadata']['name'] for p in pods]
        for pod in harmony:
            assert pod['spec']['nodeName'] in gpu_nodes, pod['spec']['nodeName']
            assert pod['spec']['nodeSelector'] == {'capability': 'gpu'}
            # The sandbox inventory's adaptive_harmony_resources, not the chart's 30 CPU / 500Gi.
            assert pod['spec']['containers'][0]['resources']['requests'] == {'cpu': '500m', 'memory': '1Gi', 'nvidia.com/gpu': '1'}
        components = {p['metadata']['labels'].get('app.kubernetes.io/component') for p in pods}
        assert {'control-plane', 'harmony', 'sandkasten', 'redis', 'mlflow', 'lgtm', 'otel-collector'} <= components, components
        assert 'monitoring: bundled lgtm' in first.output, first

        control = kube_get('secret', '-n', NAMESPACE, 'adaptive-control-plane-secret')
        data = {k: base64.b64decode(v).decode() for k, v in control['data'].items()}
        # The keys chart 0.48 reads, the database as parts of the inventory's URL (password percent-decoded).
        assert sorted(data) == ['cookiesSecret', 'dbHost', 'dbName', 'dbPassword', 'dbUsername', 'internalJwtPrivateKeyV4Base64', 'oidcProviders']
        assert len(data['cookiesSecret']) >= 64
        assert (data['dbUsername'], data['dbPassword'], data['dbHost'], data['dbName']) == (
            os.environ['PGUSER'], os.environ['PGPASSWORD'], '%s:%s' % (os.environ['PGHOST'], os.environ['PGPORT']), 'adaptive')
        assert len(base64.b64decode(data['internalJwtPrivateKeyV4Base64'], validate=True)) == 64
        assert data['oidcProviders'].startswith('[{key="sandbox",name="Sandbox IdP",issuer_url="https://idp.sandbox.example.com"')
        harmony_secret = kube_get('secret', '-n', NAMESPACE, 'adaptive-harmony-secret')
        assert {k: base64.b64decode(v).decode() for k, v in harmony_secret['data'].items()} == {
            'modelRegistryUrl': 's3://sandbox-adaptive/model_registry', 'sharedDirectoryUrl': 's3://sandbox-adaptive/shared'}
        values = json.loads(subprocess.run([os.environ['HELM_BIN'], 'get', 'values', 'adaptive', '-n', NAMESPACE, '-o', 'json'],
                                           stdout=subprocess.PIPE, text=True, check=True).stdout)
        assert values['secrets']['existingControlPlaneSecret'] == 'adaptive-control-plane-secret'
        assert values['secrets'] == {'existingControlPlaneSecret': 'adaptive-control-plane-secret',
                                     'existingHarmonySecret': 'adaptive-harmony-secret'}  # no inline secret value next to them
        assert 'replicaCount' not in values['harmony']

        for secret in secrets_in_env + [data['cookiesSecret'], data['dbPassword'], data['internalJwtPrivateKeyV4Base64']]:
            assert secret not in first.output
        assert _admin_writes(mark) > 0  # the positive control of the no-write checks below
        first.assert_wrote()

        mark = sandbox_journal.mark()
        second = run_playbook(PLAYBOOK)
        assert second.returncode == 0, second
        assert second.changed == 0, second
        assert _admin_writes(mark) == 0, sandbox_journal.since(mark, kube_user=ADMIN)
        assert second.activity['aws_mutating'] == 0, second
        # The generated cookie secret and JWT signing key are kept, not rotated.
        assert kube_get('secret', '-n', NAMESPACE, 'adaptive-control-plane-secret')['data'] == control['data']

        mark = sandbox_journal.mark()
        check = run_playbook(PLAYBOOK, '--check', '--diff')
        assert check.returncode == 0, check
        assert check.changed == 0, check
        assert _admin_writes(mark) == 0, sandbox_journal.since(mark, kube_user=ADMIN)

        # Other paths of the chart, rendered in check mode: Azure Blob through s3proxy (its key is a chart
        # value, so the task must hide it) and the monitoring switched off.
        azure_key = 'azure-key-' + os.urandom(8).hex()
        mark = sandbox_journal.mark()
        paths = run_playbook(PLAYBOOK, '--check', '--diff', '-vvv', '-e', 'adaptive_storage_backend=azure',
                             '-e', 'adaptive_azure_storage_account_name=sandboxacct',
                             '-e', 'adaptive_azure_storage_account_key=' + azure_key, '-e', 'adaptive_monitoring_enabled=false')
        assert paths.returncode == 0, paths
        assert paths.changed == 1, paths  # the engine's release only
        assert azure_key not in paths.output
        assert 'storage azure (s3proxy -> Azure account sandboxacct)' in paths.output, paths
        assert _admin_writes(mark) == 0, sandbox_journal.since(mark, kube_user=ADMIN)

        # The teardown previewed: planned and named, nothing removed.
        assert_absent_previewed(run_playbook, PLAYBOOK, 'adaptive_state',
                                names=['(item=adaptive)', 'adaptive-control-plane-secret', 'adaptive-harmony-secret'])
        assert {r['name'] for r in helm_releases(NAMESPACE).values()} == {'adaptive'}
        assert kube_get('secret', '-n', NAMESPACE, 'adaptive-control-plane-secret')['data'] == control['data']
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'adaptive_state=absent')
    assert down.returncode == 0, down
    assert kubectl('get', 'namespace', NAMESPACE, check=False).returncode != 0
    leftovers = json.loads(subprocess.run([os.environ['HELM_BIN'], 'list', '-A', '-o', 'json'], stdout=subprocess.PIPE, text=True,
                                          check=True).stdout)
    assert not [r for r in leftovers if r['namespace'] == NAMESPACE]


BAD_VARS = [
    (['-e', 'adaptive_cookies_secret=' + 'x' * 63], 'adaptive_cookies_secret: must be at least 64 characters'),
    (['-e', 'adaptive_root_url=adaptive.example.com'], 'adaptive_root_url: is required'),
    # Variables of earlier versions are refused with what to do instead.
    (['-e', 'adaptive_harmony_replicas=2'], 'adaptive_harmony_replicas: no longer used: chart 0.48 refuses harmony.replicaCount'),
    (['-e', 'adaptive_grafana_domain=grafana.example.com'], 'adaptive_grafana_domain: no longer used'),
    (['-e', '{"adaptive_oidc_providers": [{"name": "G", "key": "g", "issuer_url": "http://idp.example.com", "client_id": "c", "client_secret": "s"}]}'],
     'adaptive_oidc_providers[].issuer_url: must be an https URL'),
    (['-e', '{"adaptive_oidc_providers": [{"name": "G", "key": "g", "issuer_url": "https://idp.example.com", "client_id": "", "client_secret": "s"}]}'],
     'adaptive_oidc_providers[].client_id: is required'),
    (['-e', 'adaptive_model_registry_url=https://bucket/models'], 'adaptive_model_registry_url: is required: an S3 URL'),
    (['-e', 'adaptive_database_url=mysql://u:p@h/db'], 'adaptive_database_url: must be a PostgreSQL URL'),
    (['-e', 'adaptive_container_registry='], 'adaptive_container_registry: is required'),
    (['-e', '{"adaptive_compute_pools": [{"name": "p", "minReplicaCount": 1, "maxReplicaCount": 2}]}'],
     'adaptive_compute_pools[].replicas: every pool needs replicas'),
    (['-e', '{"adaptive_compute_pools": []}'], 'adaptive_compute_pools: chart 0.48 needs at least one compute pool'),
    (['-e', '{"adaptive_compute_pools": [{"name": "a b", "replicas": 1}, {"name": "A_B", "replicas": 1}]}'],
     'adaptive_compute_pools[].name: every pool needs a unique name'),
    (['-e', 'adaptive_monitoring_persistence_enabled=true', '-e', 'adaptive_monitoring_storage_class=nosuch'], 'no StorageClass named nosuch'),
    (['-e', 'adaptive_internal_jwt_private_key=not-base64!'], 'adaptive_internal_jwt_private_key: must be base64'),
    (['-e', 'adaptive_storage_backend=azure'], 'adaptive_azure_storage_account_name: is required'),
    (['-e', 'adaptive_external_secrets=true', '-e', 'adaptive_external_secret_store=vault'],
     'adaptive_external_secrets: the External Secrets Operator is not installed'),
    (['-e', 'adaptive_harmony_gpus_per_replica=2'],
     'adaptive_harmony_gpus_per_replica: must equal or divide the GPUs of each GPU node (nodes have 1 nvidia.com/gpu), got 2'),
    (['-e', '{"adaptive_gpu_node_selector": {"capability": "tpu"}}'], 'adaptive_gpu_node_selector: no GPU node'),
    # Extra values may not override what the preflight checks (issue 4).
    (['-e', '{"adaptive_extra_values": {"controlPlane": {"rootUrl": "https://elsewhere.example.com"}}}'],
     'adaptive_extra_values.controlPlane.rootUrl: the role sets and checks this value; set adaptive_root_url instead'),
    (['-e', '{"adaptive_extra_values": {"harmony": {"gpusPerReplica": 2}}}'],
     'adaptive_extra_values.harmony.gpusPerReplica: the role sets and checks this value; set adaptive_harmony_gpus_per_replica instead'),
    (['-e', '{"adaptive_extra_values": {"harmony": null}}'],
     'adaptive_extra_values.harmony.gpusPerReplica: the role sets and checks this value'),
    (['-e', '{"adaptive_extra_values": {"harmony": {"replicaCount": 2}}}'],
     'adaptive_extra_values.harmony.replicaCount: the role sets and checks this value; set adaptive_compute_pools'),
    # Rules without a refusal test until now.
    (['-e', '{"adaptive_compute_pools": [{"name": "p", "replicas": 0, "gpusPerReplica": 0}]}'],
     'adaptive_compute_pools[].gpusPerReplica: must be at least 1 where given, got [0]'),
    (['-e', '{"adaptive_compute_pools": [{"name": "p", "replicas": 0, "gpusPerReplica": 2}]}'],
     'adaptive_compute_pools[].gpusPerReplica: must equal or divide the GPUs of each GPU node (nodes have 1 nvidia.com/gpu), got [2]'),
    (['-e', '{"adaptive_oidc_providers": [{"name": "G", "key": "g", "issuer_url": "https://idp.example.com", "client_id": "c",'
            ' "client_secret": "s", "scopes": ["openid", "email"]}]}'],
     'adaptive_oidc_providers[].scopes: must include email and profile'),
    (['-e', 'adaptive_autoscaling_enabled=true'], 'adaptive_autoscaling_enabled: no longer used: chart 0.48 has no KEDA autoscaling'),
    (['-e', '{"adaptive_database_url_secret": {"name": "pg", "key": "url"}}'],
     'adaptive_database_url_secret: needs keys name and key (namespace optional), and excludes adaptive_database_url'),
    (['-e', 'adaptive_storage_backend=azure', '-e', 'adaptive_azure_storage_account_name=sandboxacct'],
     'adaptive_azure_storage_account_key: is required with adaptive_storage_backend azure'),
    # The chart's own judgement (a render of what would be installed), blamed on the variable to change:
    # a pinned version the chart mirror lacks, and values the chart's templates refuse (the stand-in has no
    # values.schema.json: its templates' required/fail hold the real chart's rules).
    (['-e', 'adaptive_chart_version=9.9.9'],
     "adaptive_chart_version: helm cannot render the chart %s/adaptive 9.9.9" % os.environ.get('SANDBOX_CHART_MIRROR', '')),
    (['-e', '{"adaptive_extra_values": {"redis": {"install": {"enabled": false}}}}'],
     ['adaptive_extra_values.redis: helm cannot render the chart %s/adaptive 0.48.2' % os.environ.get('SANDBOX_CHART_MIRROR', ''),
      '): redis.external.url is required when redis.install.enabled is false']),
]


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[' '.join(b[0][1::2])[:60] for b in BAD_VARS])
def test_preflight_refuses_before_any_change(run_playbook, gpu_nodes, extra, message):
    mark = sandbox_journal.mark()
    run = run_playbook(PLAYBOOK, *extra)
    assert run.returncode != 0, run
    for text in [message] if isinstance(message, str) else message:
        assert text in run.output, (text, run)
    assert _admin_writes(mark) == 0, sandbox_journal.since(mark, kube_user=ADMIN)
    assert 'x' * 63 not in run.output
