"""sandbox/resume.py: which processes `sandboxctl up/down/reset` resume: the stopped ones of that
sandbox only (not its running ones, not another sandbox's, not unrelated processes)."""
import importlib.util
import pathlib
import sys

_DIR = pathlib.Path(__file__).resolve().parents[3] / "sandbox"
sys.path.insert(0, str(_DIR))
_spec = importlib.util.spec_from_file_location("resume", _DIR / "resume.py")
resume = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(resume)


def _process(proc, pid, argv, state):
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    # The comm field may hold spaces and parentheses; the state is the first field after the last ')'.
    (proc / str(pid) / "stat").write_text("%d (a (b) c) %s 1 %d 0 0" % (pid, state, pid))


def test_only_stopped_processes_of_this_sandbox_are_resumed(tmp_path):
    proc, mine, other = tmp_path / "proc", tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    _process(proc, 201, ["/bin/registry", "serve", str(mine / "registry" / "config.yml")], "T")
    _process(proc, 202, ["/usr/bin/python3", "/w/sandbox/kube/nodemirror.py", "--kubeconfig",
                         str(mine / "kube" / "nodemirror.kubeconfig")], "T")
    _process(proc, 203, ["/bin/etcd", "--data-dir", str(mine / "kube" / "etcd")], "S")         # running
    _process(proc, 204, ["/bin/registry", "serve", str(other / "registry" / "config.yml")], "T")  # another sandbox
    _process(proc, 205, ["/usr/bin/sleep", "100"], "T")                                          # not a sandbox process
    assert resume.stopped(str(mine), str(proc)) == [(201, "registry"), (202, "nodemirror")]


def test_a_process_that_went_away_is_not_stopped(tmp_path):
    assert resume._state(999999, str(tmp_path)) is None  # pylint: disable=protected-access


def test_usage_error_without_a_directory(capsys):
    assert resume.main([]) == 2
    assert "usage" in capsys.readouterr().err
