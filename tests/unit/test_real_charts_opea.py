"""The vendor's real chatqna chart with the values and the post-renderer of genai.stack.opea, per hardware profile.

The values come from the role's own defaults/main.yml and vars/main.yml, templated by Ansible's Templar
(the role's values template, with _opea_profile set as the role's tasks set it); the post-renderer is the
role's files/hf_token_post_renderer.py, written as the role's tasks/post_renderer.yml writes it (its
first line and configuration templated from that task file). The real helm binary renders the real
chart package of the pinned version (../shared/vendor-charts, or GENAI_STACK_CHART_DIR).

Asserted, for xeon, gaudi and nvidia: no ConfigMap holds a token-named key or the token; every container
and initContainer that the chart wires to a token-carrying ConfigMap (found in the chart's own rendering,
not listed here) reads HF_TOKEN from the role's Secret through a secretKeyRef; CPU-only components select
the CPU nodes; accelerated ones select the accelerator nodes, tolerate them and request what the
profile promises. The same checks run on the rendering without the post-renderer and must fail there.
"""
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml
from real_charts import CHART_DIR, helm_binary, missing_helm

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ROLE = os.path.join(ROOT, 'roles', 'opea')
KUBE_VERSION = '1.31.4'  # the sandbox's apiserver
TOKEN = 'hf_' + 'RealChartProbe' * 2
PROFILES = ['xeon', 'gaudi', 'nvidia']
# The components the vendor's templates make read the token (measured: docs/notes/real-charts-gap.md);
# the test finds the readers in the rendering itself and checks these are among them.
# Values that are Kubernetes objects, whatever the chart's example default holds.
FREE_FORM = {'resources', 'nodeSelector', 'affinity', 'tolerations'}
KNOWN_READERS = {'chatqna-tgi', 'chatqna-tei', 'chatqna-teirerank', 'chatqna-data-prep', 'chatqna-retriever-usvc'}


HELM = helm_binary()


def templar(extra=None):
    """The role's defaults and vars (extra vars win, as -e does), as a function of an expression."""
    loader = DataLoader()
    variables = {'role_path': ROLE, 'inventory_hostname': 'unit', 'ansible_playbook_python': sys.executable,
                 'opea_hf_token': TOKEN}
    for part in ('defaults', 'vars'):
        variables.update(loader.load_from_file(os.path.join(ROLE, part, 'main.yml'), trusted_as_template=True) or {})
    variables.update(extra or {})
    engine = Templar(loader=loader, variables=variables)
    return lambda expression, **more: engine.copy_with_new_env(available_variables=dict(variables, **more)).template(
        trust_as_template(expression))


@pytest.fixture(scope='module')
def chart():
    if not os.path.isdir(CHART_DIR):
        pytest.skip('no vendor chart folder at %s (set GENAI_STACK_CHART_DIR): the real chart cannot be rendered' % CHART_DIR)
    version = templar()('{{ opea_chart_version }}')
    path = os.path.join(CHART_DIR, 'chatqna-%s.tgz' % version)
    if not os.path.exists(path):
        pytest.skip('chatqna-%s.tgz is not in %s' % (version, CHART_DIR))
    if not HELM:
        missing_helm('the real chart cannot be rendered')
    return path


@pytest.fixture(scope='module')
def post_renderer(tmp_path_factory):
    """The role's post-renderer and its configuration, written from tasks/post_renderer.yml's own items."""
    directory = tmp_path_factory.mktemp('opea-post-render')
    with open(os.path.join(ROLE, 'tasks', 'post_renderer.yml')) as handle:
        task = [t for t in yaml.safe_load(handle) if 'ansible.builtin.copy' in t][0]
    render = templar()
    items = task['loop']
    assert sorted(i['name'] for i in items) == ['hf_token_post_renderer.json', 'hf_token_post_renderer.py']
    with open(os.path.join(ROLE, 'files', 'hf_token_post_renderer.py')) as handle:
        script = handle.read().rstrip('\n')
    for item in items:
        # lookup('file', ...) is replaced by the file's text (the lookup strips the final newline too).
        content = item['content'].replace("{{ lookup('ansible.builtin.file', 'hf_token_post_renderer.py') }}", '{{ _script }}')
        path = directory / item['name']
        path.write_text(render(content, _script=script) if item['name'].endswith('.py') else render(content))
        path.chmod(int(item['mode'], 8))
    return str(directory / 'hf_token_post_renderer.py')


def role_values(profile):
    return templar()('{{ _opea_values }}', _opea_profile=profile)


def render(chart_path, values, post_renderer=None):
    argv = [HELM, 'template', 'chatqna', chart_path, '--namespace', 'opea', '--kube-version', KUBE_VERSION, '-f', '-']
    if post_renderer:
        argv += ['--post-renderer', post_renderer]
    result = subprocess.run(argv, input=json.dumps(values), capture_output=True, text=True, check=False)
    assert result.returncode == 0, 'helm template refused the role\'s values: %s' % result.stderr
    return result.stdout, [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def workloads(objects):
    return [o for o in objects if o['kind'] in ('Deployment', 'StatefulSet', 'DaemonSet')]


def containers(workload):
    spec = workload['spec']['template']['spec']
    return [('init', c) for c in spec.get('initContainers') or []] + [('main', c) for c in spec.get('containers') or []]


def token_readers(objects, pattern):
    """(workload, container) pairs loading, through envFrom, a ConfigMap that the chart gives a token-named key."""
    carriers = {o['metadata']['name'] for o in objects if o['kind'] == 'ConfigMap'
                and any(re.search(pattern, key) for key in (o.get('data') or {}))}
    readers = set()
    for workload in workloads(objects):
        for _kind, container in containers(workload):
            if any((source.get('configMapRef') or {}).get('name') in carriers for source in container.get('envFrom') or []):
                readers.add((workload['metadata']['name'], container['name']))
    return readers


def problems(text, objects, readers, profile):
    """What the rendering breaks of the role's promises (an empty list when it keeps them)."""
    render_var = templar()
    pattern = render_var('{{ _opea_token_key_pattern }}')
    secret = {'name': render_var('{{ opea_hf_token_secret_name }}'), 'key': render_var('{{ opea_hf_token_secret_key }}')}
    cpu = render_var('{{ opea_cpu_node_selector }}')
    accelerator = render_var('{{ opea_accelerator_node_selector }}')
    accelerated = render_var('{{ opea_accelerated_components[_p] if _opea_accelerator_resources[_p] else [] }}', _p=profile)
    resource = render_var('{{ _opea_accelerator_resources[_p] }}', _p=profile)
    gpus = int(render_var('{{ opea_llm_accelerators }}'))
    found = []
    if TOKEN in text:
        found.append('the token is in the rendering')
    for config in (o for o in objects if o['kind'] == 'ConfigMap'):
        for key in (config.get('data') or {}):
            if re.search(pattern, key):
                found.append('ConfigMap %s has key %s' % (config['metadata']['name'], key))
    by_name = {w['metadata']['name']: w for w in workloads(objects)}
    for name, container_name in sorted(readers):
        container = [c for _k, c in containers(by_name[name]) if c['name'] == container_name][0]
        env = {e['name']: e for e in container.get('env') or []}
        wanted = {'name': 'HF_TOKEN', 'valueFrom': {'secretKeyRef': secret}}
        if env.get('HF_TOKEN') != wanted:
            found.append('%s/%s does not read HF_TOKEN from Secret %s' % (name, container_name, secret['name']))
    for workload in workloads(objects):
        name = workload['metadata']['name']
        component = workload['spec']['template']['metadata']['labels'].get('app.kubernetes.io/name')
        spec = workload['spec']['template']['spec']
        for _kind, container in containers(workload):
            for entry in container.get('env') or []:
                if re.search(pattern, entry['name']) and 'value' in entry:
                    found.append('%s/%s sets %s literally' % (name, container['name'], entry['name']))
        limits = {}
        for _kind, container in containers(workload):
            limits.update((container.get('resources') or {}).get('limits') or {})
        if component in accelerated:
            want = gpus if component == 'tgi' else 1
            if spec.get('nodeSelector') != accelerator:
                found.append('%s selects %s, not the accelerator nodes' % (name, spec.get('nodeSelector')))
            if int(limits.get(resource, 0)) != want:
                found.append('%s requests %s %s, not %d' % (name, limits.get(resource, 0), resource, want))
            if not any(t.get('key') == resource for t in spec.get('tolerations') or []):
                found.append('%s does not tolerate %s' % (name, resource))
        else:
            if spec.get('nodeSelector') != cpu:
                found.append('%s (CPU only) selects %s, not the CPU nodes' % (name, spec.get('nodeSelector')))
            if any(key in limits for key in ('nvidia.com/gpu', 'habana.ai/gaudi')):
                found.append('%s (CPU only) requests an accelerator' % name)
    return found


@pytest.mark.parametrize('profile', PROFILES)
def test_role_values_and_post_renderer_on_the_real_chart(chart, post_renderer, profile):
    values = role_values(profile)
    assert TOKEN not in json.dumps(values)  # the release's values (helm get values) never hold it
    raw_text, raw = render(chart, values)
    pattern = templar()('{{ _opea_token_key_pattern }}')
    readers = token_readers(raw, pattern)
    # The chart's own wiring: the model servers' and the retriever/data-prep containers, and the
    # model-downloader initContainers; the post-renderer must reach each of them.
    assert KNOWN_READERS <= {name for name, _c in readers}, readers
    assert {'chatqna-tgi', 'chatqna-tei', 'chatqna-teirerank'} <= {n for n, c in readers if c == 'model-downloader'}, readers
    text, objects = render(chart, values, post_renderer)
    assert problems(text, objects, readers, profile) == []
    # The same objects otherwise: the post-renderer adds and removes nothing but the token wiring.
    assert sorted((o['kind'], o['metadata']['name']) for o in objects) == sorted((o['kind'], o['metadata']['name']) for o in raw)
    # Positive control: without the post-renderer the checks find the ConfigMaps' keys and the unwired readers.
    found = problems(raw_text, raw, readers, profile)
    assert any(p.startswith('ConfigMap chatqna-tgi-config has key HF_TOKEN') for p in found), found
    assert any('chatqna-tgi/model-downloader does not read HF_TOKEN' in p for p in found), found


def test_a_token_given_as_a_chart_value_is_not_hidden_by_the_post_renderer(chart, post_renderer):
    """A token put into the values would be in the release history: it must stay visible to the role's scan."""
    values = role_values('xeon')
    values['global']['HUGGINGFACEHUB_API_TOKEN'] = TOKEN
    text, objects = render(chart, values, post_renderer)
    assert TOKEN in text
    config = [o for o in objects if o['kind'] == 'ConfigMap' and o['metadata']['name'] == 'chatqna-tgi-config'][0]
    assert config['data']['HF_TOKEN'] == TOKEN


def test_role_values_use_only_keys_the_chart_has(chart):
    """Every key path the role sets exists in the chart's values (below an empty default map, or a
    Kubernetes object such as resources, anything is the user's)."""
    defaults = {}
    with tarfile.open(chart) as archive:
        for member in archive.getmembers():
            parts = member.name.split('/')
            if parts[-1] == 'values.yaml' and len(parts) == 2:
                defaults.update(yaml.safe_load(archive.extractfile(member)) or {})
            elif parts[-1] == 'values.yaml' and len(parts) == 4 and parts[1] == 'charts':
                sub = yaml.safe_load(archive.extractfile(member)) or {}
                # a subchart's values sit under its alias in the umbrella (chatqna-ui is the ui chart)
                for key in ('chatqna-ui',) if parts[2] == 'ui' else (parts[2],):
                    defaults[key] = dict(sub, **(defaults.get(key) or {}))

    def unknown(values, known, prefix=''):
        out = []
        for key, value in values.items():
            if not isinstance(known, dict) or key not in known:
                out.append(prefix + key)
            elif isinstance(value, dict) and isinstance(known[key], dict) and known[key] and key not in FREE_FORM:
                out.extend(unknown(value, known[key], prefix + key + '.'))
        return out
    for profile in PROFILES:
        assert unknown(role_values(profile), defaults) == [], profile


# The collection-wide chart mirror contract (no chart needed): the chart is <mirror>/<name in Chart.yaml>, where
# `helm push chatqna-<version>.tgz <mirror>` puts it, with the mirror's login; the role's own settings win.
@pytest.mark.parametrize('extra, repository, login', [
    ({}, 'oci://ghcr.io/opea-project/charts', ('', '', False)),
    ({'genai_stack_chart_mirror': ''}, 'oci://ghcr.io/opea-project/charts', ('', '', False)),
    ({'genai_stack_chart_mirror': 'oci://mirror.example:5000/genai-charts/', 'genai_stack_chart_mirror_username': 'u',
      'genai_stack_chart_mirror_password': 'p', 'genai_stack_chart_mirror_plain_http': True},
     'oci://mirror.example:5000/genai-charts', ('u', 'p', True)),
    ({'genai_stack_chart_mirror': 'oci://mirror.example/genai-charts', 'genai_stack_chart_mirror_username': 'u',
      'genai_stack_chart_mirror_password': 'p', 'opea_chart_repository': 'oci://own.example/opea',
      'opea_registry_username': 'own', 'opea_registry_password': 'secret', 'opea_plain_http': False},
     'oci://own.example/opea', ('own', 'secret', False)),
])
def test_chart_mirror_contract(extra, repository, login):
    render = templar(extra)
    assert render('{{ opea_chart_repository }}') == repository
    assert (render('{{ opea_registry_username }}'), render('{{ opea_registry_password }}'), render('{{ _opea_plain_http }}')) == login
    # What the role's tasks pass as chart_ref (tasks/present.yml, scan.yml and export.yml).
    for name in ('present', 'scan', 'export'):
        with open(os.path.join(ROLE, 'tasks', name + '.yml')) as handle:
            refs = re.findall(r'chart_ref: "(.*)"', handle.read())
        assert refs, name
        for ref in refs:
            assert render(ref, item=['xeon', 'chatqna']) == repository + '/chatqna'
