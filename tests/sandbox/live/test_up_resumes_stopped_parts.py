"""A sandbox part left stopped (SIGSTOP) by a test that died is running again after `sandboxctl up`.

Tests suspend sandbox processes on purpose (the node mirror, to hold a Node in a state; kwok
during the apiserver outage) and resume them in a `finally`. A test process that is SIGKILLed
(a CI timeout, an OOM kill) runs no `finally`: the part stays stopped, looks alive to `up`
(its pid is there) and never answers. Here a child pytest stops the node mirror and the registry
in exactly such a try/finally and is SIGKILLed mid-test; the parts must still be stopped (the
scenario happened), and after `sandboxctl up` they must be the same processes, running and
serving again: the registry answers, the node mirror repairs a Node label it owns.
"""
import base64
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
SANDBOXCTL = str(REPO / "sandbox" / "sandboxctl")
sys.path.insert(0, str(REPO / "tests" / "tools"))

from slowdown import scaled  # noqa: E402  pylint: disable=wrong-import-position

REQUIRED = ("SANDBOX_AWS_JOURNAL", "SANDBOX_REGISTRY", "SANDBOX_REGISTRY_USER", "SANDBOX_REGISTRY_PASSWORD", "KUBECTL_BIN")
PARTS = ("nodemirror", "registry")
# The label the mirror writes on every Node it manages; it puts back any other value.
SOURCE_LABEL = "sandbox.genai.stack/source"

# The test that dies: it stops the parts, would resume them in its finally, and is killed first.
CHILD_TEST = '''
import os, signal, time

def test_dies_with_sandbox_parts_stopped():
    pids = [int(p) for p in os.environ["STOP_PIDS"].split(",")]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        print("PARTS-STOPPED", flush=True)
        time.sleep(3600)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
'''


def state(pid):
    """The state letter of /proc/<pid>/stat ('T': stopped), None when the process is gone."""
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def pid_of(directory, name):
    return int(pathlib.Path(directory, "kube", "run", f"{name}.pid").read_text().strip())


def registry_answers(env, timeout):
    request = urllib.request.Request(f"http://{env['SANDBOX_REGISTRY']}/v2/")
    token = base64.b64encode(f"{env['SANDBOX_REGISTRY_USER']}:{env['SANDBOX_REGISTRY_PASSWORD']}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def kubectl(env, *args):
    r = subprocess.run([env["KUBECTL_BIN"], *args], capture_output=True, text=True, timeout=scaled(60), check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def poll(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def test_up_resumes_parts_a_killed_test_left_stopped(env, tmp_path):
    directory = pathlib.Path(env["SANDBOX_AWS_JOURNAL"]).parent.parent
    pids = {name: pid_of(directory, name) for name in PARTS}
    node = kubectl(env, "get", "nodes", "-l", "sandbox.genai.stack/managed=true", "-o", "jsonpath={.items[0].metadata.name}")
    assert node, "the sandbox has no Node managed by the node mirror"
    source = kubectl(env, "get", "node", node, "-o", "jsonpath={.metadata.labels.sandbox\\.genai\\.stack/source}")
    assert source, f"Node {node} has no {SOURCE_LABEL} label"
    (tmp_path / "test_child.py").write_text(CHILD_TEST)
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_child.py"],
                             cwd=tmp_path, env=dict(os.environ, STOP_PIDS=",".join(str(p) for p in pids.values())),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        seen = []
        for line in child.stdout:
            seen.append(line)
            if "PARTS-STOPPED" in line:
                break
        assert child.poll() is None, "the child test ended before it stopped the parts:\n" + "".join(seen)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=scaled(30))
        # The scenario happened: the child's finally never ran, the parts are still stopped.
        assert {name: state(pid) for name, pid in pids.items()} == {name: "T" for name in PARTS}
        assert not registry_answers(env, timeout=2), "a stopped registry answered"

        try:
            up = subprocess.run([SANDBOXCTL, "up"], capture_output=True, text=True, timeout=scaled(120), check=False,
                                env=dict(os.environ, SANDBOX_DIR=str(directory)))
        except subprocess.TimeoutExpired as expired:
            # What a part left stopped does to `up`: it waits on a process that never answers.
            pytest.fail(f"sandboxctl up did not finish in {expired.timeout:.0f} s; parts: "
                        f"{ {name: state(pid) for name, pid in pids.items()} }; output: {expired.stdout}")
        assert up.returncode == 0, up.stdout + up.stderr
        # The same processes (resumed, not replaced by new ones), no longer stopped; up said so.
        assert {name: pid_of(directory, name) for name in PARTS} == pids
        assert all(state(pid) not in (None, "T") for pid in pids.values()), {name: state(pid) for name, pid in pids.items()}
        for pid in pids.values():
            assert f"(pid {pid})" in up.stdout and "resumed" in up.stdout, up.stdout

        # Serving again.
        assert poll(lambda: registry_answers(env, timeout=5), scaled(30)), "the registry does not answer after up"
        kubectl(env, "label", "node", node, "--overwrite", f"{SOURCE_LABEL}=drifted-by-test-resume")
        assert poll(lambda: kubectl(env, "get", "node", node, "-o", "jsonpath={.metadata.labels.sandbox\\.genai\\.stack/source}") == source,
                    scaled(30)), f"the node mirror did not put back {SOURCE_LABEL} on {node}"
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        # Whatever failed above, leave the shared sandbox running.
        for pid in pids.values():
            if state(pid) == "T":
                os.kill(pid, signal.SIGCONT)
