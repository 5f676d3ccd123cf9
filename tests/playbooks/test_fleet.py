"""site.yml over a fleet: two EKS clusters, two API servers, one inventory (issue 14, items 4 and 5).

The sandbox is grown to a fleet of two clusters (`sandbox`, `sandbox-2`), each with its own
kube-apiserver, node mirror and EKS token webhook. The fleet inventory (inventories/sandbox_fleet, what
`make demo-fleet` runs) has a host per cluster whose only Kubernetes connection is
genai.stack.eks_connection for its own cluster (here the controller's KUBECONFIG names a cluster
that does not exist), and the sandbox inventory's group variables. The
whole playbooks/site.yml runs on both hosts at once (forks), as a user runs it on a fleet. Each host
differs where a misdirected object would show: its own Saxml namespace, its own engine database on
the one PostgreSQL server (as two clusters' engines would have on one RDS instance) and the Secrets
naming it.

- both converge from empty; each API server, read with its own admin certificate, holds every
  stack's releases, namespaces, Secrets (naming its own database), credentials store and GPU Nodes
  (mirrored from its own node group), the same set on both, and nothing of the other's; cert-manager,
  which the second host's variables turn off, runs on the first cluster only;
- a second run changes nothing, makes no mutating AWS request and writes nothing on either API server;
- a host whose identity has no access entry on its cluster fails alone, in its first role's
  preflight before any write there, with the API server's refusal, while the other host, given work
  to do (one of its Secrets deleted), converges through every play of the site;
- playbooks/teardown.yml removes each cluster's releases, stack namespaces, databases and GPU node
  group, checked on each.
"""
import base64
import json
import os
import subprocess

import boto3
import pytest
import yaml

import sandbox_fleet
from playbook_helpers import ROOT, SITE_STACK_NAMESPACES, decoy_kubeconfig, iam_user_without_access_entry, kubectl, psql, wait_for

HOSTS = ('sandbox', 'sandbox-2')
INVENTORY = os.path.join(ROOT, 'inventories', 'sandbox_fleet')
# Where the inventory's hosts differ, read from it: the Saxml namespace, and the Arthur engine's
# database (and owner) on the shared PostgreSQL server, which the postgres role's Secrets name.
with open(os.path.join(INVENTORY, 'hosts.yml'), encoding='utf-8') as _handle:
    _FLEET_HOSTS = yaml.safe_load(_handle)['all']['children']['eks_clusters']['hosts']
SAXML_NAMESPACES = {host: _FLEET_HOSTS[host]['saxml_namespace'] for host in HOSTS}
# The hosts whose cluster runs cert-manager (the sandbox inventory turns it on; the fleet's second host turns it off).
CERT_MANAGER_HOSTS = [host for host in HOSTS if _FLEET_HOSTS[host].get('cluster_addons_cert_manager_enabled', True)]
CERT_MANAGER_NAMESPACE = 'cert-manager'
DATABASES = {host: _FLEET_HOSTS[host]['genai_engine_postgres_database'] for host in HOSTS}
# The namespaces of the site's stacks other than Saxml's, the same on both clusters.
SHARED_NAMESPACES = [ns for ns in SITE_STACK_NAMESPACES if ns != 'saxml']
STORE_NAMESPACE = 'genai-postgres'
ENGINE_SECRET = ('arthur', 'postgres-secret')
IAM_ADMIN = 'arn:aws:iam::123456789012:user/sandbox-admin'
CLUSTER_LABEL = 'sandbox.genai.stack/eks-cluster'
SITE = os.path.join(ROOT, 'playbooks', 'site.yml')
TEARDOWN = os.path.join(ROOT, 'playbooks', 'teardown.yml')
# A whole-site converge of two clusters at once, on two cores with other suites running.
SITE_TIMEOUT = 2700


def _namespaces_of(host):
    return SHARED_NAMESPACES + [SAXML_NAMESPACES[host]]


def _inventory(path=None, stranger=None):
    """The fleet inventory (inventories/sandbox_fleet); with a `stranger`, a copy of it whose
    sandbox-2 connects with the stranger's access key."""
    if not stranger:
        return INVENTORY
    with open(os.path.join(INVENTORY, 'hosts.yml'), encoding='utf-8') as handle:
        hosts = yaml.safe_load(handle)
    group = hosts['all']['children']['eks_clusters']
    group['hosts']['sandbox-2']['genai_stack_kube'] = group['vars']['genai_stack_kube'].replace(
        'inventory_hostname)', "inventory_hostname, access_key='%s', secret_key='%s')" % (stranger['AccessKeyId'], stranger['SecretAccessKey']))
    path.mkdir(exist_ok=True)
    (path / 'hosts.yml').write_text(yaml.safe_dump(hosts))
    os.symlink(os.path.join(ROOT, 'inventories', 'sandbox', 'group_vars'), str(path / 'group_vars'))
    return str(path)


@pytest.fixture(scope='module')
def fleet():
    """Two clusters, neither with a site on it (an earlier run's is torn down first)."""
    clusters = {c['name']: c for c in sandbox_fleet.ensure(2)}
    assert sorted(clusters) == sorted(HOSTS), clusters
    if _databases() or any(_gpu_nodegroups(h) or set(_namespaces_of(h)) & _namespaces(clusters[h]) for h in HOSTS):
        inventory = _inventory()
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), KUBECONFIG=decoy_kubeconfig())
        proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), TEARDOWN, '-i', inventory],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=SITE_TIMEOUT, check=False)
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


def _run(run_playbook, playbook, inventory, *args):
    return run_playbook(playbook, '-i', inventory, *args, timeout=SITE_TIMEOUT, env_extra={'KUBECONFIG': decoy_kubeconfig()})


def _gpu_nodegroups(cluster):
    return [n for n in boto3.client('eks').list_nodegroups(clusterName=cluster)['nodegroups'] if not n.endswith('-cpu')]


def _site_releases(host, releases):
    """A cluster's releases, with its own Saxml namespace written as `saxml` and without cert-manager's
    (which one host turns off): equal for two hosts that each hold their own site."""
    return {('saxml' if ns == SAXML_NAMESPACES[host] else ns, name): status for (ns, name), status in releases.items()
            if ns != CERT_MANAGER_NAMESPACE}


def _assert_holds_its_own_site(host, cluster):
    namespaces = _namespaces(cluster)
    assert set(_namespaces_of(host)) <= namespaces, (host, sorted(set(_namespaces_of(host)) - namespaces))
    assert not {SAXML_NAMESPACES[h] for h in HOSTS if h != host} & namespaces, (host, namespaces)
    releases = _releases(cluster)
    assert set(releases.values()) == {'deployed'}, (host, releases)
    # Every stack namespace but the credentials store holds a release of its stack.
    with_releases = {ns for (ns, _name) in releases}
    assert set(_namespaces_of(host)) - {STORE_NAMESPACE} <= with_releases, (host, sorted(releases))
    assert not {SAXML_NAMESPACES[h] for h in HOSTS if h != host} & with_releases, (host, releases)
    # cert-manager runs where its host's variables turn it on, and only there.
    cert_manager = {name for (ns, name) in releases if ns == CERT_MANAGER_NAMESPACE}
    assert cert_manager == ({'cert-manager'} if host in CERT_MANAGER_HOSTS else set()), (host, sorted(releases))
    gpu = _gpu_nodes(cluster)
    assert gpu and set(gpu) == {host}, (host, gpu)
    # The engine's Secret names its own database; the credentials store holds its own owner only.
    engine = _secrets(cluster, ENGINE_SECRET[0])[ENGINE_SECRET[1]]
    assert DATABASES[host] in engine.values(), (host, sorted(engine))
    assert not [h for h in HOSTS if h != host and DATABASES[h] in engine.values()], host
    store = _secrets(cluster, STORE_NAMESPACE)
    assert sorted(s['database'] for s in store.values() if 'database' in s) == [DATABASES[host]], (host, sorted(store))
    pods = json.loads(_kube(cluster, 'get', 'pods', '-n', SAXML_NAMESPACES[host], '-o', 'json'))['items']
    phases = {p['metadata']['name']: p['status'].get('phase') for p in pods}
    # The model publishing Job's pod has Succeeded; the servers run, scheduled on this cluster's Nodes.
    assert 'Running' in phases.values() and set(phases.values()) <= {'Running', 'Succeeded'}, (host, phases)
    return _site_releases(host, releases)


def test_each_cluster_converges_its_own_site_then_reruns_clean(run_playbook, fleet):
    inventory = _inventory()
    marks = _marks(fleet)
    first = _run(run_playbook, SITE, inventory)
    assert first.returncode == 0, first
    assert all(first.recap[h]['changed'] > 0 for h in HOSTS), first.recap
    writes = _writes(fleet, marks)
    # Each host wrote its site on its own API server, as the run's IAM user (by its EKS token).
    assert all(writes[h] for h in HOSTS), {h: len(writes[h]) for h in HOSTS}
    assert {w['user'] for h in HOSTS for w in writes[h]} == {IAM_ADMIN}, {h: writes[h][:3] for h in HOSTS}

    sites = {host: _assert_holds_its_own_site(host, fleet[host]) for host in HOSTS}
    assert sites['sandbox'] == sites['sandbox-2'], sites
    assert _databases() == sorted(DATABASES.values())

    marks = _marks(fleet)
    again = _run(run_playbook, SITE, inventory)
    assert again.returncode == 0 and again.changed == 0, again
    assert again.activity['aws_mutating'] == 0, again.activity['aws_mutating_operations']
    writes = _writes(fleet, marks)
    assert writes == {h: [] for h in HOSTS}, {h: w[:5] for h, w in writes.items()}


def test_a_host_without_access_fails_alone_before_any_write_there(run_playbook, fleet, tmp_path, stranger):
    # Work for the host that converges: its engine's Secret is gone (the postgres role writes it again).
    _kube(fleet['sandbox'], 'delete', 'secret', '-n', ENGINE_SECRET[0], ENGINE_SECRET[1])
    marks = _marks(fleet)
    run = _run(run_playbook, SITE, _inventory(tmp_path / 'inv', stranger))
    assert run.returncode != 0, run
    assert run.recap['sandbox']['failed'] == 0 and run.recap['sandbox']['changed'] > 0, run.recap
    assert run.recap['sandbox-2']['failed'] == 1, run.recap
    assert ('cluster_gpu preflight: genai_stack_kube (or cluster_gpu_kubeconfig): ' in run.output
            and 'the cluster refused these credentials' in run.output), run.output[-5000:]
    # The converging host went on through every play of the site, the last one included (sandbox-2
    # left the run in the first: a play runs only while one of its hosts has not failed).
    assert 'PLAY [Charts that were stand-ins]' in run.output, run.output[-3000:]
    assert ENGINE_SECRET[1] in _secrets(fleet['sandbox'], ENGINE_SECRET[0])
    writes = _writes(fleet, marks)
    assert writes['sandbox-2'] == [], writes['sandbox-2'][:5]
    assert writes['sandbox'], 'the converging host changed things but wrote nothing on its own API server'


def test_teardown_removes_each_clusters_own(run_playbook, fleet):
    run = _run(run_playbook, TEARDOWN, _inventory())
    assert run.returncode == 0, run
    assert _databases() == [], 'the teardown left databases on the shared server'
    for host in HOSTS:
        assert _releases(fleet[host]) == {}, (host, _releases(fleet[host]))
        assert not set(_namespaces_of(host)) & _namespaces(fleet[host]), (host, _namespaces(fleet[host]))
        assert _gpu_nodegroups(host) == [], host
        # The node group's Nodes leave its own API server once EKS has deleted it.
        assert wait_for(lambda h=host: _gpu_nodes(fleet[h]) == [], timeout=120), (host, _gpu_nodes(fleet[host]))
