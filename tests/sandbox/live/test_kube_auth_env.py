"""kubernetes.core's K8S_AUTH_* variables reach genai.stack.k8s_secret (the Python client) and
genai.stack.helm_release (the helm binary) alike (issue 14, item 2), on the sandbox's real API server.

The controller's KUBECONFIG names a cluster that does not exist; the connection comes only from
K8S_AUTH_HOST, K8S_AUTH_CERT_FILE and K8S_AUTH_KEY_FILE (the admin's client certificate) and
K8S_AUTH_SSL_CA_CERT, as AWX's Kubernetes credential and kubernetes.core users set them:

- with the API server's CA both modules converge (checked with kubectl as the user has it);
- with another CA both fail on the certificate, naming it, and write nothing;
- with that wrong CA and K8S_AUTH_VERIFY_SSL=false both run again, unchanged;
- bad connection input (a client certificate without its key, from the environment) fails before
  any request, naming the variable.
"""
import base64
import datetime
import json
import os
import subprocess
import uuid

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
REQUIRED = ('KUBECONFIG', 'HELM_BIN')
CHART = os.path.join(ROOT, 'tests', 'fixtures', 'charts', 'gpu-echo')

PLAYBOOK = '''
- hosts: localhost
  gather_facts: false
  tasks:
    - genai.stack.k8s_secret:
        name: "{{ release_name }}"
        namespace: default
        string_data: {greeting: hello}
        state: "{{ state }}"
      register: secret
      ignore_errors: true
    - genai.stack.helm_release:
        name: "{{ release_name }}"
        release_namespace: default
        chart_ref: "{{ chart }}"
        binary_path: "{{ helm }}"
        values: {replicaCount: 0}
        wait: false
        state: "{{ state }}"
      register: release
      ignore_errors: true
    - ansible.builtin.copy:
        dest: "{{ report }}"
        mode: "0600"
        content: >-
          {{ {'changed': {'secret': secret.changed | default(false), 'release': release.changed | default(false)},
              'failed': {'secret': secret.msg | default('') if secret.failed else '',
                         'release': release.msg | default('') if release.failed else ''}} | to_json }}
    - ansible.builtin.fail:
        msg: one of the modules failed
      when: secret.failed or release.failed
'''


def _admin_parts(tmp_path):
    """The admin kubeconfig's server, and its CA, certificate and key as files."""
    with open(os.environ['KUBECONFIG'], encoding='utf-8') as stream:
        config = yaml.safe_load(stream)
    cluster = config['clusters'][0]['cluster']
    user = config['users'][0]['user']
    files = {}
    for name, data in (('ca.crt', cluster['certificate-authority-data']), ('admin.crt', user['client-certificate-data']),
                       ('admin.key', user['client-key-data'])):
        path = tmp_path / name
        path.write_bytes(base64.b64decode(data))
        files[name] = str(path)
    return cluster['server'], files


def _other_ca(tmp_path):
    """A self-signed CA the API server's certificate was not issued by."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'not-the-sandbox-ca')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    path = tmp_path / 'other-ca.crt'
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _kubectl(*args):
    return subprocess.run([os.environ.get('KUBECTL_BIN', 'kubectl')] + list(args), capture_output=True, text=True, check=False)


def _present(name):
    secret = _kubectl('get', 'secret', '-n', 'default', name, '-o', 'json')
    release = subprocess.run([os.environ['HELM_BIN'], 'status', name, '-n', 'default', '-o', 'json'],
                             capture_output=True, text=True, check=False)
    return secret.returncode == 0, release.returncode == 0 and json.loads(release.stdout)['info']['status'] == 'deployed'


@pytest.fixture
def run(env, tmp_path):
    server, files = _admin_parts(tmp_path)
    decoy = tmp_path / 'decoy-kubeconfig'
    decoy.write_text(json.dumps({'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'd',
                                 'clusters': [{'name': 'd', 'cluster': {'server': 'https://127.0.0.1:9'}}],
                                 'users': [{'name': 'd', 'user': {'token': 'decoy'}}],
                                 'contexts': [{'name': 'd', 'context': {'cluster': 'd', 'user': 'd'}}]}))
    playbook = tmp_path / 'auth.yml'
    playbook.write_text(PLAYBOOK)
    base = {name: value for name, value in os.environ.items() if not name.startswith('K8S_AUTH_')}
    base.update(KUBECONFIG=str(decoy), ANSIBLE_CONFIG=os.path.join(ROOT, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
                K8S_AUTH_HOST=server, K8S_AUTH_CERT_FILE=files['admin.crt'], K8S_AUTH_KEY_FILE=files['admin.key'],
                K8S_AUTH_SSL_CA_CERT=files['ca.crt'])
    name = 'auth-env-%s' % uuid.uuid4().hex[:6]

    report = tmp_path / 'report.json'

    def play(state='present', **env_changes):
        if report.exists():
            report.unlink()
        environment = dict(base)
        for key, value in env_changes.items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        proc = subprocess.run([os.path.join(ROOT, '.venv', 'bin', 'ansible-playbook'), str(playbook),
                               '-e', json.dumps({'release_name': name, 'report': str(report), 'state': state, 'chart': CHART, 'helm': os.environ['HELM_BIN']})],
                              cwd=ROOT, env=environ_with_path(environment), capture_output=True, text=True, timeout=600, check=False)
        proc.report = json.loads(report.read_text()) if report.exists() else None
        return proc
    play.name = name
    play.other_ca = _other_ca(tmp_path)
    play.files = files
    yield play
    play('absent', K8S_AUTH_VERIFY_SSL=None)
    _kubectl('delete', 'secret', '-n', 'default', name, '--ignore-not-found')


def environ_with_path(environment):
    environment['PATH'] = os.path.join(ROOT, '.venv', 'bin') + os.pathsep + environment.get('PATH', '')
    return environment


def _result(proc, what='changed'):
    assert proc.report is not None, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.report[what]


@pytest.mark.alongside
def test_k8s_auth_variables_with_a_ca_file_and_the_verify_switch(run):
    wrong = run(K8S_AUTH_SSL_CA_CERT=run.other_ca)
    assert wrong.returncode != 0, wrong.stdout[-3000:]
    failures = _result(wrong, 'failed')
    # Each module on its own route (the Python client, the helm binary) refuses the server's certificate.
    assert 'certificate verify failed' in failures['secret'].lower(), failures
    assert 'x509' in failures['release'] or 'certificate' in failures['release'], failures
    assert _present(run.name) == (False, False)

    first = run()
    assert first.returncode == 0, first.stdout[-4000:]
    assert _result(first) == {'secret': True, 'release': True}
    assert _present(run.name) == (True, True)

    again = run(K8S_AUTH_SSL_CA_CERT=run.other_ca, K8S_AUTH_VERIFY_SSL='false')
    assert again.returncode == 0, again.stdout[-4000:]
    assert _result(again) == {'secret': False, 'release': False}

    gone = run('absent')
    assert gone.returncode == 0, gone.stdout[-4000:]
    assert _result(gone) == {'secret': True, 'release': True}
    assert _present(run.name) == (False, False)


@pytest.mark.alongside
def test_a_certificate_without_its_key_is_refused_before_any_request(run):
    proc = run(K8S_AUTH_KEY_FILE=None)
    assert proc.returncode != 0
    assert 'client_key: client_cert and client_key go together' in proc.stdout, proc.stdout[-3000:]
    assert _present(run.name) == (False, False)
