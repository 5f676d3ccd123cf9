"""A sandbox fleet: each EKS cluster of the emulator has its own kube-apiserver (20-kube), as each EKS
cluster has its own control plane. The module grows the running sandbox to two clusters when it has
one (`SANDBOX_EKS_CLUSTERS=2 sandbox/sandboxctl up`: the emulator seeds `sandbox-2`, 20-kube starts its
control plane, 40-nodes its node mirror), then checks that the two are apart: DescribeCluster gives each
its own endpoint and CA, a token is good on its own cluster's apiserver only, objects, Nodes and audit
logs are each cluster's own. Tokens are made here with botocore's presigner, as `aws eks get-token` does.
The sandbox stays a fleet of two afterwards (`down` ends it).
"""
import base64
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import boto3
import pytest

from _eks import api, make_token
from _kube import kubectl, ready, wait

REQUIRED = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KUBECTL_BIN", "SANDBOX_KUBE_AUDIT")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
NAMES = ("sandbox", "sandbox-2")
CLUSTER_LABEL = "sandbox.genai.stack/eks-cluster"


def sandbox_dir(env):
    """The directory of the sandbox under test: its env names its files, not itself."""
    marker = env.get("SANDBOX_FLEET_FILE") or env["SANDBOX_KUBE_AUDIT"]  # $SANDBOX_DIR/{kube,logs}/<file>
    return os.path.dirname(os.path.dirname(marker))


def read_fleet(directory):
    path = os.path.join(directory, "kube", "fleet.json")
    if not os.path.exists(path):  # started before fleets existed: one cluster
        return []
    with open(path, encoding="utf-8") as f:
        return json.load(f)["clusters"]


@pytest.fixture(scope="module")
def fleet(env):
    """{name: fleet.json entry} of sandbox and sandbox-2, growing the sandbox to two clusters if needed."""
    directory = sandbox_dir(env)
    clusters = read_fleet(directory)
    if len(clusters) < 2:
        started = time.monotonic()
        proc = subprocess.run([os.path.join(ROOT, "sandbox", "sandboxctl"), "up"], cwd=ROOT, capture_output=True,
                              text=True, timeout=900, check=False,
                              env=dict(env, SANDBOX_DIR=directory, SANDBOX_EKS_CLUSTERS="2"))
        assert proc.returncode == 0, f"growing the sandbox to 2 clusters failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        print(f"\nfleet: grew {directory} to 2 clusters in {time.monotonic() - started:.1f} s")
        clusters = read_fleet(directory)
    found = {c["name"]: c for c in clusters}
    assert [c["name"] for c in clusters][:2] == list(NAMES), clusters
    return {name: found[name] for name in NAMES}


def other(name):
    return NAMES[1 - NAMES.index(name)]






def refusals(env, name):
    with urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/_sandbox/eks/clusters/{name}/tokenreview") as r:
        return json.loads(r.read())["refused"]


def tls_verifies(endpoint, cafile):
    """Whether the server at `endpoint` shows a certificate `cafile` vouches for (its name included)."""
    url = urllib.parse.urlparse(endpoint)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        try:
            with ssl.create_default_context(cafile=cafile).wrap_socket(sock, server_hostname=url.hostname):
                return True
        except ssl.SSLCertVerificationError:
            return False


def nodes(env, cluster, *selector):
    out = kubectl(env, "get", "nodes", *selector, "-o", "json", kubeconfig=cluster["kubeconfig"]).stdout
    return json.loads(out)["items"]


def test_describe_cluster_gives_each_cluster_its_own_apiserver_and_ca(env, fleet, tmp_path):
    eks = boto3.client("eks")
    described = {}
    for name, cluster in fleet.items():
        found = eks.describe_cluster(name=name)["cluster"]
        ca = tmp_path / f"{name}.crt"
        ca.write_bytes(base64.b64decode(found["certificateAuthority"]["data"]))
        assert found["endpoint"] == cluster["server"]
        assert ca.read_bytes() == open(cluster["ca"], "rb").read()
        described[name] = (found["endpoint"], str(ca))
    assert described["sandbox"][0] != described["sandbox-2"][0]
    assert open(described["sandbox"][1]).read() != open(described["sandbox-2"][1]).read()
    assert described["sandbox"][0] == env.get("SANDBOX_KUBE_SERVER", described["sandbox"][0])
    for name in NAMES:
        endpoint, ca = described[name]
        assert tls_verifies(endpoint, ca), f"{name}'s apiserver does not verify with its DescribeCluster CA"
        assert not tls_verifies(endpoint, described[other(name)][1]), f"{name}'s apiserver verifies with the other CA"


@pytest.mark.parametrize("name", NAMES)
def test_token_is_good_on_its_own_clusters_apiserver_only(env, fleet, name):
    token = make_token(name, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    assert api(fleet[name], token, "GET", "/api/v1/namespaces/default")[0] == 200
    before = refusals(env, other(name)).get("signature", 0)
    assert api(fleet[other(name)], token, "GET", "/api/v1/namespaces/default")[0] == 401
    # refused by the other cluster's webhook: signed for `name`, checked against the other's name
    assert refusals(env, other(name)).get("signature", 0) == before + 1


@pytest.fixture
def namespace(env, fleet):
    """A namespace name no cluster has; removed from every cluster afterwards."""
    ns = f"fleet-{uuid.uuid4().hex[:8]}"
    yield ns
    for cluster in fleet.values():
        kubectl(env, "delete", "namespace", ns, "--ignore-not-found", "--wait=false", kubeconfig=cluster["kubeconfig"])


@pytest.mark.parametrize("name", NAMES)
def test_objects_are_each_clusters_own(env, fleet, namespace, name):
    mine, theirs = fleet[name]["kubeconfig"], fleet[other(name)]["kubeconfig"]
    kubectl(env, "create", "namespace", namespace, kubeconfig=mine)
    kubectl(env, "create", "configmap", "only-here", "-n", namespace, f"--from-literal=cluster={name}", kubeconfig=mine)
    assert kubectl(env, "get", "configmap", "only-here", "-n", namespace, "-o", "jsonpath={.data.cluster}",
                   kubeconfig=mine).stdout == name
    for what in (("namespace", namespace), ("configmap", "only-here", "-n", namespace)):
        r = kubectl(env, "get", *what, kubeconfig=theirs, check=False)
        assert r.returncode != 0 and "NotFound" in r.stderr, (what, r.stdout, r.stderr)


def test_each_apiserver_has_its_own_clusters_nodes(env, fleet):
    for name, cluster in fleet.items():
        def own_cpu_nodes_only(name=name, cluster=cluster):
            mirrored = nodes(env, cluster, "-l", CLUSTER_LABEL)
            clusters = {n["metadata"]["labels"][CLUSTER_LABEL] for n in mirrored}
            cpu = [n for n in mirrored if n["metadata"]["labels"].get("eks.amazonaws.com/nodegroup") == f"{name}-cpu"]
            return clusters == {name} and len(cpu) == 2 and all(map(ready, cpu))
        wait(own_cpu_nodes_only, 60, f"{name}'s apiserver to hold its own two Ready CPU Nodes and no other cluster's")


@pytest.fixture
def small_nodegroup():
    """A one-node group in sandbox-2 made through EKS (role and subnets of its seeded CPU group); deleted after."""
    eks = boto3.client("eks")
    ref = eks.describe_nodegroup(clusterName="sandbox-2", nodegroupName="sandbox-2-cpu")["nodegroup"]
    name = f"fleet-{uuid.uuid4().hex[:8]}"
    eks.create_nodegroup(clusterName="sandbox-2", nodegroupName=name, nodeRole=ref["nodeRole"], subnets=ref["subnets"],
                         instanceTypes=["m5.large"], scalingConfig={"minSize": 1, "maxSize": 1, "desiredSize": 1})
    try:
        yield name
    finally:
        try:
            eks.delete_nodegroup(clusterName="sandbox-2", nodegroupName=name)
        except eks.exceptions.ResourceNotFoundException:
            pass


def test_nodegroup_of_sandbox_2_appears_on_its_apiserver_only(env, fleet, small_nodegroup):
    selector = f"eks.amazonaws.com/nodegroup={small_nodegroup}"
    node = wait(lambda: [n for n in nodes(env, fleet["sandbox-2"], "-l", selector) if ready(n)], 60,
                f"the Node of {small_nodegroup} on sandbox-2's apiserver")
    assert len(node) == 1 and node[0]["metadata"]["labels"][CLUSTER_LABEL] == "sandbox-2"
    assert nodes(env, fleet["sandbox"], "-l", selector) == []
    boto3.client("eks").delete_nodegroup(clusterName="sandbox-2", nodegroupName=small_nodegroup)
    wait(lambda: not nodes(env, fleet["sandbox-2"], "-l", selector), 60, f"the Node of {small_nodegroup} to go")
    assert nodes(env, fleet["sandbox"], "-l", selector) == []


def audit_creates(cluster, offset, name):
    with open(cluster["audit_log"], "rb") as f:
        f.seek(offset)
        lines = f.read().decode(errors="replace").splitlines()
    return {e["user"]["username"] for e in map(json.loads, filter(None, lines))
            if e["verb"] == "create" and (e.get("objectRef") or {}).get("name") == name}


@pytest.mark.parametrize("name", NAMES)
def test_token_users_writes_are_in_its_clusters_audit_log_only(env, fleet, name):
    me = boto3.client("sts").get_caller_identity()["Arn"]
    offsets = {n: os.path.getsize(c["audit_log"]) for n, c in fleet.items()}
    configmap = f"fleet-audit-{uuid.uuid4().hex[:6]}"
    token = make_token(name, env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    path = "/api/v1/namespaces/default/configmaps"
    status, body = api(fleet[name], token, "POST", path, {"metadata": {"name": configmap}, "data": {"a": "b"}})
    assert status == 201, body
    try:
        assert audit_creates(fleet[name], offsets[name], configmap) == {me}
        assert audit_creates(fleet[other(name)], offsets[other(name)], configmap) == set()
    finally:
        api(fleet[name], token, "DELETE", f"{path}/{configmap}")
