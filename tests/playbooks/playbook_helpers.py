"""Small readers the playbook tests share: kubectl and helm as the user has them, and a poll."""
import contextlib
import json
import os
import subprocess
import time

from slowdown import scaled  # tests/tools, on sys.path (tests/playbooks/conftest.py)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
# A cluster that does not exist (an API server on the discard port): the controller's KUBECONFIG in
# every playbook test, so that a Kubernetes call that does not follow the host's connection fails.
DECOY_SERVER = 'https://127.0.0.1:9'
# The namespaces site.yml's stacks create on a cluster (the sandbox inventory's names; kube-system, where
# the add-ons live, is never one): test_site.py and test_fleet.py (which gives Saxml a namespace per host).
SITE_STACK_NAMESPACES = ('arthur', 'adaptive', 'monitoring', 'opea', 'saxml', 'genai-postgres', 'nvidia-device-plugin')


def decoy_kubeconfig():
    """The path of a kubeconfig naming only the decoy cluster."""
    path = os.path.join(ROOT, 'tests', 'output', 'decoy-kubeconfig.yaml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Written whole and then renamed: make test's streams run playbooks at the same time, and one
    # must never read the file while another is writing it.
    partial = '%s.%d' % (path, os.getpid())
    with open(partial, 'w', encoding='utf-8') as out:
        json.dump({'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'decoy',
                   'clusters': [{'name': 'decoy', 'cluster': {'server': DECOY_SERVER, 'insecure-skip-tls-verify': True}}],
                   'users': [{'name': 'decoy', 'user': {'token': 'decoy'}}],
                   'contexts': [{'name': 'decoy', 'context': {'cluster': 'decoy', 'user': 'decoy'}}]}, out)
    os.replace(partial, path)
    return path


def kubectl(*args, check=True):
    proc = subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl')] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def kube_get(*args):
    """`kubectl get -o json ARGS`, parsed."""
    return json.loads(kubectl('get', '-o', 'json', *args).stdout)


def helm_releases(namespace):
    """Every release of the namespace, whatever its status, by name."""
    out = subprocess.run([os.environ.get('HELM_BIN', 'helm'), 'list', '-n', namespace, '-a', '-o', 'json'],
                         capture_output=True, text=True, check=True).stdout
    return {r['name']: r for r in json.loads(out or '[]')}


def wait_for(predicate, timeout=60):
    """Poll `predicate` every second; True as soon as it holds, False after `timeout` seconds
    (what an idle machine needs, times GENAI_TEST_SLOWDOWN: see tests/tools/slowdown.py)."""
    deadline = time.monotonic() + scaled(timeout)
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(1)
    return True


def assert_absent_previewed(run_playbook, playbook, state_variable, *args, names=(), env_extra=None):
    """`<role>_state=absent --check --diff`, the preview a user reads before a teardown, on a
    converged stack: it plans removals (changed > 0), names what would go (each of `names` is in
    the output), and writes nothing (no admin write to Kubernetes, no mutating AWS request).
    Returns the run; the caller checks by its own route that the stack is still there."""
    plan = run_playbook(playbook, '-e', '%s=absent' % state_variable, '--check', '--diff', *args, env_extra=env_extra)
    assert plan.returncode == 0, plan
    assert plan.changed > 0, plan
    plan.assert_no_write()
    shown = planned_changes(plan.output)
    missing = [name for name in names if name not in shown]
    assert not missing, (missing, shown)
    return plan


def planned_changes(output):
    """The lines of a --check --diff run that show a change: the diff lines (- before, + after)
    and the `changed:` lines with their loop item. Task names and summaries are left out, so a
    name found here is one the plan shows as changing, not one a title happens to mention."""
    return '\n'.join(line for line in output.splitlines() if line.startswith(('-', '+', 'changed: ')))


@contextlib.contextmanager
def iam_user_without_access_entry(name):
    """An IAM user (its access key) that may describe EKS clusters but has no access entry on any:
    an identity whose EKS token the API servers refuse. Deleted afterwards."""
    import boto3  # pylint: disable=import-outside-toplevel  # only the tests that need it import boto3
    iam = boto3.client('iam')
    iam.create_user(UserName=name)
    try:
        iam.put_user_policy(UserName=name, PolicyName='describe', PolicyDocument=json.dumps({
            'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': 'eks:DescribeCluster', 'Resource': '*'}]}))
        yield iam.create_access_key(UserName=name)['AccessKey']
    finally:
        for key in iam.list_access_keys(UserName=name)['AccessKeyMetadata']:
            iam.delete_access_key(UserName=name, AccessKeyId=key['AccessKeyId'])
        iam.delete_user_policy(UserName=name, PolicyName='describe')
        iam.delete_user(UserName=name)


def psql(sql, user=None, password=None, database=None, variables=None, script=None, env_extra=None, ssl=None):
    """psql on the sandbox's PostgreSQL server, as its superuser (PG* of the environment) unless a user is given."""
    env = dict(os.environ, PGPASSFILE=os.devnull, PGCONNECT_TIMEOUT='5')
    if user:
        env.update(PGUSER=user, PGPASSWORD=password, PGDATABASE=database)
    if ssl:
        env.update(PGSSLMODE=ssl, PGSSLROOTCERT=os.environ['SANDBOX_POSTGRES_CA'])
    env.update(env_extra or {})
    args = [os.path.join(os.environ['SANDBOX_POSTGRES_BIN'], 'psql'), '-X', '-w', '-A', '-t', '-v', 'ON_ERROR_STOP=1']
    for key, value in (variables or {}).items():
        args += ['-v', '%s=%s' % (key, value)]
    args += ['-f', '-'] if script else ['-c', sql]
    return subprocess.run(args, input=script, capture_output=True, text=True, env=env, timeout=60, check=False)


# The sandbox's simulated usage: kwok reports, per container, a Pod's annotation sandbox.genai.stack/cpu-usage
# (a quantity) as its CPU usage, else 1m (sandbox/components/20-kube.sh, kwok_usage_config).
CPU_USAGE_ANNOTATION = 'sandbox.genai.stack/cpu-usage'


def metrics_api_available():
    """APIService v1beta1.metrics.k8s.io exists and its Available condition is True."""
    got = kubectl('get', 'apiservice', 'v1beta1.metrics.k8s.io', '-o', 'json', check=False)
    if got.returncode != 0:
        return False
    conditions = json.loads(got.stdout).get('status', {}).get('conditions', [])
    return any(c['type'] == 'Available' and c['status'] == 'True' for c in conditions)


def top(*args):
    """`kubectl top ARGS --no-headers` as rows of columns, [] while the metrics API has nothing to say."""
    got = kubectl('top', *args, '--no-headers', check=False)
    return [line.split() for line in got.stdout.splitlines() if line.strip()] if got.returncode == 0 else []


def put_cpu_load(namespace, selector, total_millicores):
    """Spread `total_millicores` of CPU use over the Running Pods the selector picks, as a fixed request rate
    spreads over a Deployment's replicas: each gets total / count (annotated; 0 removes the load). Returns the
    number of Pods loaded. Call it again as the replicas change."""
    pods = [p for p in kube_get('pods', '-n', namespace, '-l', selector)['items']
            if not p['metadata'].get('deletionTimestamp') and p.get('status', {}).get('phase') == 'Running']
    for pod in pods:
        share = '%dm' % max(1, total_millicores // len(pods)) if total_millicores else None
        if (pod['metadata'].get('annotations') or {}).get(CPU_USAGE_ANNOTATION) != share:
            kubectl('annotate', '--overwrite', 'pod', pod['metadata']['name'], '-n', namespace,
                    '%s=%s' % (CPU_USAGE_ANNOTATION, share) if share else CPU_USAGE_ANNOTATION + '-', check=False)
    return len(pods)
