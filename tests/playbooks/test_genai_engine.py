"""Role genai_engine through playbooks/genai_engine.yml on the sandbox: the chart
arthur-genai-engine from the sandbox registry (the stand-in; the vendor's through
GENAI_ENGINE_TEST_EXTRA_VARS), on the capability=cpu and capability=gpu nodes that
playbooks/cluster_gpu.yml labels and creates, with postgres-secret from playbooks/postgres.yml."""
import base64
import json
import os
import subprocess
import time
import uuid

import pytest
from kubernetes import client, config

from playbook_helpers import assert_absent_previewed, helm_releases, kube_get, metrics_api_available, put_cpu_load, top, wait_for

PLAYBOOK = 'playbooks/genai_engine.yml'
NS = 'arthur'
OPENAI_KEY = 'sk-' + uuid.uuid4().hex
OPENAI = {'GENAI_ENGINE_OPENAI_KEYS': 'gpt-4o::https://example-openai.invalid/::%s,gpt-35::https://other.invalid/::%s' % (OPENAI_KEY, OPENAI_KEY)}
SECRETS = {'postgres-secret', 'genai-engine-secret-admin-key', 'genai-engine-secret-open-ai-gpt-model-names-endpoints-keys',
           'genai-engine-secret-store-key'}
STORE = 'genai-engine-secret-store-key'
# Extra variables for every run (GENAI_ENGINE_TEST_EXTRA_VARS: JSON, e.g. the real chart pushed to the sandbox registry).
EXTRA = ['-e', os.environ['GENAI_ENGINE_TEST_EXTRA_VARS']] if os.environ.get('GENAI_ENGINE_TEST_EXTRA_VARS') else []
# The add-ons the engine stands on: the sandbox inventory's, less cert-manager.
ADDONS = ['-e', 'cluster_addons_cert_manager_enabled=false']


@pytest.fixture(scope='module')
def stack(request):
    """GPU node group and capability labels, the cluster add-ons the engine's preflight asks for (the sandbox inventory's:
    the IngressClass alb of the AWS load balancer controller, metrics-server for its HPA; not cert-manager, which the
    engine does not use and test_cluster_addons runs), then the database and postgres-secret; removed after."""
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(root, 'ansible.cfg'))

    def play(path, *args):
        done = subprocess.run([os.path.join(root, '.venv', 'bin', 'ansible-playbook'), path] + list(args), cwd=root, env=env,
                              capture_output=True, text=True, timeout=1200, check=False)
        assert done.returncode == 0, done.stdout[-4000:]

    play('playbooks/cluster_gpu.yml')
    play('playbooks/cluster_addons.yml', *ADDONS)
    play('playbooks/postgres.yml')
    config.load_kube_config()
    yield client.CoreV1Api()
    play('playbooks/genai_engine.yml', *EXTRA, '-e', 'genai_engine_state=absent')
    play('playbooks/postgres.yml', '-e', 'postgres_state=absent')
    play('playbooks/cluster_gpu.yml', '-e', 'cluster_gpu_state=absent')
    play('playbooks/cluster_addons.yml', '-e', 'cluster_addons_state=absent', *ADDONS)


def _secrets(core):
    return {s.metadata.name: s for s in core.list_namespaced_secret(NS).items}


def _engine_pods(core):
    pods = core.list_namespaced_pod(NS, label_selector='app=arthur-genai-engine').items
    nodes = {n.metadata.name: n for n in core.list_node().items}
    return [(p, nodes[p.spec.node_name]) for p in pods if p.metadata.deletion_timestamp is None]


def _helm_values():
    out = subprocess.run([os.environ['HELM_BIN'], 'get', 'values', 'arthur-engine', '-n', NS, '-o', 'json'],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_cpu_converge_rerun_check_gpu_and_teardown(run_playbook, stack):
    core = stack
    try:
        _converge_and_switch_modes(run_playbook, core)
        # The teardown previewed: planned and named, nothing removed.
        assert_absent_previewed(run_playbook, PLAYBOOK, 'genai_engine_state', *EXTRA, names=['status: deployed'], env_extra=OPENAI)
        assert SECRETS <= set(_secrets(core)) and 'arthur-engine' in helm_releases(NS)
    finally:
        down = run_playbook(PLAYBOOK, *EXTRA, '-e', 'genai_engine_state=absent')
    assert down.returncode == 0, down
    assert NS not in [n.metadata.name for n in core.list_namespace().items]
    listed = subprocess.run([os.environ['HELM_BIN'], 'list', '-A', '-q'], capture_output=True, text=True, check=True).stdout
    assert 'arthur-engine' not in listed.split()


def _converge_and_switch_modes(run_playbook, core):
    first = run_playbook(PLAYBOOK, *EXTRA, '-vvv', '--diff', env_extra=OPENAI)
    assert first.returncode == 0, first
    first.assert_wrote()  # the positive control of the no-write checks below
    secrets = _secrets(core)
    assert SECRETS <= set(secrets), sorted(secrets)
    assert 'arthur-repository-credentials' not in secrets
    admin_key = base64.b64decode(secrets['genai-engine-secret-admin-key'].data['key']).decode()
    db_password = base64.b64decode(secrets['postgres-secret'].data['password']).decode()
    store_key = base64.b64decode(secrets[STORE].data['key']).decode()
    # Written by the role, adopted by the release (the chart renders the same Secret with lookup).
    assert len(store_key) >= 32 and secrets[STORE].metadata.labels.get('app.kubernetes.io/managed-by') == 'Helm'
    assert secrets[STORE].metadata.annotations.get('meta.helm.sh/release-name') == 'arthur-engine'
    for secret in (OPENAI_KEY, admin_key, db_password, store_key):
        assert secret not in first.output
    assert base64.b64decode(secrets['genai-engine-secret-open-ai-gpt-model-names-endpoints-keys'].data['keys']).decode() == \
        OPENAI['GENAI_ENGINE_OPENAI_KEYS']

    # Another route: the pods and their nodes from the API, the values from helm.
    pods = _engine_pods(core)
    assert len(pods) == 2
    for pod, node in pods:
        assert pod.status.phase == 'Running'
        assert node.metadata.labels.get('capability') == 'cpu'
        assert pod.spec.node_selector == {'capability': 'cpu'}
    values = _helm_values()
    assert values['containerRepositoryCredentialRequired'] is False
    assert values['genaiEngineDeploymentType'] == 'deployment' and values['gpuEnabled'] is False
    assert values['postgresBYOEndpoint'] == os.environ['PGHOST']
    assert '2 pod(s) Running and Ready' in first.output

    second = run_playbook(PLAYBOOK, *EXTRA, env_extra=OPENAI)
    assert second.returncode == 0 and second.changed == 0, second
    assert second.admin_writes == 0, second.admin_write_sample

    check = run_playbook(PLAYBOOK, *EXTRA, '--check', '--diff', '-e', 'genai_engine_mode=gpu', env_extra=OPENAI)
    assert check.returncode == 0 and check.changed > 0, check
    assert check.admin_writes == 0, check.admin_write_sample

    _hpa_scales_out_under_load_and_back_in(lambda: run_playbook(PLAYBOOK, *EXTRA, env_extra=OPENAI))

    # GPU mode, with registry credentials: a DaemonSet on the GPU nodes and the pull secret.
    registry = ['-e', 'genai_engine_mode=gpu', '-e', 'genai_engine_registry_username=puller', '-e', 'genai_engine_registry_password=pull-token-123']
    gpu = run_playbook(PLAYBOOK, *EXTRA, *registry, env_extra=OPENAI)
    assert gpu.returncode == 0, gpu
    gpu.assert_wrote()
    pods = _engine_pods(core)
    assert pods and all(node.metadata.labels.get('capability') == 'gpu' for _unused, node in pods)
    assert all(int(node.status.allocatable.get('nvidia.com/gpu', '0')) >= 1 for _unused, node in pods)
    assert {p.spec.containers[0].image.split(':')[0] for p, _unused in pods} == {'arthurplatform/genai-engine-gpu'}
    assert _secrets(core)['arthur-repository-credentials'].type == 'kubernetes.io/dockerconfigjson'
    assert _helm_values()['containerRepositoryCredentialRequired'] is True
    assert base64.b64decode(_secrets(core)['genai-engine-secret-admin-key'].data['key']).decode() == admin_key, 'admin key rotated'
    assert base64.b64decode(_secrets(core)[STORE].data['key']).decode() == store_key, 'secret-store key replaced by the upgrade'
    again = run_playbook(PLAYBOOK, *EXTRA, *registry, env_extra=OPENAI)
    assert again.returncode == 0 and again.changed == 0, again
    assert again.admin_writes == 0, again.admin_write_sample
    # A secret-store key other than the one in use is refused before any write.
    other = run_playbook(PLAYBOOK, *EXTRA, *registry, '-e', 'genai_engine_secret_store_key=' + 'x' * 32, env_extra=OPENAI)
    assert other.returncode != 0 and 'genai_engine_secret_store_key: differs from the key in Secret arthur/' + STORE in other.output, other
    assert other.admin_writes == 0, other.admin_write_sample
    assert base64.b64decode(_secrets(core)[STORE].data['key']).decode() == store_key


ENGINE_PODS = 'app=arthur-genai-engine'
# The load the test puts on the engine, spread over its Pods (playbook_helpers.put_cpu_load): 1.5 CPU against the
# sandbox's request of 500m per Pod and the HPA's 50 % target asks for 6 replicas.
LOAD_MILLICORES = 1500


def _engine_replicas():
    return kube_get('deployment', 'arthur-genai-engine', '-n', NS)['spec']['replicas']


def _hpa_scales_out_under_load_and_back_in(rerun):
    """The chart's HorizontalPodAutoscaler (CPU, 50 % of the request, minReplicas genai_engine_replicas=2) reads the
    sandbox's metrics API (metrics-server as the cluster_addons role installed it, kwok reporting each Pod's usage):
    it scales the Deployment out under load and back in to its minimum once the load is gone. A re-run of the role
    while it is scaled out (rerun) changes nothing: the replicas stay the autoscaler's, not genai_engine_replicas."""
    (hpa,) = kube_get('hpa', '-n', NS)['items']
    assert hpa['spec']['scaleTargetRef']['name'] == 'arthur-genai-engine' and hpa['spec']['minReplicas'] == 2, hpa['spec']
    assert wait_for(metrics_api_available, 120), kube_get('apiservice', 'v1beta1.metrics.k8s.io').get('status')
    # kubectl top answers, for the Nodes and for the engine's Pods (idle: kwok's 1m).
    assert wait_for(lambda: len(top('pods', '-n', NS, '-l', ENGINE_PODS)) == 2, 120), top('pods', '-n', NS)
    assert top('nodes'), 'kubectl top nodes answered nothing'
    # The autoscaler reads the Pods' CPU and, idle, keeps the minimum.
    assert wait_for(lambda: any(m.get('type') == 'Resource' for m in kube_get('hpa', hpa['metadata']['name'], '-n', NS)
                                .get('status', {}).get('currentMetrics') or []), 120), kube_get('hpa', '-n', NS)['items']
    assert _engine_replicas() == 2

    seen = []
    started = time.monotonic()

    def loaded_and_scaled_out():
        put_cpu_load(NS, ENGINE_PODS, LOAD_MILLICORES)
        seen.append(_engine_replicas())
        return seen[-1] >= 4

    try:
        assert wait_for(loaded_and_scaled_out, 240), ('no scale-out under load', seen, kube_get('hpa', '-n', NS)['items'])
        scaled_out = time.monotonic()
        # The role again, under the same load: the chart leaves spec.replicas out when its HPA is on, so the release
        # is unchanged and nothing writes the Deployment back to genai_engine_replicas.
        before = _engine_replicas()
        put_cpu_load(NS, ENGINE_PODS, LOAD_MILLICORES)
        again = rerun()
        assert again.returncode == 0 and again.changed == 0, again
        assert again.admin_writes == 0, again.admin_write_sample
        after = _engine_replicas()
        assert after >= before, ('the re-run took the scaled-out replicas back', before, after)
        seen.append(after)
    finally:
        put_cpu_load(NS, ENGINE_PODS, 0)
    assert max(seen) <= 10, seen  # genai_engine_max_replicas
    idle = time.monotonic()
    # Idle again: back to the minimum after the controller's downscale stabilization (30 s on the sandbox).
    assert wait_for(lambda: put_cpu_load(NS, ENGINE_PODS, 0) is not None and _engine_replicas() == 2, 240), \
        ('no scale-in once idle', _engine_replicas(), kube_get('hpa', '-n', NS)['items'])
    events = kubectl_events_reasons(hpa['metadata']['name'])
    assert 'SuccessfulRescale' in events, events
    print('HPA: scaled out to %d replicas in %.0f s under load, back to 2 in %.0f s once idle'
          % (max(seen), scaled_out - started, time.monotonic() - idle))


def kubectl_events_reasons(name):
    """The reasons of the events the autoscaler recorded on its HPA."""
    return {e['reason'] for e in kube_get('events', '-n', NS, '--field-selector', 'involvedObject.name=' + name)['items']}


BAD_VARS = [
    ('genai_engine_openai_gpt_names_endpoints_keys=gpt-4o:https://x.invalid:key', 'genai_engine_openai_gpt_names_endpoints_keys:'),
    ('genai_engine_openai_gpt_names_endpoints_keys=gpt::ftp://x.invalid/::key', 'genai_engine_openai_gpt_names_endpoints_keys:'),
    ('genai_engine_ingress_url=https://genai.example.com/', 'genai_engine_ingress_url: is required'),
    ('genai_engine_admin_key=short', 'genai_engine_admin_key: must be at least 16'),
    ('genai_engine_registry_username=someone', 'genai_engine_registry_password: genai_engine_registry_username and'),
    ('genai_engine_chart_version=2.x', 'genai_engine_chart_version: must pin one chart version'),
    ('genai_engine_namespace=Arthur_NS', 'genai_engine_namespace: must be a DNS label'),
    ('{"genai_engine_mode": "gpu", "genai_engine_gpu_node_labels": {"capability": "gpu", "pool": "tpu"}}',
     'genai_engine_mode: gpu needs nodes labelled capability=gpu,pool=tpu'),
    ('{"genai_engine_mode": "gpu", "genai_engine_gpu_node_labels": {"capability": "tpu"}}', 'genai_engine_gpu_node_labels: must contain capability: gpu'),
    ('genai_engine_secret_store_key=short', 'genai_engine_secret_store_key: must be at least 16'),
    ('{"genai_engine_ml_engine": true}', 'genai_engine_ml_engine_client_secret: genai_engine_ml_engine_client_id and'),
    # The chart's own schema, before any write: its message, blamed on the variable that set the value (a database
    # password is given: the namespace, and postgres-secret with it, is gone after the converge test's teardown).
    ('{"genai_engine_postgres_password": "pg-password-123", "genai_engine_values": {"genaiEngineUsePIIModelV2": true}}',
     'genai_engine_values.genaiEngineUsePIIModelV2: helm cannot render the chart arthur-genai-engine 2.1.686 with these values'),
    # A pinned version the registry (or mirror) lacks, before any write.
    ('{"genai_engine_chart_version": "9.9.9", "genai_engine_postgres_password": "pg-password-123"}',
     "genai_engine_chart_version and genai_engine_chart_ref (or genai_stack_chart_mirror): helm cannot render"),
    ('{"genai_engine_resources": {"gpus": 1}}', 'genai_engine_resources: keys must be among'),
    ('{"genai_engine_namespace": "arthur-empty"}', 'genai_engine_postgres_password: is empty and Secret arthur-empty/postgres-secret'),
    ('genai_engine_mode=tpu', 'genai_engine_mode'),
    # Chart values may not override what the role checks or what must match the Secrets it writes.
    ('{"genai_engine_values": {"containerRepositoryCredentialRequired": true}}',
     'genai_engine_values.containerRepositoryCredentialRequired: the role sets and checks this value; set genai_engine_registry_username'),
    ('{"genai_engine_values": {"arthurGenaiEngineDeployment": {"genaiEnginePodNodeSelector": {"capability": "tpu"}}}}',
     'genai_engine_values.arthurGenaiEngineDeployment.genaiEnginePodNodeSelector: the role sets and checks this value'),
    ('{"genai_engine_values": {"genaiEngineDeploymentType": "daemonset"}}',
     'genai_engine_values.genaiEngineDeploymentType: the role sets and checks this value; set genai_engine_mode instead'),
]


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[m.split(':')[0] + str(i) for i, (_unused, m) in enumerate(BAD_VARS)])
def test_preflight_refuses_before_any_change(run_playbook, stack, extra, message):
    run = run_playbook(PLAYBOOK, *EXTRA, '-e', extra, env_extra=OPENAI)
    assert run.returncode != 0, run
    assert message in run.output, run
    assert run.admin_writes == 0, run.admin_write_sample
    assert OPENAI_KEY not in run.output


# The secrets' dry run (k8s_secret in check mode) fails: its whole message is kept, and it is blamed on
# the Secret's variable only when k8s_secret names an option of the data; a connection that does not
# work (a missing kubeconfig, an unknown context) is blamed on the kubeconfig. None needs the stack:
# each fails before the role reads anything of it.
KUBECONFIG_BLAME = 'genai_engine preflight: genai_stack_kube (else K8S_AUTH_KUBECONFIG or KUBECONFIG, context K8S_AUTH_CONTEXT): '
BLAME_CASES = [
    ('openai-format', ['-e', 'genai_engine_openai_gpt_names_endpoints_keys=gpt-4o:https://x.invalid:key'], {},
     'genai_engine preflight: genai_engine_openai_gpt_names_endpoints_keys: format: key \'keys\' (openai_endpoints): '
     'entry 1 has 1 "::"-separated fields, expected NAME::ENDPOINT::KEY'),
    ('kubeconfig-missing', [], {'K8S_AUTH_KUBECONFIG': '/nonexistent/genai-test/kubeconfig'},
     KUBECONFIG_BLAME + "kubeconfig (from K8S_AUTH_KUBECONFIG): '/nonexistent/genai-test/kubeconfig' is not a readable file"),
    ('context-unknown', [], {'K8S_AUTH_CONTEXT': 'no-such-context-genai-test'},
     KUBECONFIG_BLAME + 'Could not create a Kubernetes client: '),
]


@pytest.mark.alongside
@pytest.mark.parametrize('args,env,message', [c[1:] for c in BLAME_CASES], ids=[c[0] for c in BLAME_CASES])
def test_preflight_blames_the_variable_at_fault_with_the_whole_message(run_playbook, args, env, message):
    run = run_playbook(PLAYBOOK, *EXTRA, *args, env_extra=dict(OPENAI, **env))
    assert run.returncode != 0, run
    assert message in run.output, run
    failures = [line for line in run.output.splitlines() if 'genai_engine preflight:' in line]
    if env:
        assert not any('genai_engine_openai_gpt_names_endpoints_keys' in line or 'genai_engine_admin_key' in line for line in failures), failures
    assert run.admin_writes == 0, run.admin_write_sample
    assert OPENAI_KEY not in run.output
