"""Least privilege: docs/iam/minimal-policy.json is exactly what the collection calls, the
emulator enforces it where it can, and a namespaced ServiceAccount is enough for helm_release
and k8s_secret in their namespace and refused (403) outside it.

IAM enforcement in the emulator (`POST /moto-api/reset-auth` with body `0`): requests must then
be signed by an IAM user's access key and are checked against the user's policies. The probe
test records, per service, whether enforcement works; see docs/security.md for the result and
the reason EKS cannot be enforced.
"""
import json
import os
import tempfile
import urllib.request

import boto3
import botocore.exceptions
import yaml

import _support
from conftest import CLUSTER, COLLECTION_KEY_ID

POLICY_PATH = os.path.join(_support.ROOT, 'docs', 'iam', 'minimal-policy.json')
# In the policy without being a request of the lifecycle (converge, check, roll, unroll,
# teardown): authorisation AWS checks on another call (PassRole on CreateNodegroup, CreateTags on
# CreateLaunchTemplate with TagSpecifications), and k8s_secret's AWS Secrets Manager source,
# which cluster_gpu does not use. Template versions, the roll and tag changes are sent by the
# roll/unroll phases and counted.
NOT_IN_A_PLAIN_RUN = {'iam:PassRole', 'ec2:CreateTags', 'secretsmanager:GetSecretValue'}
SERVICE_PREFIX = {'monitoring': 'cloudwatch'}
RBAC_NS = 'rel-rbac'
SA = 'deployer'


def _policy_actions():
    with open(POLICY_PATH, encoding='utf-8') as handle:
        policy = json.load(handle)
    actions = set()
    for statement in policy['Statement']:
        actions.update(statement['Action'] if isinstance(statement['Action'], list) else [statement['Action']])
    return policy, actions


def test_policy_is_exactly_what_the_collection_calls(cluster_gpu_lifecycle):
    _unused, actions = _policy_actions()
    called = set()
    for phase in ('converge', 'check', 'roll', 'unroll', 'teardown'):
        run = cluster_gpu_lifecycle.get(phase)
        for request in run.activity.requests if run else []:
            if request.get('client') == COLLECTION_KEY_ID:
                called.add('%s:%s' % (SERVICE_PREFIX.get(request['service'], request['service']), request['operation']))
    assert called, 'no request of the collection in the journal'
    missing = called - actions
    assert not missing, 'called but not in docs/iam/minimal-policy.json: %s' % sorted(missing)
    unused = actions - called - NOT_IN_A_PLAIN_RUN
    assert not unused, 'in the policy but never called (remove, or explain in NOT_IN_A_PLAIN_RUN): %s' % sorted(unused)
    _support.record('least_privilege', policy_actions=len(actions), called_in_cluster_gpu_runs=sorted(called),
                    called_count=len(called), exempt=sorted(NOT_IN_A_PLAIN_RUN))


# --- IAM enforcement in the emulator ---------------------------------------------------------------

def _reset_auth(value):
    url = os.environ['AWS_ENDPOINT_URL'].rstrip('/') + '/moto-api/reset-auth'
    # text/plain: with urllib's default form content type Flask hands moto an empty body.
    request = urllib.request.Request(url, method='POST', data=str(value).encode(), headers={'Content-Type': 'text/plain'})
    with urllib.request.urlopen(request, timeout=_support.scaled(10)) as response:
        return response.read()


def _as_moto_names(document):
    """The same policy, with each cloudwatch: action also under moto's name for it.

    moto 5.2.5 authorises CloudWatch requests as `monitoring:<Action>` (the signing name), where
    AWS uses `cloudwatch:<Action>`; the copy keeps the set of allowed operations identical.
    """
    document = json.loads(json.dumps(document))
    for statement in document['Statement']:
        actions = statement['Action'] if isinstance(statement['Action'], list) else [statement['Action']]
        statement['Action'] = actions + ['monitoring:' + a.split(':', 1)[1] for a in actions if a.startswith('cloudwatch:')]
    return document


def _user_with_policy(iam, name, document):
    try:
        iam.create_user(UserName=name)
    except iam.exceptions.EntityAlreadyExistsException:
        for key in iam.list_access_keys(UserName=name)['AccessKeyMetadata']:
            iam.delete_access_key(UserName=name, AccessKeyId=key['AccessKeyId'])
    iam.put_user_policy(UserName=name, PolicyName='policy', PolicyDocument=json.dumps(_as_moto_names(document)))
    key = iam.create_access_key(UserName=name)['AccessKey']
    return {'AWS_ACCESS_KEY_ID': key['AccessKeyId'], 'AWS_SECRET_ACCESS_KEY': key['SecretAccessKey']}


def _client(service, creds):
    return boto3.client(service, aws_access_key_id=creds['AWS_ACCESS_KEY_ID'], aws_secret_access_key=creds['AWS_SECRET_ACCESS_KEY'],
                        config=botocore.config.Config(retries={'max_attempts': 1}))


def _probe(call):
    try:
        call()
        return 'allowed'
    except botocore.exceptions.ClientError as exc:
        return exc.response['Error']['Code']


def _cpu_asg():
    for group in boto3.client('autoscaling').describe_auto_scaling_groups()['AutoScalingGroups']:
        if any(t['Key'] == 'eks:nodegroup-name' and t['Value'] == '%s-cpu' % CLUSTER for t in group.get('Tags', [])):
            return group['AutoScalingGroupName']
    raise AssertionError('the seeded CPU node group has no Auto Scaling group')


def _aws_playbook(directory, asg, state):
    tasks = [
        {'name': 'scaling alarms', 'genai.stack.scaling_alarm': {
            'name': 'rel-least-privilege-cpu', 'autoscaling_group_name': asg, 'metric': 'cpu', 'state': state}},
    ]
    path = os.path.join(directory, 'aws-%s.yml' % state)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'least privilege', 'hosts': 'sandbox', 'gather_facts': False, 'tasks': tasks}], handle)
    return path


def test_aws_calls_under_the_minimal_policy_where_enforced():
    policy, _unused = _policy_actions()
    iam = boto3.client('iam')
    limited = _user_with_policy(iam, 'rel-least-privilege', policy)
    admin = _user_with_policy(iam, 'rel-admin', {'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]})
    asg = _cpu_asg()
    probes = {}
    with tempfile.TemporaryDirectory(prefix='rel-iam-') as tmp:
        present, absent = _aws_playbook(tmp, asg, 'present'), _aws_playbook(tmp, asg, 'absent')
        _reset_auth(0)
        try:
            # What the emulator enforces: an allowed and a not-allowed call per service.
            probes = {
                'ec2': (_probe(lambda: _client('ec2', admin).describe_subnets()),
                        _probe(lambda: _client('ec2', limited).describe_vpcs())),
                'autoscaling': (_probe(lambda: _client('autoscaling', admin).describe_auto_scaling_groups()),
                                _probe(lambda: _client('autoscaling', limited).describe_launch_configurations())),
                'iam': (_probe(lambda: _client('iam', admin).list_role_policies(RoleName='sandbox-eks-node-role')),
                        _probe(lambda: _client('iam', limited).list_users())),
                'cloudwatch': (_probe(lambda: _client('cloudwatch', admin).describe_alarms()),
                               _probe(lambda: _client('cloudwatch', limited).list_dashboards())),
                'ssm': (_probe(lambda: _client('ssm', admin).get_parameter(
                    Name='/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/nvidia/recommended/image_id')),
                    _probe(lambda: _client('ssm', limited).describe_parameters())),
                'eks': (_probe(lambda: _client('eks', admin).describe_cluster(name=CLUSTER)),
                        _probe(lambda: _client('eks', limited).list_clusters())),
            }
            # The node role's inline policy is written by eks_gpu_nodegroup, which cannot run under
            # enforcement (its EKS calls, see below): its IAM calls are made here directly, with the
            # same arguments and the limited credentials.
            iam_limited = _client('iam', limited)
            document = json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': ['cloudwatch:PutMetricData'],
                                                                           'Resource': '*'}]})
            probes['iam_node_role_policy'] = [
                _probe(lambda: iam_limited.get_role(RoleName='sandbox-eks-node-role')),
                _probe(lambda: iam_limited.put_role_policy(RoleName='sandbox-eks-node-role', PolicyName='rel-least-privilege',
                                                           PolicyDocument=document)),
                _probe(lambda: iam_limited.get_role_policy(RoleName='sandbox-eks-node-role', PolicyName='rel-least-privilege')),
                _probe(lambda: iam_limited.delete_role_policy(RoleName='sandbox-eks-node-role', PolicyName='rel-least-privilege')),
            ]
            allowed = _support.run_playbook(present, env_extra=limited)
            again = _support.run_playbook(present, env_extra=limited)
            removed = _support.run_playbook(absent, env_extra=limited)
        finally:
            _reset_auth('inf')
    node_role_calls = probes.pop('iam_node_role_policy', None)
    _support.record('least_privilege', enforcement_probes={k: {'admin_allowed_call': v[0], 'limited_disallowed_call': v[1]}
                                                           for k, v in probes.items()},
                    node_role_policy_calls_under_the_policy=node_role_calls)
    assert node_role_calls == ['allowed'] * 4, node_role_calls
    for service in ('ec2', 'autoscaling', 'iam', 'cloudwatch', 'ssm'):
        assert probes[service][0] == 'allowed' and probes[service][1] != 'allowed', (service, probes)
    # The emulator's limit, not ours: with enforcement on, moto checks the signature of a request
    # that has neither body nor query string (EKS's GET/DELETE calls) against its *headers*
    # (BaseResponse.setup_class falls back to `querystring.update(headers)`, and IAMRequest
    # signs `body or data`), so even an allow-all user gets SignatureDoesNotMatch. When this
    # assertion fails, moto was fixed: run eks_gpu_nodegroup under the policy too.
    assert probes['eks'][0] != 'allowed', probes
    assert allowed.returncode == 0, allowed
    assert again.returncode == 0 and again.changed == 0, again
    assert removed.returncode == 0, removed


def test_aws_enforcement_refuses_a_missing_action():
    policy, _unused = _policy_actions()
    without_alarms = json.loads(json.dumps(policy))
    for statement in without_alarms['Statement']:
        if statement['Sid'] == 'ScalingAlarms':
            statement['Action'] = ['cloudwatch:DescribeAlarms', 'cloudwatch:DeleteAlarms']
        if statement['Sid'] == 'StepScalingPolicies':
            statement['Action'] = [a for a in statement['Action'] if a != 'autoscaling:PutScalingPolicy']
    denied = _user_with_policy(boto3.client('iam'), 'rel-least-privilege-no-put', without_alarms)
    asg = _cpu_asg()
    with tempfile.TemporaryDirectory(prefix='rel-iam-') as tmp:
        present = _aws_playbook(tmp, asg, 'present')
        _reset_auth(0)
        try:
            run = _support.run_playbook(present, env_extra=denied)
        finally:
            _reset_auth('inf')
        _support.run_playbook(_aws_playbook(tmp, asg, 'absent'))
    assert run.returncode != 0, run
    assert 'AccessDenied' in run.output or 'not authorized' in run.output, run
    assert any(r['status'] == 403 and r['operation'] == 'PutScalingPolicy' for r in run.activity.requests), run.activity


# --- Kubernetes: a namespaced ServiceAccount ----------------------------------------------------------

# A namespace, a ServiceAccount in it and a Role bound to it; %(rules)s are the Role's rules.
RBAC = """
apiVersion: v1
kind: Namespace
metadata: {name: %(ns)s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: %(sa)s, namespace: %(ns)s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: %(sa)s, namespace: %(ns)s}
rules:
%(rules)s
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: %(sa)s, namespace: %(ns)s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: %(sa)s}
subjects:
- {kind: ServiceAccount, name: %(sa)s, namespace: %(ns)s}
"""
# What the two kube modules need in their namespace.
MODULE_ROLE_RULES = """\
- apiGroups: [""]
  resources: [secrets, configmaps, services, serviceaccounts, pods, persistentvolumeclaims, events]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [apps]
  resources: [deployments, daemonsets, statefulsets, replicasets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, update, patch, delete]"""


def _sa_kubeconfig(directory, namespace=RBAC_NS, account=SA):
    token = _support.kubectl('create', 'token', account, '-n', namespace, '--duration', '1h').stdout.strip()  # TokenRequest API
    admin = yaml.safe_load(open(os.environ['KUBECONFIG'], encoding='utf-8'))
    cluster = admin['clusters'][0]['cluster']
    config = {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'sa',
              'clusters': [{'name': 'sandbox', 'cluster': {'server': cluster['server'],
                                                           'certificate-authority-data': cluster['certificate-authority-data']}}],
              'users': [{'name': account, 'user': {'token': token}}],
              'contexts': [{'name': 'sa', 'context': {'cluster': 'sandbox', 'user': account, 'namespace': namespace}}]}
    path = os.path.join(directory, '%s.kubeconfig' % account)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump(config, handle)
    os.chmod(path, 0o600)
    return path, token


def _kube_playbook(directory, name, namespace, kubeconfig):
    tasks = [
        {'name': 'secret', 'genai.stack.k8s_secret': {'name': 'rel-rbac-secret', 'namespace': namespace, 'kubeconfig': kubeconfig,
                                                      'data': {'token': 'rbac-test-value-0123456789'}}},
        {'name': 'release', 'genai.stack.helm_release': {
            'name': 'rel-rbac-echo', 'release_namespace': namespace, 'kubeconfig': kubeconfig,
            'chart_ref': "oci://{{ lookup('env', 'SANDBOX_REGISTRY') }}/charts/gpu-echo",
            'registry_username': "{{ lookup('env', 'SANDBOX_REGISTRY_USER') }}",
            'registry_password': "{{ lookup('env', 'SANDBOX_REGISTRY_PASSWORD') }}", 'plain_http': True,
            'values': {'gpu': {'enabled': False}}}},
    ]
    path = os.path.join(directory, name)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'rbac', 'hosts': 'sandbox', 'gather_facts': False, 'tasks': tasks}], handle)
    return path


def test_namespaced_service_account_in_and_outside_its_namespace():
    user = 'system:serviceaccount:%s:%s' % (RBAC_NS, SA)
    with tempfile.TemporaryDirectory(prefix='rel-rbac-') as tmp:
        manifest = os.path.join(tmp, 'rbac.yml')
        with open(manifest, 'w', encoding='utf-8') as handle:
            handle.write(RBAC % {'ns': RBAC_NS, 'sa': SA, 'rules': MODULE_ROLE_RULES})
        _support.kubectl('apply', '-f', manifest)
        try:
            kubeconfig, token = _sa_kubeconfig(tmp)
            # KUBECONFIG too, so nothing falls back to the admin identity.
            env = {'KUBECONFIG': kubeconfig}
            inside = _support.run_playbook(_kube_playbook(tmp, 'inside.yml', RBAC_NS, kubeconfig), env_extra=env, kube_user=user)
            assert inside.returncode == 0, inside
            assert inside.activity.writes, 'no write by %s: %r' % (user, inside.activity)
            assert all(w['namespace'] == RBAC_NS for w in inside.activity.writes), inside.activity.writes
            again = _support.run_playbook(_kube_playbook(tmp, 'inside.yml', RBAC_NS, kubeconfig), env_extra=env, kube_user=user)
            assert again.returncode == 0 and again.changed == 0, again

            outside = _support.run_playbook(_kube_playbook(tmp, 'outside.yml', 'default', kubeconfig), env_extra=env, kube_user=user)
            assert outside.returncode != 0, outside
            assert '403' in outside.output or 'forbidden' in outside.output.lower(), outside
            # The modules read before they write: the first request outside is refused already.
            refused = [r for r in outside.activity.kube_requests if r['namespace'] == 'default']
            assert refused and all(r['code'] == 403 for r in refused), outside.activity.kube_requests
            assert not [w for w in outside.activity.writes if w['code'] and w['code'] < 400], outside.activity.writes
            assert token not in inside.output + outside.output
            assert _support.kubectl('get', 'secret', 'rel-rbac-secret', '-n', 'default', check=False).returncode != 0
            _support.record('least_privilege', service_account={'writes_inside': len(inside.activity.writes),
                                                                'refused_outside_403': len(refused),
                                                                'refused_requests': refused})
        finally:
            _support.kubectl('delete', 'namespace', RBAC_NS, '--ignore-not-found', '--wait=false', check=False)


# --- Kubernetes: a whole role (genai_engine) with a namespaced Role and a read-only ClusterRole ---------

ENGINE_NS = 'rel-rbac-engine'
ENGINE_SA = 'engine-deployer'
# What playbooks/genai_engine.yml needs, found by running it with less and reading the 403s
# (docs/security.md, section 6). The namespace is created by an administrator beforehand: the
# role creates it only when it is missing, and namespace creation is cluster-wide.
ENGINE_RBAC = RBAC + """---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: %(ns)s-%(sa)s}
rules:
%(cluster_rules)s
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: %(ns)s-%(sa)s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: %(ns)s-%(sa)s}
subjects:
- {kind: ServiceAccount, name: %(sa)s, namespace: %(ns)s}
"""
ENGINE_ROLE_RULES = """\
- apiGroups: [""]
  resources: [secrets, services]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [deployments, daemonsets]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, update, patch, delete]"""
ENGINE_CLUSTER_RULES = """\
- apiGroups: [""]
  resources: [nodes]
  verbs: [list]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get]"""


def _engine_args():
    return ['-e', 'genai_engine_namespace=%s' % ENGINE_NS, '-e', '{"genai_engine_cpu_node_labels": {"sandbox/pool": "cpu"}}',
            '-e', 'genai_engine_postgres_password=rel-rbac-engine-password']


def _secret_playbook(directory, namespace, kubeconfig):
    tasks = [{'name': 'secret', 'genai.stack.k8s_secret': {'name': 'rel-rbac-engine-secret', 'namespace': namespace,
                                                           'kubeconfig': kubeconfig, 'data': {'token': 'rbac-test-value-0123456789'}}}]
    path = os.path.join(directory, 'engine-outside.yml')
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'rbac', 'hosts': 'sandbox', 'gather_facts': False, 'tasks': tasks}], handle)
    return path


def test_genai_engine_with_a_namespaced_role_and_a_read_only_cluster_role():
    user = 'system:serviceaccount:%s:%s' % (ENGINE_NS, ENGINE_SA)
    with tempfile.TemporaryDirectory(prefix='rel-rbac-engine-') as tmp:
        manifest = os.path.join(tmp, 'rbac.yml')
        with open(manifest, 'w', encoding='utf-8') as handle:
            handle.write(ENGINE_RBAC % {'ns': ENGINE_NS, 'sa': ENGINE_SA, 'rules': ENGINE_ROLE_RULES,
                                        'cluster_rules': ENGINE_CLUSTER_RULES})
        _support.kubectl('apply', '-f', manifest)
        try:
            kubeconfig, token = _sa_kubeconfig(tmp, ENGINE_NS, ENGINE_SA)
            env = {'KUBECONFIG': kubeconfig, 'K8S_AUTH_KUBECONFIG': kubeconfig}
            converge = _support.run_playbook('playbooks/genai_engine.yml', *_engine_args(), env_extra=env, kube_user=user)
            assert converge.returncode == 0, converge
            assert converge.changed > 0 and converge.activity.writes, converge
            assert all(w['namespace'] == ENGINE_NS for w in converge.activity.writes), converge.activity.writes
            refused = [r for r in converge.activity.kube_requests if r['code'] == 403]
            assert not refused, refused
            again = _support.run_playbook('playbooks/genai_engine.yml', *_engine_args(), env_extra=env, kube_user=user)
            assert again.returncode == 0 and again.changed == 0, again

            outside = _support.run_playbook(_secret_playbook(tmp, 'default', kubeconfig), env_extra=env, kube_user=user)
            assert outside.returncode != 0, outside
            assert '403' in outside.output or 'forbidden' in outside.output.lower(), outside
            refused = [r for r in outside.activity.kube_requests if r['namespace'] == 'default']
            assert refused and all(r['code'] == 403 for r in refused), outside.activity.kube_requests
            assert not [w for w in outside.activity.writes if w['code'] and w['code'] < 400], outside.activity.writes
            assert _support.kubectl('get', 'secret', 'rel-rbac-engine-secret', '-n', 'default', check=False).returncode != 0
            assert token not in converge.output + again.output + outside.output
            _support.record('least_privilege', genai_engine_service_account={
                'writes_inside': len(converge.activity.writes), 'rerun_changed': again.changed,
                'refused_outside_403': len(refused)})
        finally:
            _support.run_playbook('playbooks/genai_engine.yml', '-e', 'genai_engine_state=absent', *_engine_args())
            _support.kubectl('delete', 'namespace', ENGINE_NS, '--ignore-not-found', '--wait=false', check=False)
            _support.kubectl('delete', 'clusterrolebinding,clusterrole', '%s-%s' % (ENGINE_NS, ENGINE_SA),
                             '--ignore-not-found', check=False)
