"""`sandboxctl orphans`: a real sandbox process (the AWS emulator, started the way 10-aws.sh starts
it) whose sandbox directory is deleted is listed, left alone without --kill and stopped with it;
the processes of the running sandbox, whose directory exists, are never listed."""
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[3]
SANDBOXCTL = str(REPO / "sandbox" / "sandboxctl")
REQUIRED = ("SANDBOX_AWS_JOURNAL",)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def orphans(*args):
    r = subprocess.run([SANDBOXCTL, "orphans", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_orphaned_emulator_is_listed_then_stopped(env, tmp_path):
    # The running sandbox's directory, from its emulator's journal (<dir>/aws/journal.jsonl).
    live = str(pathlib.Path(env["SANDBOX_AWS_JOURNAL"]).parent.parent)
    sandbox = tmp_path / "deleted-checkout" / ".sandbox"
    (sandbox / "aws").mkdir(parents=True)
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "sandbox.aws.server", "--host", "127.0.0.1", "--port", str(port),
         "--journal", str(sandbox / "aws" / "journal.jsonl")],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
                break
            except OSError:
                assert emulator.poll() is None, "the emulator exited during start"
                time.sleep(0.1)
        tag = f"pid {emulator.pid} "
        # Its directory exists: not an orphan. Neither is anything of the running sandbox.
        listed = orphans()
        assert tag not in listed and live not in listed

        shutil.rmtree(tmp_path / "deleted-checkout")
        listed = orphans()
        assert f"{tag}aws-emulator (sandbox directory {sandbox} is gone)" in listed, listed
        assert live not in listed
        assert emulator.poll() is None, "listing must not stop anything"

        out = orphans("--kill", "--grace", "5")
        assert "stopped" in out, out
        emulator.wait(timeout=15)
        assert tag not in orphans()
        # The running sandbox is untouched.
        assert pathlib.Path(live, "env").exists() and live not in out
    finally:
        if emulator.poll() is None:
            os.killpg(emulator.pid, 9)
            emulator.wait()
