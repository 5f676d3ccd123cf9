"""A play whose only Kubernetes connection is genai.stack.eks_connection (issue 14, item 1).

The controller's KUBECONFIG names a cluster that does not exist; the play's group/genai.stack.k8s
defaults are the lookup, so kubernetes.core.k8s, k8s_info, genai.stack.k8s_secret and helm_release
(helm itself) reach the sandbox's API server only through DescribeCluster's endpoint and CA and the
collection's own EKS token, which the API server checks with its EKS token webhook (the emulator:
the presigned STS signature, its age, the cluster id and the access entries).

Verified by another route: kubectl with the sandbox's admin certificate reads what the play wrote,
and the audit log shows who wrote it: the IAM user of the run (its access entry's username), never
the certificate's user.
"""
import base64
import json

import pytest

from playbook_helpers import decoy_kubeconfig, helm_releases, iam_user_without_access_entry, kube_get, kubectl

NAMESPACE = 'eks-connection-check'
IAM_ADMIN_USERNAME = 'arn:aws:iam::123456789012:user/sandbox-admin'
# Who a play could write as: the IAM identity through its access entry, or the admin certificate.
PLAY_USERS = (IAM_ADMIN_USERNAME, 'sandbox-admin')


def _play_writes(run):
    return {user: run.activity['kube_writes_by_user'].get(user, 0) for user in PLAY_USERS}


PLAY = '''
- name: Kubernetes and helm through the EKS-derived connection only
  hosts: eks_clusters
  gather_facts: false
  vars:
    connection: "{{ lookup('genai.stack.eks_connection', 'sandbox') }}"
  module_defaults:
    group/genai.stack.k8s: "{{ connection }}"
  tasks:
    - name: Read the namespace
      kubernetes.core.k8s_info:
        kind: Namespace
        name: %(ns)s
      register: existing
    - name: Namespace, created only when missing (kubernetes.core patches existing objects)
      kubernetes.core.k8s:
        kind: Namespace
        name: %(ns)s
      when: existing.resources | length == 0
    - name: Secret
      genai.stack.k8s_secret:
        name: eks-connection-check
        namespace: %(ns)s
        string_data:
          greeting: "{{ greeting }}"
    - name: Release of a local chart
      genai.stack.helm_release:
        name: eks-connection-check
        namespace: %(ns)s
        chart_ref: "{{ chart_dir }}"
        values:
          greeting: "{{ greeting }}"
    - name: Read the Secret back with kubernetes.core
      kubernetes.core.k8s_info:
        kind: Secret
        namespace: %(ns)s
        name: eks-connection-check
      register: secret
    - name: It is there
      ansible.builtin.assert:
        that: secret.resources | length == 1
''' % {'ns': NAMESPACE}

CHART = {
    'Chart.yaml': 'apiVersion: v2\nname: eks-connection-check\nversion: 0.1.0\n',
    'values.yaml': 'greeting: hello\n',
    'templates/configmap.yaml': ('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n'
                                 'data:\n  greeting: {{ .Values.greeting | quote }}\n'),
}


@pytest.fixture
def play(tmp_path):
    chart = tmp_path / 'chart'
    for name, text in CHART.items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    path = tmp_path / 'eks_connection.yml'
    path.write_text(PLAY)
    return str(path), str(chart)


def _cleanup():
    kubectl('delete', 'namespace', NAMESPACE, '--ignore-not-found', '--wait=true', '--timeout=120s')


def _greeting():
    return kubectl('get', 'configmap', '-n', NAMESPACE, 'eks-connection-check', '-o', 'jsonpath={.data.greeting}').stdout


@pytest.fixture
def clean():
    _cleanup()
    yield
    _cleanup()


def _run(run_playbook, play, greeting, *extra, env=None):
    path, chart = play
    return run_playbook(path, '-e', json.dumps({'greeting': greeting, 'chart_dir': chart}), *extra,
                        env_extra=dict(env or {}, KUBECONFIG=decoy_kubeconfig()))


def test_converge_rerun_check_through_eks_tokens_only(run_playbook, play, clean):
    first = _run(run_playbook, play, 'one')
    assert first.returncode == 0, first
    assert first.changed >= 3, first
    writers = first.activity['kube_writes_by_user']
    assert writers.get(IAM_ADMIN_USERNAME, 0) > 0, writers
    assert writers.get('sandbox-admin', 0) == 0, writers

    secret = kube_get('secret', '-n', NAMESPACE, 'eks-connection-check')
    assert base64.b64decode(secret['data']['greeting']).decode() == 'one'
    assert _greeting() == 'one'
    assert helm_releases(NAMESPACE)['eks-connection-check']['status'] == 'deployed'

    again = _run(run_playbook, play, 'one')
    assert again.returncode == 0 and again.changed == 0, again
    assert sum(_play_writes(again).values()) == 0, again.activity['kube_write_sample']

    preview = _run(run_playbook, play, 'two', '--check', '--diff')
    assert preview.returncode == 0, preview
    assert preview.changed >= 2, preview
    assert sum(_play_writes(preview).values()) == 0, preview.activity['kube_write_sample']
    assert _greeting() == 'one'
    for run in (first, again, preview):
        assert 'k8s-aws-v1.' not in run.output, 'a token reached the output'


@pytest.fixture
def stranger():
    """An IAM user that may describe the clusters but has no access entry on any."""
    with iam_user_without_access_entry('eks-connection-stranger') as key:
        yield key


@pytest.mark.alongside
def test_an_identity_without_an_access_entry_is_refused_before_any_write(run_playbook, play, stranger):
    run = _run(run_playbook, play, 'one', env={'AWS_ACCESS_KEY_ID': stranger['AccessKeyId'],
                                               'AWS_SECRET_ACCESS_KEY': stranger['SecretAccessKey']})
    assert run.returncode != 0, run
    assert 'Unauthorized' in run.output, run
    assert sum(_play_writes(run).values()) == 0, run.activity['kube_write_sample']
    assert 'k8s-aws-v1.' not in run.output, 'a token reached the output'
