"""Role postgres through playbooks/postgres.yml on the sandbox: the sandbox's PostgreSQL 15
(direct mode), the in-cluster Job (job mode: objects checked, and its SQL run here with psql,
because kwok completes Job pods without running them) and the optional RDS instance.

TLS is verified (sslmode verify-full against the sandbox's CA, SANDBOX_POSTGRES_CA), and the
owners' passwords reach the server only as SCRAM-SHA-256 verifiers: the server logs every
statement of the administrative login during these tests, and the log never holds a password."""
import base64
import json
import os
import subprocess
import time

import boto3
import pytest
from kubernetes import client, config

from playbook_helpers import assert_absent_previewed, psql

PLAYBOOK = 'playbooks/postgres.yml'
STORE_NS = 'genai-postgres'
DB = 'arthur_genai_engine'
ADAPTIVE = [
    {'name': DB, 'owner': DB, 'secrets': [{'name': 'postgres-secret', 'namespace': 'arthur', 'type': 'credentials'}]},
    {'name': 'adaptive', 'owner': 'adaptive', 'secrets': [{'name': 'adaptive-db', 'namespace': 'adaptive', 'type': 'url', 'key': 'url'}]},
]


@pytest.fixture(scope='module')
def core():
    config.load_kube_config()
    return client.CoreV1Api()


@pytest.fixture(scope='module', autouse=True)
def consumer_namespaces_left_as_found(core):
    """The role creates the consumers' namespaces it writes Secrets into (arthur, adaptive) and,
    rightly, leaves them on teardown: they belong to the engines. This file stands alone, so it
    removes the ones that did not exist before it, or later checks that need an empty sandbox
    (the installed-tarball demo, molecule's prepare) find a stack namespace left behind."""
    consumers = sorted({s['namespace'] for db in ADAPTIVE for s in db['secrets']})
    existed = {name for name in consumers if _namespace_exists(core, name)}
    yield
    for name in consumers:
        if name not in existed and _namespace_exists(core, name):
            core.delete_namespace(name)
    deadline = time.monotonic() + 120
    while any(n not in existed and _namespace_exists(core, n) for n in consumers) and time.monotonic() < deadline:
        time.sleep(1)
    left = [n for n in consumers if n not in existed and _namespace_exists(core, n)]
    assert not left, 'namespaces created by this test still exist after 120 s: %s' % left


def _secret(core, namespace, name):
    try:
        found = core.read_namespaced_secret(name, namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return {k: base64.b64decode(v).decode() for k, v in (found.data or {}).items()}


def _namespace_exists(core, name):
    try:
        core.read_namespace(name)
        return True
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise


@pytest.fixture
def statement_log():
    """Every statement of the administrative login is logged while the test runs (log_statement=all
    for that role, as a server that logs DDL would); yields a reader of what was logged since."""
    log = os.path.join(os.path.dirname(os.path.dirname(os.environ['SANDBOX_POSTGRES_CA'])), 'postgres.log')
    start = os.path.getsize(log)
    user = os.environ['PGUSER']
    assert psql('ALTER ROLE %s SET log_statement = \'all\'' % user).returncode == 0

    def since():
        with open(log, encoding='utf-8', errors='replace') as handle:
            handle.seek(start)
            return handle.read()
    yield since
    psql('ALTER ROLE %s RESET log_statement' % user)


def _verifier(role):
    return psql("SELECT rolpassword FROM pg_authid WHERE rolname = '%s'" % role).stdout.strip()


def test_direct_converge_rerun_check_rotate_and_teardown(run_playbook, core, statement_log):
    databases = ['-e', json.dumps({'postgres_databases': ADAPTIVE})]
    try:
        first = run_playbook(PLAYBOOK, '-vvv', '--diff', *databases)
        assert first.returncode == 0, first
        first.assert_wrote()  # the positive control of the no-write checks below
        stored = _secret(core, STORE_NS, 'db-arthur-genai-engine')
        password = stored['password']
        assert len(password) == 32
        assert password not in first.output
        assert os.environ['PGPASSWORD'] not in first.output

        # The server got the verifier made on the controller, never the password: pg_authid holds it, and the
        # statement that set it is in the server's log (the positive control) without the password.
        verifier = _verifier(DB)
        assert verifier.startswith('SCRAM-SHA-256$4096:') and verifier == stored['password_verifier']
        logged = statement_log()
        assert verifier in logged and 'PASSWORD' in logged.upper()
        adaptive_password = _secret(core, STORE_NS, 'db-adaptive')['password']
        assert password not in logged and adaptive_password not in logged

        # Another route: the owner logs in with the password of the engine's secret, over TLS verified as
        # the role's connections are (verify-full against the sandbox's CA).
        engine = _secret(core, 'arthur', 'postgres-secret')
        assert engine == {'username': DB, 'password': password}
        login = psql('SELECT current_user, current_database(), ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()', DB, password, DB, ssl='verify-full')
        assert login.returncode == 0 and login.stdout.strip() == '%s|%s|t' % (DB, DB), login.stderr
        owner = psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'" % DB)
        assert owner.stdout.strip() == DB
        assert psql('SHOW server_version_num').stdout.startswith('15')
        url = _secret(core, 'adaptive', 'adaptive-db')['url']
        assert url == 'postgresql://adaptive:%s@%s:%s/adaptive?sslmode=verify-full' % (
            adaptive_password, os.environ['PGHOST'], os.environ['PGPORT'])

        second = run_playbook(PLAYBOOK, *databases)
        assert second.returncode == 0 and second.changed == 0, second
        assert second.admin_writes == 0, second.admin_write_sample
        assert _secret(core, STORE_NS, 'db-arthur-genai-engine')['password'] == password
        assert _verifier(DB) == verifier  # kept while the password matches it: no new salt, no change

        check = run_playbook(PLAYBOOK, '--check', '--diff', *databases, '-e', 'postgres_rotate_password=true')
        assert check.returncode == 0 and check.changed > 0, check
        assert check.admin_writes == 0, check.admin_write_sample
        assert _secret(core, 'arthur', 'postgres-secret')['password'] == password

        rotated = run_playbook(PLAYBOOK, *databases, '-e', 'postgres_rotate_password=true')
        assert rotated.returncode == 0 and rotated.changed > 0, rotated
        new_password = _secret(core, 'arthur', 'postgres-secret')['password']
        assert new_password != password
        assert psql('SELECT 1', DB, new_password, DB).returncode == 0
        assert psql('SELECT 1', DB, password, DB).returncode != 0
        assert _verifier(DB).startswith('SCRAM-SHA-256$') and _verifier(DB) != verifier
        assert new_password not in statement_log()

        # The teardown previewed: planned and named, nothing removed (nor any database dropped).
        assert_absent_previewed(run_playbook, PLAYBOOK, 'postgres_state', *databases, names=['arthur/postgres-secret', 'adaptive/adaptive-db'])
        assert _secret(core, 'arthur', 'postgres-secret')['password'] == new_password
        assert psql('SELECT 1', DB, new_password, DB).returncode == 0
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'postgres_state=absent', *databases)
    assert down.returncode == 0, down
    assert _secret(core, 'arthur', 'postgres-secret') is None
    assert _secret(core, 'adaptive', 'adaptive-db') is None
    assert not _namespace_exists(core, STORE_NS)
    assert psql("SELECT count(*) FROM pg_database WHERE datname IN ('%s', 'adaptive')" % DB).stdout.strip() == '0'
    assert psql("SELECT count(*) FROM pg_roles WHERE rolname IN ('%s', 'adaptive')" % DB).stdout.strip() == '0'
    again = run_playbook(PLAYBOOK, '-e', 'postgres_state=absent', *databases)
    assert again.returncode == 0 and again.changed == 0, again


def test_job_mode_objects_and_script(run_playbook, core, statement_log):
    """kwok marks the Job's pod Succeeded without running psql: the objects are checked here and
    the Job's script is run with psql against the sandbox server, the way the Job would run it."""
    batch = client.BatchV1Api()
    try:
        first = run_playbook(PLAYBOOK, '-e', 'postgres_mode=job')
        assert first.returncode == 0, first
        first.assert_wrote()
        admin = _secret(core, STORE_NS, 'postgres-admin')
        assert admin == {'PGHOST': os.environ['PGHOST'], 'PGPORT': os.environ['PGPORT'], 'PGUSER': os.environ['PGUSER'],
                         'PGPASSWORD': os.environ['PGPASSWORD'], 'PGDATABASE': 'postgres', 'PGSSLMODE': 'verify-full',
                         'PGSSLROOTCERT': '/etc/genai-postgres/ca.crt'}
        with open(os.environ['SANDBOX_POSTGRES_CA'], encoding='utf-8') as handle:
            assert _secret(core, STORE_NS, 'postgres-admin-ca') == {'ca.crt': handle.read()}
        jobs = batch.list_namespaced_job(STORE_NS, label_selector='genai.stack/postgres-setup').items
        assert len(jobs) == 1
        pod = jobs[0].spec.template.spec
        container = pod.containers[0]
        assert container.image == 'docker.io/library/postgres:15-alpine'
        assert container.env_from[0].secret_ref.name == 'postgres-admin'
        env = {e.name: e for e in container.env}
        assert env['DB_NAME'].value == DB and env['DB_OWNER'].value == DB
        # The Job gets the verifier, never the password, and nothing secret is on its command line.
        assert env['DB_PASSWORD_VERIFIER'].value_from.secret_key_ref.name == 'db-arthur-genai-engine'
        assert env['DB_PASSWORD_VERIFIER'].value_from.secret_key_ref.key == 'password_verifier'
        assert 'DB_PASSWORD' not in env
        assert container.command == ['sh', '-c'] and len(container.args) == 1
        assert container.args[0].endswith('exec psql -X -w -v ON_ERROR_STOP=1 -f /setup/setup.sql') and 'DB_PASSWORD ' not in container.args[0]
        assert {m.mount_path for m in container.volume_mounts} == {'/setup', '/etc/genai-postgres'}
        script_cm = next(core.read_namespaced_config_map(v.config_map.name, STORE_NS) for v in pod.volumes if v.config_map)
        assert jobs[0].status.succeeded == 1  # kwok's doing, not psql's
        stored = _secret(core, STORE_NS, 'db-arthur-genai-engine')
        password, verifier = stored['password'], stored['password_verifier']
        job_text = json.dumps(client.ApiClient().sanitize_for_serialization(jobs[0])) + json.dumps(script_cm.data)
        assert password not in job_text and verifier not in job_text

        job_env = {'DB_NAME': DB, 'DB_OWNER': DB, 'DB_PASSWORD_VERIFIER': verifier,
                   'PGSSLMODE': 'verify-full', 'PGSSLROOTCERT': os.environ['SANDBOX_POSTGRES_CA']}
        for _unused in range(2):  # the script is idempotent
            ran = psql(None, script=script_cm.data['setup.sql'], env_extra=job_env)
            assert ran.returncode == 0, ran.stderr
        assert psql('SELECT current_database()', DB, password, DB, ssl='verify-full').stdout.strip() == DB
        assert _verifier(DB) == verifier
        logged = statement_log()
        assert verifier in logged and password not in logged
        # Given a password instead of a verifier, the Job's command refuses before psql starts.
        script = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'genai-test-setup.sql')
        with open(script, 'w', encoding='utf-8') as handle:
            handle.write(script_cm.data['setup.sql'])
        refused = subprocess.run(['sh', '-c', container.args[0].replace('/setup/setup.sql', script)], capture_output=True, text=True, timeout=60,
                                 env=dict(os.environ, PATH=os.environ['SANDBOX_POSTGRES_BIN'] + os.pathsep + os.environ['PATH'],
                                          **dict(job_env, DB_PASSWORD_VERIFIER=password)), check=False)
        assert refused.returncode != 0 and 'not a SCRAM-SHA-256 verifier' in refused.stderr, refused
        assert password not in statement_log()
        # The same command given the verifier runs the script (the Job's way, here).
        ran = subprocess.run(['sh', '-c', container.args[0].replace('/setup/setup.sql', script)], capture_output=True, text=True, timeout=60,
                             env=dict(os.environ, PATH=os.environ['SANDBOX_POSTGRES_BIN'] + os.pathsep + os.environ['PATH'], **job_env), check=False)
        assert ran.returncode == 0, ran.stderr

        second = run_playbook(PLAYBOOK, '-e', 'postgres_mode=job')
        assert second.returncode == 0 and second.changed == 0, second
        assert second.admin_writes == 0, second.admin_write_sample
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'postgres_state=absent')
    assert down.returncode == 0, down
    assert not _namespace_exists(core, STORE_NS)


OTHER_CA = os.path.join(os.environ.get('TMPDIR', '/tmp'), 'genai-test-other-ca.crt')


def _other_ca():
    """A CA that did not sign the sandbox server's certificate."""
    if not os.path.exists(OTHER_CA):
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
                        '-subj', '/CN=not the sandbox CA', '-keyout', os.devnull, '-out', OTHER_CA], check=True, capture_output=True)


BAD_VARS = [
    ('postgres_admin_password=', 'postgres_admin_password: is required'),
    ('postgres_host=', 'postgres_host: is required'),
    ('postgres_port=70000', 'postgres_port: must be a TCP port'),
    ('postgres_password_length=8', 'postgres_password_length: must be between 16 and 99'),
    ('postgres_namespace=Bad_NS', 'postgres_namespace: must be a DNS label'),
    ('{"postgres_databases": [{"name": "Bad-Name", "owner": "x"}]}', 'postgres_databases[].name: must be'),
    ('{"postgres_databases": [{"name": "a", "owner": "postgres"}]}', 'postgres_databases[].owner: must not be the administrative login'),
    ('{"postgres_databases": [{"name": "a", "owner": "a", "password": "short"}]}', 'postgres_databases[].password: must be at least 16'),
    ('{"postgres_databases": [{"name": "a", "owner": "a", "secrets": [{"name": "s", "namespace": "Bad"}]}]}',
     'postgres_databases[].secrets[].namespace: must be DNS labels'),
    ('postgres_admin_password=wrong-password-123', 'postgres_host: 127.0.0.1'),
    # TLS: verify-full needs the CA bundle, and a server whose certificate another CA signed is refused.
    ('postgres_ssl_root_cert=', 'postgres_ssl_root_cert: is required with postgres_ssl_mode verify-full'),
    ('postgres_ssl_root_cert=/nonexistent/ca.pem', "postgres_ssl_root_cert: '/nonexistent/ca.pem' is not a readable file on the controller"),
    ('postgres_ssl_root_cert=' + OTHER_CA, 'certificate verify failed'),
    ('postgres_mode=sideways', 'postgres_mode'),
    ('{"postgres_rds_enabled": true, "postgres_rds_allocated_storage": 5}', 'postgres_rds_allocated_storage: must be at least 20'),
    ('{"postgres_rds_enabled": true, "postgres_rds_engine_version": "16.3"}', 'postgres_rds_engine_version: must be PostgreSQL 15'),
]


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[m.split(':')[0] for _unused, m in BAD_VARS])
def test_preflight_refuses_before_any_change(run_playbook, extra, message):
    _other_ca()
    run = run_playbook(PLAYBOOK, '-e', extra)
    assert run.returncode != 0, run
    assert message in run.output, run
    assert run.admin_writes == 0, run.admin_write_sample
    assert run.activity['aws_mutating'] == 0, run


def test_rds_instance_through_the_emulator(run_playbook):
    """The instance in a subnet group of the seeded VPC's private subnets; in the emulator its
    endpoint does not answer, so the databases go through the Job (kwok completes it)."""
    subnets = [s['SubnetId'] for s in boto3.client('ec2').describe_subnets(
        Filters=[{'Name': 'tag:sandbox:tier', 'Values': ['private']}])['Subnets']]
    rds_vars = ['-e', 'postgres_rds_enabled=true', '-e', 'postgres_mode=job', '-e', 'postgres_rds_instance_id=genai-pg-test',
                '-e', 'postgres_job_wait=false', '-e', json.dumps({'postgres_rds_subnets': subnets})]
    try:
        first = run_playbook(PLAYBOOK, *rds_vars)
        assert first.returncode == 0, first
        assert 'rds:CreateDBInstance' in first.activity['aws_mutating_operations'], first.activity
        instance = boto3.client('rds').describe_db_instances(DBInstanceIdentifier='genai-pg-test')['DBInstances'][0]
        assert instance['Engine'] == 'postgres' and instance['EngineVersion'].startswith('15')
        assert instance['StorageEncrypted'] is True
        assert instance['DBSubnetGroup']['DBSubnetGroupName'] == 'genai-pg-test-subnets'
        second = run_playbook(PLAYBOOK, *rds_vars)
        assert second.returncode == 0 and second.changed == 0, second
        assert second.activity['aws_mutating'] == 0, second.activity
    finally:
        down = run_playbook(PLAYBOOK, '-e', 'postgres_state=absent', *rds_vars)
    assert down.returncode == 0, down
    left = boto3.client('rds').describe_db_instances()['DBInstances']
    assert 'genai-pg-test' not in [i['DBInstanceIdentifier'] for i in left]
