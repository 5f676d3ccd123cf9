"""`sandboxctl reset`: what every suite of `make test` runs first, so that `make test` passes whatever
the sandbox holds (a demo, an interrupted earlier run). On a private sandbox: leave in it what
an interrupted run leaves (a stack namespace with a Helm release record, a launch template, a
metric alarm, a queued fault, the node mirror stopped with SIGSTOP), reset it, and find the
seeded sandbox again, with the output naming what was there."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import boto3
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
SANDBOXCTL = str(REPO / "sandbox" / "sandboxctl")
sys.path.insert(0, str(REPO / "sandbox"))

from resume import _state, stopped  # noqa: E402  pylint: disable=wrong-import-position
from orphans import _component, processes, sandbox_dir  # noqa: E402  pylint: disable=wrong-import-position

REQUIRED = ("SANDBOX_AWS_JOURNAL",)


def _ctl(directory, *args, timeout=600):
    proc = subprocess.run([SANDBOXCTL, *args], env=dict(os.environ, SANDBOX_DIR=directory), capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _env_of(directory):
    """The variables of the sandbox's env file, as a consumer that sources it gets them."""
    out = subprocess.run(["bash", "-c", 'set -a; . "$1/env"; set +a; env -0', "_", directory], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def _member(directory, component):
    for pid, argv in processes():
        owner = sandbox_dir(argv)
        if owner and os.path.realpath(owner) == os.path.realpath(directory) and (_component(argv) or ("",))[0] == component:
            return pid
    return None


def _kubectl(env, *args):
    return subprocess.run([env["KUBECTL_BIN"], *args], env=env, capture_output=True, text=True, timeout=60, check=True).stdout


def _aws(env, service):
    return boto3.session.Session(aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                                 region_name=env["AWS_REGION"]).client(service, endpoint_url=env["AWS_ENDPOINT_URL"])


@pytest.fixture
def private_sandbox(env):  # pylint: disable=unused-argument,redefined-outer-name
    directory = tempfile.mkdtemp(prefix="genai-reset-")
    os.chmod(directory, 0o755)  # PostgreSQL runs as its own user and must enter it
    try:
        _ctl(directory, "up")
        yield directory
    finally:
        subprocess.run([SANDBOXCTL, "down"], env=dict(os.environ, SANDBOX_DIR=directory), capture_output=True, timeout=300, check=False)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.alongside
def test_reset_brings_back_the_seeded_sandbox_and_says_what_it_held(private_sandbox):
    directory = private_sandbox
    env = _env_of(directory)
    # What a demo or an interrupted test leaves behind.
    _kubectl(env, "create", "namespace", "leftover-stack")
    _kubectl(env, "-n", "leftover-stack", "create", "secret", "generic", "sh.helm.release.v1.leftover.v1", "--from-literal=release=x")
    _kubectl(env, "-n", "leftover-stack", "label", "secret", "sh.helm.release.v1.leftover.v1", "owner=helm", "name=leftover")
    ec2 = _aws(env, "ec2")
    ec2.create_launch_template(LaunchTemplateName="leftover-template", LaunchTemplateData={"InstanceType": "g4dn.xlarge"})
    _aws(env, "cloudwatch").put_metric_alarm(AlarmName="leftover-alarm", MetricName="CPUUtilization", Namespace="AWS/EC2",
                                             Statistic="Average", Period=60, EvaluationPeriods=1, Threshold=1.0,
                                             ComparisonOperator="GreaterThanThreshold")
    subprocess.run(["curl", "-fsS", "-X", "POST", env["AWS_ENDPOINT_URL"] + "/_sandbox/faults", "-d",
                    json.dumps({"operation": "CreateNodegroup", "code": "ThrottlingException", "status": 400, "times": 5})],
                   check=True, capture_output=True)
    mirror = _member(directory, "nodemirror")
    assert mirror, "no node mirror process found for the private sandbox"
    os.kill(mirror, signal.SIGSTOP)
    assert (mirror, "nodemirror") in stopped(directory)

    out = _ctl(directory, "reset", "the reset test")

    assert "reset of %s for the reset test" % directory in out, out
    assert "resumed nodemirror (pid %d)" % mirror in out, out
    assert "Helm releases: 1 (leftover-stack/leftover)" in out, out
    assert "namespaces: 1 (leftover-stack)" in out, out
    assert "launch templates: 1 (leftover-template)" in out, out
    assert "metric alarms: 1 (leftover-alarm)" in out, out
    assert "queued AWS faults: 1" in out, out

    # The seeded sandbox again, read through its new env (ports may have changed).
    env = _env_of(directory)
    assert "leftover-stack" not in _kubectl(env, "get", "namespaces", "-o", "name")
    assert _kubectl(env, "get", "secrets", "-A", "-l", "owner=helm", "-o", "name").strip() == ""
    assert [t["LaunchTemplateName"] for t in _aws(env, "ec2").describe_launch_templates()["LaunchTemplates"]
            if not t["LaunchTemplateName"].startswith("eks-")] == []
    assert _aws(env, "cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert _aws(env, "eks").list_nodegroups(clusterName="sandbox")["nodegroups"] == ["sandbox-cpu"]
    faults = subprocess.run(["curl", "-fsS", env["AWS_ENDPOINT_URL"] + "/_sandbox/faults"], check=True, capture_output=True).stdout
    assert json.loads(faults or b"{}").get("faults") == []
    assert stopped(directory) == []
    new_mirror = _member(directory, "nodemirror")
    assert new_mirror and _state(new_mirror) not in (None, "T"), new_mirror
