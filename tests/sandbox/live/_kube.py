"""kubectl helpers shared by the live sandbox tests: run kubectl against the sandbox's
kubeconfig, read JSON, wait for a condition, and tell whether an object is Ready."""
import json
import subprocess
import time


def kubectl(env, *args, kubeconfig=None, check=True, input=None):  # pylint: disable=redefined-builtin
    cmd = [env["KUBECTL_BIN"], "--kubeconfig", kubeconfig or env["KUBECONFIG"], *args]
    r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=60, check=False)
    if check and r.returncode:
        raise AssertionError(f"{cmd} failed: {r.stderr}")
    return r


def get(env, *args):
    return json.loads(kubectl(env, "get", *args, "-o", "json").stdout)


def wait(pred, timeout, what):
    """The first truthy value of pred() within timeout seconds, polled every 0.5 s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def ready(obj):
    """A Pod's or a Node's Ready condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))
