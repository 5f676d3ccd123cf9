"""The sandbox's chart mirror (sandbox/components/30-registry.sh): on a private sandbox started with
GENAI_STACK_CHART_DIR naming a directory that holds one vendor package (dcgm-exporter), the mirror at
$SANDBOX_CHART_MIRROR holds that very package (the same bytes, the vendor's Chart.yaml) and the stand-in
of every other pinned chart that has one; $SANDBOX_DIR/registry/standins and SANDBOX_STANDIN_CHARTS list
exactly those stand-ins; a second up pushes nothing (no playbook run, the same manifests).

Kept fast: the private sandbox runs only the parts the mirror needs, the tools (05) and the registry (30),
each started as `sandboxctl up` starts it (the earlier parts' variables sourced first); the cloud, the
cluster and the database would take a minute to start and play no part here."""
import base64
import hashlib
import os
import pathlib
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[3]
PARTS = ("05-tools", "30-registry")
# What sandboxctl does for each component: the variables of those before it, then `<component> <action>`.
RUN_PART = 'set -a; for f in "$SANDBOX_DIR"/env.d/*.env; do [[ -e "$f" ]] && . "$f"; done; set +a; bash "$REPO_ROOT/sandbox/components/$1.sh" "$2"'
VENDOR = pathlib.Path(os.environ.get("GENAI_STACK_CHART_DIR") or REPO.parent / "shared" / "vendor-charts")
REAL = "dcgm-exporter"  # small, and a chart the stand-ins also have
REQUIRED = ()  # a private sandbox of its own: nothing from the main one


def pins():
    with open(REPO / "playbooks" / "vars" / "chart_pins.yml") as handle:
        return {p["name"]: str(p["version"]) for p in yaml.safe_load(handle)["genai_stack_chart_pins"]}


def fixtures():
    """{(name, version): fixture directory} of the stand-in charts."""
    found = {}
    for chart_yaml in (REPO / "tests" / "fixtures" / "charts").glob("*/Chart.yaml"):
        meta = yaml.safe_load(chart_yaml.read_text())
        found[(meta["name"], str(meta["version"]))] = chart_yaml.parent
    return found


def part_env(directory, extra=None, unset=()):
    env = dict(os.environ, REPO_ROOT=str(REPO), SANDBOX_DIR=directory,
               SANDBOX_CACHE=os.environ.get("SANDBOX_CACHE") or os.path.expanduser("~/.cache/genai-stack"),
               SANDBOX_PYTHON=os.environ.get("SANDBOX_PYTHON") or str(REPO / ".venv" / "bin" / "python"), **(extra or {}))
    for name in unset:
        env.pop(name, None)
    return env


def up(directory, extra=None, unset=()):
    """The output of starting (or re-starting) the private sandbox's parts."""
    out = ""
    for part in PARTS:
        proc = subprocess.run(["bash", "-c", RUN_PART, "_", part, "up"], env=part_env(directory, extra, unset), capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out += proc.stdout + proc.stderr
    return out


def env_of(directory):
    """The variables of the parts' env files, as a consumer of $SANDBOX_DIR/env gets them."""
    out = subprocess.run(["bash", "-c", 'set -a; for f in "$1"/env.d/*.env; do . "$f"; done; set +a; env -0', "_", directory],
                         capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def manifest_digest(env, name, version):
    """The digest of the mirror's manifest of name:version (the registry's API, basic auth)."""
    base = env["SANDBOX_CHART_MIRROR"][len("oci://"):]
    host, path = base.split("/", 1)
    request = urllib.request.Request(f"http://{host}/v2/{path}/{name}/manifests/{version}", method="HEAD")
    token = base64.b64encode(f"{env['SANDBOX_REGISTRY_USER']}:{env['SANDBOX_REGISTRY_PASSWORD']}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    request.add_header("Accept", "application/vnd.oci.image.manifest.v1+json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["Docker-Content-Digest"]


def pull(env, config, name, version, dest):
    """The mirror's package of name:version, pulled with helm into dest."""
    dest.mkdir()
    proc = subprocess.run([env["HELM_BIN"], "pull", f"{env['SANDBOX_CHART_MIRROR']}/{name}", "--version", version, "--plain-http",
                           "--destination", str(dest)], env=dict(env, HELM_REGISTRY_CONFIG=config), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return dest / f"{name}-{version}.tgz"


def chart_yaml(package):
    with tarfile.open(package) as archive:
        member = next(m for m in archive if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml"))
        return yaml.safe_load(archive.extractfile(member).read())


@pytest.fixture
def sandbox_with_one_vendor_chart(env):  # pylint: disable=unused-argument,redefined-outer-name
    real = VENDOR / f"{REAL}-{pins()[REAL]}.tgz"
    if not real.is_file():
        pytest.skip(f"no vendor package {real.name} in {VENDOR} (set GENAI_STACK_CHART_DIR to the vendor charts)")
    directory = tempfile.mkdtemp(prefix="genai-mirror-")
    charts = pathlib.Path(tempfile.mkdtemp(prefix="genai-mirror-charts-"))
    shutil.copy(real, charts / real.name)
    try:
        yield directory, charts, real
    finally:
        for part in reversed(PARTS):
            subprocess.run(["bash", "-c", RUN_PART, "_", part, "down"], env=part_env(directory), capture_output=True, timeout=300, check=False)
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(charts, ignore_errors=True)


def test_mirror_holds_the_vendor_package_and_stand_ins_for_the_rest(sandbox_with_one_vendor_chart, tmp_path):
    directory, charts, real = sandbox_with_one_vendor_chart
    first = up(directory, extra={"GENAI_STACK_CHART_DIR": str(charts)})
    env = env_of(directory)
    assert env["SANDBOX_CHART_MIRROR"] == f"oci://{env['SANDBOX_REGISTRY']}/mirror"

    config = str(tmp_path / "registry.json")
    subprocess.run([env["HELM_BIN"], "registry", "login", env["SANDBOX_REGISTRY"], "--username", env["SANDBOX_REGISTRY_USER"],
                    "--password-stdin", "--plain-http"], input=env["SANDBOX_REGISTRY_PASSWORD"], env=dict(env, HELM_REGISTRY_CONFIG=config),
                   capture_output=True, text=True, timeout=60, check=True)

    pinned, standins = pins(), fixtures()
    expected_standins = [name for name, version in pinned.items() if name != REAL and (name, version) in standins]
    assert expected_standins, "no pinned chart has a stand-in: nothing to check"

    # The vendor's package, byte for byte; its Chart.yaml has what the stand-in's has not (home, sources).
    pulled = pull(env, config, REAL, pinned[REAL], tmp_path / "real")
    assert hashlib.sha256(pulled.read_bytes()).digest() == hashlib.sha256(real.read_bytes()).digest()
    assert chart_yaml(pulled).get("home") and not yaml.safe_load((standins[(REAL, pinned[REAL])] / "Chart.yaml").read_text()).get("home")

    # Every other pinned chart: its stand-in (the fixture's own description).
    for name in expected_standins:
        meta = chart_yaml(pull(env, config, name, pinned[name], tmp_path / name))
        fixture = yaml.safe_load((standins[(name, pinned[name])] / "Chart.yaml").read_text())
        assert (meta["name"], str(meta["version"]), meta.get("description")) == \
            (name, pinned[name], fixture.get("description")), name

    listed = (pathlib.Path(directory) / "registry" / "standins").read_text().split()
    assert listed == expected_standins
    assert env["SANDBOX_STANDIN_CHARTS"].split(",") == expected_standins
    assert f"mirror holds the vendor's {REAL}" in first

    # A second up: nothing pushed, no playbook run, the same manifests.
    log = pathlib.Path(directory) / "logs" / "chart-mirror.log"
    log_stat = log.stat().st_mtime_ns
    digests = {name: manifest_digest(env, name, pinned[name]) for name in expected_standins + [REAL]}
    second = up(directory, extra={"GENAI_STACK_CHART_DIR": str(charts)})
    assert "mirror holds" not in second and "pushed chart" not in second, second
    assert log.stat().st_mtime_ns == log_stat
    assert {name: manifest_digest(env, name, pinned[name]) for name in digests} == digests
    assert env_of(directory)["SANDBOX_STANDIN_CHARTS"] == env["SANDBOX_STANDIN_CHARTS"]


def test_the_sandbox_keeps_the_chart_directory_it_was_filled_from(sandbox_with_one_vendor_chart, tmp_path):
    """An up without GENAI_STACK_CHART_DIR (a `make demo` typed after .ci/run) keeps the vendor's package in
    the mirror, so releases installed from it are never upgraded to a stand-in; set and empty, stand-ins only."""
    directory, charts, real = sandbox_with_one_vendor_chart
    up(directory, extra={"GENAI_STACK_CHART_DIR": str(charts)})
    env = env_of(directory)
    version = pins()[REAL]
    vendor_digest = manifest_digest(env, REAL, version)

    kept = up(directory, unset=("GENAI_STACK_CHART_DIR",))
    assert f"charts from {charts}" in kept, kept
    assert manifest_digest(env, REAL, version) == vendor_digest
    assert REAL not in env_of(directory)["SANDBOX_STANDIN_CHARTS"].split(",")

    emptied = up(directory, extra={"GENAI_STACK_CHART_DIR": ""})
    assert f"mirror holds the stand-in {REAL}" in emptied, emptied
    assert manifest_digest(env, REAL, version) != vendor_digest
    assert REAL in env_of(directory)["SANDBOX_STANDIN_CHARTS"].split(",")
    # ... and it stays so: the emptied choice is remembered too.
    again = up(directory, unset=("GENAI_STACK_CHART_DIR",))
    assert "mirror holds" not in again, again
    assert real.is_file()
