"""Live test: the sandbox runs the real cert-manager chart's Deployments, and what the role's own test does not show.

kwok runs no containers; the sandbox's pod network (sandbox/kube/podnet.py) runs cm-sandbox (sandbox/certmanager/main.go,
cert-manager v1.21.1's packages, built by 05-tools) as host processes for the chart's controller, webhook and cainjector
Deployments, with their ServiceAccounts' tokens, and splices the API server's dials to the webhook Service to the webhook
process. tests/playbooks/test_cluster_addons.py shows the role's self-signed ClusterIssuer and a Certificate from it Ready;
this test installs the chart by hand into a namespace of its own and shows the rest:

* the three host processes start for the chart's Deployments, with the namespace the chart's $(POD_NAMESPACE) names;
* the CA injector writes the webhook's serving CA into both webhook configurations;
* a CA ClusterIssuer made from a self-signed CA Certificate signs the next Certificate (issuer = the CA's subject);
* the webhook refuses a Certificate with no name in it, with cert-manager's own message;
* uninstalling the chart stops the host processes.

Run against a running sandbox: `sandbox/sandboxctl up && . .sandbox/env && pytest tests/sandbox/live -k cert_manager`.
"""
import base64
import os
import subprocess

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from _kube import get, kubectl, wait

REQUIRED = ("KUBECONFIG", "KUBECTL_BIN", "HELM_BIN")

CHART_DIR = os.environ.get("GENAI_STACK_CHART_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "..", "shared", "vendor-charts")
CHART = os.path.join(CHART_DIR, "cert-manager-v1.21.1.tgz")
# Not the role's namespace (cert-manager): the chart's $(POD_NAMESPACE) must reach the host processes' arguments.
NS = "cm-live"
COMPONENTS = ("cert-manager", "cert-manager-webhook", "cert-manager-cainjector")


def _host_processes(env):
    """The pid files podnet keeps for its host processes of this release, by runner (image) name."""
    run = os.path.join(os.environ.get("SANDBOX_DIR") or os.path.dirname(env["KUBECONFIG"]), "kube", "run", "podnet")
    names = os.listdir(run) if os.path.isdir(run) else []
    return sorted(n[:-len(".pid")] for n in names if n.endswith(".pid") and f".{NS}." in n)


def _cmdline(env, name):
    run = os.path.join(os.environ.get("SANDBOX_DIR") or os.path.dirname(env["KUBECONFIG"]), "kube", "run", "podnet")
    with open(os.path.join(run, name + ".pid"), encoding="utf-8") as handle:
        pid = int(handle.read().strip())
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().decode().split("\0")


@pytest.fixture(scope="module")
def cert_manager(env):
    if not os.path.isfile(CHART):
        pytest.skip(f"the vendor's cert-manager chart is not at {CHART} (set GENAI_STACK_CHART_DIR)")
    assert not kubectl(env, "get", "crd", "certificates.cert-manager.io", "--ignore-not-found", "-o", "name").stdout.strip(), \
        "cert-manager is already installed on this sandbox (an add-ons test's leftover?)"
    helm = subprocess.run([env["HELM_BIN"], "--kubeconfig", env["KUBECONFIG"], "install", "cert-manager", CHART, "-n", NS,
                           "--create-namespace", "--set", "crds.enabled=true", "--wait", "--timeout", "5m"],
                          capture_output=True, text=True, timeout=360, check=False)
    try:
        assert helm.returncode == 0, helm.stderr
        yield env
    finally:
        subprocess.run([env["HELM_BIN"], "--kubeconfig", env["KUBECONFIG"], "uninstall", "cert-manager", "-n", NS, "--wait"],
                       capture_output=True, timeout=180, check=False)
        # Deleting the CRDs deletes every Certificate, issuer and request with them.
        kubectl(env, "delete", "crd", "-l", "app.kubernetes.io/instance=cert-manager", "--wait=false", check=False)
        kubectl(env, "delete", "secret", "-n", "default", "cm-ca-signed-tls", "--ignore-not-found", check=False)
        kubectl(env, "delete", "namespace", NS, "--wait=false", check=False)
        wait(lambda: not kubectl(env, "get", "crd", "-l", "app.kubernetes.io/instance=cert-manager", "-o", "name").stdout.strip(),
             300, "cert-manager's CRDs to go")
        wait(lambda: not kubectl(env, "get", "namespace", NS, "--ignore-not-found", "-o", "name").stdout.strip(),
             300, f"namespace {NS} to go")


def apply(env, doc, check=True):
    return kubectl(env, "apply", "-f", "-", input=yaml.safe_dump(doc), check=check)


def certificate(name, issuer, namespace="default", **spec):
    return {"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "metadata": {"name": name, "namespace": namespace},
            "spec": dict({"secretName": name, "issuerRef": {"name": issuer, "kind": "ClusterIssuer"}}, **spec)}


def condition_ready(env, *ref):
    got = kubectl(env, "get", *ref, "-o", "json", check=False)
    if got.returncode:
        return False
    obj = yaml.safe_load(got.stdout)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))


def tls_cert(env, namespace, name):
    secret = get(env, "secret", "-n", namespace, name)
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))


def self_signed_issuer(env):
    issuer = {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "cm-live-selfsigned"},
              "spec": {"selfSigned": {}}}
    # The webhook answers once its serving certificate is out and injected: retried, as the role does.
    wait(lambda: apply(env, issuer, check=False).returncode == 0, 120, "the webhook to admit the ClusterIssuer")
    wait(lambda: condition_ready(env, "clusterissuer", "cm-live-selfsigned"), 120, "ClusterIssuer cm-live-selfsigned Ready")


def test_the_pod_network_runs_the_chart_s_three_deployments_on_the_host(cert_manager):
    expected = sorted(f"cert-manager-{c}.{NS}.{d}" for c, d in
                      (("controller", "cert-manager"), ("webhook", "cert-manager-webhook"), ("cainjector", "cert-manager-cainjector")))
    wait(lambda: _host_processes(cert_manager) == expected, 60, f"podnet's host processes {expected}")
    webhook = _cmdline(cert_manager, f"cert-manager-webhook.{NS}.cert-manager-webhook")
    assert webhook[1] == "webhook" and os.path.basename(webhook[0]) == "cm-sandbox", webhook
    assert f"--dynamic-serving-ca-secret-namespace={NS}" in webhook
    assert f"--dynamic-serving-dns-names=cert-manager-webhook,cert-manager-webhook.{NS},cert-manager-webhook.{NS}.svc" in webhook
    controller = _cmdline(cert_manager, f"cert-manager-controller.{NS}.cert-manager")
    assert f"--cluster-resource-namespace={NS}" in controller, controller


def test_the_ca_injector_fills_the_webhook_configurations(cert_manager):
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        wait(lambda kind=kind: get(cert_manager, kind, "cert-manager-webhook")["webhooks"][0]["clientConfig"].get("caBundle"),
             120, f"the CA injector to fill {kind} cert-manager-webhook")
    # What it injected is the webhook's serving CA, which the webhook keeps in its Secret.
    ca = get(cert_manager, "secret", "-n", NS, "cert-manager-webhook-ca")["data"]["ca.crt"]
    assert get(cert_manager, "validatingwebhookconfiguration", "cert-manager-webhook")["webhooks"][0]["clientConfig"]["caBundle"] == ca


def test_a_ca_cluster_issuer_signs_with_the_ca_it_was_given(cert_manager):
    self_signed_issuer(cert_manager)
    # The CA's Secret lives in the cluster resource namespace, the chart's $(POD_NAMESPACE).
    apply(cert_manager, certificate("cm-live-ca", "cm-live-selfsigned", namespace=NS, isCA=True, commonName="cm-live-ca"))
    wait(lambda: condition_ready(cert_manager, "certificate", "-n", NS, "cm-live-ca"), 120, "the CA Certificate Ready")
    apply(cert_manager, {"apiVersion": "cert-manager.io/v1", "kind": "ClusterIssuer", "metadata": {"name": "cm-live-ca"},
                         "spec": {"ca": {"secretName": "cm-live-ca"}}})
    wait(lambda: condition_ready(cert_manager, "clusterissuer", "cm-live-ca"), 120, "ClusterIssuer cm-live-ca Ready")
    apply(cert_manager, certificate("cm-ca-signed-tls", "cm-live-ca", dnsNames=["api.sandbox.test"]))
    wait(lambda: condition_ready(cert_manager, "certificate", "-n", "default", "cm-ca-signed-tls"), 120,
         "Certificate cm-ca-signed-tls Ready")
    cert = tls_cert(cert_manager, "default", "cm-ca-signed-tls")
    ca = tls_cert(cert_manager, NS, "cm-live-ca")
    assert cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "cm-live-ca"
    assert cert.issuer == ca.subject and cert.issuer != cert.subject
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) \
        == ["api.sandbox.test"]
    cert.verify_directly_issued_by(ca)


def test_the_webhook_refuses_a_certificate_with_no_name(cert_manager):
    self_signed_issuer(cert_manager)
    result = apply(cert_manager, certificate("cm-nameless", "cm-live-selfsigned"), check=False)
    assert result.returncode != 0
    assert 'admission webhook "webhook.cert-manager.io" denied the request' in result.stderr, result.stderr
    assert "at least one of commonName" in result.stderr, result.stderr


def test_uninstalling_stops_the_host_processes(cert_manager):
    """Last in the module: the release goes, and podnet stops its three processes."""
    assert _host_processes(cert_manager)
    subprocess.run([cert_manager["HELM_BIN"], "--kubeconfig", cert_manager["KUBECONFIG"], "uninstall", "cert-manager", "-n", NS,
                    "--wait"], capture_output=True, text=True, timeout=180, check=True)
    wait(lambda: _host_processes(cert_manager) == [], 60, "podnet to stop cert-manager's host processes")
