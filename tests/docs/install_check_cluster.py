"""Helpers of tests/docs/check-install.sh: its own EKS cluster, and the sandbox's state before and after.

    python tests/docs/install_check_cluster.py create|delete NAME
    python tests/docs/install_check_cluster.py state FILE
    python tests/docs/install_check_cluster.py unused HOSTVARS COLLECTION
    python tests/docs/install_check_cluster.py applied BEFORE HOSTVARS COLLECTION
    python tests/docs/install_check_cluster.py restored BEFORE

create/delete: a throw-away EKS cluster in the sandbox's AWS emulator, shaped like the seeded
`sandbox` one. The check runs the demo on its own cluster so that it does not change the
`sandbox` cluster's node groups. Created like sandbox/aws/seed.py does (same VPC, subnets, roles,
Kubernetes version, a CPU node group `<NAME>-cpu`), through its clients, whose requests are not
journaled. Both commands are idempotent.

The sandbox has one Kubernetes and one PostgreSQL for all its EKS clusters, so the stacks of the
check's site.yml land where those of `make demo` or molecule would. `state` writes what is there
(Helm releases with their namespaces, namespaces, databases and database roles) as JSON, read
through helm, kubectl and psycopg2 rather than the collection. `unused` fails when a stack's
namespace is already there (the check's teardown would remove what it did not make). `applied` fails unless every
stack's namespace (the role's default from the installed collection, or the inventory's value
in HOSTVARS, the output of `ansible-inventory --host`) holds a deployed release that was not there
BEFORE, and the databases gained one. `restored` fails unless the state equals BEFORE again
(namespaces being deleted get up to 120 s to go).
"""
import json
import os
import subprocess
import sys
import time

import psycopg2
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

from sandbox.aws import seed  # noqa: E402  pylint: disable=wrong-import-position


def create(name):
    clients = seed._clients(os.environ['AWS_ENDPOINT_URL'])  # pylint: disable=protected-access
    ec2, iam, eks = clients['ec2'], clients['iam'], clients['eks']
    _vpc, subnets = seed.seed_network(ec2)
    cluster_role = seed.seed_role(iam, seed.CLUSTER_ROLE, 'eks.amazonaws.com', seed.CLUSTER_POLICIES, False)
    node_role = seed.seed_role(iam, seed.NODE_ROLE, 'ec2.amazonaws.com', seed.NODE_POLICIES, True)
    if name not in eks.list_clusters()['clusters']:
        eks.create_cluster(name=name, version=seed.KUBERNETES_VERSION, roleArn=cluster_role,
                           resourcesVpcConfig={'subnetIds': subnets, 'endpointPrivateAccess': True,
                                               'endpointPublicAccess': True},
                           tags={'sandbox': 'true', 'purpose': 'check-install'})
        ec2.create_tags(Resources=subnets, Tags=[{'Key': 'kubernetes.io/cluster/%s' % name, 'Value': 'shared'}])
    if '%s-cpu' % name not in eks.list_nodegroups(clusterName=name)['nodegroups']:
        eks.create_nodegroup(clusterName=name, nodegroupName='%s-cpu' % name,
                             scalingConfig={'minSize': 2, 'maxSize': 2, 'desiredSize': 2},
                             subnets=subnets, instanceTypes=['m5.xlarge'], nodeRole=node_role,
                             labels={'sandbox/pool': 'cpu'}, tags={'sandbox': 'true'})


def delete(name):
    clients = seed._clients(os.environ['AWS_ENDPOINT_URL'])  # pylint: disable=protected-access
    ec2, eks = clients['ec2'], clients['eks']
    if name not in eks.list_clusters()['clusters']:
        return
    for nodegroup in eks.list_nodegroups(clusterName=name)['nodegroups']:
        eks.delete_nodegroup(clusterName=name, nodegroupName=nodegroup)
    eks.delete_cluster(name=name)
    _vpc, subnets = seed.seed_network(ec2)
    ec2.delete_tags(Resources=subnets, Tags=[{'Key': 'kubernetes.io/cluster/%s' % name}])


# Roles of site.yml that deploy Helm charts, by the variable naming their namespace.
CHART_NAMESPACE_VARS = {
    'cluster_gpu': 'cluster_gpu_device_plugin_namespace',
    'observability': 'observability_namespace',
    'genai_engine': 'genai_engine_namespace',
    'adaptive': 'adaptive_namespace',
    'opea': 'opea_namespace',
    'saxml': 'saxml_namespace',
}


def _json(*argv):
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def state():
    """What the sandbox holds that site.yml creates or removes."""
    releases = _json(os.environ.get('HELM_BIN', 'helm'), 'list', '--all-namespaces', '--all', '-o', 'json')
    namespaces = _json(os.environ.get('KUBECTL_BIN', 'kubectl'), 'get', 'namespaces', '-o', 'json')['items']
    with psycopg2.connect(dbname=os.environ.get('PGDATABASE', 'postgres')) as conn, conn.cursor() as cur:
        cur.execute('SELECT datname FROM pg_database')
        databases = sorted(row[0] for row in cur.fetchall())
        cur.execute('SELECT rolname FROM pg_roles')
        db_roles = sorted(row[0] for row in cur.fetchall())
    conn.close()
    return {
        'releases': sorted('%s/%s %s' % (r['namespace'], r['name'], r['status']) for r in releases),
        'namespaces': sorted(n['metadata']['name'] for n in namespaces),
        'databases': databases,
        'database_roles': db_roles,
    }


def _read(path):
    with open(path, encoding='utf-8') as handle:
        return json.load(handle)


def _namespaces(hostvars_path, collection, variables):
    """{role: namespace} as the run sees them: the inventory's value, else the installed role's default."""
    hostvars, found = _read(hostvars_path), {}
    for role, var in variables.items():
        with open(os.path.join(collection, 'roles', role, 'defaults', 'main.yml'), encoding='utf-8') as handle:
            found[role] = hostvars.get(var, yaml.safe_load(handle)[var])
    return found


def unused(hostvars_path, collection):
    """The stacks' namespaces are not there yet: the check's teardown would remove what it did not make."""
    variables = dict(CHART_NAMESPACE_VARS, postgres='postgres_namespace')
    present = state()['namespaces']
    taken = {role: namespace for role, namespace in _namespaces(hostvars_path, collection, variables).items()
             if namespace in present}
    for role, namespace in sorted(taken.items()):
        print('  namespace %s of %s is already in the sandbox (make demo or a stopped test?)' % (namespace, role))
    return not taken


def applied(before_path, hostvars_path, collection):
    before, now = _read(before_path), state()
    problems = []
    new_releases = sorted(set(now['releases']) - set(before['releases']))
    for role, namespace in sorted(_namespaces(hostvars_path, collection, CHART_NAMESPACE_VARS).items()):
        deployed = [r.split(' ')[0] for r in new_releases if r.startswith(namespace + '/') and r.endswith(' deployed')]
        if deployed:
            print('  %-13s namespace %-34s releases %s' % (role, namespace, ', '.join(r.split('/', 1)[1] for r in deployed)))
        else:
            problems.append('%s: no new deployed release in namespace %s' % (role, namespace))
    new_databases = sorted(set(now['databases']) - set(before['databases']))
    if new_databases:
        print('  postgres      databases %s' % ', '.join(new_databases))
    else:
        problems.append('postgres: no new database')
    for problem in problems:
        print('  MISSING: ' + problem)
    print('  helm list --all-namespaces: %d new releases: %s' % (len(new_releases), ', '.join(new_releases)))
    return not problems


def restored(before_path, patience=120):
    before = _read(before_path)
    deadline = time.monotonic() + patience
    while True:
        now = state()
        left = {key: sorted(set(now[key]) - set(before[key])) for key in before}
        gone = {key: sorted(set(before[key]) - set(now[key])) for key in before}
        if not any(left.values()) and not any(gone.values()):
            print('  as before the check: %s' % ', '.join('%d %s' % (len(now[key]), key.replace('_', ' ')) for key in sorted(now)))
            return True
        # Only deleting namespaces are waited for; anything else left behind fails at once.
        if any(left[key] for key in left if key != 'namespaces') or any(gone.values()) or time.monotonic() > deadline:
            print('  left behind: %s' % json.dumps({k: v for k, v in left.items() if v}))
            print('  gone that was there before: %s' % json.dumps({k: v for k, v in gone.items() if v}))
            return False
        time.sleep(3)


def main(argv):
    if argv[0] in ('create', 'delete'):
        {'create': create, 'delete': delete}[argv[0]](argv[1])
        return 0
    if argv[0] == 'state':
        with open(argv[1], 'w', encoding='utf-8') as handle:
            json.dump(state(), handle, indent=1)
        return 0
    if argv[0] == 'unused':
        return 0 if unused(*argv[1:3]) else 1
    if argv[0] == 'applied':
        return 0 if applied(*argv[1:4]) else 1
    if argv[0] == 'restored':
        return 0 if restored(argv[1]) else 1
    raise SystemExit(__doc__)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
