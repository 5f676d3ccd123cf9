"""The inventories the project ships run site.yml as far as its variables go.

inventories/example_eks is the layout a user copies for a real account: it must parse, site.yml
must pass --syntax-check with it, and every rule of each role's preflight that looks only at
variables (the assert tasks whose loop is a literal list of rules, read from
roles/<role>/tasks/preflight.yml) plus the role's meta/argument_specs.yml must hold for its hosts,
with the secrets supplied through the environment variables the inventory documents. Without
those variables the same preflight must stop and name the secret variables, which shows that no
literal secret is written in the inventory. The rules are run, not copied: a temporary role per
stack carries the real defaults, vars, argument spec and the preflight's assert tasks, so the role
defaults keep their (lowest) precedence under the inventory's group_vars.

Both inventories are checked for the GPU capacity site.yml needs; the example for the adaptive
database wiring (the postgres role writes the Secret adaptive reads).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
BIN = os.path.dirname(sys.executable)
EXAMPLE = os.path.join(ROOT, 'inventories', 'example_eks')
SANDBOX = os.path.join(ROOT, 'inventories', 'sandbox')
FLEET = os.path.join(ROOT, 'inventories', 'sandbox_fleet')

# The secrets inventories/example_eks takes from the environment, and the variables they feed.
EXAMPLE_SECRETS = {
    'GENAI_POSTGRES_ADMIN_PASSWORD': ('postgres_admin_password', 'x' * 8 + 'Pg-admin-0'),
    'GENAI_ENGINE_OPENAI_KEYS': ('genai_engine_openai_gpt_names_endpoints_keys',
                                 'gpt-4o::https://example-openai.openai.azure.com/::' + 'k' * 32),
    'OPEA_HF_TOKEN': ('opea_hf_token', 'hf_' + 'a' * 30),
    'ADAPTIVE_OIDC_CLIENT_SECRET': (None, 'c' * 40),
    'ADAPTIVE_REGISTRY_USER': (None, 'adaptive-user'),
    'ADAPTIVE_REGISTRY_PASSWORD': (None, 'p' * 24),
}


def _site_roles():
    """Roles of site.yml, in its order, read from the stack playbooks it imports."""
    with open(os.path.join(ROOT, 'playbooks', 'site.yml'), encoding='utf-8') as handle:
        site = yaml.safe_load(handle)
    roles = []
    for entry in site:
        if 'ansible.builtin.import_playbook' not in entry:
            continue  # a play of site.yml's own (the stand-in summary), no role
        with open(os.path.join(ROOT, 'playbooks', entry['ansible.builtin.import_playbook']), encoding='utf-8') as handle:
            for play in yaml.safe_load(handle):
                for role in play.get('roles', []):
                    name = role['role'] if isinstance(role, dict) else role
                    roles.append(name.split('.')[-1])
    return roles


SITE_ROLES = _site_roles()


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in EXAMPLE_SECRETS}
    env.update(ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
               PATH=BIN + os.pathsep + env.get('PATH', ''))
    env.update(extra)
    return env


# The example's genai_stack_kube is the eks_connection lookup, which asks EKS (DescribeCluster) whenever a
# role's argument validation reads it; these checks of variable rules run with no AWS, so they set it empty.
NO_AWS = ['-e', '{"genai_stack_kube": {}}']


def _run(args, env=None, cwd=ROOT):
    return subprocess.run(args, cwd=cwd, env=env or _env(), capture_output=True, text=True, check=False)


def _variable_rule_tasks(role):
    """The preflight's rule checks (genai.stack.common's rules step) that judge variables only: a literal list of rules,
    no cluster state."""
    with open(os.path.join(ROOT, 'roles', role, 'tasks', 'preflight.yml'), encoding='utf-8') as handle:
        tasks = yaml.safe_load(handle)
    # Names the preflight reads from the cluster or computes from it (register, set_fact): rules
    # that use them judge cluster state, which a real account's run checks on its own.
    state = {t['register'] for t in tasks if 'register' in t}
    state |= {k for t in tasks for k in (t.get('ansible.builtin.set_fact') or {})}
    return [t for t in tasks if (t.get('ansible.builtin.import_role') or {}).get('tasks_from') == 'rules'
            and isinstance((t.get('vars') or {}).get('common_rules'), list)
            and not any(name in yaml.safe_dump(t) for name in state)]


def _preflight_playbook(tmp_path):
    """A playbook of one temporary role per site.yml stack: real defaults, vars, argument spec, rule tasks."""
    roles_dir = tmp_path / 'roles'
    for role in SITE_ROLES:
        source = os.path.join(ROOT, 'roles', role)
        target = roles_dir / role
        for part in ('defaults', 'vars'):
            if os.path.isdir(os.path.join(source, part)):
                shutil.copytree(os.path.join(source, part), target / part)
        (target / 'meta').mkdir(parents=True)
        shutil.copy(os.path.join(source, 'meta', 'argument_specs.yml'), target / 'meta' / 'argument_specs.yml')
        tasks = _variable_rule_tasks(role)
        assert tasks, '%s: no rules step with a literal list of rules in its preflight' % role
        (target / 'tasks').mkdir()
        (target / 'tasks' / 'main.yml').write_text(yaml.safe_dump(tasks, sort_keys=False), encoding='utf-8')
    play = [{'name': 'Variable rules of the preflights', 'hosts': 'eks_clusters', 'gather_facts': False,
             'roles': [{'role': role} for role in SITE_ROLES]}]
    path = tmp_path / 'preflight.yml'
    path.write_text(yaml.safe_dump(play, sort_keys=False), encoding='utf-8')
    return str(path)


def _inventory(path, env=None):
    proc = _run([os.path.join(BIN, 'ansible-inventory'), '-i', path, '--list'], env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _hostvars(path, env=None):
    """Variables of each host as a play sees them (group_vars templated), via ansible-inventory --host."""
    hosts = _inventory(path, env)['eks_clusters']['hosts']
    out = {}
    for host in hosts:
        proc = _run([os.path.join(BIN, 'ansible-inventory'), '-i', path, '--host', host], env=env)
        assert proc.returncode == 0, proc.stderr
        out[host] = json.loads(proc.stdout)
    return out


def test_site_has_every_stack():
    assert SITE_ROLES == ['cluster_gpu', 'cluster_addons', 'observability', 'postgres', 'genai_engine', 'adaptive', 'opea', 'saxml']


def test_example_inventory_parses_and_names_clusters():
    inventory = _inventory(EXAMPLE)
    hosts = inventory['eks_clusters']['hosts']
    assert hosts, inventory
    for host, hostvars in _hostvars(EXAMPLE).items():
        assert hostvars['cluster_gpu_node_role_arn'].startswith('arn:aws:iam::'), host
        assert hostvars['cluster_gpu_subnets'], host


def test_example_site_syntax_check():
    proc = _run([os.path.join(BIN, 'ansible-playbook'), '-i', EXAMPLE, 'site.yml', '--syntax-check'])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'playbook: site.yml' in proc.stdout, proc.stdout


def test_example_preflight_rules_hold_with_the_documented_secrets(tmp_path):
    playbook = _preflight_playbook(tmp_path)
    env = _env(**{name: value for name, (_var, value) in EXAMPLE_SECRETS.items()})
    proc = _run([os.path.join(BIN, 'ansible-playbook'), '-i', EXAMPLE, playbook] + NO_AWS, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    # Each stack's rules ran on every example host (a role with no task run would prove nothing).
    hosts = list(_inventory(EXAMPLE, env)['eks_clusters']['hosts'])
    for role in SITE_ROLES:
        assert 'TASK [%s : ' % role in proc.stdout, role
    for host in hosts:
        assert ('%s ' % host) in proc.stdout.split('PLAY RECAP', 1)[1], proc.stdout[-2000:]
        assert 'failed=0' in proc.stdout.split('PLAY RECAP', 1)[1]


@pytest.mark.parametrize('missing', sorted(n for n, (var, _value) in EXAMPLE_SECRETS.items() if var))
def test_example_preflight_stops_without_a_secret(tmp_path, missing):
    playbook = _preflight_playbook(tmp_path)
    env = _env(**{name: value for name, (_var, value) in EXAMPLE_SECRETS.items() if name != missing})
    proc = _run([os.path.join(BIN, 'ansible-playbook'), '-i', EXAMPLE, playbook] + NO_AWS, env=env, cwd=str(tmp_path))
    assert proc.returncode != 0, proc.stdout[-3000:]
    variable = EXAMPLE_SECRETS[missing][0]
    role = next(r for r in SITE_ROLES if variable.startswith(r + '_'))
    assert '%s preflight: %s: is required' % (role, variable) in proc.stdout, proc.stdout[-3000:]


def test_example_saxml_fits_eks_gpu_nodes():
    for host, hostvars in _hostvars(EXAMPLE).items():
        assert hostvars['saxml_accelerator'] == 'gpu', host
        selector = hostvars['saxml_gpu_node_selector']
        # The labels cluster_gpu puts on the GPU nodes (its defaults), not GKE's.
        with open(os.path.join(ROOT, 'roles', 'cluster_gpu', 'defaults', 'main.yml'), encoding='utf-8') as handle:
            labels = yaml.safe_load(handle)['cluster_gpu_labels']
        assert selector and all(labels.get(k) == v for k, v in selector.items()), (selector, labels)


def _gpu_pods(hv):
    """GPU pods site.yml schedules with these variables (role defaults under them): {what: (GPUs per pod, pods)}."""
    defaults = {}
    for role in SITE_ROLES:
        with open(os.path.join(ROOT, 'roles', role, 'defaults', 'main.yml'), encoding='utf-8') as handle:
            defaults.update(yaml.safe_load(handle))
    var = dict(defaults, **hv)
    per_harmony = int(var['adaptive_harmony_gpus_per_replica'])
    pods = {}
    for pool in var['adaptive_compute_pools']:
        pods['adaptive pool ' + pool['name']] = (int(pool.get('gpusPerReplica', per_harmony)), int(pool['replicas']))
    if var['opea_hardware'] == 'nvidia':
        for component in var['opea_accelerated_components']['nvidia']:
            pods['opea ' + component] = (int(var['opea_llm_accelerators']) if component == 'tgi' else 1, 1)
    if var['saxml_accelerator'] == 'gpu':
        pods['saxml model server'] = (int(var['saxml_gpu_count']), int(var['saxml_model_server_replicas']))
    if var['genai_engine_mode'] == 'gpu':
        pytest.fail('genai_engine gpu mode is a DaemonSet on every GPU node: not counted here')
    return pods


@pytest.mark.parametrize('inventory', [SANDBOX, FLEET, EXAMPLE], ids=['sandbox', 'sandbox_fleet', 'example_eks'])
def test_gpu_nodes_hold_every_gpu_pod_of_site(inventory):
    # nvidia.com/gpu per node as the sandbox's node mirror gives them (sandbox/kube/nodemirror.py).
    gpus_per_node = {'g4dn.2xlarge': 1, 'g4dn.xlarge': 1, 'g5.2xlarge': 1, 'g5.12xlarge': 4, 'p4d.24xlarge': 8}
    env = _env(SANDBOX_REGISTRY='127.0.0.1:1', PGHOST='127.0.0.1', PGPORT='5432', PGUSER='postgres', PGPASSWORD='x' * 16)
    for host, hostvars in _hostvars(inventory, env).items():
        pods = _gpu_pods(hostvars)
        size = int(hostvars['cluster_gpu_desired_size'])
        assert size <= int(hostvars['cluster_gpu_max_size'])
        per_node = gpus_per_node[hostvars.get('cluster_gpu_instance_type', 'g4dn.2xlarge')]
        # Every pod fits on one node, and the desired nodes hold them all (whole pods per node).
        assert all(gpus <= per_node for gpus, _count in pods.values()), (host, pods, per_node)
        slots = size * per_node
        needed = sum(count * gpus for gpus, count in pods.values())
        assert needed <= slots, (host, pods, slots)
        # The scale-in alarms take idle GPUs down to the minimum (the Nodes idle until the pods
        # start): a minimum below what the pods need evicts them as they arrive.
        assert needed <= int(hostvars['cluster_gpu_min_size']) * per_node, (host, pods, hostvars['cluster_gpu_min_size'])
        assert sum(count for _gpus, count in pods.values()) <= size * per_node, (host, pods)


def test_sandbox_runs_opea_on_gpu():
    for hostvars in _hostvars(SANDBOX, _env(SANDBOX_REGISTRY='127.0.0.1:1')).values():
        assert hostvars['opea_hardware'] == 'nvidia'


@pytest.mark.parametrize('inventory', [EXAMPLE], ids=['example_eks'])
def test_adaptive_reads_the_database_secret_postgres_writes(inventory):
    for host, hostvars in _hostvars(inventory, _env(SANDBOX_REGISTRY='127.0.0.1:1')).items():
        ref = hostvars['adaptive_database_url_secret']
        assert not hostvars.get('adaptive_database_url'), host
        written = [(s['name'], s['namespace'], s.get('key', 'url'))
                   for db in hostvars['postgres_databases'] for s in db.get('secrets', []) if s.get('type') == 'url']
        assert (ref['name'], ref.get('namespace', hostvars.get('adaptive_namespace', 'adaptive')), ref['key']) in written, (ref, written)
        owners = [db['owner'] for db in hostvars['postgres_databases']]
        assert len(set(owners)) == len(owners), owners
    order = SITE_ROLES
    assert order.index('postgres') < order.index('adaptive'), order


def test_fleet_inventory_keeps_each_hosts_own_apart():
    """inventories/sandbox_fleet (make demo-fleet, test_fleet.py): one host per cluster of the
    sandbox's fleet, each connected to its own cluster by the EKS lookup, with the sandbox's group
    variables; on the one PostgreSQL server each host's engine has a database and owner of its own,
    which the postgres role creates with the engine's Secret; Saxml's namespaces differ."""
    hostvars = _hostvars(FLEET, _env(SANDBOX_REGISTRY='127.0.0.1:1'))
    assert sorted(hostvars) == ['sandbox', 'sandbox-2'], sorted(hostvars)
    sandbox = _hostvars(SANDBOX, _env(SANDBOX_REGISTRY='127.0.0.1:1'))['sandbox']
    seen = {'database': set(), 'owner': set(), 'saxml_namespace': set()}
    for host, var in hostvars.items():
        assert var['genai_stack_kube'].replace(' ', '') == "{{lookup('genai.stack.eks_connection',inventory_hostname)}}", host
        # Everything else the sandbox sets, the fleet's hosts get too (the same group_vars).
        assert {k: v for k, v in sandbox.items() if k not in var} == {}, host
        databases = {db['name']: db for db in var['postgres_databases']}
        engine = databases.get(var['genai_engine_postgres_database'])
        assert engine and engine['owner'] == var['genai_engine_postgres_username'], (host, databases)
        assert {'name': 'postgres-secret', 'namespace': 'arthur', 'type': 'credentials'} in engine['secrets'], (host, engine)
        for key, values in (('database', list(databases)), ('owner', [db['owner'] for db in databases.values()]),
                            ('saxml_namespace', [var['saxml_namespace']])):
            assert not seen[key] & set(values), (host, key, values)
            seen[key] |= set(values)
