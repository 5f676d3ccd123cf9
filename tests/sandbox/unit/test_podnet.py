"""sandbox/kube/podnet.py: which Deployments get a host process, with which arguments, and the CONNECT routes."""
import asyncio
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "sandbox", "kube"))
import podnet  # noqa: E402

CHART_ARGS = ["--secure-port=10250", "--cert-dir=/tmp", "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
              "--kubelet-use-node-status-port", "--metric-resolution=15s"]


def deployment(name="metrics-server", ns="kube-system", replicas=1, image="registry.k8s.io/metrics-server/metrics-server:v0.8.0",
               args=None):
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "metrics-server", "app.kubernetes.io/instance": name}},
                "spec": {"serviceAccountName": name, "containers": [{
                    "name": "metrics-server", "image": image, "args": CHART_ARGS if args is None else args,
                    "ports": [{"name": "https", "containerPort": 10250}]}]}}}}


def service(ns="kube-system", ip="10.96.12.7", selector=None, target="https"):
    return {"metadata": {"name": "metrics-server", "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip],
                     "selector": selector if selector is not None else {"app.kubernetes.io/name": "metrics-server",
                                                                         "app.kubernetes.io/instance": "metrics-server"},
                     "ports": [{"name": "https", "port": 443, "targetPort": target}]}}


def test_host_args_keep_the_charts_and_replace_the_containers_own():
    out = podnet.host_args(CHART_ARGS + ["--tls-cert-file", "/tmp/tls-certs/tls.crt"], 40001, "/s/certs", "/s/kubeconfig")
    assert "--kubelet-use-node-status-port" in out and "--metric-resolution=15s" in out
    assert "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname" in out
    assert "--secure-port=40001" in out and "--secure-port=10250" not in out
    assert "--cert-dir=/s/certs" in out and "--cert-dir=/tmp" not in out
    assert "--tls-cert-file" not in out and "/tmp/tls-certs/tls.crt" not in out
    assert "--bind-address=127.0.0.1" in out and "--kubeconfig=/s/kubeconfig" in out
    assert out.count("--kubelet-insecure-tls") == 1
    assert podnet.host_args(["--kubelet-insecure-tls"], 1, "c", "k").count("--kubelet-insecure-tls") == 1


def test_workloads_are_deployments_running_the_metrics_server_image():
    found = podnet.workloads([
        deployment(),
        deployment("other", image="example.com/not-metrics-server:1"),
        deployment("scaled-down", replicas=0),
        deployment("mirror", ns="ops", image="127.0.0.1:5000/mirror/metrics-server@sha256:abc"),
    ])
    assert set(found) == {"kube-system/metrics-server", "ops/mirror"}
    w = found["kube-system/metrics-server"]
    assert w["service_account"] == "metrics-server" and w["args"] == CHART_ARGS


def test_service_routes_go_to_the_host_port_of_the_selected_pods():
    w = podnet.workloads([deployment()])["kube-system/metrics-server"]
    routes = podnet.service_routes(w, [service(), service(ns="default", ip="10.96.0.9"),
                                       service(ip="10.96.3.3", selector={"app": "else"}),
                                       service(ip="10.96.4.4", target=8080)], 40001)
    assert routes == {"10.96.12.7:443": "127.0.0.1:40001"}
    assert podnet.service_routes(w, [service(target=10250)], 5) == {"10.96.12.7:443": "127.0.0.1:5"}


def test_kubelet_routes_only_for_nodes_kwok_plays():
    def node(ip, kwok=True, port=31000):
        return {"metadata": {"annotations": {"kwok.x-k8s.io/node": "fake"} if kwok else {}},
                "status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                           "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": "h"}]}}
    routes = podnet.kubelet_routes([node("10.0.1.2"), node("10.0.1.3", kwok=False), node("10.0.1.4", port=10250)], 31000)
    assert routes == {"10.0.1.2:31000": "127.0.0.1:31000"}


def test_parse_connect():
    assert podnet.parse_connect(b"CONNECT 10.96.0.5:443 HTTP/1.1\r\nHost: 10.96.0.5:443\r\n\r\n") == "10.96.0.5:443"
    assert podnet.parse_connect(b"GET / HTTP/1.1\r\n\r\n") is None


def test_proxy_splices_a_routed_address_and_refuses_the_others_at_once(tmp_path):
    async def scenario():
        async def echo(reader, writer):
            writer.write(b"echo:" + await reader.read(100))
            await writer.drain()
            writer.close()
        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        up_port = upstream.sockets[0].getsockname()[1]
        proxy = podnet.Proxy("sandbox")
        proxy.apiserver_routes = {"10.96.0.5:443": f"127.0.0.1:{up_port}", "10.96.0.6:443": "127.0.0.1:1"}
        sock = str(tmp_path / "p.sock")
        server = await asyncio.start_unix_server(lambda r, w: proxy.handle(r, w, lambda: proxy.apiserver_routes), path=sock)

        async def connect(dest, payload=b""):
            reader, writer = await asyncio.open_unix_connection(sock)
            writer.write(f"CONNECT {dest} HTTP/1.1\r\nHost: {dest}\r\n\r\n".encode())
            status = await reader.readuntil(b"\r\n\r\n")
            if payload:
                writer.write(payload)
                await writer.drain()
            rest = await reader.read()
            writer.close()
            return status.decode(), rest

        ok = await connect("10.96.0.5:443", b"hello")
        refused = await connect("10.96.9.9:443")
        dead = await connect("10.96.0.6:443")
        server.close()
        upstream.close()
        return ok, refused, dead

    ok, refused, dead = asyncio.run(scenario())
    assert ok[0].startswith("HTTP/1.1 200") and ok[1] == b"echo:hello"
    assert refused[0].startswith("HTTP/1.1 503 nothing in the sandbox cluster sandbox serves 10.96.9.9:443")
    assert dead[0].startswith("HTTP/1.1 502 10.96.0.6:443 is served by 127.0.0.1:1")


@pytest.mark.parametrize("argv", [["--help"]])
def test_cli_documents_itself(argv, capsys):
    with pytest.raises(SystemExit) as e:
        podnet.main(argv)
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--metrics-server-bin" in out and "--cm-sandbox-bin" in out


# cert-manager chart v1.21.1's three Deployments and the webhook's Service, as `helm template` renders them.
CM_ENV = [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]
CM_ARGS = {
    "controller": ["--v=2", "--cluster-resource-namespace=$(POD_NAMESPACE)", "--leader-election-namespace=kube-system",
                   "--acme-http01-solver-image=quay.io/jetstack/cert-manager-acmesolver:v1.21.1", "--max-concurrent-challenges=60"],
    "webhook": ["--v=2", "--secure-port=10250", "--dynamic-serving-ca-secret-namespace=$(POD_NAMESPACE)",
                "--dynamic-serving-ca-secret-name=cert-manager-webhook-ca", "--dynamic-serving-dns-names=cert-manager-webhook",
                "--dynamic-serving-dns-names=cert-manager-webhook.$(POD_NAMESPACE)",
                "--dynamic-serving-dns-names=cert-manager-webhook.$(POD_NAMESPACE).svc"],
    "cainjector": ["--v=2", "--leader-election-namespace=kube-system"],
}
CM_PORTS = {"controller": [{"containerPort": 9402, "name": "http-metrics"}, {"containerPort": 9403, "name": "http-healthz"}],
            "webhook": [{"name": "https", "containerPort": 10250}, {"name": "healthcheck", "containerPort": 6080},
                        {"containerPort": 9402, "name": "http-metrics"}],
            "cainjector": [{"containerPort": 9402, "name": "http-metrics"}]}


def cm_deployment(component, ns="cm"):
    name = "cert-manager" if component == "controller" else f"cert-manager-{component}"
    labels = {"app.kubernetes.io/name": "cert-manager" if component == "controller" else component,
              "app.kubernetes.io/instance": "cert-manager", "app.kubernetes.io/component": component}
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": labels}, "spec": {
                "serviceAccountName": name, "containers": [{
                    "name": f"cert-manager-{component}", "image": f"quay.io/jetstack/cert-manager-{component}:v1.21.1",
                    "args": CM_ARGS[component], "env": CM_ENV, "ports": CM_PORTS[component]}]}}}}


def cm_service(component, ports, ns="cm", ip="10.96.5.5"):
    return {"metadata": {"name": component, "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip],
                     "selector": {"app.kubernetes.io/name": "cert-manager" if component == "controller" else component,
                                  "app.kubernetes.io/instance": "cert-manager", "app.kubernetes.io/component": component},
                     "ports": ports}}


def test_cert_manager_s_three_images_each_get_their_cm_sandbox_command():
    found = podnet.workloads([cm_deployment(c) for c in ("controller", "webhook", "cainjector")]
                             + [deployment("acmesolver", image="quay.io/jetstack/cert-manager-acmesolver:v1.21.1")])
    assert {k: w["runner"] for k, w in found.items()} == {
        "cm/cert-manager": "cert-manager-controller", "cm/cert-manager-webhook": "cert-manager-webhook",
        "cm/cert-manager-cainjector": "cert-manager-cainjector"}
    assert found["cm/cert-manager-webhook"]["service_account"] == "cert-manager-webhook"
    slot = podnet.HostSlot(40001, 40002, "/s", "/s/kubeconfig")

    def argv(key):
        w = found[key]
        return podnet.HOST_RUNNERS[w["runner"]].argv("/bin/cm-sandbox", w["args"], slot)

    # $(POD_NAMESPACE) is the Deployment's namespace, as the kubelet expands it; the chart's repeated flag is one list.
    assert argv("cm/cert-manager") == ["/bin/cm-sandbox", "controller", "--kubeconfig=/s/kubeconfig", "--cluster-resource-namespace=cm"]
    assert argv("cm/cert-manager-webhook") == [
        "/bin/cm-sandbox", "webhook", "--kubeconfig=/s/kubeconfig", "--secure-port=40001", "--healthz-port=40002",
        "--dynamic-serving-ca-secret-namespace=cm", "--dynamic-serving-ca-secret-name=cert-manager-webhook-ca",
        "--dynamic-serving-dns-names=cert-manager-webhook,cert-manager-webhook.cm,cert-manager-webhook.cm.svc"]
    assert argv("cm/cert-manager-cainjector") == ["/bin/cm-sandbox", "cainjector", "--kubeconfig=/s/kubeconfig"]


def test_only_the_webhook_s_https_port_is_spliced_for_cert_manager():
    found = podnet.workloads([cm_deployment(c) for c in ("controller", "webhook", "cainjector")])
    services = [cm_service("webhook", [{"name": "https", "port": 443, "targetPort": "https"},
                                       {"name": "metrics", "port": 9402, "targetPort": "http-metrics"}]),
                cm_service("controller", [{"name": "http-metrics", "port": 9402}], ip="10.96.5.6"),
                cm_service("cainjector", [{"name": "http-metrics", "port": 9402}], ip="10.96.5.7")]
    assert podnet.service_routes(found["cm/cert-manager-webhook"], services, 40001) == {"10.96.5.5:443": "127.0.0.1:40001"}
    assert podnet.service_routes(found["cm/cert-manager"], services, 40003) == {}
    assert podnet.service_routes(found["cm/cert-manager-cainjector"], services, 40004) == {}


def test_metrics_server_keeps_its_row():
    w = podnet.workloads([deployment()])["kube-system/metrics-server"]
    assert w["runner"] == "metrics-server" and w["serves"] == 10250
    argv = podnet.HOST_RUNNERS["metrics-server"].argv("/bin/ms", w["args"], podnet.HostSlot(5, 6, "/s", "/s/kc"))
    assert argv[0] == "/bin/ms" and "--secure-port=5" in argv and "--cert-dir=/s/certs" in argv


def test_expand_follows_the_kubelet_s_rules():
    env = {"NS": "cm", "A": "x"}
    assert podnet.expand("--n=$(NS).svc", env) == "--n=cm.svc"
    assert podnet.expand("$(UNKNOWN)-$(A)", env) == "$(UNKNOWN)-x"
    assert podnet.expand("$$(NS) costs $$5", env) == "$(NS) costs $5"
    assert podnet.container_env({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)2"},
                                         {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                         {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}, "cm") \
        == {"A": "1", "B": "12", "NS": "cm"}


def test_a_missing_executable_is_said_and_nothing_starts(tmp_path):
    w = podnet.workloads([cm_deployment("webhook")])["cm/cert-manager-webhook"]
    hp = podnet.HostProcess("cm/cert-manager-webhook", w, str(tmp_path), str(tmp_path), {"cm-sandbox": None}, 1, kube=None)
    with pytest.raises(RuntimeError, match="no cm-sandbox executable"):
        hp.ensure(w)
    assert hp.proc is None and hp.log_path.endswith("cert-manager-webhook.cm.cert-manager-webhook.log")
