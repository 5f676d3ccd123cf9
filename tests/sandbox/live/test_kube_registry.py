"""Live tests of the sandbox's OCI registry (component 30-registry): htpasswd auth, and helm
pushing and pulling a chart after `helm registry login --password-stdin` (plain HTTP)."""
import os
import pathlib
import subprocess
import uuid

import pytest
import requests

REQUIRED = ("SANDBOX_REGISTRY", "SANDBOX_REGISTRY_USER", "SANDBOX_REGISTRY_PASSWORD", "HELM_BIN", "HELM4_BIN")


@pytest.fixture
def helm_env(tmp_path):
    """A private helm configuration: never the user's registry credentials."""
    e = dict(os.environ)
    for k, d in (("HELM_REGISTRY_CONFIG", "registry.json"), ("HELM_CONFIG_HOME", "config"),
                 ("HELM_CACHE_HOME", "cache"), ("HELM_DATA_HOME", "data")):
        e[k] = str(tmp_path / "helm" / d)
    return e


def helm(bin_, helm_env, *args, input=None, check=True):
    r = subprocess.run([bin_, *args], capture_output=True, text=True, env=helm_env, input=input, timeout=120,
                       check=False)
    if check and r.returncode:
        raise AssertionError(f"helm {args} failed: {r.stderr}")
    return r


def test_registry_requires_auth(env):
    base = f"http://{env['SANDBOX_REGISTRY']}/v2/"
    assert requests.get(base, timeout=5).status_code == 401
    assert requests.get(base, auth=(env["SANDBOX_REGISTRY_USER"], "wrong"), timeout=5).status_code == 401
    assert requests.get(base, auth=(env["SANDBOX_REGISTRY_USER"], env["SANDBOX_REGISTRY_PASSWORD"]),
                        timeout=5).status_code == 200
    host = env["SANDBOX_REGISTRY"].split(":")[0]
    assert host == "127.0.0.1", "the registry must listen on loopback only"


def test_fixture_charts_are_pushed(env):
    root = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "charts"
    import yaml

    # Pushed under the chart's own name (Chart.yaml), which may differ from its directory's.
    charts = sorted(yaml.safe_load(p.read_text())["name"] for p in root.glob("*/Chart.yaml")) if root.is_dir() else []
    if not charts:
        return
    auth = (env["SANDBOX_REGISTRY_USER"], env["SANDBOX_REGISTRY_PASSWORD"])
    for name in charts:
        r = requests.get(f"http://{env['SANDBOX_REGISTRY']}/v2/charts/{name}/tags/list", auth=auth, timeout=5)
        assert r.status_code == 200 and r.json().get("tags"), (
            f"chart {name} not in the registry (charts added since the sandbox started are pushed by the "
            f"next `sandbox/sandboxctl up`): {r.text}")


@pytest.mark.parametrize("helm_var", ["HELM_BIN", "HELM4_BIN"])
def test_helm_push_pull_with_login(env, helm_env, tmp_path, helm_var):
    bin_ = env[helm_var]
    reg = env["SANDBOX_REGISTRY"]
    # One fixed repository and a unique version, so runs leave no new repositories behind.
    repo = "sandbox-selftest"
    # SemVer forbids a numeric pre-release identifier with a leading zero: helm 3 refused
    # "0.1.0-03249748" in CI. 8 random hex digits are all digits with a leading 0 about 1 time
    # in 400, so the identifier starts with a letter.
    version = f"0.1.0-t{uuid.uuid4().hex[:8]}"
    helm(bin_, helm_env, "create", str(tmp_path / "demo"))
    pkg = helm(bin_, helm_env, "package", str(tmp_path / "demo"), "--version", version,
               "-d", str(tmp_path / "pkg")).stdout
    tgz = next((tmp_path / "pkg").glob("demo-*.tgz"))

    # Without login the push is refused.
    r = helm(bin_, helm_env, "push", str(tgz), f"oci://{reg}/{repo}", "--plain-http", check=False)
    assert r.returncode != 0, pkg

    helm(bin_, helm_env, "registry", "login", reg, "--plain-http", "-u", env["SANDBOX_REGISTRY_USER"],
         "--password-stdin", input=env["SANDBOX_REGISTRY_PASSWORD"])
    auth = (env["SANDBOX_REGISTRY_USER"], env["SANDBOX_REGISTRY_PASSWORD"])
    try:
        out = helm(bin_, helm_env, "push", str(tgz), f"oci://{reg}/{repo}", "--plain-http")
        assert "Digest:" in out.stdout + out.stderr
        (tmp_path / "pulled").mkdir()
        helm(bin_, helm_env, "pull", f"oci://{reg}/{repo}/demo", "--version", version, "--plain-http",
             "-d", str(tmp_path / "pulled"))
        assert (tmp_path / "pulled" / f"demo-{version}.tgz").exists()
        shown = helm(bin_, helm_env, "show", "chart", f"oci://{reg}/{repo}/demo", "--version", version,
                     "--plain-http").stdout
        assert "name: demo" in shown
    finally:
        # Clean up: delete the pushed manifest (the registry has deletes enabled).
        tag = version.replace("+", "_")
        h = requests.head(f"http://{reg}/v2/{repo}/demo/manifests/{tag}", auth=auth, timeout=5,
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        if h.status_code == 200:
            requests.delete(f"http://{reg}/v2/{repo}/demo/manifests/{h.headers['Docker-Content-Digest']}",
                            auth=auth, timeout=5)
        helm(bin_, helm_env, "registry", "logout", reg, check=False)
