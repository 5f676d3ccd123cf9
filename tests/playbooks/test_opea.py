"""Role opea through playbooks/opea.yml on the sandbox inventory, as a user runs it.

The fixture chart tests/fixtures/charts/chatqna (with its components as subcharts) and the
component charts opea-tgi, opea-tei, opea-teirerank (chart names tgi, tei, teirerank) stand in for
OPEA's charts. With opea_hardware=nvidia the TGI pod requests nvidia.com/gpu on the capability=gpu
nodes that playbooks/cluster_gpu.yml gives the sandbox; everything else runs on capability=cpu.
"""
import base64
import filecmp
import json
import os
import subprocess
import uuid

import pytest
import yaml

import sandbox_journal
from playbook_helpers import assert_absent_previewed, helm_releases, kube_get, kubectl

PLAYBOOK = 'playbooks/opea.yml'
NAMESPACE = 'opea'
RELEASE = 'chatqna'
SECRET = 'chatqna-hf-token'
ADMIN = os.environ.get('SANDBOX_KUBE_ADMIN_USER', 'sandbox-admin')
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CHARTS = os.path.join(ROOT, 'tests', 'fixtures', 'charts')
# A distinctive token for each test session: it must never reach the output nor a ConfigMap.
TOKEN = 'hf_' + uuid.uuid4().hex
MIRROR = os.environ.get('SANDBOX_CHART_MIRROR', '')
# The sandbox's chart mirror holds the vendor's chatqna (GENAI_STACK_CHART_DIR had it), not the stand-in.
VENDOR_CHATQNA = 'chatqna' not in os.environ.get('SANDBOX_STANDIN_CHARTS', 'chatqna').split(',')


def _nodes(selector):
    return {n['metadata']['name']: n for n in kube_get('nodes', '-l', selector)['items']}


def _admin_writes(run_mark):
    return sandbox_journal.since(run_mark, kube_user=ADMIN)


@pytest.fixture(scope='module')
def labelled_nodes(gpu_capacity):  # pylint: disable=unused-argument
    """GPU nodes and capability=cpu nodes from playbooks/cluster_gpu.yml (the shared gpu_capacity fixture)."""
    return {'gpu': _nodes('capability=gpu'), 'cpu': _nodes('capability=cpu')}


@pytest.fixture
def token_env():
    return {'OPEA_HF_TOKEN': TOKEN}


def test_deploy_nvidia_rerun_check_verify_and_teardown(run_playbook, labelled_nodes, token_env):
    assert labelled_nodes['gpu'] and labelled_nodes['cpu'], labelled_nodes
    nvidia = ('-e', 'opea_hardware=nvidia')
    try:
        first = run_playbook(PLAYBOOK, *nvidia, '-vvv', '--diff', env_extra=token_env)
        assert first.returncode == 0, first
        assert first.changed > 0, first
        first.assert_wrote()  # the positive control of the no-write checks below
        assert TOKEN not in first.output
        assert 'tgi on nvidia.com/gpu' in first.output, first

        # By another route: helm's view, the Secret, the ConfigMaps, the pods and their nodes.
        releases = json.loads(subprocess.run([os.environ['HELM_BIN'], 'list', '-n', NAMESPACE, '-o', 'json'], stdout=subprocess.PIPE,
                                             text=True, check=True).stdout)
        assert [(r['name'], r['chart'], r['status']) for r in releases] == [(RELEASE, 'chatqna-1.4.0', 'deployed')]
        secret = kube_get('secret', '-n', NAMESPACE, SECRET)
        assert base64.b64decode(secret['data']['HF_TOKEN']).decode() == TOKEN
        for config in kube_get('configmaps', '-n', NAMESPACE)['items']:
            assert TOKEN not in json.dumps(config.get('data', {})), config['metadata']['name']
        pods = kube_get('pods', '-n', NAMESPACE, '-l', 'app.kubernetes.io/instance=%s' % RELEASE)['items']
        by_component = {p['metadata']['labels']['app.kubernetes.io/name']: p for p in pods}
        expected = ['chatqna', 'data-prep', 'redis-vector-db', 'retriever-usvc', 'tei', 'teirerank', 'tgi']
        if VENDOR_CHATQNA:
            expected += ['chatqna-ui', 'nginx']  # the vendor's chart also runs its UI and the nginx in front
        assert sorted(by_component) == sorted(expected)
        for name, pod in by_component.items():
            assert pod['status']['phase'] == 'Running', name
            container = pod['spec']['containers'][0]
            limits = container.get('resources', {}).get('limits', {})
            if name == 'tgi':
                assert pod['spec']['nodeName'] in labelled_nodes['gpu'], pod['spec']['nodeName']
                assert limits.get('nvidia.com/gpu') == '1'
                assert container['image'] == 'ghcr.io/huggingface/text-generation-inference:2.4.0'
            else:
                assert pod['spec']['nodeName'] in labelled_nodes['cpu'], (name, pod['spec']['nodeName'])
                assert 'nvidia.com/gpu' not in limits, name
            if name in ('tgi', 'tei', 'teirerank'):
                refs = {e['name']: e['valueFrom']['secretKeyRef'] for e in container['env']}
                assert refs['HF_TOKEN'] == {'name': SECRET, 'key': 'HF_TOKEN'}

        mark = sandbox_journal.mark()
        second = run_playbook(PLAYBOOK, *nvidia, env_extra=token_env)
        assert second.returncode == 0, second
        assert second.changed == 0, second
        assert _admin_writes(mark)['kube_writes'] == 0, _admin_writes(mark)

        mark = sandbox_journal.mark()
        check = run_playbook(PLAYBOOK, *nvidia, '--check', '--diff', '-e', 'opea_llm_model_id=meta-llama/Meta-Llama-3-8B-Instruct',
                             env_extra=token_env)
        assert check.returncode == 0, check
        assert check.changed >= 1, check
        assert 'meta-llama/Meta-Llama-3-8B-Instruct' in check.output, check
        assert _admin_writes(mark)['kube_writes'] == 0, _admin_writes(mark)
        config = kube_get('configmap', '-n', NAMESPACE, 'chatqna-tgi-config')
        assert config['data']['MODEL_ID'] == 'Intel/neural-chat-7b-v3-3'

        # A token given as a chart value would land in a ConfigMap: refused before the upgrade.
        mark = sandbox_journal.mark()
        leak = run_playbook(PLAYBOOK, *nvidia, '-e', json.dumps({'opea_values': {'global': {'HUGGINGFACEHUB_API_TOKEN': TOKEN}}}),
                            env_extra=token_env)
        assert leak.returncode != 0, leak
        assert 'opea_values: the rendered manifests expose the Hugging Face token' in leak.output, leak
        assert 'configmap-chatqna-tgi-config.yaml: ConfigMap key HF_TOKEN holds a token' in leak.output, leak
        assert TOKEN not in leak.output
        assert _admin_writes(mark)['kube_writes'] == 0, _admin_writes(mark)

        # The teardown previewed: planned and named, nothing removed.
        assert_absent_previewed(run_playbook, PLAYBOOK, 'opea_state', names=['status: deployed', 'exists: true'],
                                env_extra=token_env)
        assert base64.b64decode(kube_get('secret', '-n', NAMESPACE, SECRET)['data']['HF_TOKEN']).decode() == TOKEN
        assert RELEASE in helm_releases(NAMESPACE)
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'opea_state=absent', env_extra=token_env)
    assert down.returncode == 0, down
    assert kubectl('get', 'namespace', NAMESPACE, check=False).returncode != 0
    releases = json.loads(subprocess.run([os.environ['HELM_BIN'], 'list', '-A', '-o', 'json'], stdout=subprocess.PIPE,
                                         text=True, check=True).stdout)
    assert RELEASE not in [r['name'] for r in releases if r['namespace'] == NAMESPACE]
    again = run_playbook(PLAYBOOK, '-e', 'opea_state=absent', env_extra=token_env)
    assert again.returncode == 0 and again.changed == 0, again


def _objects(directory):
    return {name: yaml.safe_load(open(os.path.join(directory, name), encoding='utf-8')) for name in sorted(os.listdir(directory))}


def _limits(deployment):
    return deployment['spec']['template']['spec']['containers'][0].get('resources', {}).get('limits', {})


def test_export_per_profile_and_workload(run_playbook, tmp_path, token_env):
    export = str(tmp_path / 'manifests')
    args = ('-e', 'opea_mode=export', '-e', 'opea_export_dir=%s' % export, '-e', '{"opea_export_workloads": ["chatqna", "tgi"]}')
    mark = sandbox_journal.mark()
    first = run_playbook(PLAYBOOK, *args, env_extra=token_env)
    assert first.returncode == 0, first
    assert first.changed > 0, first
    assert sorted(os.listdir(export)) == ['gaudi', 'nvidia', 'xeon']
    for profile in ('xeon', 'gaudi', 'nvidia'):
        assert sorted(os.listdir(os.path.join(export, profile))) == ['chatqna', 'tgi']
        umbrella = _objects(os.path.join(export, profile, 'chatqna'))
        assert 'deployment-chatqna-tgi.yaml' in umbrella and 'deployment-chatqna-teirerank.yaml' in umbrella
        assert not [name for name in umbrella if name.startswith('secret-')]
        alone = _objects(os.path.join(export, profile, 'tgi'))
        assert sorted(alone) == ['configmap-tgi-config.yaml', 'deployment-tgi.yaml', 'service-tgi.yaml']
        for name, obj in list(umbrella.items()) + list(alone.items()):
            text = yaml.safe_dump(obj)
            assert TOKEN not in text and base64.b64encode(TOKEN.encode()).decode() not in text, (profile, name)
        tgi = alone['deployment-tgi.yaml']
        assert _limits(tgi) == _limits(umbrella['deployment-chatqna-tgi.yaml'])
        expected = {'xeon': {}, 'gaudi': {'habana.ai/gaudi': 1}, 'nvidia': {'nvidia.com/gpu': 1}}[profile]
        assert _limits(tgi) == expected, (profile, _limits(tgi))
        rerank = _limits(umbrella['deployment-chatqna-teirerank.yaml'])
        assert rerank == ({'habana.ai/gaudi': 1} if profile == 'gaudi' else {}), (profile, rerank)
    assert _admin_writes(mark)['kube_writes'] == 0, _admin_writes(mark)

    second = run_playbook(PLAYBOOK, *args, env_extra=token_env)
    assert second.returncode == 0 and second.changed == 0, second

    before = _objects(os.path.join(export, 'nvidia', 'tgi'))
    check = run_playbook(PLAYBOOK, *args, '--check', '--diff', '-e', 'opea_llm_accelerators=2', env_extra=token_env)
    assert check.returncode == 0 and check.changed >= 1, check
    assert _objects(os.path.join(export, 'nvidia', 'tgi')) == before

    leak = run_playbook(PLAYBOOK, *args, '-e', json.dumps({'opea_values': {'global': {'HUGGINGFACEHUB_API_TOKEN': TOKEN}}}),
                        env_extra=token_env)
    assert leak.returncode != 0, leak
    assert 'expose the Hugging Face token' in leak.output, leak
    assert TOKEN not in leak.output
    for root, _dirs, files in os.walk(export):
        for name in files:
            with open(os.path.join(root, name), encoding='utf-8') as handle:
                assert TOKEN not in handle.read(), os.path.join(root, name)

    down = run_playbook(PLAYBOOK, *args, '-e', 'opea_state=absent', env_extra=token_env)
    assert down.returncode == 0, down
    assert os.listdir(export) == []


def test_component_fixtures_match_the_subcharts():
    """The component charts pushed on their own are the very subcharts of the chatqna fixture."""
    for name in ('tgi', 'tei', 'teirerank'):
        comparison = filecmp.dircmp(os.path.join(CHARTS, 'opea-' + name), os.path.join(CHARTS, 'chatqna', 'charts', name))
        stack = [comparison]
        while stack:
            current = stack.pop()
            assert not (current.left_only or current.right_only or current.diff_files), (name, current.left, current.diff_files)
            stack.extend(current.subdirs.values())


# Each run holds bad inputs whose checks all run (the preflight's assert loops report every
# failing rule), so one run shows several refusals; each message names its variable.
BAD_RUNS = [
    ({'opea_hardware': 'xeon', 'opea_hf_token': '', 'opea_llm_accelerators': 0, 'opea_llm_model_id': 'not a model', 'opea_namespace': 'Bad_NS',
      'opea_images': {'xeon': {'tgi': {'repository': 'x'}}}, 'opea_hf_token_secret_key': 'no/slash'},
     ['opea_hf_token: is required to deploy', 'opea_llm_accelerators: must be a whole number of at least 1',
      'opea_llm_model_id: must be a Hugging Face model id', 'opea_namespace: must be a namespace name',
      'opea_images: needs a repository and a tag for xeon.tgi', 'opea_hf_token_secret_key: must be a Secret key']),
    ({'opea_hardware': 'gaudi'}, ['opea_hardware: gaudi needs a node labelled capability=gpu with 1 habana.ai/gaudi allocatable']),
    ({'opea_hardware': 'nvidia', 'opea_llm_accelerators': 4}, ['opea_hardware: nvidia needs a node labelled capability=gpu with 4 nvidia.com/gpu']),
    ({'opea_cpu_node_selector': {'capability': 'none-such'}}, ['opea_cpu_node_selector: no node is labelled capability=none-such']),
    ({'opea_hardware': 'tpu'}, ['opea_hardware']),
    ({'opea_mode': 'export', 'opea_export_profiles': ['arm'], 'opea_export_workloads': ['codegen']},
     ['opea_export_dir: is required with opea_mode export', 'opea_export_profiles: must list some of',
      'opea_export_workloads: must list some of']),
    # The chart's own judgement (a render of what would be installed), blamed on the variable to change: a
    # pinned version the chart mirror lacks, and values the chart refuses (ChatQnA has no values.schema.json;
    # the vendor's chart fails without an LLM backend, the stand-in only on a value of the wrong type).
    ({'opea_chart_version': '9.9.9'}, ['opea_chart_version: helm cannot render the chart %s/chatqna 9.9.9' % MIRROR]),
    ({'opea_values': {'tgi': {'enabled': False}}},
     ['opea_values: helm cannot render the chart %s/chatqna 1.4.0' % MIRROR, 'ChatQnA needs a LLM inference backend!'])
    if VENDOR_CHATQNA else
    ({'opea_values': {'tgi': {'image': 'tgi:latest'}}},
     ['opea_values.tgi: helm cannot render the chart %s/chatqna 1.4.0' % MIRROR, "can't evaluate field repository"]),
]


@pytest.mark.alongside
@pytest.mark.parametrize('extra,messages', BAD_RUNS, ids=[sorted(b[0])[0] + '-%d' % i for i, b in enumerate(BAD_RUNS)])
def test_preflight_refuses_before_any_change(run_playbook, labelled_nodes, token_env, extra, messages):
    mark = sandbox_journal.mark()
    run = run_playbook(PLAYBOOK, '-e', json.dumps(extra), env_extra=token_env)
    assert run.returncode != 0, run
    for message in messages:
        assert message in run.output, (message, run)
    assert 'Install or upgrade ChatQnA' not in run.output, run
    assert TOKEN not in run.output
    assert _admin_writes(mark)['kube_writes'] == 0, _admin_writes(mark)


@pytest.mark.alongside
def test_export_refuses_before_any_write(run_playbook, token_env, tmp_path):
    """Export mode renders every profile and workload before writing any: a value that a component chart
    (rendered on its own) refuses fails the run with nothing written, naming the variable."""
    export = tmp_path / 'manifests'
    mark = sandbox_journal.mark()
    run = run_playbook(PLAYBOOK, '-e', 'opea_mode=export', '-e', 'opea_export_dir=%s' % export,
                       '-e', json.dumps({'opea_export_workloads': ['tgi'], 'opea_values': {'tgi': {'image': 'tgi:latest'}}}), env_extra=token_env)
    assert run.returncode != 0, run
    assert 'opea_values.tgi: helm cannot render the chart %s/tgi 1.4.0 (profile xeon) with the values the role would export' % MIRROR in run.output, run
    assert "can't evaluate field repository" in run.output, run
    assert not export.exists(), sorted(str(p) for p in export.rglob('*'))
    assert TOKEN not in run.output
    assert _admin_writes(mark)['kube_writes'] == 0, _admin_writes(mark)
