"""The Adaptive stand-in chart has the real chart's values interface, and the role writes only that.

Adaptive's chart may not be redistributed, so tests/fixtures/charts/adaptive stands in for it. These
tests hold the stand-in to facts of the real chart 0.48.2 (adaptive-ml/adaptive-helm-chart at 2811a56,
charts/adaptive), written down here and in docs/notes/adaptive-0.48.2-value-keys.txt:

- its value key paths equal the notes' list, both ways (a key missing or added fails);
- the Secret keys its workloads read, and those of the Secrets it makes, equal the real chart's;
- it refuses what the real chart refuses (harmony.replicaCount, no compute pool, Azure without an
  account name, existing Secrets next to inline values, missing required values);
- the values the role computes (its own values.yml tasks, run by ansible-playbook, for each mode the
  role offers) use only key paths of that list, render with the stand-in, and give the objects the
  role's verify checks; the role writes exactly the keys the chart reads into its Secrets;
- the collection-wide chart mirror contract: chart reference and registry login follow
  genai_stack_chart_mirror*, and an explicit adaptive_chart_ref still wins.
"""
import json
import os
import subprocess
import sys

import pytest
import yaml
from real_charts import require_helm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
CHART = os.path.join(ROOT, 'tests', 'fixtures', 'charts', 'adaptive')
KEY_LIST = os.path.join(ROOT, 'docs', 'notes', 'adaptive-0.48.2-value-keys.txt')
BIN = os.path.dirname(sys.executable)

# Facts of the real chart 0.48.2: the Secret keys its templates read (secretKeyRef) from the Secrets
# the role provides, and the keys of the Secrets it makes itself when none is given.
REAL_SECRET_KEYS = {
    'existingControlPlaneSecret': {'dbUsername', 'dbPassword', 'dbHost', 'dbName', 'cookiesSecret', 'oidcProviders',
                                   'internalJwtPrivateKeyV4Base64'},
    'existingHarmonySecret': {'modelRegistryUrl', 'sharedDirectoryUrl'},
    'existingRedisSecret': {'redisUrl'},
}
REAL_VERSION = '0.48.2'

# Inline values that satisfy the chart's required values when no existing Secret is named.
INLINE = {'secrets': {'db': {'username': 'u', 'password': 'p', 'host': 'db:5432', 'database': 'adaptive'},
                      'cookiesSecret': 'c' * 64, 'auth': {'internalJwtPrivateKeyV4Base64': 'a2V5'},
                      'modelRegistryUrl': 's3://b/m', 'sharedDirectoryUrl': 's3://b/s'}}


def _render(values, tmp_path, expect_ok=True):
    path = tmp_path / 'values.json'
    path.write_text(json.dumps(values), encoding='utf-8')
    proc = subprocess.run([require_helm('the stand-in cannot be rendered'), 'template', 'adaptive', CHART, '--namespace', 'adaptive', '-f', str(path)],
                          capture_output=True, text=True, check=False)
    if expect_ok:
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]
    return proc


def _merge(*dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _leaves(node, prefix=''):
    """Key paths of a values tree: a mapping with keys is descended, anything else (an empty mapping, a list, a scalar) is a leaf."""
    if isinstance(node, dict) and node:
        return {p for k, v in node.items() for p in _leaves(v, prefix + k + '.')}
    return {prefix[:-1]}


def _real_keys():
    with open(KEY_LIST, encoding='utf-8') as handle:
        return {line.strip() for line in handle if line.strip() and not line.startswith('#')}


def _stand_in_values():
    with open(os.path.join(CHART, 'values.yaml'), encoding='utf-8') as handle:
        return yaml.safe_load(handle)


def _secret_refs(docs):
    """{Secret name: keys} read through secretKeyRef by every container of the rendered workloads."""
    refs = {}
    for doc in docs:
        for c in doc.get('spec', {}).get('template', {}).get('spec', {}).get('containers', []):
            for env in c.get('env', []):
                ref = env.get('valueFrom', {}).get('secretKeyRef')
                if ref:
                    refs.setdefault(ref['name'], set()).add(ref['key'])
    return refs


def test_stand_in_is_the_pinned_version():
    with open(os.path.join(CHART, 'Chart.yaml'), encoding='utf-8') as handle:
        chart = yaml.safe_load(handle)
    with open(os.path.join(ROOT, 'roles', 'adaptive', 'defaults', 'main.yml'), encoding='utf-8') as handle:
        defaults = yaml.safe_load(handle)
    assert (chart['name'], chart['version']) == ('adaptive', REAL_VERSION) == ('adaptive', defaults['adaptive_chart_version'])
    assert 'dependencies' not in chart, 'the real chart 0.48.2 has no KEDA or monitoring subchart'


def test_stand_in_key_paths_are_the_real_charts():
    real, ours = _real_keys(), _leaves(_stand_in_values())
    assert len(real) == 294, len(real)
    assert not real - ours, 'keys of the real chart missing from the stand-in: %s' % sorted(real - ours)
    assert not ours - real, 'keys of the stand-in the real chart does not have: %s' % sorted(ours - real)


def test_stand_in_reads_the_real_secret_keys(tmp_path):
    names = {'existingControlPlaneSecret': 'cp-given', 'existingHarmonySecret': 'harmony-given', 'existingRedisSecret': 'redis-given'}
    docs = _render({'secrets': names}, tmp_path)
    assert _secret_refs(docs) == {names[k]: keys for k, keys in REAL_SECRET_KEYS.items()}
    # Without existing Secrets the chart makes its own, with the same keys.
    made = {d['metadata']['name']: set(d.get('stringData', d.get('data', {}))) for d in _render(INLINE, tmp_path) if d['kind'] == 'Secret'}
    assert sorted(made.values(), key=sorted) == sorted(REAL_SECRET_KEYS.values(), key=sorted), made


@pytest.mark.parametrize('values, message', [
    ({'harmony': {'replicaCount': 2}}, 'harmony.replicaCount is no longer supported'),
    ({'harmony': {'computePools': []}}, 'harmony.computePools is required'),
    ({'s3proxy': {'enabled': True, 'azure': {'storageAccountKey': 'k'}}}, 's3proxy.azure.storageAccountName is required'),
    ({'secrets': {'existingControlPlaneSecret': 'cp', 'cookiesSecret': 'c' * 64}}, 'secrets.existingControlPlaneSecret is set'),
    ({'secrets': {'existingHarmonySecret': 'h'}}, 'secrets.existingHarmonySecret is set'),
    ({'secrets': {'db': {'host': ''}}}, 'secrets.db.host is required'),
    ({'secrets': {'auth': {'internalJwtPrivateKeyV4Base64': ''}}}, 'secrets.auth.internalJwtPrivateKeyV4Base64 is required'),
    ({'secrets': {'sharedDirectoryUrl': ''}}, 'secrets.sharedDirectoryUrl is required'),
    ({'secrets': {'dbUrl': 'postgres://u:p@h/d'}}, 'secrets.dbUrl is no longer supported'),
], ids=['replicaCount', 'no-pool', 'azure-account', 'cp-inline', 'harmony-inline', 'db-host', 'jwt', 'shared-dir', 'dbUrl'])
def test_stand_in_refuses_what_the_real_chart_refuses(tmp_path, values, message):
    proc = _render(_merge(INLINE, values), tmp_path, expect_ok=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


# Each mode the role offers, with the variables a user gives (the rest are the role's defaults).
BASE = {'adaptive_container_registry': 'registry.example.com', 'adaptive_root_url': 'https://adaptive.example.com'}
MODES = {
    'defaults': {},
    'pools': {'adaptive_compute_pools': [{'name': 'Jobs Pool', 'replicas': 2},
                                         {'name': 'inference', 'replicas': 1, 'gpusPerReplica': 2,
                                          'resources': {'requests': {'cpu': '4', 'memory': '8Gi'}}}],
              'adaptive_harmony_gpus_per_replica': 4, 'adaptive_monitoring_persistence_enabled': True,
              'adaptive_monitoring_storage_class': 'gp3'},
    'azure': {'adaptive_storage_backend': 'azure', 'adaptive_azure_storage_account_name': 'acct', 'adaptive_azure_storage_account_key': 'k'},
    'no-monitoring': {'adaptive_monitoring_enabled': False},
    'mirror': {'genai_stack_chart_mirror': 'oci://mirror.example.com/genai-charts/', 'genai_stack_chart_mirror_username': 'mu',
               'genai_stack_chart_mirror_password': 'mp', 'genai_stack_chart_mirror_plain_http': True},
    'mirror-explicit': {'genai_stack_chart_mirror': 'oci://mirror.example.com/genai-charts', 'genai_stack_chart_mirror_plain_http': True,
                        'adaptive_chart_ref': 'oci://own.example.com/adaptive',
                        'adaptive_chart_registry_username': 'own', 'adaptive_chart_plain_http': False},
}


@pytest.fixture(scope='module')
def role_charts(tmp_path_factory):
    """{mode: the chart reference, login and values the role computes}, from roles/adaptive/tasks/values.yml."""
    out = tmp_path_factory.mktemp('adaptive-values')
    plays = [{'name': mode, 'hosts': 'localhost', 'gather_facts': False, 'vars': dict(BASE, ansible_python_interpreter=sys.executable, **extra),
              'tasks': [{'ansible.builtin.include_role': {'name': 'genai.stack.adaptive', 'tasks_from': 'values.yml'}},
                        {'ansible.builtin.copy': {'content': '{{ _adaptive_chart | to_json }}', 'dest': str(out / (mode + '.json'))}}]}
             for mode, extra in MODES.items()]
    (out / 'play.yml').write_text(yaml.safe_dump(plays, sort_keys=False), encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', PATH=BIN + os.pathsep + os.environ['PATH'])
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(out / 'play.yml')],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {mode: json.loads((out / (mode + '.json')).read_text(encoding='utf-8')) for mode in MODES}


@pytest.mark.parametrize('mode', list(MODES))
def test_role_values_use_only_real_keys_and_render(role_charts, tmp_path, mode):
    real, values = _real_keys(), role_charts[mode]['values']
    # A path is the real chart's when it, or a free-form map or list above it (nodeSelector, computePools), is in the key list.
    unknown = sorted(p for p in _leaves(values) if not any('.'.join(p.split('.')[:n]) in real for n in range(1, p.count('.') + 2)))
    assert not unknown, 'the role writes value keys chart %s does not have (ignored or refused there): %s' % (REAL_VERSION, unknown)
    docs = _render(values, tmp_path)
    kinds = {(d['kind'], d['metadata']['name']) for d in docs}
    pools = values['harmony']['computePools']
    assert {n for k, n in kinds if k == 'StatefulSet' and n.startswith('adaptive-harmony-')} == {
        'adaptive-harmony-' + p['name'].lower().replace(' ', '-').replace('_', '-') for p in pools}
    assert ('Deployment', 'adaptive-controlplane') in kinds
    monitoring = {('Deployment', 'adaptive-lgtm'), ('Deployment', 'adaptive-otel-collector')}
    assert (monitoring <= kinds) == (MODES[mode].get('adaptive_monitoring_enabled', True)), kinds
    assert not monitoring & kinds or MODES[mode].get('adaptive_monitoring_enabled', True)
    # Harmony pods on the GPU nodes the role selects, with the role's resources and GPUs per pod.
    for doc in docs:
        if doc['kind'] == 'StatefulSet' and doc['metadata']['name'].startswith('adaptive-harmony-'):
            pod = doc['spec']['template']['spec']
            pool = next(p for p in pools if doc['metadata']['name'].endswith(p['name'].lower().replace(' ', '-')))
            assert pod['nodeSelector'] == {'capability': 'gpu'}
            assert {'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'} in pod['tolerations']
            requests = pod['containers'][0]['resources']['requests']
            assert requests['nvidia.com/gpu'] == pool.get('gpusPerReplica', values['harmony']['gpusPerReplica'])
            assert requests['cpu'] == pool.get('resources', values['harmony']['resources'])['requests']['cpu']
            assert doc['spec']['replicas'] == pool['replicas']
    # The role's Secrets are the ones the workloads read.
    assert set(_secret_refs(docs)) >= {'adaptive-control-plane-secret', 'adaptive-harmony-secret'}


def test_role_writes_the_secret_keys_the_chart_reads():
    with open(os.path.join(ROOT, 'roles', 'adaptive', 'tasks', 'present.yml'), encoding='utf-8') as handle:
        tasks = yaml.safe_load(handle)
    plain = next(t for t in tasks if t['name'].startswith('Write the control-plane and harmony Secrets'))
    external = next(t for t in tasks if t['name'].startswith('Write the ExternalSecrets'))
    assert [set(item['data']) for item in plain['loop']] == [REAL_SECRET_KEYS['existingControlPlaneSecret'], REAL_SECRET_KEYS['existingHarmonySecret']]
    assert [set(item['keys']) for item in external['loop']] == [REAL_SECRET_KEYS['existingControlPlaneSecret'], REAL_SECRET_KEYS['existingHarmonySecret']]


def test_chart_mirror_contract(role_charts):
    assert role_charts['defaults']['chart_ref'] == 'oci://ghcr.io/adaptive-ml/adaptive'
    assert (role_charts['defaults']['registry_username'], role_charts['defaults']['registry_password_set'],
            role_charts['defaults']['plain_http']) == ('', False, False)
    mirror = role_charts['mirror']
    assert (mirror['chart_ref'], mirror['chart_version']) == ('oci://mirror.example.com/genai-charts/adaptive', REAL_VERSION)
    assert (mirror['registry_username'], mirror['registry_password_set'], mirror['plain_http']) == ('mu', True, True)
    explicit = role_charts['mirror-explicit']
    assert (explicit['chart_ref'], explicit['registry_username'], explicit['plain_http']) == ('oci://own.example.com/adaptive', 'own', False)
