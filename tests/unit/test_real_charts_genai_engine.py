"""genai_engine's values against the vendor's real charts (arthur-genai-engine, arthur-engine 2.1.686).

The values are computed by the role itself: its defaults/main.yml and vars/main.yml, templated by
ansible-playbook with the inputs of each mode (no cluster). They are rendered with the real helm
binary and the published chart packages of ../shared/vendor-charts (GENAI_STACK_CHART_DIR), so the
chart's values.schema.json and templates judge them. The rendered objects are then held to what
the role promises: every Secret a pod reads is one the role writes (with those keys), GPU pods land
on the nodes cluster_gpu labels and nothing taints them, the Service the role verifies is the one
the chart makes, and the role's chart-mirror variables pick the chart the mode needs.
"""
import json
import os
import subprocess
import tarfile
import sys

import pytest
import yaml
from real_charts import CHART_DIR, require_helm

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLE = os.path.join(ROOT, 'roles', 'genai_engine')
BIN = os.path.dirname(sys.executable)
VERSION = yaml.safe_load(open(os.path.join(ROLE, 'defaults', 'main.yml'), encoding='utf-8'))['genai_engine_chart_version']

# The modes the role offers: (genai_engine_mode, genai_engine_ml_engine).
MODES = {'cpu': ('cpu', False), 'gpu': ('gpu', False), 'cpu-ml': ('cpu', True), 'gpu-ml': ('gpu', True)}
# A user's minimum inputs (as in inventories/sandbox), nothing else.
INPUTS = {
    'genai_engine_ingress_url': 'genai-engine.example.com',
    'genai_engine_postgres_host': 'db.example.com',
    'genai_engine_openai_gpt_names_endpoints_keys': 'gpt::https://x.openai.azure.com/::k',
    'genai_engine_ml_engine_client_id': 'client', 'genai_engine_ml_engine_client_secret': 'secret',
}


def _package(name):
    path = os.path.join(CHART_DIR, '%s-%s.tgz' % (name, VERSION))
    if not os.path.exists(path):
        pytest.skip('%s not found (set GENAI_STACK_CHART_DIR to the vendor chart folder): the real chart was not rendered' % path)
    return path


def _run(args, **kw):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', PATH=BIN + os.pathsep + os.environ['PATH'])
    return subprocess.run(args, capture_output=True, text=True, check=False, env=env, **kw)


@pytest.fixture(scope='module')
def role_output(tmp_path_factory):
    """What the role computes for every mode, from one ansible-playbook run (task vars beat vars_files as inventory vars would)."""
    tmp = tmp_path_factory.mktemp('genai_engine_values')
    exports = {'values': '_genai_engine_release_values', 'chart_ref': '_genai_engine_chart_ref',
               'secret_names': '_genai_engine_secret_names', 'workload': '_genai_engine_workload',
               'plain_http': '_genai_engine_chart_plain_http', 'username': '_genai_engine_chart_username'}
    cases = {mode: dict(INPUTS, genai_engine_mode=m, genai_engine_ml_engine=ml) for mode, (m, ml) in MODES.items()}
    cases['mirror'] = dict(INPUTS, genai_stack_chart_mirror='oci://mirror.example.com/charts/', genai_stack_chart_mirror_username='u',
                           genai_stack_chart_mirror_plain_http=True)
    cases['mirror-ml'] = dict(cases['mirror'], genai_engine_ml_engine=True)
    cases['mirror-explicit'] = dict(cases['mirror'], genai_engine_chart_ref='oci://own.example.com/x/arthur-genai-engine',
                                    genai_engine_chart_registry_username='me', genai_engine_chart_plain_http=False)
    tasks = [{'name': case, 'ansible.builtin.copy': {'dest': str(tmp / (case + '.json')), 'mode': '0600',
                                                     'content': '{{ %s | to_nice_json }}' % ('{' + ', '.join('%r: %s' % kv for kv in exports.items()) + '}')},
              'vars': variables} for case, variables in cases.items()]
    play = [{'hosts': 'localhost', 'gather_facts': False, 'connection': 'local', 'vars': {'ansible_python_interpreter': sys.executable},
             'vars_files': [os.path.join(ROLE, 'defaults', 'main.yml'), os.path.join(ROLE, 'vars', 'main.yml')], 'tasks': tasks}]
    (tmp / 'values.yml').write_text(yaml.safe_dump(play, sort_keys=False), encoding='utf-8')
    proc = _run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', str(tmp / 'values.yml')])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return {case: json.loads((tmp / (case + '.json')).read_text(encoding='utf-8')) for case in cases}


_RENDERED = {}


def _render(out, tmp_path):
    """The chart's objects for these values (rendered once per set of values)."""
    key = json.dumps(out['values'], sort_keys=True)
    if key not in _RENDERED:
        _RENDERED[key] = _render_now(out, tmp_path)
    return _RENDERED[key]


def _render_now(out, tmp_path):
    chart = _package('arthur-engine' if out['values'].get('arthur-ml-engine') else 'arthur-genai-engine')
    values = tmp_path / 'values.json'
    values.write_text(json.dumps(out['values']), encoding='utf-8')
    proc = _run([require_helm('cannot render the real charts'), 'template', 'arthur-engine', chart, '-n', 'arthur', '-f', str(values),
                 '--kube-version', '1.31.4'])
    assert proc.returncode == 0, 'the real chart refuses the role\'s values:\n' + proc.stderr[-4000:]
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _created_secrets(names):
    """{secret name: keys} the role's present tasks write (k8s_secret string_data and data keys; names through _genai_engine_secret_names)."""
    with open(os.path.join(ROLE, 'tasks', 'present.yml'), encoding='utf-8') as handle:
        tasks = yaml.safe_load(handle)
    out = {}
    for task in tasks:
        args = task.get('genai.stack.k8s_secret')
        keys = set((args or {}).get('string_data') or {}) | set((args or {}).get('data') or {})
        if not keys:
            continue
        ref = args['name'].strip('{} ').split('.')[-1]
        out[names[ref]] = keys
    return out


def _pod_specs(objects):
    return {(o['kind'], o['metadata']['name']): o['spec']['template']['spec'] for o in objects if o['kind'] in ('Deployment', 'DaemonSet')}


@pytest.mark.parametrize('mode', sorted(MODES))
def test_real_chart_renders_the_roles_values(role_output, mode, tmp_path):
    out = role_output[mode]
    objects = _render(out, tmp_path)
    kinds = {(o['kind'], o['metadata']['name']) for o in objects}
    gpu, ml = MODES[mode][0] == 'gpu', MODES[mode][1]
    assert (('DaemonSet' if gpu else 'Deployment'), out['workload']) in kinds, sorted(kinds)
    assert (('Deployment', 'arthur-ml-engine') in kinds) == ml, sorted(kinds)
    assert out['chart_ref'].endswith('/arthur-engine' if ml else '/arthur-genai-engine'), out['chart_ref']


@pytest.mark.parametrize('mode', sorted(MODES))
def test_every_secret_a_pod_reads_is_written_by_the_role(role_output, mode, tmp_path):
    out = role_output[mode]
    objects = _render(out, tmp_path)
    created = _created_secrets(out['secret_names'])
    read = set()
    for spec in _pod_specs(objects).values():
        for container in spec.get('containers', []) + spec.get('initContainers', []):
            for env in container.get('env', []):
                ref = (env.get('valueFrom') or {}).get('secretKeyRef')
                if ref:
                    read.add((ref['name'], ref['key']))
    assert read, 'no secretKeyRef rendered: nothing checked'
    missing = sorted((name, key) for name, key in read if key not in created.get(name, ()))
    assert not missing, 'pods read secrets the role does not write: %s (the role writes %s)' % (missing, created)
    # The store key's Secret is also rendered by the chart; the role writes it first with Helm's ownership metadata.
    store = out['secret_names']['secret_store']
    assert any(o['kind'] == 'Secret' and o['metadata']['name'] == store for o in objects)
    present = yaml.safe_load(open(os.path.join(ROLE, 'tasks', 'present.yml'), encoding='utf-8'))
    task = next(t['genai.stack.k8s_secret'] for t in present if (t.get('genai.stack.k8s_secret') or {}).get('name', '').endswith('.secret_store }}'))
    assert task['labels'] == {'app.kubernetes.io/managed-by': 'Helm'}
    assert set(task['annotations']) == {'meta.helm.sh/release-name', 'meta.helm.sh/release-namespace'}


@pytest.mark.parametrize('mode', ['gpu', 'gpu-ml'])
def test_gpu_pods_select_the_gpu_nodes_and_need_no_toleration(role_output, mode, tmp_path):
    objects = _render(role_output[mode], tmp_path)
    engine = _pod_specs(objects)[('DaemonSet', role_output[mode]['workload'])]
    with open(os.path.join(ROOT, 'roles', 'cluster_gpu', 'defaults', 'main.yml'), encoding='utf-8') as handle:
        gpu_defaults = yaml.safe_load(handle)
    # The nodes cluster_gpu makes: its labels, and no taint by default (the chart can tolerate none of NoSchedule).
    assert engine['nodeSelector'] == gpu_defaults['cluster_gpu_labels'], engine['nodeSelector']
    assert gpu_defaults['cluster_gpu_taint'] is False
    assert not engine.get('tolerations')
    # A GPU taint is refused in preflight, naming the variable that adds it.
    preflight = open(os.path.join(ROLE, 'tasks', 'preflight.yml'), encoding='utf-8').read()
    assert 'cluster_gpu_taint: false' in preflight


def test_cpu_pods_select_the_cpu_nodes_and_scale_within_bounds(role_output, tmp_path):
    objects = _render(role_output['cpu'], tmp_path)
    engine = _pod_specs(objects)[('Deployment', role_output['cpu']['workload'])]
    assert engine['nodeSelector'] == {'capability': 'cpu'}
    hpa = next(o for o in objects if o['kind'] == 'HorizontalPodAutoscaler')
    assert hpa['spec']['minReplicas'] == 2 and hpa['spec']['maxReplicas'] == 10
    assert all(m['resource']['target']['averageUtilization'] for m in hpa['spec']['metrics'])


@pytest.mark.parametrize('mode', sorted(MODES))
def test_the_service_the_role_verifies_is_the_charts(role_output, mode, tmp_path):
    out = role_output[mode]
    objects = _render(out, tmp_path)
    services = {o['metadata']['name']: o for o in objects if o['kind'] == 'Service'}
    name = out['workload'] + '-service'
    assert name in services, sorted(services)
    assert [(p['port'], str(p['targetPort'])) for p in services[name]['spec']['ports']] == [(80, '3030')]
    verify = open(os.path.join(ROLE, 'tasks', 'verify.yml'), encoding='utf-8').read()
    assert "_genai_engine_workload }}-service" in verify and "selectattr('port', 'eq', 80)" in verify and "['3030']" in verify
    engine = _pod_specs(objects)[('DaemonSet' if MODES[mode][0] == 'gpu' else 'Deployment', out['workload'])]
    ports = [p['containerPort'] for c in engine['containers'] for p in c.get('ports', [])]
    assert 3030 in ports or not ports, ports


def test_chart_mirror_contract(role_output):
    assert role_output['cpu']['chart_ref'] == 'oci://ghcr.io/arthur-ai/arthur-engine/charts/arthur-genai-engine'
    assert role_output['cpu-ml']['chart_ref'] == 'oci://ghcr.io/arthur-ai/arthur-engine/charts/arthur-engine'
    assert role_output['cpu']['plain_http'] is False and role_output['cpu']['username'] == ''
    mirror = role_output['mirror']
    assert mirror['chart_ref'] == 'oci://mirror.example.com/charts/arthur-genai-engine'
    assert role_output['mirror-ml']['chart_ref'] == 'oci://mirror.example.com/charts/arthur-engine'
    assert mirror['plain_http'] is True and mirror['username'] == 'u'
    explicit = role_output['mirror-explicit']
    assert explicit['chart_ref'] == 'oci://own.example.com/x/arthur-genai-engine'
    assert explicit['plain_http'] is False and explicit['username'] == 'me'


STAND_IN = os.path.join(ROOT, 'tests', 'fixtures', 'charts', 'arthur-genai-engine')


def _objects_of(chart, values, tmp_path):
    path = tmp_path / 'stand-in-values.json'
    path.write_text(json.dumps(values), encoding='utf-8')
    proc = _run([require_helm('cannot render the real charts'), 'template', 'arthur-engine', chart, '-n', 'arthur', '-f', str(path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _interface(objects):
    """What the role relies on: workloads and their node selectors, secrets read, Services and ports."""
    out = set()
    for (kind, name), spec in _pod_specs(objects).items():
        out.add((kind, name, json.dumps(spec.get('nodeSelector'), sort_keys=True)))
        for container in spec['containers']:
            out |= {('secretKeyRef', e['valueFrom']['secretKeyRef']['name'], e['valueFrom']['secretKeyRef']['key'])
                    for e in container.get('env', []) if 'secretKeyRef' in (e.get('valueFrom') or {})}
    out |= {('Service', o['metadata']['name'], json.dumps(o['spec']['ports'][0]['port']), str(o['spec']['ports'][0]['targetPort']))
            for o in objects if o['kind'] == 'Service'}
    return out


def test_stand_in_has_the_real_charts_version_and_required_values():
    real = _package('arthur-genai-engine')
    with open(os.path.join(STAND_IN, 'Chart.yaml'), encoding='utf-8') as handle:
        chart = yaml.safe_load(handle)
    assert (chart['name'], str(chart['version'])) == ('arthur-genai-engine', VERSION)

    with tarfile.open(real) as tar:
        real_schema = json.load(tar.extractfile('arthur-genai-engine/values.schema.json'))
    with open(os.path.join(STAND_IN, 'values.schema.json'), encoding='utf-8') as handle:
        stand_in_schema = json.load(handle)
    assert sorted(stand_in_schema['required']) == sorted(real_schema['required'])
    assert not os.path.exists(os.path.join(STAND_IN, 'values.yaml')), 'the published package has no values.yaml: nor may the stand-in'


@pytest.mark.parametrize('mode', ['cpu', 'gpu'])
def test_stand_in_renders_what_the_real_chart_renders(role_output, mode, tmp_path):
    values = role_output[mode]['values']
    real = _interface(_render(role_output[mode], tmp_path))
    assert _interface(_objects_of(STAND_IN, values, tmp_path)) == real
