"""Live test of the node mirror (component 40-nodes): EKS node groups in the AWS emulator
appear as Kubernetes Nodes, follow scaling and deletion, and take GPU pods."""
import json
import uuid

import pytest

from _kube import kubectl, ready as _ready, wait

REQUIRED = ("KUBECONFIG", "KUBECTL_BIN", "AWS_ENDPOINT_URL", "AWS_REGION", "SANDBOX_KUBE_AUDIT")


@pytest.fixture(scope="module")
def eks(env):
    import boto3

    return boto3.client("eks", region_name=env["AWS_REGION"])


def nodes_of(env, nodegroup):
    out = kubectl(env, "get", "nodes", "-l", f"eks.amazonaws.com/nodegroup={nodegroup}", "-o", "json").stdout
    return json.loads(out)["items"]


@pytest.fixture
def gpu_nodegroup(env, eks):
    clusters = eks.list_clusters()["clusters"]
    assert clusters, "the AWS emulator has no EKS cluster (10-aws seeds one)"
    cluster = "sandbox" if "sandbox" in clusters else clusters[0]
    existing = eks.list_nodegroups(clusterName=cluster)["nodegroups"]
    assert existing, f"cluster {cluster} has no node group to borrow a role and subnets from"
    ref = eks.describe_nodegroup(clusterName=cluster, nodegroupName=existing[0])["nodegroup"]
    name = f"test-mirror-{uuid.uuid4().hex[:8]}"
    eks.create_nodegroup(
        clusterName=cluster, nodegroupName=name, nodeRole=ref["nodeRole"], subnets=ref["subnets"],
        instanceTypes=["g4dn.12xlarge"], amiType="AL2_x86_64_GPU",
        scalingConfig={"minSize": 0, "maxSize": 3, "desiredSize": 2},
        labels={"sandbox-test": name, "workload": "gpu"},
        taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
    )
    try:
        yield cluster, name
    finally:
        try:
            eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
        except eks.exceptions.ResourceNotFoundException:
            pass


def test_nodegroup_is_mirrored_scaled_and_removed(env, eks, gpu_nodegroup):
    cluster, name = gpu_nodegroup
    def two_nodes():
        found = nodes_of(env, name)
        return found if len(found) == 2 else None

    nodes = wait(two_nodes, 30, "2 mirrored nodes")
    for n in nodes:
        assert n["metadata"]["name"].endswith(f".{env['AWS_REGION']}.compute.internal")
        labels = n["metadata"]["labels"]
        assert labels["sandbox-test"] == name and labels["workload"] == "gpu"
        assert labels["node.kubernetes.io/instance-type"] == "g4dn.12xlarge"
        assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == "amd64"
        assert labels["sandbox.genai.stack/managed"] == "true"
        assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in n["spec"]["taints"]
        assert n["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        assert n["status"]["capacity"]["nvidia.com/gpu"] == "4"
    # kwok plays the kubelet: the Nodes become Ready.
    wait(lambda: all(_ready(n) for n in nodes_of(env, name)) or None, 30, "Ready nodes")

    # The mirror writes as its own user, not as the admin.
    with open(env["SANDBOX_KUBE_AUDIT"]) as f:
        creators = {e["user"]["username"] for e in map(json.loads, f)
                    if e.get("verb") == "create" and (e.get("objectRef") or {}).get("resource") == "nodes"
                    and (e.get("objectRef") or {}).get("name") in {n["metadata"]["name"] for n in nodes}}
    assert creators == {"sandbox-nodemirror"}

    # Label and taint changes propagate.
    eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name,
                                labels={"addOrUpdateLabels": {"workload": "inference"}},
                                taints={"addOrUpdateTaints": [{"key": "dedicated", "value": "ml",
                                                               "effect": "NO_EXECUTE"}]})
    wait(lambda: all(n["metadata"]["labels"].get("workload") == "inference"
                     and {"key": "dedicated", "value": "ml", "effect": "NoExecute"} in n["spec"]["taints"]
                     for n in nodes_of(env, name)) or None, 30, "label/taint update on the nodes")

    # Scaling the node group's Auto Scaling group directly (as cluster-autoscaler does) is followed too.
    import boto3

    ng = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
    asg_name = ng["resources"]["autoScalingGroups"][0]["name"]
    boto3.client("autoscaling", region_name=env["AWS_REGION"]).set_desired_capacity(
        AutoScalingGroupName=asg_name, DesiredCapacity=3)
    wait(lambda: len(nodes_of(env, name)) == 3 or None, 30, "scale up to 3 nodes through the ASG")

    eks.update_nodegroup_config(clusterName=cluster, nodegroupName=name, scalingConfig={"minSize": 0, "maxSize": 3,
                                                                                        "desiredSize": 1})
    wait(lambda: len(nodes_of(env, name)) == 1 or None, 30, "scale down to 1 node")
    eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
    wait(lambda: len(nodes_of(env, name)) == 0 or None, 30, "nodes of the deleted node group gone")


def test_gpu_pod_runs_on_mirrored_node(env, eks, gpu_nodegroup):
    cluster, name = gpu_nodegroup
    def two_ready():
        found = nodes_of(env, name)
        return len(found) == 2 and all(map(_ready, found))

    wait(lambda: two_ready() or None, 30, "2 Ready nodes")
    ns = f"test-gpu-{uuid.uuid4().hex[:6]}"
    kubectl(env, "create", "namespace", ns)
    try:
        wait(lambda: kubectl(env, "get", "serviceaccount", "default", "-n", ns, check=False).returncode == 0 or None,
             30, "default ServiceAccount")
        pod = {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cuda", "namespace": ns},
            "spec": {
                "nodeSelector": {"eks.amazonaws.com/nodegroup": name},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "cuda", "image": "nvidia/cuda:12.4.1-base-ubuntu22.04",
                                "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
            },
        }
        kubectl(env, "apply", "-f", "-", input=json.dumps(pod))

        def running():
            p = json.loads(kubectl(env, "get", "pod", "cuda", "-n", ns, "-o", "json").stdout)
            return p if p.get("status", {}).get("phase") == "Running" else None

        p = wait(running, 60, "the GPU pod Running")
        assert p["spec"]["nodeName"] in {n["metadata"]["name"] for n in nodes_of(env, name)}
    finally:
        kubectl(env, "delete", "namespace", ns, "--wait=false", check=False)
