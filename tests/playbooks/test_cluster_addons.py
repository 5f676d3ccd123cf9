"""Role cluster_addons through playbooks/cluster_addons.yml on the sandbox inventory, as a user runs it.

The sandbox inventory turns on the AWS load balancer controller (what the stacks' preflights ask for there); the tests
turn on the cluster autoscaler and the GPU operator with extra variables. metrics-server and cert-manager (with a
self-signed ClusterIssuer) are on there too: the sandbox runs metrics-server and cert-manager's controller, webhook and
CA injector on the host for the charts' Deployments (sandbox/kube/podnet.py), so the metrics API answers and
Certificates are issued (docs/stacks/cluster_addons.md, "On the sandbox").
Every chart is the vendor's own, from the sandbox's chart mirror. Verified by another route than the role: kubectl
(Deployments available, CRDs established, the APIService, the IngressClass, the autoscaler's command line) and helm.
"""
import base64
import datetime
import json

import pytest
from cryptography import x509

import sandbox_journal
from playbook_helpers import helm_releases, kube_get, kubectl, metrics_api_available, top, wait_for

PLAYBOOK = 'playbooks/cluster_addons.yml'
# cert-manager has its own test (test_cert_manager_issues_certificates_from_its_cluster_issuer); the others leave it off.
NO_CERT_MANAGER = {'cluster_addons_cert_manager_enabled': False}
AUTOSCALER = {'cluster_addons_cluster_autoscaler_enabled': True, 'cluster_addons_metrics_server_enabled': True, **NO_CERT_MANAGER}
GPU_OPERATOR = {'cluster_addons_gpu_operator_enabled': True, 'cluster_gpu_device_plugin_enabled': False, **NO_CERT_MANAGER}
CERT_MANAGER = {'cluster_addons_cert_manager_enabled': True, 'cluster_addons_cert_manager_issuer_name': 'genai-selfsigned'}
# The sandbox inventory's issuer (inventories/sandbox/group_vars/all/cluster_addons.yml).
SANDBOX_ISSUER = 'sandbox-selfsigned'
PROBE_DNS_NAME = 'addons-probe.sandbox.test'
# The API groups of the CRDs the add-ons bring (the role's crd_groups), all removed on teardown.
CRD_GROUPS = ('elbv2.k8s.aws', 'aga.k8s.aws', 'gateway.k8s.aws', 'cert-manager.io', 'acme.cert-manager.io', 'nvidia.com',
              'resource.nvidia.com', 'nfd.k8s-sigs.io')


def _text(run):
    """The run's output with its lines joined: the callback folds long messages."""
    return ' '.join(run.output.split())


def _vars(*parts):
    merged = {}
    for part in parts:
        merged.update(part)
    return ['-e', json.dumps(merged)]


def _deployments(namespace, release):
    return kube_get('deployments', '-n', namespace, '-l', 'app.kubernetes.io/instance=%s' % release)['items']


def _available(namespace, release):
    deployments = _deployments(namespace, release)
    return bool(deployments) and all((d.get('status') or {}).get('availableReplicas', 0) >= 1 for d in deployments)


def _addon_crds():
    return sorted(c['metadata']['name'] for c in kube_get('crd')['items'] if c['spec']['group'] in CRD_GROUPS)


def _established(name):
    conditions = kube_get('crd', name).get('status', {}).get('conditions', [])
    return any(c['type'] == 'Established' and c['status'] == 'True' for c in conditions)


def _exists(*args):
    return kubectl('get', *args, check=False).returncode == 0


def _device_plugins():
    return kube_get('daemonsets', '-A', '-l', 'app.kubernetes.io/name=nvidia-device-plugin')['items']


def _assert_torn_down_then_again_nothing(run_playbook, extra, down):
    """The teardown run (down) left nothing; a second teardown, with the add-ons' CRDs gone (as on a cluster where
    they never ran, which teardown.yml meets on a fresh cluster), has nothing to do and does not fail on their kinds."""
    assert down.returncode == 0, down
    _assert_nothing_left()
    again = run_playbook(PLAYBOOK, *extra, '-e', 'cluster_addons_state=absent')
    assert again.returncode == 0 and again.changed == 0, again
    again.assert_no_write()


def _rerun_and_check_change_nothing(run_playbook, extra):
    """A second run and a check-mode run with --diff: changed=0, no write of the admin user (counted by the run and,
    for the second run, again from the audit log) and no mutating AWS request."""
    mark = sandbox_journal.mark()
    second = run_playbook(PLAYBOOK, *extra)
    assert second.returncode == 0 and second.changed == 0, second
    second.assert_no_write()
    assert sandbox_journal.since(mark, kube_user=sandbox_journal.admin_user())['kube_writes'] == 0
    check = run_playbook(PLAYBOOK, *extra, '--check', '--diff')
    assert check.returncode == 0 and check.changed == 0, check
    check.assert_no_write()


def _assert_nothing_left():
    releases = {**helm_releases('kube-system'), **helm_releases('gpu-operator'), **helm_releases('cert-manager')}
    assert not set(releases) & {'aws-load-balancer-controller', 'metrics-server', 'cluster-autoscaler', 'gpu-operator', 'cert-manager'}
    assert _addon_crds() == []
    assert not _exists('ingressclass', 'alb') and not _exists('apiservice', 'v1beta1.metrics.k8s.io')
    assert not _exists('namespace', 'gpu-operator') and not _exists('namespace', 'cert-manager')
    webhooks = kubectl('get', 'mutatingwebhookconfigurations,validatingwebhookconfigurations', '-o', 'name').stdout
    assert 'aws-load-balancer' not in webhooks and 'cert-manager' not in webhooks


def test_converge_rerun_check_verify_and_teardown(run_playbook):
    extra = _vars(AUTOSCALER)
    try:
        first = run_playbook(PLAYBOOK, *extra)
        assert first.returncode == 0, first
        first.assert_wrote()  # the positive control of the no-write checks below
        assert 'chart versions: metrics-server 3.13.1, aws-load-balancer-controller 3.5.0, cluster-autoscaler 9.59.0' in _text(first), first

        # Verified by another route: kubectl and helm.
        for release in ('aws-load-balancer-controller', 'metrics-server', 'cluster-autoscaler'):
            assert helm_releases('kube-system')[release]['status'] == 'deployed'
            assert _available('kube-system', release), release
        assert kube_get('ingressclass', 'alb')['spec']['controller'] == 'ingress.k8s.aws/alb'
        api = kube_get('apiservice', 'v1beta1.metrics.k8s.io')
        assert api['spec']['service'] == {'name': 'metrics-server', 'namespace': 'kube-system', 'port': 443}
        # Served: the API server reaches metrics-server, which scrapes the Nodes' kubelets (kwok's emulation).
        assert 'metrics API: v1beta1.metrics.k8s.io registered, ' in _text(first), first
        assert wait_for(metrics_api_available, 120), api.get('status')
        nodes = {n['metadata']['name'] for n in kube_get('nodes')['items']}
        assert wait_for(lambda: {row[0] for row in top('nodes')} == nodes, 120), (top('nodes'), nodes)
        assert wait_for(lambda: top('pods', '-n', 'kube-system'), 60)
        assert all(_established(name) for name in _addon_crds()) and 'targetgroupbindings.elbv2.k8s.aws' in _addon_crds()
        (autoscaler,) = _deployments('kube-system', 'cluster-autoscaler')
        command = autoscaler['spec']['template']['spec']['containers'][0]['command']
        assert ('--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/sandbox,'
                'eks:nodegroup-name=gpu-nodes') in command, command
        # The sandbox's policy for the controller's webhooks on every Service and Ingress (no pod network here).
        webhooks = kube_get('mutatingwebhookconfiguration', 'aws-load-balancer-webhook')['webhooks']
        assert {w['name']: w['failurePolicy'] for w in webhooks}['mservice.elbv2.k8s.aws'] == 'Ignore'
        # A Service can be created with the controller installed (its webhook cannot answer on the sandbox).
        kubectl('create', 'service', 'clusterip', 'addons-probe', '--tcp=80:80', '-n', 'default')
        kubectl('delete', 'service', 'addons-probe', '-n', 'default')

        _rerun_and_check_change_nothing(run_playbook, extra)

        # A changed value is a planned change in check mode, and nothing is written.
        plan = run_playbook(PLAYBOOK, *_vars(AUTOSCALER, {'cluster_addons_cluster_autoscaler_scale_down_unneeded_time': 900}), '--check', '--diff')
        assert plan.returncode == 0 and plan.changed == 1, plan
        assert 'scale-down-unneeded-time' in _text(plan), plan
        plan.assert_no_write()

        # The teardown previewed in check mode: nothing removed.
        preview = run_playbook(PLAYBOOK, *extra, '-e', 'cluster_addons_state=absent', '--check')
        assert preview.returncode == 0 and preview.changed > 0, preview
        preview.assert_no_write()
        assert helm_releases('kube-system')['metrics-server']['status'] == 'deployed'
    finally:
        down = run_playbook(PLAYBOOK, *extra, '-e', 'cluster_addons_state=absent')
    _assert_torn_down_then_again_nothing(run_playbook, extra, down)
    _engine_refuses_without_its_add_ons(run_playbook)


# The engine on the sandbox inventory (IngressClass alb, its HPA on), on the sandbox's CPU Nodes, with a database
# password given, so that nothing but the missing add-ons stops its preflight.
ENGINE_VARS = {'genai_engine_cpu_node_labels': {'sandbox/pool': 'cpu'}, 'genai_engine_postgres_password': 'addons-test-password'}
ENGINE_REFUSALS = (
    'genai_engine preflight: genai_engine_ingress_class_name: no IngressClass alb in the cluster: install the ingress controller '
    'that owns it (genai.stack.cluster_addons: cluster_addons_ingress_enabled, with cluster_addons_ingress_class_name alb)',
    'genai_engine preflight: genai_engine_hpa_enabled: turns a HorizontalPodAutoscaler on, and the cluster has no metrics API '
    '(APIService v1beta1.metrics.k8s.io) for it to read: install metrics-server (genai.stack.cluster_addons: '
    'cluster_addons_metrics_server_enabled), or turn the autoscaler off',
)


def _engine_refuses_without_its_add_ons(run_playbook):
    """With the add-ons gone, playbooks/genai_engine.yml fails in its preflight, before any write, naming each missing
    add-on and the variable that installs it; check mode reports the same and goes on."""
    refused = run_playbook('playbooks/genai_engine.yml', *_vars(ENGINE_VARS))
    assert refused.returncode != 0, refused
    for message in ENGINE_REFUSALS:
        assert message in _text(refused), (message, refused)
    refused.assert_no_write()
    assert not _exists('namespace', 'arthur')
    planned = run_playbook('playbooks/genai_engine.yml', *_vars(ENGINE_VARS), '--check')
    assert planned.returncode == 0, planned
    assert all(message in _text(planned) for message in ENGINE_REFUSALS), planned
    assert 'check mode: reported, not fatal' in _text(planned), planned
    planned.assert_no_write()


def test_gpu_operator_instead_of_the_device_plugin(run_playbook):
    """The GPU operator converges where no device plugin runs; where cluster_gpu's runs (an earlier test of the session
    left its GPU capacity), the preflight refuses it, naming both variables, before any write."""
    extra = _vars(GPU_OPERATOR, {'cluster_addons_ingress_enabled': False, 'cluster_addons_metrics_server_enabled': False})
    if _device_plugins():
        refused = run_playbook(PLAYBOOK, *extra)
        assert refused.returncode != 0, refused
        assert 'cluster_addons preflight: cluster_addons_gpu_operator_enabled: the cluster already runs the NVIDIA device plugin' in _text(refused)
        refused.assert_no_write()
        return
    try:
        first = run_playbook(PLAYBOOK, *extra)
        assert first.returncode == 0, first
        first.assert_wrote()
        assert _available('gpu-operator', 'gpu-operator')
        policy = kube_get('clusterpolicy', 'cluster-policy')['spec']
        assert policy['driver']['enabled'] is False and policy['toolkit']['enabled'] is False
        assert policy['devicePlugin']['enabled'] is True and policy['dcgmExporter']['enabled'] is False
        assert _established('clusterpolicies.nvidia.com') and _established('nodefeatures.nfd.k8s-sigs.io')
        _rerun_and_check_change_nothing(run_playbook, extra)
    finally:
        down = run_playbook(PLAYBOOK, *extra, '-e', 'cluster_addons_state=absent')
    assert down.returncode == 0, down
    _assert_nothing_left()


def _ready(*ref):
    got = kubectl('get', '-o', 'json', *ref, check=False)
    if got.returncode != 0:
        return False
    return any(c['type'] == 'Ready' and c['status'] == 'True' for c in json.loads(got.stdout).get('status', {}).get('conditions', []))


def test_cert_manager_issues_certificates_from_its_cluster_issuer(run_playbook, tmp_path):
    """The sandbox inventory's cert-manager: the role converges (its ClusterIssuer admitted by cert-manager's real webhook,
    which the sandbox runs on the host), the issuer is Ready, a Certificate from it becomes Ready with a Secret holding a
    certificate for the DNS name asked, a re-run and check mode change nothing, and teardown leaves nothing."""
    extra = _vars({'cluster_addons_ingress_enabled': False, 'cluster_addons_metrics_server_enabled': False})
    certificate = tmp_path / 'certificate.json'
    certificate.write_text(json.dumps({
        'apiVersion': 'cert-manager.io/v1', 'kind': 'Certificate', 'metadata': {'name': 'addons-probe', 'namespace': 'default'},
        'spec': {'secretName': 'addons-probe-tls', 'dnsNames': [PROBE_DNS_NAME], 'duration': '24h',
                 'issuerRef': {'kind': 'ClusterIssuer', 'name': SANDBOX_ISSUER}}}))
    try:
        first = run_playbook(PLAYBOOK, *extra)
        assert first.returncode == 0, first
        first.assert_wrote()
        assert 'chart versions: cert-manager v1.21.1' in _text(first), first

        # Verified by another route: helm and kubectl.
        assert helm_releases('cert-manager')['cert-manager']['status'] == 'deployed'
        assert _available('cert-manager', 'cert-manager')
        for crd in ('certificates.cert-manager.io', 'clusterissuers.cert-manager.io', 'issuers.cert-manager.io'):
            assert _established(crd), crd
        assert kube_get('clusterissuer', SANDBOX_ISSUER)['spec'] == {'selfSigned': {}}
        assert wait_for(lambda: _ready('clusterissuer', SANDBOX_ISSUER), 60), kube_get('clusterissuer', SANDBOX_ISSUER).get('status')

        kubectl('apply', '-f', str(certificate))
        assert wait_for(lambda: _ready('certificate', '-n', 'default', 'addons-probe'), 90), \
            kube_get('certificate', '-n', 'default', 'addons-probe').get('status')
        secret = kube_get('secret', '-n', 'default', 'addons-probe-tls')
        cert = x509.load_pem_x509_certificate(base64.b64decode(secret['data']['tls.crt']))
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
        assert names == [PROBE_DNS_NAME]
        assert cert.issuer == cert.subject  # self-signed: its own issuer
        now = datetime.datetime.now(datetime.timezone.utc)
        assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
        assert datetime.timedelta(hours=23) < cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(hours=25)
        kubectl('delete', '-f', str(certificate))

        _rerun_and_check_change_nothing(run_playbook, extra)
    finally:
        kubectl('delete', '-f', str(certificate), '--ignore-not-found', check=False)
        kubectl('delete', 'secret', '-n', 'default', 'addons-probe-tls', '--ignore-not-found', check=False)
        down = run_playbook(PLAYBOOK, *extra, '-e', 'cluster_addons_state=absent')
    _assert_torn_down_then_again_nothing(run_playbook, extra, down)


BAD_VARS = [
    (CERT_MANAGER | {'cluster_addons_cert_manager_issuer_name': ''}, 'cluster_addons_cert_manager_issuer_name: is required'),
    (CERT_MANAGER | {'cluster_addons_cert_manager_issuer_type': 'ca'}, 'cluster_addons_cert_manager_ca_secret_name: is required'),
    (CERT_MANAGER | {'cluster_addons_cert_manager_issuer_type': 'ca', 'cluster_addons_cert_manager_ca_secret_name': 'no-such-ca'},
     'cluster_addons_cert_manager_ca_secret_name: no Secret cert-manager/no-such-ca'),
    ({'cluster_addons_cert_manager_ca_cert': '-----BEGIN CERTIFICATE-----'}, 'cluster_addons_cert_manager_ca_key: cluster_addons_cert_manager_ca_cert'),
    # The sandbox inventory keeps cluster_gpu's device plugin on: the operator beside it is refused naming both.
    ({'cluster_addons_gpu_operator_enabled': True}, 'cluster_addons_gpu_operator_enabled: is true and so is cluster_gpu_device_plugin_enabled'),
    ({'cluster_addons_region': 'nowhere', 'cluster_gpu_region': ''}, 'cluster_addons_region: is required'),
    ({'cluster_addons_ingress_class_name': 'Not_A_Name'}, 'cluster_addons_ingress_class_name: must be a DNS subdomain'),
    # Every sandbox Node carries kubernetes.io/os=linux: as GPU labels, no Node would be left for the add-ons' Pods.
    ({'cluster_addons_gpu_node_labels': {'kubernetes.io/os': 'linux'}}, 'cluster_addons_avoid_gpu_nodes: no Ready, schedulable Node without the GPU labels'),
    ({'cluster_addons_metrics_server_enabled': True, 'cluster_addons_metrics_server_chart_version': '0.0.1'},
     'cluster_addons_metrics_server_chart_version: helm cannot render'),
]


@pytest.mark.alongside
@pytest.mark.parametrize('extra,message', BAD_VARS, ids=[b[1].split(':')[0] + '-' + str(i) for i, b in enumerate(BAD_VARS)])
def test_preflight_refuses_before_any_change(run_playbook, extra, message):
    run = run_playbook(PLAYBOOK, '-e', json.dumps(extra))
    assert run.returncode != 0, run
    assert message in _text(run), run
    run.assert_no_write()


TEST_TAINT = 'genai-stack-test/preflight'


@pytest.mark.alongside
def test_preflight_refuses_when_every_node_left_is_tainted(run_playbook):
    """The add-ons' Pods tolerate no taint: with every Node tainted NoSchedule (as a CriticalAddonsOnly system node
    group would be) none is left for them, and the preflight says so before any write instead of leaving them Pending."""
    # GPU labels no sandbox Node carries: every Node is a candidate, so only the taint can leave none.
    extra = {'cluster_addons_gpu_node_labels': {'genai-stack-test/gpu': 'absent'}}
    nodes = kube_get('nodes')['items']
    assert any(c['type'] == 'Ready' and c['status'] == 'True' for n in nodes for c in n['status'].get('conditions', [])), nodes
    kubectl('taint', 'nodes', '--all', f'{TEST_TAINT}=yes:NoSchedule', '--overwrite')
    try:
        run = run_playbook(PLAYBOOK, '-e', json.dumps(extra))
    finally:
        kubectl('taint', 'nodes', '--all', f'{TEST_TAINT}-', check=False)
    assert run.returncode != 0, run
    assert 'cluster_addons_avoid_gpu_nodes: no Ready, schedulable Node without the GPU labels genai-stack-test/gpu=absent' in _text(run), run
    assert 'cordoned or tainted' in _text(run), run
    run.assert_no_write()
    assert not [n['metadata']['name'] for n in kube_get('nodes')['items']
                if any(t['key'] == TEST_TAINT for t in n['spec'].get('taints') or [])]
