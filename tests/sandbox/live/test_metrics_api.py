"""Live tests: the sandbox serves the metrics API for the vendor's metrics-server chart (20-kube's pod network,
sandbox/kube/podnet.py): the same release runs on the host for the chart's Deployment, the API server reaches it
through the Service, it scrapes kwok's emulation of the Nodes' kubelets, and a Pod's simulated CPU is its
annotation sandbox.genai.stack/cpu-usage; namespaces are deleted meanwhile. Uninstalled, its host process stops.

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
CHART = os.path.join(CHART_DIR, "metrics-server-3.13.1.tgz")
RELEASE = f"ms-{uuid.uuid4().hex[:6]}"


def _helm(env, *args):
    return subprocess.run([env["HELM_BIN"], *args], capture_output=True, text=True, check=True, timeout=300)


def _available(env):
    got = kubectl(env, "get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json", check=False)
    return got.returncode == 0 and any(c["type"] == "Available" and c["status"] == "True"
                                       for c in json.loads(got.stdout).get("status", {}).get("conditions", []))


def _pod_cpu_millicores(env, namespace, name):
    got = kubectl(env, "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}", check=False)
    if got.returncode != 0:
        return None
    cpu = json.loads(got.stdout)["containers"][0]["usage"]["cpu"]
    return int(cpu[:-1]) / 1e6 if cpu.endswith("n") else int(cpu[:-1]) if cpu.endswith("m") else int(cpu) * 1000


def _host_processes(env):
    run = os.path.join(os.environ.get("SANDBOX_DIR") or os.path.dirname(env["KUBECONFIG"]), "kube", "run", "podnet")
    return sorted(f for f in os.listdir(run) if f.endswith(".pid")) if os.path.isdir(run) else []


@pytest.mark.skipif(not os.path.isfile(CHART), reason=f"the vendor's metrics-server chart is not at {CHART} (set GENAI_STACK_CHART_DIR)")
def test_metrics_server_chart_is_served_and_reports_the_simulated_usage(env):
    if kubectl(env, "get", "apiservice", "v1beta1.metrics.k8s.io", check=False).returncode == 0:
        pytest.fail("a metrics API is already registered on this sandbox (an add-ons test's leftover?)")
    ns = f"test-metrics-{uuid.uuid4().hex[:8]}"
    kubectl(env, "create", "namespace", ns)
    try:
        _helm(env, "install", RELEASE, CHART, "-n", "kube-system")
        wait(lambda: _available(env), 60, "APIService v1beta1.metrics.k8s.io to be Available")
        assert [p for p in _host_processes(env) if RELEASE in p], _host_processes(env)

        kubectl(env, "apply", "-n", ns, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "busy", "annotations": {"sandbox.genai.stack/cpu-usage": "750m"}},
            "spec": {"containers": [{"name": "c", "image": "registry.invalid/busy:1"}]}}))
        wait(lambda: ready(get(env, "pod", "busy", "-n", ns)), 60, "the Pod to be Ready")
        # kwok integrates 750m into the cumulative counter; metrics-server's rate over two scrapes gives it back.
        wait(lambda: (cpu := _pod_cpu_millicores(env, ns, "busy")) is not None and 700 <= cpu <= 800, 90,
             "the metrics API to report the Pod's 750m")
        nodes = {n["metadata"]["name"] for n in get(env, "nodes")["items"]}
        wait(lambda: {n["metadata"]["name"] for n in json.loads(kubectl(
            env, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes").stdout)["items"]} == nodes, 60,
            "every Node's metrics")
        # With the metrics API registered and answering, the namespace controller deletes namespaces.
        kubectl(env, "delete", "namespace", ns, "--timeout=60s")
    finally:
        subprocess.run([env["HELM_BIN"], "uninstall", RELEASE, "-n", "kube-system", "--wait"], capture_output=True, timeout=300,
                       check=False)
        kubectl(env, "delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)
    wait(lambda: not [p for p in _host_processes(env) if RELEASE in p], 30, "the host process to stop")
    assert kubectl(env, "get", "apiservice", "v1beta1.metrics.k8s.io", check=False).returncode != 0
