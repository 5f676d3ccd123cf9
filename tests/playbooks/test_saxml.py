"""Role saxml through playbooks/saxml.yml on the sandbox inventory, as a user runs it.

GPU mode on the GPU nodes of playbooks/cluster_gpu.yml (converged for the module and removed at
the end); TPU mode on GKE-style TPU nodes declared for the test in $SANDBOX_TPU_NODES_FILE (the
sandbox's node mirror creates them) and removed again afterwards.
"""
import json
import os

import pytest
from kubernetes import client, config

import sandbox_journal
from playbook_helpers import assert_absent_previewed, helm_releases, wait_for

PLAYBOOK = 'playbooks/saxml.yml'
NAMESPACE = 'saxml'
ADMIN = os.environ.get('SANDBOX_KUBE_ADMIN_USER')
TPU_NODE = 'saxml-test-tpu'
TPU_DECL = [{'name': TPU_NODE, 'accelerator': 'tpu-v5-lite-podslice', 'topology': '2x2', 'chips': 4}]


def _admin_writes(mark):
    return sandbox_journal.since(mark, kube_user=ADMIN)['kube_writes']


@pytest.fixture(scope='module')
def core():
    config.load_kube_config()
    return client.CoreV1Api()


@pytest.fixture(scope='module', autouse=True)
def gpu_nodes(gpu_capacity):
    """GPU nodes from playbooks/cluster_gpu.yml (the shared gpu_capacity fixture of conftest.py)."""
    return gpu_capacity


@pytest.fixture
def tpu_nodes(core):
    """Declare one TPU v5e 2x2 node for the test; restore the declarations file afterwards."""
    path = os.environ['SANDBOX_TPU_NODES_FILE']
    before = open(path, encoding='utf-8').read() if os.path.exists(path) else None
    declared = (json.loads(before) if before else []) + TPU_DECL
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(declared, handle)
    assert wait_for(lambda: any(n.metadata.name == TPU_NODE for n in core.list_node().items)), 'the TPU node did not appear'
    yield TPU_NODE
    if before is None:
        os.remove(path)
    else:
        with open(path, 'w', encoding='utf-8') as handle:
            handle.write(before)
    assert wait_for(lambda: all(n.metadata.name != TPU_NODE for n in core.list_node().items)), 'the TPU node was not removed'


def _pods(core, component):
    return [p for p in core.list_namespaced_pod(NAMESPACE, label_selector='app.kubernetes.io/component=%s' % component).items
            if p.metadata.deletion_timestamp is None]


def test_gpu_converge_rerun_check_then_tpu_and_teardown(run_playbook, core, tpu_nodes):
    try:
        first = run_playbook(PLAYBOOK)
        assert first.returncode == 0, first
        first.assert_wrote()  # the positive control of the no-write checks below
        gpu_count = len(core.list_node(label_selector='capability=gpu').items)
        assert 'accelerator capacity: %d gpu node(s) with %d nvidia.com/gpu allocatable' % (gpu_count, gpu_count) in first.output, first

        # Verified by another route: helm and the objects.
        assert helm_releases(NAMESPACE)['saxml']['status'] == 'deployed'
        gpu_nodes = {n.metadata.name for n in core.list_node(label_selector='capability=gpu').items}
        (server,) = _pods(core, 'model-server')
        assert server.status.phase == 'Running' and server.spec.node_name in gpu_nodes
        container = server.spec.containers[0]
        assert container.resources.limits == {'nvidia.com/gpu': '1'}
        assert '--sax_cell=/sax/sandbox' in container.args and '--jax_platforms=cuda' in container.args
        assert {e.name: e.value for e in container.env}['SAX_ROOT'] == 'gs://genai-stack-sandbox-sax/sax-root'
        (admin,) = _pods(core, 'admin-server')
        assert '--sax_root=gs://genai-stack-sandbox-sax/sax-root' in admin.spec.containers[0].args
        assert len(_pods(core, 'http')) == 1
        models = core.read_namespaced_config_map('saxml-models', NAMESPACE).data
        assert json.loads(models['lm2b.json']) == {'model': '/sax/sandbox/lm2b', 'checkpoint': 'None', 'replicas': 1,
                                                   'model_path': 'saxml.server.pax.lm.params.lm_cloud.LmCloudSpmd2BTest'}
        assert client.BatchV1Api().list_namespaced_job(NAMESPACE, label_selector='app.kubernetes.io/component=publisher').items

        mark = sandbox_journal.mark()
        second = run_playbook(PLAYBOOK)
        assert second.returncode == 0 and second.changed == 0, second
        assert _admin_writes(mark) == 0 and second.activity['aws_mutating'] == 0, second

        mark = sandbox_journal.mark()
        check = run_playbook(PLAYBOOK, '--check', '--diff')
        assert check.returncode == 0 and check.changed == 0, check
        assert _admin_writes(mark) == 0, check

        # TPU mode, another cell: the model server moves to the TPU node with the slice's chips.
        tpu = run_playbook(PLAYBOOK, '-e', 'saxml_accelerator=tpu', '-e', 'saxml_cell=/sax/tpu-cell',
                           '-e', 'saxml_model_server_image=registry.k8s.io/pause:3.10')
        assert tpu.returncode == 0, tpu
        assert 'accelerator capacity: 1 tpu node(s) with 4 google.com/tpu allocatable' in tpu.output, tpu
        assert wait_for(lambda: len(_pods(core, 'model-server')) == 1
                        and _pods(core, 'model-server')[0].spec.node_name == tpu_nodes, timeout=60)
        server = _pods(core, 'model-server')[0]
        assert server.spec.node_selector == {'cloud.google.com/gke-tpu-accelerator': 'tpu-v5-lite-podslice',
                                             'cloud.google.com/gke-tpu-topology': '2x2'}
        container = server.spec.containers[0]
        assert container.resources.limits == {'google.com/tpu': '4'} and container.resources.requests == {'google.com/tpu': '4'}
        assert '--platform_chip=tpuv5e' in container.args and '--platform_topology=2x2' in container.args
        assert '--sax_cell=/sax/tpu-cell' in container.args
        assert json.loads(core.read_namespaced_config_map('saxml-models', NAMESPACE).data['lm2b.json'])['model'] == '/sax/tpu-cell/lm2b'

        # The teardown previewed: planned and named, nothing removed.
        assert_absent_previewed(run_playbook, PLAYBOOK, 'saxml_state', names=['status: deployed'])
        assert helm_releases(NAMESPACE)['saxml']['status'] == 'deployed'
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'saxml_state=absent')
    assert down.returncode == 0, down
    assert helm_releases(NAMESPACE) == {}
    assert NAMESPACE not in {n.metadata.name for n in core.list_namespace().items}
    again = run_playbook(PLAYBOOK, '-e', 'saxml_state=absent')
    assert again.returncode == 0 and again.changed == 0, again


BAD_VARS = [
    ('saxml_cell=""', 'saxml_cell: is required'),
    ('saxml_cell=sax/test', 'saxml_cell: is required and must look like /sax/<name>'),
    ('saxml_bucket=gs://bucket/with/path', 'saxml_bucket: is required and must be a Cloud Storage bucket'),
    ('saxml_accelerator=tpu', 'saxml_accelerator: 1 model server(s) need 4 google.com/tpu each'),
    ('{"saxml_accelerator": "tpu", "saxml_tpu_topology": "4x4"}', 'saxml_tpu_topology: must be a single-host slice topology'),
    ('saxml_gpu_count=0', 'saxml_gpu_count: must be between 1 and 16'),
    ('saxml_model_server_replicas=9', 'saxml_model_server_replicas: 9 model server(s) need 1 nvidia.com/gpu each'),
    ('saxml_model_server_gpu_image=""', 'saxml_model_server_gpu_image: is required with saxml_accelerator gpu'),
    ('{"saxml_models": [{"name": "Bad-Name", "model_path": "a.B", "replicas": 1}]}', 'saxml_models[0]: each model needs'),
    ('saxml_gcp_service_account=someone@example.com', 'saxml_gcp_service_account: must be empty or a Google service account'),
]


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[b[0][:48] for b in BAD_VARS])
def test_preflight_refuses_before_any_change(run_playbook, extra, message):
    mark = sandbox_journal.mark()
    run = run_playbook(PLAYBOOK, '-e', extra)
    assert run.returncode != 0, run
    assert message in run.output, run
    assert _admin_writes(mark) == 0, run
    assert run.activity['aws_mutating'] == 0, run
