"""Two EKS clusters, two API servers, one inventory (issue 14, items 4 and 5).

The sandbox is grown to a fleet of two clusters (`sandbox`, `sandbox-2`), each with its own
kube-apiserver, node mirror and EKS token webhook. One inventory has a host per cluster whose only
Kubernetes connection is genai.stack.eks_connection for its own cluster (the controller's
KUBECONFIG names a cluster that does not exist). playbooks/cluster_gpu.yml, postgres.yml and
saxml.yml run on both hosts at once, each host with its own Saxml namespace and its own database on
the one PostgreSQL server (as two clusters' engines would have on one RDS instance), so an object
that went to the wrong cluster would show on the other's API server. Between them they make every
kind of object the site makes: AWS node groups, GPU Nodes, Helm releases, namespaces and Secrets.

- a host whose identity has no access entry on its cluster fails alone, before any write there, with
  the API server's refusal, while the other host converges;
- both converge; each API server, read with its own admin certificate, holds its own release,
  namespace, connection Secret (naming its own database), credentials store, GPU Nodes (mirrored
  from its own node group) and Saxml pods, and nothing of the other's;
- a second run changes nothing and writes nothing on either API server;
- the teardown removes each cluster's releases, Secrets, database and GPU node group, checked on each.
"""
import base64
import json
import os
import subprocess

import boto3
import pytest

import sandbox_fleet
from playbook_helpers import ROOT, decoy_kubeconfig, iam_user_without_access_entry, kubectl, psql, wait_for

HOSTS = ('sandbox', 'sandbox-2')
NAMESPACES = {'sandbox': 'saxml-fleet-1', 'sandbox-2': 'saxml-fleet-2'}
# Each host's database on the shared server, and the Secret the postgres role writes for it into
# the host's Saxml namespace (a URL naming that database).
DATABASES = {'sandbox': 'fleet_db_1', 'sandbox-2': 'fleet_db_2'}
DB_SECRET = 'fleet-db'
STORE_NAMESPACE = 'genai-postgres'
IAM_ADMIN = 'arn:aws:iam::123456789012:user/sandbox-admin'
CLUSTER_LABEL = 'sandbox.genai.stack/eks-cluster'
TEARDOWN = '{"cluster_gpu_state": "absent", "postgres_state": "absent", "saxml_state": "absent"}'
PLAY = '''
- name: GPU capacity
  ansible.builtin.import_playbook: {root}/playbooks/cluster_gpu.yml
- name: PostgreSQL
  ansible.builtin.import_playbook: {root}/playbooks/postgres.yml
- name: Saxml
  ansible.builtin.import_playbook: {root}/playbooks/saxml.yml
'''.format(root=ROOT)


def _inventory(path, stranger=None):
    """Hosts of both clusters, each connected through the lookup; sandbox-2 as `stranger` if given."""
    hosts = {}
    for host in HOSTS:
        options = ''
        if stranger and host == 'sandbox-2':
            options = ", access_key='%s', secret_key='%s'" % (stranger['AccessKeyId'], stranger['SecretAccessKey'])
        hosts[host] = {'genai_stack_kube': "{{ lookup('genai.stack.eks_connection', inventory_hostname%s) }}" % options,
                       'saxml_namespace': NAMESPACES[host],
                       'postgres_databases': [{'name': DATABASES[host], 'owner': DATABASES[host],
                                               'secrets': [{'name': DB_SECRET, 'namespace': NAMESPACES[host], 'type': 'url'}]}]}
    path.mkdir(exist_ok=True)
    (path / 'hosts.yml').write_text(json.dumps({'all': {'children': {'eks_clusters': {'hosts': hosts}}}}))
    if not (path / 'group_vars').exists():
        os.symlink(os.path.join(ROOT, 'inventories', 'sandbox', 'group_vars'), str(path / 'group_vars'))
    return str(path)


@pytest.fixture(scope='module')
def play(tmp_path_factory):
    path = tmp_path_factory.mktemp('fleet') / 'fleet.yml'
    path.write_text(PLAY)
    return str(path)


@pytest.fixture(scope='module')
def fleet(play, tmp_path_factory):
    """Two clusters, neither with this module's stacks (an earlier run's are torn down first)."""
    clusters = {c['name']: c for c in sandbox_fleet.ensure(2)}
    assert sorted(clusters) == sorted(HOSTS), clusters
    if _databases() or any(_gpu_nodegroups(h) or {NAMESPACES[h], STORE_NAMESPACE} & _namespaces(clusters[h]) for h in HOSTS):
        inventory = _inventory(tmp_path_factory.mktemp('fleet-clean') / 'inv')
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), KUBECONFIG=decoy_kubeconfig())
        proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), play, '-i', inventory, '-e', TEARDOWN],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
        assert proc.returncode == 0, proc.stdout[-5000:]
    return clusters


@pytest.fixture
def stranger():
    """An IAM user that may describe the clusters but has no access entry on any."""
    with iam_user_without_access_entry('fleet-stranger') as key:
        yield key


def _kube(cluster, *args):
    """kubectl as the cluster's admin (its own certificate), on its own API server."""
    return kubectl('--kubeconfig', cluster['kubeconfig'], *args).stdout


def _releases(cluster):
    out = subprocess.run([os.environ.get('HELM_BIN', 'helm'), '--kubeconfig', cluster['kubeconfig'], 'list', '-A', '-a', '-o', 'json'],
                         capture_output=True, text=True, check=True).stdout
    return {(r['namespace'], r['name']): r['status'] for r in json.loads(out or '[]')}


def _namespaces(cluster):
    return {n['metadata']['name'] for n in json.loads(_kube(cluster, 'get', 'namespaces', '-o', 'json'))['items']}


def _databases():
    """The fleet's databases on the shared PostgreSQL server."""
    proc = psql("SELECT datname FROM pg_database WHERE datname LIKE 'fleet\\_db\\_%' ORDER BY 1")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def _secrets(cluster, namespace):
    """The Secrets of a namespace: name -> decoded data (an absent namespace has none)."""
    items = json.loads(_kube(cluster, 'get', 'secrets', '-n', namespace, '-o', 'json'))['items']
    return {s['metadata']['name']: {k: base64.b64decode(v).decode() for k, v in (s.get('data') or {}).items()} for s in items}


def _gpu_nodes(cluster):
    nodes = json.loads(_kube(cluster, 'get', 'nodes', '-l', 'capability=gpu', '-o', 'json'))['items']
    return [n['metadata']['labels'].get(CLUSTER_LABEL) for n in nodes]


def _marks(fleet):
    return {name: sandbox_fleet.audit_mark(cluster) for name, cluster in fleet.items()}


def _writes(fleet, marks):
    return {name: sandbox_fleet.audit_writes(cluster, marks[name], (IAM_ADMIN, 'sandbox-admin')) for name, cluster in fleet.items()}


def _run(run_playbook, play, inventory, *args):
    return run_playbook(play, '-i', inventory, *args, env_extra={'KUBECONFIG': decoy_kubeconfig()})


def _gpu_nodegroups(cluster):
    return [n for n in boto3.client('eks').list_nodegroups(clusterName=cluster)['nodegroups'] if not n.endswith('-cpu')]


def test_a_host_without_access_fails_alone_before_any_write_there(run_playbook, fleet, play, tmp_path, stranger):
    marks = _marks(fleet)
    run = _run(run_playbook, play, _inventory(tmp_path / 'inv', stranger))
    assert run.returncode != 0, run
    assert run.recap['sandbox']['failed'] == 0, run.recap
    assert _releases(fleet['sandbox']).get((NAMESPACES['sandbox'], 'saxml')) == 'deployed'
    assert run.recap['sandbox-2']['failed'] == 1, run.recap
    assert ('cluster_gpu preflight: genai_stack_kube (or cluster_gpu_kubeconfig): ' in run.output
            and 'the cluster refused these credentials' in run.output), run.output[-5000:]
    assert _gpu_nodegroups('sandbox-2') == [], 'sandbox-2 got a node group although its host failed in preflight'
    writes = _writes(fleet, marks)
    assert writes['sandbox-2'] == [], writes['sandbox-2'][:5]
    if run.recap['sandbox']['changed']:
        assert writes['sandbox'], 'the converging host changed things but wrote nothing on its own API server'


def test_each_cluster_converges_its_own_objects_then_reruns_clean(run_playbook, fleet, play, tmp_path):
    inventory = _inventory(tmp_path / 'inv')
    marks = _marks(fleet)
    first = _run(run_playbook, play, inventory)
    assert first.returncode == 0, first
    assert first.recap['sandbox-2']['changed'] > 0, first.recap
    writes = _writes(fleet, marks)
    # sandbox converged in the test before; sandbox-2 now, on its own API server, as the run's IAM user.
    assert writes['sandbox-2'], 'the first converge of sandbox-2 wrote nothing on its API server'
    assert {w['user'] for h in HOSTS for w in writes[h]} == {IAM_ADMIN}, {h: writes[h][:3] for h in HOSTS}

    for host in HOSTS:
        cluster = fleet[host]
        namespaces = _namespaces(cluster)
        assert NAMESPACES[host] in namespaces, (host, namespaces)
        assert not {NAMESPACES[h] for h in HOSTS if h != host} & namespaces, (host, namespaces)
        releases = _releases(cluster)
        assert releases.get((NAMESPACES[host], 'saxml')) == 'deployed', (host, releases)
        assert all(ns != NAMESPACES[h] for (ns, _name) in releases for h in HOSTS if h != host), (host, releases)
        gpu = _gpu_nodes(cluster)
        assert gpu and set(gpu) == {host}, (host, gpu)
        # Its connection Secret names its own database; the credentials store holds its own owner only.
        url = _secrets(cluster, NAMESPACES[host])[DB_SECRET]['url']
        assert url.split('?')[0].endswith('/' + DATABASES[host]), (host, url.split('@')[-1])
        store = _secrets(cluster, STORE_NAMESPACE)
        assert sorted(s['database'] for s in store.values() if 'database' in s) == [DATABASES[host]], (host, sorted(store))
        pods = json.loads(_kube(cluster, 'get', 'pods', '-n', NAMESPACES[host], '-o', 'json'))['items']
        phases = {p['metadata']['name']: p['status'].get('phase') for p in pods}
        # The model publishing Job's pod has Succeeded; the servers run, scheduled on this cluster's Nodes.
        assert 'Running' in phases.values() and set(phases.values()) <= {'Running', 'Succeeded'}, (host, phases)

    assert _databases() == sorted(DATABASES.values())

    marks = _marks(fleet)
    again = _run(run_playbook, play, inventory)
    assert again.returncode == 0 and again.changed == 0, again
    assert again.activity['aws_mutating'] == 0, again.activity['aws_mutating_operations']
    writes = _writes(fleet, marks)
    assert writes == {h: [] for h in HOSTS}, {h: w[:5] for h, w in writes.items()}


def test_teardown_removes_each_clusters_own(run_playbook, fleet, play, tmp_path):
    inventory = _inventory(tmp_path / 'inv')
    run = _run(run_playbook, play, inventory, '-e', TEARDOWN)
    assert run.returncode == 0, run
    assert _releases(fleet['sandbox-2']) == {}, 'sandbox-2 only ever had this test\'s releases'
    assert _databases() == [], 'the teardown left databases on the shared server'
    for host in HOSTS:
        releases = _releases(fleet[host])
        assert not [r for r in releases if r[1] in ('saxml', 'nvidia-device-plugin')], (host, releases)
        assert not {NAMESPACES[host], STORE_NAMESPACE} & _namespaces(fleet[host]), host
        assert _gpu_nodegroups(host) == [], host
        # The node group's Nodes leave its own API server once EKS has deleted it.
        assert wait_for(lambda h=host: _gpu_nodes(fleet[h]) == [], timeout=120), (host, _gpu_nodes(fleet[host]))
