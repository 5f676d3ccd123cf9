"""sandbox/orphans.py: which command lines are sandbox processes, and of which sandbox directory.

The command lines are those the components start (sandbox/components/*.sh), as `ps` showed them.
"""
import importlib.util
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[3] / "sandbox" / "orphans.py"
_spec = importlib.util.spec_from_file_location("orphans", _PATH)
orphans = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(orphans)

BIN = "/root/.cache/genai-stack"


@pytest.mark.parametrize("argv,directory", [
    ([f"{BIN}/etcd-v3.5.33/bin/etcd", "--name", "sandbox", "--data-dir", "/w/.sandbox/kube/etcd"], "/w/.sandbox"),
    ([f"{BIN}/kube-v1.31.4/bin/kube-apiserver", "--etcd-servers", "http://127.0.0.1:1", "--tls-cert-file",
      "/tmp/genai-bench/sbx/kube/pki/apiserver.crt"], "/tmp/genai-bench/sbx"),
    ([f"{BIN}/kube-v1.31.4/bin/kube-controller-manager", "--kubeconfig=/w/.sandbox/kube/controller-manager.kubeconfig"],
     "/w/.sandbox"),
    ([f"{BIN}/kube-v1.31.4/bin/kube-scheduler", "--kubeconfig", "/w/.sandbox/kube/scheduler.kubeconfig"], "/w/.sandbox"),
    ([f"{BIN}/kwok-v0.8.0/bin/kwok", "--kubeconfig", "/w/.sandbox/kube/kwok.kubeconfig", "--config",
      f"{BIN}/kwok-v0.8.0/stages.yaml"], "/w/.sandbox"),
    (["/usr/lib/postgresql/15/bin/postgres", "-D", "/w/.sandbox/postgres/data"], "/w/.sandbox"),
    ([f"{BIN}/registry-v3.1.1/bin/registry", "serve", "/w/.sandbox/registry/config.yml"], "/w/.sandbox"),
    (["/w/.venv/bin/python", "-m", "sandbox.aws.server", "--host", "127.0.0.1", "--port", "1", "--journal",
      "/w/.sandbox/aws/journal.jsonl"], "/w/.sandbox"),
    (["/w/.venv/bin/python3.11", "/w/sandbox/kube/nodemirror.py", "--kubeconfig", "/w/.sandbox/kube/nodemirror.kubeconfig"],
     "/w/.sandbox"),
    # the pod network and the metrics-server it runs on the host (sandbox/kube/podnet.py)
    (["/w/.venv/bin/python", "/w/sandbox/kube/podnet.py", "--cluster", "sandbox", "--kubeconfig",
      "/w/.sandbox/kube/podnet.kubeconfig", "--socket", "/w/.sandbox/kube/pod-network.sock"], "/w/.sandbox"),
    ([f"{BIN}/metrics-server-v0.8.0/bin/metrics-server", "--metric-resolution=15s", "--secure-port=40001",
      "--cert-dir=/w/.sandbox/kube/clusters/sandbox-2/run/podnet/kube-system.metrics-server/certs"], "/w/.sandbox"),
    ([f"{BIN}/cm-sandbox-v1.21.1-0123456789ab/bin/cm-sandbox", "webhook",
      "--kubeconfig=/w/.sandbox/kube/run/podnet/cert-manager-webhook.cert-manager.cert-manager-webhook/kubeconfig",
      "--secure-port=40002"], "/w/.sandbox"),
    # a fleet's further clusters (20-kube: kube/clusters/<name>/)
    ([f"{BIN}/kube-v1.31.4/bin/kube-apiserver", "--etcd-servers", "http://127.0.0.1:1", "--etcd-prefix",
      "/clusters/sandbox-2/registry", "--tls-cert-file", "/w/.sandbox/kube/clusters/sandbox-2/pki/apiserver.crt"],
     "/w/.sandbox"),
    ([f"{BIN}/kube-v1.31.4/bin/kube-controller-manager", "--kubeconfig",
      "/w/.sandbox/kube/clusters/sandbox-2/controller-manager.kubeconfig"], "/w/.sandbox"),
    ([f"{BIN}/kwok-v0.8.0/bin/kwok", "--kubeconfig", "/w/.sandbox/kube/clusters/sandbox-3/kwok.kubeconfig"], "/w/.sandbox"),
    (["/w/.venv/bin/python", "/w/sandbox/kube/nodemirror.py", "--kubeconfig",
      "/w/.sandbox/kube/clusters/sandbox-2/nodemirror.kubeconfig", "--cluster", "sandbox-2", "--no-tpu"], "/w/.sandbox"),
    (["/w/.venv/bin/python", "/w/sandbox/cloudwatch/evaluator.py", "--clock", "/w/.sandbox-x/cloudwatch/clock.json",
      "--history", "/w/.sandbox-x/cloudwatch/history.jsonl", "--interval", "10"], "/w/.sandbox-x"),
    (["/w/.venv/bin/python", "/w/sandbox/cloudwatch/publisher.py", "--clock", "/w/.sandbox-x/cloudwatch/clock.json",
      "--kubeconfig", "/w/.sandbox-x/kube/agents.kubeconfig", "--load", "/w/.sandbox-x/cloudwatch/load.json"], "/w/.sandbox-x"),
])
def test_sandbox_processes_name_their_directory(argv, directory):
    assert orphans.sandbox_dir(argv) == directory


@pytest.mark.parametrize("argv", [
    ["postgres: checkpointer "],                                            # dies with its postmaster
    ["/usr/bin/etcd", "--data-dir", "/var/lib/etcd"],                        # someone else's etcd
    ["/usr/bin/python3", "-m", "http.server", "/w/.sandbox/aws/journal.jsonl"],
    ["bash", "/w/sandbox/sandboxctl", "up"],
    ["/usr/lib/postgresql/15/bin/postgres", "-D", "relative/postgres/data"],
    [],
])
def test_other_processes_are_not_sandbox_processes(argv):
    assert orphans.sandbox_dir(argv) is None


def test_only_processes_whose_directory_is_gone_are_orphans(tmp_path):
    proc = tmp_path / "proc"
    live, gone = tmp_path / "live", tmp_path / "gone"
    live.mkdir()
    for pid, directory in ((101, live), (102, gone)):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(
            b"\0".join([b"/bin/registry", b"serve", str(directory / "registry" / "config.yml").encode()]) + b"\0")
    (proc / "self").mkdir()
    assert orphans.orphans(str(proc)) == [(102, "registry", str(gone))]
