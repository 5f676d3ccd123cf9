"""Live test of the node mirror (component 40-nodes): EKS node groups in the AWS emulator
appear as Kubernetes Nodes, follow scaling and deletion, and take GPU pods, which go with their
Node when its node group is deleted."""
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

        # The node group goes: its Nodes leave, and the Pod bound to one goes with them, deleted by
        # the node mirror itself (not some 40 s later by Kubernetes' pod garbage collector).
        eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
        wait(lambda: not nodes_of(env, name) or None, 30, "nodes of the deleted node group gone")
        wait(lambda: kubectl(env, "get", "pod", "cuda", "-n", ns, check=False).returncode != 0 or None, 30,
             "the GPU pod gone with its Node")
        with open(env["SANDBOX_KUBE_AUDIT"]) as f:
            deleters = {e["user"]["username"] for e in map(json.loads, f)
                        if e["verb"] == "delete" and e.get("objectRef", {}).get("resource") == "pods"
                        and e["objectRef"].get("namespace") == ns and e["objectRef"].get("name") == "cuda"}
        assert deleters == {"sandbox-nodemirror"}, deleters
    finally:
        kubectl(env, "delete", "namespace", ns, "--wait=false", check=False)


CUSTOM_AMI_USER_DATA = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="B"

--B
Content-Type: text/x-shellscript

#!/bin/bash
/etc/eks/bootstrap.sh {cluster} --kubelet-extra-args '--node-labels=from-user-data=yes,eks.amazonaws.com/nodegroup={name}'
--B--
"""


@pytest.fixture
def custom_ami_nodegroup(env, eks):
    """A node group on a launch template naming an AMI (EKS merges nothing into its user data)."""
    import base64

    import boto3

    ec2 = boto3.client("ec2", region_name=env["AWS_REGION"])
    cluster = "sandbox" if "sandbox" in eks.list_clusters()["clusters"] else eks.list_clusters()["clusters"][0]
    ref = eks.describe_nodegroup(clusterName=cluster,
                                 nodegroupName=eks.list_nodegroups(clusterName=cluster)["nodegroups"][0])["nodegroup"]
    name = f"test-custom-{uuid.uuid4().hex[:8]}"
    image = ec2.describe_images(Owners=["602401143452"])["Images"][0]["ImageId"]
    user_data = base64.b64encode(CUSTOM_AMI_USER_DATA.format(cluster=cluster, name=name).encode()).decode()
    lt = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData={
        "ImageId": image, "InstanceType": "g5.xlarge", "UserData": user_data})["LaunchTemplate"]
    eks.create_nodegroup(clusterName=cluster, nodegroupName=name, nodeRole=ref["nodeRole"], subnets=ref["subnets"],
                         launchTemplate={"id": lt["LaunchTemplateId"], "version": "1"},
                         scalingConfig={"minSize": 0, "maxSize": 2, "desiredSize": 1},
                         labels={"from-node-group-api": "yes"})
    try:
        yield cluster, name, lt["LaunchTemplateId"], user_data, image
    finally:
        try:
            eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
        except eks.exceptions.ResourceNotFoundException:
            pass
        wait(lambda: not nodes_of(env, name) or None, 30, "nodes of the deleted node group gone")
        ec2.delete_launch_template(LaunchTemplateId=lt["LaunchTemplateId"])


def test_custom_ami_labels_come_from_user_data_and_cluster_group_decides_readiness(env, eks, custom_ami_nodegroup):
    """As on EKS with a custom AMI: Node labels only from the kubelet flags in the user data; a
    template version whose security groups lack the cluster security group makes Nodes that never
    become Ready."""
    import boto3

    cluster, name, lt_id, user_data, image = custom_ami_nodegroup
    node = wait(lambda: next((n for n in nodes_of(env, name) if _ready(n)), None), 30, "a Ready custom-AMI node")
    labels = node["metadata"]["labels"]
    assert labels["from-user-data"] == "yes"
    assert "from-node-group-api" not in labels, "node group labels reach a custom-AMI Node only through its user data"
    assert "eks.amazonaws.com/capacityType" not in labels

    ec2 = boto3.client("ec2", region_name=env["AWS_REGION"])
    cluster_sg = eks.describe_cluster(name=cluster)["cluster"]["resourcesVpcConfig"]["clusterSecurityGroupId"]
    other = ec2.create_security_group(GroupName=f"{name}-nodes", Description="nodes without the cluster group",
                                      VpcId=ec2.describe_security_groups(GroupIds=[cluster_sg])["SecurityGroups"][0]["VpcId"])
    try:
        ec2.create_launch_template_version(LaunchTemplateId=lt_id, LaunchTemplateData={
            "ImageId": image, "InstanceType": "g5.xlarge", "UserData": user_data, "SecurityGroupIds": [other["GroupId"]]})
        eks.update_nodegroup_version(clusterName=cluster, nodegroupName=name,
                                     launchTemplate={"id": lt_id, "version": "2"})

        def not_ready():
            found = nodes_of(env, name)
            conditions = [c for n in found for c in n["status"].get("conditions", []) if c["type"] == "Ready"]
            return found if found and conditions and all(c["status"] != "True" for c in conditions) else None

        blocked = wait(not_ready, 60, "the nodes of a template without the cluster security group not Ready")
        message = " ".join(c.get("message", "") for c in blocked[0]["status"]["conditions"])
        assert cluster_sg in message, message
    finally:
        eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)
        wait(lambda: not nodes_of(env, name) or None, 30, "nodes of the deleted node group gone")
        ec2.delete_security_group(GroupId=other["GroupId"])
