"""The fleet's names and layout as the sandbox's shell components see them (sandbox/kube/lib.sh):
20-kube starts a control plane per cluster the AWS emulator seeds, so lib.sh's fleet_names must
name exactly sandbox/aws/seed.py's cluster_names, in the same order."""
import pathlib
import subprocess

import pytest

from sandbox.aws.seed import cluster_names

LIB = pathlib.Path(__file__).resolve().parents[3] / "sandbox" / "kube" / "lib.sh"


def lib(*script, sandbox_dir="/s"):
    out = subprocess.run(["bash", "-c", f'set -euo pipefail; . "{LIB}"; ' + "; ".join(script)], check=True,
                         capture_output=True, text=True, env={"SANDBOX_DIR": sandbox_dir, "PATH": "/usr/bin:/bin"})
    return out.stdout.split()


@pytest.mark.parametrize("count", [1, 2, 3, 11])
def test_fleet_names_are_the_seeded_clusters(count):
    assert lib(f"fleet_names {count}") == cluster_names(count)


def test_first_cluster_keeps_the_one_cluster_layout():
    assert lib("cluster_dir sandbox", "cluster_logs sandbox") == ["/s/kube", "/s/logs"]
    assert lib("cluster_dir sandbox-2", "cluster_logs sandbox-2") == ["/s/kube/clusters/sandbox-2",
                                                                      "/s/logs/clusters/sandbox-2"]


def test_extra_clusters_in_seeded_order(tmp_path):
    assert lib("extra_clusters", sandbox_dir=str(tmp_path)) == []
    for name in ("sandbox-10", "sandbox-2", "sandbox-3"):
        (tmp_path / "kube" / "clusters" / name).mkdir(parents=True)
    assert lib("extra_clusters", sandbox_dir=str(tmp_path)) == ["sandbox-2", "sandbox-3", "sandbox-10"]
