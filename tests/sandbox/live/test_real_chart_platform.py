"""Live tests: the sandbox's cluster gives the vendors' real charts what an EKS cluster gives them
(component 20-kube): a default StorageClass whose claims get bound volumes, and admission webhooks
with no server behind them answered at once, each by its failurePolicy, instead of each create
waiting the webhook's timeoutSeconds on a dial into a pod network that does not exist here.

Run against a running sandbox: `sandbox/sandboxctl up && . .sandbox/env && pytest tests/sandbox/live`.
"""
import json
import os
import subprocess
import uuid

import pytest

from _kube import get, kubectl, ready, wait

REQUIRED = ("KUBECONFIG", "KUBECTL_BIN", "HELM_BIN")

CHART_DIR = os.environ.get("GENAI_STACK_CHART_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "..", "shared", "vendor-charts")
OPENSEARCH = os.path.join(CHART_DIR, "opensearch-3.6.0.tgz")


@pytest.fixture
def namespace(env):
    ns = f"test-platform-{uuid.uuid4().hex[:8]}"
    kubectl(env, "create", "namespace", ns)
    yield ns
    kubectl(env, "delete", "namespace", ns, "--wait=false", check=False)


def test_claim_without_class_is_bound_and_its_pod_runs(env, namespace):
    """A claim naming no StorageClass (as opensearch's does) gets the default one, a provisioned
    PersistentVolume once its Pod is scheduled, and the Pod becomes Ready; deleting the claim
    deletes the volume (reclaimPolicy Delete)."""
    default = [sc["metadata"]["name"] for sc in get(env, "storageclass")["items"]
               if sc["metadata"].get("annotations", {}).get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert len(default) == 1, f"exactly one default StorageClass expected, got {default}"
    kubectl(env, "apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "100Gi"}}}},
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user"},
             "spec": {"containers": [{"name": "c", "image": "registry.invalid/never-pulled:1",
                                      "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                      "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}},
        ]}))
    claim = wait(lambda: (c := get(env, "pvc", "data", "-n", namespace))["status"].get("phase") == "Bound" and c,
                 60, "the claim to be Bound")
    assert claim["spec"]["storageClassName"] == default[0]
    pv_name = claim["spec"]["volumeName"]
    pv = get(env, "pv", pv_name)
    assert pv["spec"]["claimRef"]["namespace"] == namespace and pv["spec"]["claimRef"]["name"] == "data"
    assert pv["spec"]["capacity"]["storage"] == "100Gi"
    wait(lambda: ready(get(env, "pod", "user", "-n", namespace)), 60, "the Pod using the claim to be Ready")

    kubectl(env, "delete", "pod", "user", "-n", namespace, "--grace-period=0", "--force")
    kubectl(env, "delete", "pvc", "data", "-n", namespace)
    wait(lambda: kubectl(env, "get", "pv", pv_name, check=False).returncode != 0, 60, "the volume to be deleted")


def _webhook(name, namespace, policy):
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [{
            "name": "check.platform.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": policy, "timeoutSeconds": 10,
            "clientConfig": {"service": {"namespace": namespace, "name": "operator", "port": 443, "path": "/validate"}},
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}],
        }],
    }


def test_webhook_without_server_fails_at_once_by_its_failure_policy(env, namespace):
    """The charts' pattern: a webhook Service in front of an operator Pod (Running, as kwok plays
    it; the Service gets its Endpoints). No server listens, so the apiserver's call fails at
    once, answered by the sandbox's pod network (never a dial into the host's network, which
    waits timeoutSeconds or reaches another machine): failurePolicy Fail refuses the object,
    Ignore admits it."""
    kubectl(env, "apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "operator", "labels": {"app": "operator"}},
             "spec": {"containers": [{"name": "c", "image": "registry.invalid/operator:1",
                                      "ports": [{"containerPort": 10250}]}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "operator"},
             "spec": {"selector": {"app": "operator"}, "ports": [{"port": 443, "targetPort": 10250}]}},
        ]}))
    pod = wait(lambda: ready(p := get(env, "pod", "operator", "-n", namespace)) and p, 60, "the operator Pod")
    wait(lambda: any(a.get("ip") == pod["status"]["podIP"]
                     for s in get(env, "endpoints", "operator", "-n", namespace).get("subsets") or []
                     for a in s.get("addresses") or []), 60, "the Service's Endpoints to list the Pod")

    name = f"{namespace}-check"
    try:
        kubectl(env, "apply", "-f", "-", input=json.dumps(_webhook(name, namespace, "Fail")))
        r = kubectl(env, "create", "configmap", "refused", "-n", namespace, check=False)
        assert r.returncode != 0, "failurePolicy Fail with no webhook server must refuse the object"
        assert 'failed calling webhook "check.platform.test"' in r.stderr, r.stderr
        # The dial went to the sandbox's pod network (its socket), not out to the host's network, and was
        # answered at once: nothing serves this Service.
        assert "pod-network.sock" in r.stderr and "nothing in the sandbox cluster sandbox serves" in r.stderr, r.stderr

        kubectl(env, "apply", "-f", "-", input=json.dumps(_webhook(name, namespace, "Ignore")))
        kubectl(env, "create", "configmap", "admitted", "-n", namespace)
    finally:
        kubectl(env, "delete", "validatingwebhookconfiguration", name, "--ignore-not-found", check=False)


@pytest.mark.skipif(not os.path.isfile(OPENSEARCH),
                    reason=f"the vendor's opensearch chart is not at {OPENSEARCH} (set GENAI_STACK_CHART_DIR)")
def test_opensearch_with_persistence_is_deployed_with_wait(env, namespace):
    """The real opensearch chart with persistence on (its default: a 100Gi claim with no storage
    class, the observability role's setting) reaches `deployed` under `helm --wait`."""
    values = json.dumps({"singleNode": True, "replicas": 1, "persistence": {"enabled": True, "size": "100Gi"}})
    r = subprocess.run([env["HELM_BIN"], "--kubeconfig", env["KUBECONFIG"], "install", "os", OPENSEARCH,
                        "-n", namespace, "-f", "-", "--wait", "--timeout", "2m"],
                       input=values, capture_output=True, text=True, timeout=180, check=False)
    try:
        assert r.returncode == 0, r.stderr
        claims = get(env, "pvc", "-n", namespace)["items"]
        assert [c["status"]["phase"] for c in claims] == ["Bound"], claims
    finally:
        subprocess.run([env["HELM_BIN"], "--kubeconfig", env["KUBECONFIG"], "uninstall", "os", "-n", namespace],
                       capture_output=True, timeout=120, check=False)
        kubectl(env, "delete", "pvc", "--all", "-n", namespace, "--wait=false", check=False)
