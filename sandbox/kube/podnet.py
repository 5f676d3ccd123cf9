#!/usr/bin/env python3
"""The sandbox's pod network, for the few workloads that must really answer (run by 20-kube, one per cluster).

kwok runs no containers: a Pod is marked Running, but nothing listens behind its Service. For most
charts that is what the sandbox wants (see sandbox/README.md, "What the vendors' real charts get").
A few add-ons must really run, and HOST_RUNNERS says how each runs on the host, by the image its
Deployment's container runs:

* metrics-server: the API server serves the metrics API by proxying to it (an APIService), the
  namespace controller stops deleting namespaces while a registered metrics API does not answer, and
  the HorizontalPodAutoscaler controller reads it. The same release runs on the host.
* cert-manager (controller, webhook, cainjector images): its admission webhook (failurePolicy Fail)
  refuses every Issuer, ClusterIssuer and Certificate while nothing answers it, and nothing issues a
  certificate without its controllers. cm-sandbox (sandbox/certmanager/main.go, the same release's
  packages) runs each of the three.

For every Deployment running one of those images, this process:

* runs the host process with the Deployment's own container arguments, adapted (``$(VAR)`` expanded
  from the container's env as the kubelet would; a free port and a directory of its own instead of
  the container's, metrics-server bound to loopback, cert-manager's webhook on every interface since
  its server takes no bind address; the Deployment's ServiceAccount's token to reach the API server, so the chart's
  own RBAC applies), restarted when the Deployment's arguments change or it exits, stopped when the
  Deployment goes or is scaled to zero;
* answers the API server's dials into the cluster: the API server's egress selector sends every
  connection to the cluster network (webhooks, aggregated APIs, kubelets) as an HTTP CONNECT on a
  unix socket (``--socket``). ``<ClusterIP>:<port>`` of a Service in front of such a Deployment,
  whose target is the port the host process serves (metrics-server's and cert-manager's webhook's
  ``--secure-port``), is spliced to the host process; anything else (their metrics ports, every
  other Service) is answered ``503`` at once, with the reason, so a webhook's failurePolicy decides
  at once, as when its server is down;
* lets the host processes reach the Nodes' kubelets: on ``--proxy-port`` (loopback TCP, the host
  processes' ``HTTPS_PROXY``) ``<Node InternalIP>:<kubelet port>`` of a Node kwok plays is
  spliced to kwok's server, which serves each Node's ``/metrics/resource`` (kwok's Metric,
  configured by 20-kube; the node mirror points metrics-server at it with the Node annotation
  ``metrics.k8s.io/resource-metrics-path``).

No privilege is needed: nothing binds a Service's address or a privileged port, and no route or
address is added to the host. Reads the cluster as ``sandbox-podnet`` (ClusterRole sandbox:podnet).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, NamedTuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

log = logging.getLogger("podnet")

# What the host process replaces or adds among the Deployment's container arguments: the
# container's paths and port mean nothing on the host.
REPLACED_FLAGS = ("--secure-port", "--bind-address", "--cert-dir", "--tls-cert-file", "--tls-private-key-file",
                  "--kubeconfig", "--authentication-kubeconfig", "--authorization-kubeconfig")
TOKEN_SECONDS = 3600
TOKEN_REFRESH = 1200


def image_name(container: dict) -> str:
    """The image's last path element without tag or digest: registry.k8s.io/metrics-server/metrics-server:v0.8.0 ->
    metrics-server (a mirror keeps it: 127.0.0.1:5000/mirror/metrics-server@sha256:...)."""
    image = (container.get("image") or "").split("@")[0]
    return image.rsplit("/", 1)[-1].split(":")[0]


def flag_values(args: list[str], flag: str) -> list[str]:
    """Every value given to ``flag`` in ``--flag=value`` or ``--flag value`` form, in order."""
    out = []
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            out.append(arg.split("=", 1)[1])
        elif arg == flag and i + 1 < len(args) and not args[i + 1].startswith("-"):
            out.append(args[i + 1])
    return out


def host_args(container_args: list[str], port: int, cert_dir: str, kubeconfig: str) -> list[str]:
    """The Deployment's metrics-server arguments for a host process on 127.0.0.1:port."""
    kept = []
    skip_next = False
    for i, arg in enumerate(container_args):
        if skip_next:
            skip_next = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in REPLACED_FLAGS:
            # "--flag value" form: the value goes too.
            skip_next = "=" not in arg and i + 1 < len(container_args) and not container_args[i + 1].startswith("-")
            continue
        kept.append(arg)
    out = kept + [f"--secure-port={port}", "--bind-address=127.0.0.1", f"--cert-dir={cert_dir}",
                  f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
                  f"--authorization-kubeconfig={kubeconfig}"]
    # kwok serves every Node's kubelet endpoint with one certificate (the sandbox's API server's), whose
    # names are not the Nodes' addresses; a kubelet's own serving certificate would carry them.
    if not any(a.split("=", 1)[0] == "--kubelet-insecure-tls" for a in kept):
        out.append("--kubelet-insecure-tls")
    return out


class HostSlot(NamedTuple):
    """What podnet gives one host process: the free port it serves (podnet splices to 127.0.0.1 there), a spare
    free port, its directory and its kubeconfig."""
    port: int
    spare_port: int
    dir: str
    kubeconfig: str


def _metrics_server_argv(binary: str, args: list[str], slot: HostSlot) -> list[str]:
    return [binary] + host_args(args, slot.port, os.path.join(slot.dir, "certs"), slot.kubeconfig)


def _cm_controller_argv(binary: str, args: list[str], slot: HostSlot) -> list[str]:
    # cert-manager's default for the namespace of ClusterIssuers' Secrets is kube-system; the chart passes its own.
    ns = (flag_values(args, "--cluster-resource-namespace") or ["kube-system"])[-1]
    return [binary, "controller", f"--kubeconfig={slot.kubeconfig}", f"--cluster-resource-namespace={ns}"]


def _cm_webhook_argv(binary: str, args: list[str], slot: HostSlot) -> list[str]:
    out = [binary, "webhook", f"--kubeconfig={slot.kubeconfig}", f"--secure-port={slot.port}", f"--healthz-port={slot.spare_port}"]
    for flag in ("--dynamic-serving-ca-secret-namespace", "--dynamic-serving-ca-secret-name"):
        if flag_values(args, flag):
            out.append(f"{flag}={flag_values(args, flag)[-1]}")
    # The chart repeats the flag (a string slice in cert-manager's command line); cm-sandbox takes one comma list.
    names = [n for v in flag_values(args, "--dynamic-serving-dns-names") for n in v.split(",") if n]
    if names:
        out.append("--dynamic-serving-dns-names=" + ",".join(names))
    return out


def _cm_cainjector_argv(binary: str, args: list[str], slot: HostSlot) -> list[str]:
    ns = flag_values(args, "--namespace")
    return [binary, "cainjector", f"--kubeconfig={slot.kubeconfig}"] + ([f"--namespace={ns[-1]}"] if ns else [])


def _secure_port(default: int | None):
    def serves(args: list[str]) -> int | None:
        values = flag_values(args, "--secure-port")
        return int(values[-1]) if values else default
    return serves


class HostRunner(NamedTuple):
    """How a container image runs on the host: which executable (podnet's ``--<binary>-bin``), its command line
    from the Deployment's arguments, and which container port it answers for (its Services' targetPort), if any."""
    binary: str
    argv: Callable[[str, list[str], HostSlot], list[str]]
    serves: Callable[[list[str]], int | None]


def _serves_nothing(_args: list[str]) -> None:
    return None


# Image name (image_name) -> how to run it on the host. cert-manager's three images are the chart v1.21.1's
# (quay.io/jetstack/cert-manager-{controller,webhook,cainjector}); cm-sandbox runs the release 05-tools built
# (sandbox/kube/pins.sh), as metrics-server's row runs METRICS_SERVER_VERSION, whatever the image's tag.
HOST_RUNNERS: dict[str, HostRunner] = {
    "metrics-server": HostRunner("metrics-server", _metrics_server_argv, _secure_port(10250)),
    # Controllers need no Service: they only call the API server. The chart's metrics Services stay unanswered.
    "cert-manager-controller": HostRunner("cm-sandbox", _cm_controller_argv, _serves_nothing),
    "cert-manager-webhook": HostRunner("cm-sandbox", _cm_webhook_argv, _secure_port(10250)),
    "cert-manager-cainjector": HostRunner("cm-sandbox", _cm_cainjector_argv, _serves_nothing),
}


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)`` in a container's command and args: a known variable is replaced, an
    unknown one left as written, ``$$`` is a literal ``$``."""
    out, i = [], 0
    while i < len(arg):
        if arg.startswith("$$", i):
            out.append("$")
            i += 2
        elif arg.startswith("$(", i) and ")" in arg[i + 2:]:
            close = arg.index(")", i + 2)
            name = arg[i + 2:close]
            out.append(env[name] if name in env else arg[i:close + 1])
            i = close + 1
        else:
            out.append(arg[i])
            i += 1
    return "".join(out)


def container_env(container: dict, namespace: str) -> dict[str, str]:
    """The container's variables podnet can know: literal values and the Pod's namespace (a fieldRef)."""
    env = {}
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = expand(str(e["value"]), env)
        elif (((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")) == "metadata.namespace":
            env[e["name"]] = namespace
    return env


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _container_port(container: dict, target) -> int | None:
    """The container port a Service's targetPort names (a number or a port name)."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for p in container.get("ports") or []:
        if p.get("name") == target:
            return p.get("containerPort")
    return None


def workloads(deployments: list[dict]) -> dict[str, dict]:
    """ns/name -> {namespace, name, service_account, args, labels, container, image, runner, serves} of every
    Deployment to run on the host: one whose Pods run an image HOST_RUNNERS has a row for."""
    out = {}
    for d in deployments:
        spec = d.get("spec") or {}
        if spec.get("replicas", 1) == 0 or d["metadata"].get("deletionTimestamp"):
            continue
        pod = (spec.get("template") or {}).get("spec") or {}
        container = next((c for c in pod.get("containers") or [] if image_name(c) in HOST_RUNNERS), None)
        if container is None:
            continue
        ns, name = d["metadata"]["namespace"], d["metadata"]["name"]
        env = container_env(container, ns)
        args = [expand(a, env) for a in list(container.get("command") or [])[1:] + list(container.get("args") or [])]
        runner = image_name(container)
        out[f"{ns}/{name}"] = {
            "namespace": ns, "name": name,
            "service_account": pod.get("serviceAccountName") or "default",
            "args": args,
            "labels": ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {},
            "container": container,
            "image": container.get("image", ""),
            "runner": runner,
            "serves": HOST_RUNNERS[runner].serves(args),
        }
    return out


def service_routes(workload: dict, services: list[dict], host_port: int) -> dict[str, str]:
    """ClusterIP:port -> 127.0.0.1:host_port for each port of a Service selecting the workload's Pods
    whose targetPort is the container port the host process serves (none when it serves none)."""
    secure = workload.get("serves")
    routes = {}
    if secure is None:
        return routes
    for s in services:
        spec = s.get("spec") or {}
        if s["metadata"]["namespace"] != workload["namespace"] or not _selects(spec.get("selector") or {}, workload["labels"]):
            continue
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if not ip or ip == "None":
                continue
            for p in spec.get("ports") or []:
                target = _container_port(workload["container"], p.get("targetPort", p.get("port")))
                if target == secure:
                    routes[f"{ip}:{p['port']}"] = f"127.0.0.1:{host_port}"
    return routes


def kubelet_routes(nodes: list[dict], kubelet_port: int) -> dict[str, str]:
    """<Node InternalIP>:<its kubelet port> -> kwok's server, for the Nodes kwok plays."""
    routes = {}
    for n in nodes:
        if (n["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") != "fake":
            continue
        port = (((n.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if port != kubelet_port:
            continue
        for a in (n.get("status") or {}).get("addresses") or []:
            if a.get("type") in ("InternalIP", "ExternalIP"):
                routes[f"{a['address']}:{port}"] = f"127.0.0.1:{kubelet_port}"
    return routes


def parse_connect(head: bytes) -> str | None:
    """host:port of an HTTP CONNECT request head, else None."""
    try:
        line = head.split(b"\r\n", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    parts = line.split()
    if len(parts) != 3 or parts[0] != "CONNECT" or not parts[2].startswith("HTTP/1."):
        return None
    return parts[1]


class Proxy:
    """HTTP CONNECT on a unix socket (the API server's egress) and a loopback port (the host processes')."""

    def __init__(self, cluster: str):
        self.cluster = cluster
        self.apiserver_routes: dict[str, str] = {}   # what the API server may reach: Services
        self.host_routes: dict[str, str] = {}        # what the host processes may reach: kubelets, Services

    async def handle(self, reader, writer, routes_of):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            writer.close()
            return
        dest = parse_connect(head)
        target = routes_of().get(dest) if dest else None
        if target is None:
            why = "not a CONNECT request" if dest is None else \
                f"nothing in the sandbox cluster {self.cluster} serves {dest} (kwok runs no containers)"
            writer.write(f"HTTP/1.1 503 {why}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await self._close(writer)
            return
        host, port = target.rsplit(":", 1)
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        except (OSError, asyncio.TimeoutError) as e:
            writer.write(f"HTTP/1.1 502 {dest} is served by {target}, which does not answer: {e}\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await self._close(writer)
            return
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _close(writer):
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    @staticmethod
    async def _pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            try:
                writer.close()
            except (ConnectionError, OSError):
                pass

    async def serve(self, socket_path: str, proxy_port: int):
        if os.path.exists(socket_path):
            os.unlink(socket_path)
        await asyncio.start_unix_server(lambda r, w: self.handle(r, w, lambda: self.apiserver_routes), path=socket_path)
        await asyncio.start_server(lambda r, w: self.handle(r, w, lambda: self.host_routes), "127.0.0.1", proxy_port)
        log.info("serving CONNECT on %s (API server) and 127.0.0.1:%d (host processes)", socket_path, proxy_port)
        await asyncio.Event().wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostProcess:
    """One host process standing in for a Deployment's Pods, run as HOST_RUNNERS' row for its image says."""

    def __init__(self, key: str, workload: dict, state_dir: str, log_dir: str, binaries: dict[str, str], proxy_port: int, kube):
        self.key, self.workload, self.kube = key, workload, kube
        runner = workload["runner"]
        safe = f"{runner}.{key.replace('/', '.')}"
        self.dir = os.path.join(state_dir, safe)
        self.log_path = os.path.join(log_dir, f"{safe}.log")
        self.pid_file = os.path.join(state_dir, f"{safe}.pid")
        self.binaries, self.proxy_port = binaries, proxy_port
        self.port, self.spare_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None
        self.token_at = 0.0
        self.fingerprint = ""

    def _write_token(self):
        ns, sa = self.workload["namespace"], self.workload["service_account"]
        r = self.kube._req("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
                           json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                 "spec": {"expirationSeconds": TOKEN_SECONDS}})
        tmp = os.path.join(self.dir, "token.tmp")
        with open(tmp, "w") as f:
            f.write(r["status"]["token"])
        os.chmod(tmp, 0o600)
        os.replace(tmp, os.path.join(self.dir, "token"))
        self.token_at = time.time()

    def _kubeconfig(self) -> str:
        # client-go rereads a tokenFile, so the refreshed token reaches a running process.
        path = os.path.join(self.dir, "kubeconfig")
        kc = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "c", "cluster": {"server": self.kube.server, "certificate-authority": self.kube.verify}}],
              "users": [{"name": "u", "user": {"tokenFile": os.path.join(self.dir, "token")}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"}
        with open(path, "w") as f:
            json.dump(kc, f)
        return path

    def argv(self) -> list[str]:
        runner = HOST_RUNNERS[self.workload["runner"]]
        slot = HostSlot(self.port, self.spare_port, self.dir, os.path.join(self.dir, "kubeconfig"))
        return runner.argv(self.binaries.get(runner.binary) or runner.binary, self.workload["args"], slot)

    def ensure(self, workload: dict):
        """Start, restart (arguments changed, process exited) or keep; refresh the token file."""
        fingerprint = hashlib.sha256(json.dumps([workload["runner"], workload["args"], workload["service_account"]]).encode()).hexdigest()
        if self.proc and self.proc.poll() is None and fingerprint == self.fingerprint:
            if time.time() - self.token_at > TOKEN_REFRESH:
                self._write_token()
            return
        binary = self.binaries.get(HOST_RUNNERS[workload["runner"]].binary)
        if not binary or not os.access(binary, os.X_OK):
            raise RuntimeError(f"no {HOST_RUNNERS[workload['runner']].binary} executable (podnet's "
                               f"--{HOST_RUNNERS[workload['runner']].binary}-bin: {binary or 'not given'}); 05-tools builds it")
        if self.proc and self.proc.poll() is None:
            log.info("%s: the Deployment's arguments changed; restarting its host process", self.key)
            self.stop()
        elif self.proc:
            log.warning("%s: %s exited with %s; starting it again (log %s)", self.key, workload["runner"], self.proc.returncode, self.log_path)
        self.workload, self.fingerprint = workload, fingerprint
        os.makedirs(os.path.join(self.dir, "certs"), exist_ok=True)
        self._write_token()
        self._kubeconfig()
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env.update({"HTTPS_PROXY": f"http://127.0.0.1:{self.proxy_port}", "NO_PROXY": "127.0.0.1,localhost"})
        argv = self.argv()
        log.info("%s: starting %s", self.key, " ".join(argv))
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        with open(self.pid_file, "w") as f:
            f.write(str(self.proc.pid))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if os.path.exists(self.pid_file):
            os.unlink(self.pid_file)


def stop_leftovers(state_dir: str):
    """Host processes a previous podnet left (it was killed): their pid files name them, and each one's command
    line names its kubeconfig under state_dir (a reused pid of another program is left alone)."""
    for name in os.listdir(state_dir) if os.path.isdir(state_dir) else []:
        if not name.endswith(".pid"):
            continue
        path = os.path.join(state_dir, name)
        try:
            pid = int(open(path).read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if state_dir.encode() in f.read():
                    os.kill(pid, signal.SIGTERM)
                    log.info("stopped a leftover host process %d (%s)", pid, name)
        except (OSError, ValueError):
            pass
        os.unlink(path)


class Supervisor:
    def __init__(self, args, kube, proxy: Proxy):
        self.args, self.kube, self.proxy = args, kube, proxy
        self.running: dict[str, HostProcess] = {}
        self.complaints: dict[str, str] = {}
        self.binaries = {"metrics-server": args.metrics_server_bin, "cm-sandbox": args.cm_sandbox_bin}

    def sync(self):
        deployments = self.kube._req("GET", "/apis/apps/v1/deployments")["items"]
        wanted = workloads(deployments)
        for key in list(self.running):
            if key not in wanted:
                log.info("%s: the Deployment is gone or scaled to zero; stopping its host process", key)
                self.running.pop(key).stop()
        api_routes = {}
        services = self.kube._req("GET", "/api/v1/services")["items"] if wanted else []
        for key, w in wanted.items():
            hp = self.running.get(key)
            if hp is not None and hp.workload["runner"] != w["runner"]:
                log.info("%s: the Deployment now runs %s; stopping its %s host process", key, w["runner"], hp.workload["runner"])
                self.running.pop(key).stop()
                hp = None
            if hp is None:
                hp = self.running[key] = HostProcess(key, w, self.args.state_dir, self.args.log_dir,
                                                      self.binaries, self.args.proxy_port, self.kube)
            try:
                hp.ensure(w)
                self.complaints.pop(key, None)
            except Exception as e:  # noqa: BLE001 - the ServiceAccount may not exist yet: next pass
                if self.complaints.get(key) != str(e):  # said once, not every pass
                    log.warning("%s: cannot start its host process yet: %s", key, e)
                    self.complaints[key] = str(e)
                continue
            api_routes.update(service_routes(w, services, hp.port))
        nodes = self.kube._req("GET", "/api/v1/nodes")["items"] if wanted else []
        if api_routes != self.proxy.apiserver_routes:
            log.info("API server routes: %s", api_routes or "none")
        self.proxy.apiserver_routes = api_routes
        self.proxy.host_routes = {**api_routes, **kubelet_routes(nodes, self.args.kubelet_port)}

    def loop(self):
        while True:
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - the API server restarts with the sandbox; keep trying
                log.warning("sync failed: %s", e)
            time.sleep(self.args.interval)

    def stop_all(self):
        for hp in self.running.values():
            hp.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--kubeconfig", required=True, help="the sandbox-podnet identity's kubeconfig")
    ap.add_argument("--socket", required=True, help="the unix socket of the API server's egress selector")
    ap.add_argument("--proxy-port", type=int, required=True)
    ap.add_argument("--kubelet-port", type=int, required=True, help="kwok's server port (every Node's kubelet port)")
    ap.add_argument("--metrics-server-bin", required=True)
    ap.add_argument("--cm-sandbox-bin", help="cm-sandbox (sandbox/certmanager/main.go): runs cert-manager's controller, "
                    "webhook and cainjector images; without it their Deployments get no host process")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--log-dir", required=True)
    ap.add_argument("--interval", type=float, default=2.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from nodemirror import Kube  # noqa: E402 - beside this file; needs the venv's requests and yaml

    os.makedirs(args.state_dir, exist_ok=True)
    stop_leftovers(args.state_dir)
    kube = Kube(args.kubeconfig)
    kube.session.headers["User-Agent"] = "sandbox-podnet"
    proxy = Proxy(args.cluster)
    sup = Supervisor(args, kube, proxy)

    def on_term(*_):
        sup.stop_all()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    threading.Thread(target=sup.loop, daemon=True).start()
    asyncio.run(proxy.serve(args.socket, args.proxy_port))


if __name__ == "__main__":
    main()
