"""Secrets never reach the output (-vvv, --diff, --check, failures), the AWS journal or the
Kubernetes audit log.

Each run is given distinctive generated values (LEAKCANARY<label><hex>) in every secret-bearing
option or variable; the sandbox's own registry password (a random token) is checked too. A
"forced failure" run fails after the secrets were written (genai_engine: an unknown chart
version after the secrets tasks; adaptive and observability: the same with their charts; postgres
and opea: a failing play after the role (postgres has no later task a variable can break; opea
renders its chart before it writes the Secret); modules: a failing task after k8s_secret, and a
format check failing on a secret value; cluster_gpu: a non-retryable AWS error after its first
tasks). Every converge and failure asserts its return code and that Secrets were written.

A run counts as checked (the "runs" of docs/security.md) only when its expected outcome happened:
the converge, check or teardown succeeded; the forced failure failed with its own error, after
the secrets were written (not in a preflight, before any secret was used); and its test passed.
A leak counts whatever the outcome.
"""
import json
import os
import tempfile

import pytest
import yaml

import _support
from conftest import canary

NAMESPACE = 'rel-secrets'


def _haystacks(run):
    with open(os.environ['SANDBOX_AWS_JOURNAL'], encoding='utf-8', errors='replace') as handle:
        journal = handle.read()
    with open(os.environ['SANDBOX_KUBE_AUDIT'], encoding='utf-8', errors='replace') as handle:
        audit = handle.read()
    return {'output': run.output, 'journal': journal, 'audit log': audit}


def _leaks(run, secrets, label):
    found = []
    for where, text in _haystacks(run).items():
        for name, value in secrets.items():
            if value and value in text:
                found.append('%s: %s in the %s' % (label, name, where))
    for leak in found:
        _support.record_finding('secrets', 'leaks', leak)
    return found


def _check_run(label, run, secrets, failure_text=None, wrote_secrets=False):
    """Search the run for the secrets, then count it as checked only if its expected outcome
    happened: success, or (failure_text) a failure with that text; with wrote_secrets, Secrets
    were written in the run (the audit log), so a forced failure came after them."""
    found = _leaks(run, dict(secrets, **_registry_secret()), label)
    if failure_text is None:
        assert run.returncode == 0, ('%s: expected to succeed' % label, run)
    else:
        assert run.returncode != 0 and failure_text in run.output, ('%s: expected to fail with %r' % (label, failure_text), run)
    if wrote_secrets:
        assert _secret_writes(run), ('%s: no Secret was written, so the run did not get as far as the secrets' % label, run)
    assert not found, found
    _support.record_item('secrets', 'runs', label)


def _registry_secret():
    """The sandbox's own secrets, checked in every run: the registry's and PostgreSQL's passwords."""
    return {'sandbox registry password': os.environ['SANDBOX_REGISTRY_PASSWORD'], 'sandbox PGPASSWORD': os.environ.get('PGPASSWORD', '')}


# --- cluster_gpu (runs of the shared lifecycle: converge -vvv --diff, --check, teardown) ------------

@pytest.mark.parametrize('phase', ['converge', 'check', 'teardown'])
def test_cluster_gpu_runs(cluster_gpu_lifecycle, phase):
    run = cluster_gpu_lifecycle[phase]
    _check_run('cluster_gpu %s' % phase, run, {'AWS secret key': cluster_gpu_lifecycle['secret']})


def test_cluster_gpu_forced_failure():
    secret = canary('awskeyfail')
    _support.queue_faults([{'service': 'cloudwatch', 'operation': 'DescribeAlarms', 'code': 'AccessDenied', 'status': 403, 'times': 50}])
    try:
        run = _support.run_playbook('playbooks/cluster_gpu.yml', '-vvv', '--diff', env_extra={'AWS_SECRET_ACCESS_KEY': secret})
    finally:
        _support.clear_faults()
        down = _support.run_playbook('playbooks/cluster_gpu.yml', '-e', 'cluster_gpu_state=absent')
    # The failure is the injected one, in the alarms task: the run got past the preflight and the
    # node group (requests signed with the secret key) before it.
    assert 403 in run.activity.statuses('DescribeAlarms', 'cloudwatch'), ('the run failed before the alarms task', run)
    _check_run('cluster_gpu forced failure', run, {'AWS secret key': secret}, failure_text='AccessDenied')
    assert down.returncode == 0, down


# --- the modules ------------------------------------------------------------------------------------

def _module_secrets():
    return {name: canary(name) for name in ('data', 'dockerpw', 'tlskey', 'openai', 'awskey', 'badformat')}


def _env(name):
    return "{{ lookup('ansible.builtin.env', 'REL_SECRET_%s') }}" % name.upper()


def _secret_env(secrets):
    return {'REL_SECRET_%s' % name.upper(): value for name, value in secrets.items()}


def _modules_playbook(directory, secrets, fail_after):
    # The values come from the environment, as from a vault or a lookup in real use: ansible-core
    # (2.19) prints the source lines around a failed task ("Origin:"), so a secret written
    # literally into a playbook is shown by ansible itself on any failure nearby.
    secrets = {name: _env(name) for name in secrets}
    pem_key = '-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n' % secrets['tlskey']
    pem_cert = '-----BEGIN CERTIFICATE-----\nMIIBrelcert\n-----END CERTIFICATE-----\n'
    tasks = [
        {'name': 'namespace', 'kubernetes.core.k8s': {'kind': 'Namespace', 'name': NAMESPACE, 'api_version': 'v1'}},
        {'name': 'opaque', 'genai.stack.k8s_secret': {'name': 'rel-opaque', 'namespace': NAMESPACE,
                                                      'string_data': {'password': secrets['data'], 'keys': 'gpt::https://x.example/::%s' % secrets['openai']},
                                                      'format': {'keys': 'openai_endpoints'}, 'min_length': 12}},
        {'name': 'registry', 'genai.stack.k8s_secret': {'name': 'rel-docker', 'namespace': NAMESPACE,
                                                        'docker_registry': {'server': 'ghcr.io', 'username': 'rel', 'password': secrets['dockerpw']}}},
        {'name': 'tls', 'genai.stack.k8s_secret': {'name': 'rel-tls', 'namespace': NAMESPACE, 'tls': {'cert': pem_cert, 'key': pem_key}}},
        {'name': 'chart', 'genai.stack.helm_release': {
            'name': 'rel-secrets-echo', 'release_namespace': NAMESPACE,
            'chart_ref': "oci://{{ lookup('env', 'SANDBOX_REGISTRY') }}/charts/gpu-echo",
            'registry_username': "{{ lookup('env', 'SANDBOX_REGISTRY_USER') }}",
            'registry_password': "{{ lookup('env', 'SANDBOX_REGISTRY_PASSWORD') }}", 'plain_http': True,
            'values': {'gpu': {'enabled': False}}}},
        {'name': 'alarms with an explicit secret key', 'genai.stack.scaling_alarm': {
            'name': 'rel-secrets-cpu', 'cluster_name': 'sandbox', 'nodegroup_name': 'sandbox-cpu', 'metric': 'cpu',
            'access_key': 'AKIARELSECRETS', 'secret_key': secrets['awskey']}},
        {'name': 'labels with an explicit secret key', 'genai.stack.eks_nodegroup_labels': {
            'name': 'sandbox-cpu', 'cluster_name': 'sandbox', 'labels': {'rel-secrets': 'yes'},
            'access_key': 'AKIARELSECRETS', 'secret_key': secrets['awskey']}},
        {'name': 'a format check fails on a secret value', 'genai.stack.k8s_secret': {
            'name': 'rel-bad-format', 'namespace': NAMESPACE, 'string_data': {'keys': 'no-separators-%s' % secrets['badformat']},
            'format': {'keys': 'openai_endpoints'}}, 'ignore_errors': True},
    ]
    if fail_after:
        tasks.append({'name': 'forced failure after the secrets are set', 'ansible.builtin.fail': {'msg': 'forced failure'}})
    path = os.path.join(directory, 'modules-%s.yml' % ('fail' if fail_after else 'ok'))
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'secrets', 'hosts': 'sandbox', 'gather_facts': False, 'tasks': tasks}], handle, sort_keys=False)
    return path


def _modules_cleanup(directory):
    tasks = [
        {'name': 'chart', 'genai.stack.helm_release': {'name': 'rel-secrets-echo', 'release_namespace': NAMESPACE, 'state': 'absent'}},
        {'name': 'alarms', 'genai.stack.scaling_alarm': {'name': 'rel-secrets-cpu', 'cluster_name': 'sandbox',
                                                         'nodegroup_name': 'sandbox-cpu', 'state': 'absent'}},
        {'name': 'labels', 'genai.stack.eks_nodegroup_labels': {'name': 'sandbox-cpu', 'cluster_name': 'sandbox',
                                                                'labels': {'rel-secrets': 'yes'}, 'state': 'absent'}},
        {'name': 'namespace', 'kubernetes.core.k8s': {'kind': 'Namespace', 'name': NAMESPACE, 'api_version': 'v1', 'state': 'absent'}},
    ]
    path = os.path.join(directory, 'cleanup.yml')
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'name': 'cleanup', 'hosts': 'sandbox', 'gather_facts': False, 'tasks': tasks}], handle)
    return _support.run_playbook(path)


def test_modules_vvv_diff_check_update_and_failure():
    with tempfile.TemporaryDirectory(prefix='rel-secrets-') as tmp:
        try:
            first = _module_secrets()
            ok_path, fail_path = _modules_playbook(tmp, first, False), _modules_playbook(tmp, first, True)
            check_first = _support.run_playbook(ok_path, '--check', '--diff', '-vvv', env_extra=_secret_env(first))
            create = _support.run_playbook(ok_path, '--diff', '-vvv', env_extra=_secret_env(first))
            second = _module_secrets()   # new values: the update path and its diff
            check_update = _support.run_playbook(ok_path, '--check', '--diff', '-vvv', env_extra=_secret_env(second))
            failed = _support.run_playbook(fail_path, '--diff', '-vvv', env_extra=_secret_env(second))
        finally:
            cleanup = _modules_cleanup(tmp)
    for label, run, secrets, failure, wrote in (
            ('modules --check (create)', check_first, first, None, False), ('modules -vvv --diff', create, first, None, True),
            ('modules --check (update)', check_update, second, None, False),
            ('modules forced failure', failed, second, 'forced failure', True)):
        _check_run(label, run, secrets, failure_text=failure, wrote_secrets=wrote)
    assert cleanup.returncode == 0, cleanup


# --- genai_engine -----------------------------------------------------------------------------------

def _engine_vars(secrets):
    # The seeded CPU node group's label: the engine needs CPU nodes, whatever cluster_gpu did.
    return ['-e', '{"genai_engine_cpu_node_labels": {"sandbox/pool": "cpu"}}',
            '-e', 'genai_engine_admin_key=%s' % secrets['admin'], '-e', 'genai_engine_postgres_password=%s' % secrets['pg'],
            '-e', 'genai_engine_registry_username=rel', '-e', 'genai_engine_registry_password=%s' % secrets['registry'],
            '-e', 'genai_engine_openai_gpt_names_endpoints_keys=gpt::https://x.example/::%s' % secrets['openai']]


def test_genai_engine_vvv_diff_check_and_failure(request, engine_addons):  # pylint: disable=unused-argument
    secrets = {name: canary(name) for name in ('admin', 'pg', 'registry', 'openai')}
    try:
        converge = _support.run_playbook('playbooks/genai_engine.yml', '-vvv', '--diff', *_engine_vars(secrets))
        check = _support.run_playbook('playbooks/genai_engine.yml', '--check', '--diff', '-vvv', *_engine_vars(secrets))
        rotated = {name: canary(name + 'b') for name in secrets}
        # A label value the apiserver refuses: it passes the preflight's render, so the failure comes after the secrets.
        failed = _support.run_playbook('playbooks/genai_engine.yml', '-vvv', '--diff',
                                       '-e', '{"genai_engine_values": {"arthurGenaiEngineService": {"labels": {"rel": "bad value!"}}}}',
                                       *_engine_vars(rotated))
    finally:
        down = _support.run_playbook('playbooks/genai_engine.yml', '-e', 'genai_engine_state=absent')
    for label, run, values, failure, wrote in (
            ('genai_engine -vvv --diff', converge, secrets, None, True), ('genai_engine --check', check, secrets, None, False),
            ('genai_engine forced failure', failed, dict(secrets, **{k + '2': v for k, v in rotated.items()}), 'bad value!', True)):
        _check_run(label, run, values, failure_text=failure, wrote_secrets=wrote)
    assert down.returncode == 0, down


# --- the other roles: a real converge and a forced failure, each with canary secrets -------------------

PG_DB = 'rel_secrets_db'


def _postgres_vars(make):
    database = {'name': PG_DB, 'owner': 'rel_secrets_owner', 'password': make('pgowner'),
                'secrets': [{'name': 'rel-secrets-pg', 'namespace': 'rel-secrets-pg', 'type': 'url', 'key': 'url'},
                            {'name': 'rel-secrets-pg-creds', 'namespace': 'rel-secrets-pg', 'type': 'credentials'}]}
    return ['-e', json.dumps({'postgres_databases': [database]}), '-e', 'postgres_drop_on_absent=true']


# role: (variables with canary secrets, the forced failure (None: a failing play after the role's),
# the text of that failure in the output)
OTHER_ROLES = {
    'postgres': (_postgres_vars, None, 'forced failure after the postgres role'),
    'adaptive': (lambda c: ['-e', 'adaptive_cookies_secret=%s' % (c('cookie') * 2),
                            '-e', 'adaptive_database_url=postgresql://u:%s@db.example.com:5432/adaptive' % c('dburl')],
                 None, 'forced failure after the adaptive role'),
    'observability': (lambda c: ['-e', 'observability_grafana_admin_password=%s' % c('grafana'),
                                 '-e', 'observability_opensearch_admin_password=Aa1!%s' % c('opensearch')],
                      None, 'forced failure after the observability role'),
    # adaptive, observability and opea render their charts before they write a Secret (a version the
    # mirror lacks fails in preflight, before any write): the failure comes after the role instead.
    'opea': (lambda c: ['-e', 'opea_hf_token=hf_%s' % c('hftoken')], None, 'forced failure after the opea role'),
}


@pytest.fixture(scope='module')
def gpu_nodes():
    """GPU Nodes for adaptive and opea (their preflights count GPUs): cluster_gpu once, removed after."""
    run = _support.run_playbook('playbooks/cluster_gpu.yml')
    assert run.returncode == 0, run
    yield
    down = _support.run_playbook('playbooks/cluster_gpu.yml', '-e', 'cluster_gpu_state=absent')
    assert down.returncode == 0, down


def _failing_wrapper(directory, role):
    path = os.path.join(directory, '%s-then-fail.yml' % role)
    with open(path, 'w', encoding='utf-8') as handle:
        yaml.safe_dump([{'import_playbook': os.path.join(_support.ROOT, 'playbooks', '%s.yml' % role)},
                        {'name': 'fail', 'hosts': "{{ genai_clusters | default('eks_clusters') }}", 'gather_facts': False,
                         'tasks': [{'name': 'forced failure', 'ansible.builtin.fail': {'msg': 'forced failure after the %s role' % role}}]}],
                       handle, sort_keys=False)
    return path


def _secret_writes(run):
    return [w for w in run.activity.writes if w['resource'] == 'secrets' and w['code'] in (200, 201)
            and not (w['name'] or '').startswith('sh.helm.release.')]


@pytest.mark.parametrize('role', sorted(OTHER_ROLES))
def test_other_roles_converge_and_forced_failure(role, gpu_nodes):  # pylint: disable=redefined-outer-name,unused-argument
    make_vars, failure, failure_text = OTHER_ROLES[role]
    playbook = 'playbooks/%s.yml' % role
    made = {}

    def make(label):
        made[label] = canary(label)
        return made[label]

    with tempfile.TemporaryDirectory(prefix='rel-secrets-') as tmp:
        try:
            converge = _support.run_playbook(playbook, '-vvv', '--diff', *make_vars(make))
            first = dict(made)
            # New values: the failing run writes (updates) the secrets, then fails after them.
            if failure is None:
                failed = _support.run_playbook(_failing_wrapper(tmp, role), '-vvv', '--diff', *make_vars(make))
            else:
                failed = _support.run_playbook(playbook, '-vvv', '--diff', *make_vars(make), *failure)
        finally:
            down = _support.run_playbook(playbook, '-e', '%s_state=absent' % role, *make_vars(make))
    for label, run, failure, wrote in (('%s -vvv --diff' % role, converge, None, True),
                                       ('%s forced failure' % role, failed, failure_text, True), ('%s absent' % role, down, None, False)):
        _check_run(label, run, made, failure_text=failure, wrote_secrets=wrote)
    assert first != made
