"""Live tests of the sandbox's Kubernetes control plane (components 05-tools and 20-kube).

Run against a running sandbox: `sandbox/sandboxctl up && . .sandbox/env && pytest tests/sandbox/live`.
"""
import json
import os
import subprocess
import time
import uuid


from _kube import kubectl

REQUIRED = ("KUBECONFIG", "KUBECTL_BIN", "SANDBOX_KUBE_AUDIT", "SANDBOX_KUBE_ADMIN_USER",
            "SANDBOX_KUBECONFIG_UNPRIVILEGED")


def test_server_version_is_1_31(env):
    v = json.loads(kubectl(env, "version", "-o", "json").stdout)["serverVersion"]
    assert v["gitVersion"].startswith("v1.31."), v
    assert (v["major"], v["minor"]) == ("1", "31")


def test_auth_whoami_is_the_admin(env):
    who = json.loads(kubectl(env, "auth", "whoami", "-o", "json").stdout)
    assert who["status"]["userInfo"]["username"] == env["SANDBOX_KUBE_ADMIN_USER"]
    assert "system:masters" in who["status"]["userInfo"]["groups"]


def test_rbac_denies_unprivileged_user(env):
    unpriv = env["SANDBOX_KUBECONFIG_UNPRIVILEGED"]
    who = json.loads(kubectl(env, "auth", "whoami", "-o", "json", kubeconfig=unpriv).stdout)
    assert who["status"]["userInfo"]["username"] == "sandbox-unprivileged"
    r = kubectl(env, "get", "secrets", "-n", "default", kubeconfig=unpriv, check=False)
    assert r.returncode != 0 and "forbidden" in r.stderr.lower(), r.stderr
    r = kubectl(env, "create", "configmap", f"denied-{uuid.uuid4().hex[:6]}", "-n", "default",
                kubeconfig=unpriv, check=False)
    assert r.returncode != 0 and "forbidden" in r.stderr.lower(), r.stderr
    assert kubectl(env, "auth", "can-i", "create", "secrets", kubeconfig=unpriv, check=False).stdout.strip() == "no"


def _audit_events(path):
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _wait_audit(path, pred, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        hits = [e for e in _audit_events(path) if pred(e)]
        if hits:
            return hits
        time.sleep(0.5)
    raise AssertionError("no matching audit event in " + path)


def test_audit_log_records_writes_with_user(env):
    name = f"audit-{uuid.uuid4().hex[:8]}"
    kubectl(env, "create", "configmap", name, "-n", "default", "--from-literal=a=b")
    try:
        kubectl(env, "patch", "configmap", name, "-n", "default", "-p", '{"data":{"a":"c"}}')
    finally:
        kubectl(env, "delete", "configmap", name, "-n", "default")
    admin = env["SANDBOX_KUBE_ADMIN_USER"]
    for verb in ("create", "patch", "delete"):
        hits = _wait_audit(env["SANDBOX_KUBE_AUDIT"], lambda e: e.get("verb") == verb
                           and (e.get("objectRef") or {}).get("name") == name)
        e = hits[-1]
        assert e["user"]["username"] == admin
        assert e["objectRef"]["resource"] == "configmaps" and e["objectRef"]["namespace"] == "default"
        assert e["stage"] == "ResponseComplete" and e["level"] in ("Metadata", "Request", "RequestResponse")
        assert e["responseStatus"]["code"] < 300


def test_audit_log_secret_writes_have_no_data(env):
    name = f"audit-secret-{uuid.uuid4().hex[:8]}"
    kubectl(env, "create", "secret", "generic", name, "-n", "default", "--from-literal=password=hunter2")
    kubectl(env, "delete", "secret", name, "-n", "default")
    _wait_audit(env["SANDBOX_KUBE_AUDIT"], lambda e: e.get("verb") == "create"
                and (e.get("objectRef") or {}).get("name") == name)
    with open(env["SANDBOX_KUBE_AUDIT"]) as f:
        log = f.read()
    assert "hunter2" not in log and "aHVudGVyMg" not in log


def test_helm_binaries(env):
    for var, major in (("HELM_BIN", "v3."), ("HELM4_BIN", "v4.")):
        assert os.environ.get(var), f"{var} unset"
        out = subprocess.run([os.environ[var], "version", "--short"], capture_output=True, text=True, check=True).stdout
        assert out.startswith(major), out
