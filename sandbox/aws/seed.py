"""Seed the AWS emulator like a real account in us-east-2 (idempotent: creates what is missing).

    python -m sandbox.aws.seed --endpoint http://127.0.0.1:PORT [--clusters N]

- VPC ``sandbox-vpc`` (10.42.0.0/16) with three private subnets, one per AZ (a, b, c), tagged
  ``Name=sandbox-private-<az>``, ``kubernetes.io/role/internal-elb=1``, ``sandbox:tier=private``;
- IAM roles ``sandbox-eks-cluster-role`` (AmazonEKSClusterPolicy) and ``sandbox-eks-node-role``
  (AmazonEKSWorkerNodePolicy, AmazonEKS_CNI_Policy, AmazonEC2ContainerRegistryReadOnly) with an
  instance profile of the same name;
- N EKS clusters (``--clusters`` or SANDBOX_EKS_CLUSTERS, default 1): ``sandbox``, ``sandbox-2``,
  ... at Kubernetes 1.31, each with a CPU node group ``<cluster>-cpu`` (m5.xlarge, 2/2/2);
- for each cluster, the cluster security group EKS creates with a cluster (``eks-cluster-sg-<cluster>``,
  all traffic from itself, all traffic out) and reports as ``resourcesVpcConfig.clusterSecurityGroupId``
  in DescribeCluster, which moto does not: EKS attaches it to managed nodes whose launch template
  names no security group, and a template that names some must name it too.

Its requests carry ``x-sandbox-internal`` and are not journaled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import boto3
from botocore.config import Config

REGION = "us-east-2"
KUBERNETES_VERSION = "1.31"
VPC_NAME = "sandbox-vpc"
VPC_CIDR = "10.42.0.0/16"
SUBNETS = [("us-east-2a", "10.42.0.0/19"), ("us-east-2b", "10.42.32.0/19"),
           ("us-east-2c", "10.42.64.0/19")]
CLUSTER_ROLE = "sandbox-eks-cluster-role"
NODE_ROLE = "sandbox-eks-node-role"
NODE_POLICIES = ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                 "AmazonEC2ContainerRegistryReadOnly"]
CLUSTER_POLICIES = ["AmazonEKSClusterPolicy"]


def cluster_names(count: int) -> list[str]:
    return ["sandbox"] + [f"sandbox-{i}" for i in range(2, count + 1)]


def _clients(endpoint: str) -> dict[str, object]:
    session = boto3.session.Session(aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                                    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY",
                                                                         "testing"),
                                    region_name=REGION)
    cfg = Config(retries={"mode": "standard"})
    out = {}
    for name in ("ec2", "iam", "eks"):
        client = session.client(name, endpoint_url=endpoint, config=cfg)
        client.meta.events.register(
            "before-send.*.*", lambda request, **_: request.headers.__setitem__(
                "x-sandbox-internal", "seed"))
        out[name] = client
    return out


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def seed_network(ec2) -> tuple[str, list[str]]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": [VPC_NAME]}])["Vpcs"]
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
    else:
        vpc_id = ec2.create_vpc(CidrBlock=VPC_CIDR, TagSpecifications=[{
            "ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": VPC_NAME},
                                            {"Key": "sandbox", "Value": "true"}]}])["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
        ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    existing = {s["AvailabilityZone"]: s["SubnetId"] for s in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                 {"Name": "tag:sandbox:tier", "Values": ["private"]}])["Subnets"]}
    subnet_ids = []
    for az, cidr in SUBNETS:
        if az not in existing:
            existing[az] = ec2.create_subnet(
                VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=az, TagSpecifications=[{
                    "ResourceType": "subnet", "Tags": [
                        {"Key": "Name", "Value": f"sandbox-private-{az}"},
                        {"Key": "kubernetes.io/role/internal-elb", "Value": "1"},
                        {"Key": "sandbox:tier", "Value": "private"}]}])["Subnet"]["SubnetId"]
        subnet_ids.append(existing[az])
    return vpc_id, subnet_ids


def seed_role(iam, name: str, service: str, policies: list[str], profile: bool) -> str:
    try:
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=_trust(service),
                              Tags=[{"Key": "sandbox", "Value": "true"}])["Role"]["Arn"]
    attached = {p["PolicyName"] for p in
                iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}
    for policy in policies:
        if policy not in attached:
            iam.attach_role_policy(RoleName=name, PolicyArn=f"arn:aws:iam::aws:policy/{policy}")
    if profile:
        try:
            iam.get_instance_profile(InstanceProfileName=name)
        except iam.exceptions.NoSuchEntityException:
            iam.create_instance_profile(InstanceProfileName=name)
            iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)
    return arn


def _with_cluster_security_group(group_id: str):
    """A before-sign hook that adds clusterSecurityGroupId to UpdateClusterConfig's body: the field
    is read-only in EKS's API (botocore drops it), and moto keeps the resourcesVpcConfig it is sent."""
    def hook(request, **_):
        body = json.loads(request.data or b"{}")
        body.setdefault("resourcesVpcConfig", {})["clusterSecurityGroupId"] = group_id
        request.data = json.dumps(body).encode()
    return hook


def seed_cluster_security_group(ec2, eks, name: str, vpc_id: str) -> str:
    config = eks.describe_cluster(name=name)["cluster"].get("resourcesVpcConfig") or {}
    if config.get("clusterSecurityGroupId"):
        return config["clusterSecurityGroupId"]
    group_name = f"eks-cluster-sg-{name}"
    found = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                  {"Name": "group-name", "Values": [group_name]}])
    if found["SecurityGroups"]:
        group_id = found["SecurityGroups"][0]["GroupId"]
    else:
        group_id = ec2.create_security_group(
            GroupName=group_name, VpcId=vpc_id,
            Description=f"Cluster security group of EKS cluster {name}: control plane and nodes",
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                {"Key": "Name", "Value": group_name},
                {"Key": f"kubernetes.io/cluster/{name}", "Value": "owned"}]}])["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
            "IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group_id}]}])
    keep = {k: config[k] for k in ("subnetIds", "securityGroupIds", "endpointPublicAccess",
                                    "endpointPrivateAccess", "publicAccessCidrs") if k in config}
    hook = _with_cluster_security_group(group_id)
    eks.meta.events.register("before-sign.eks.UpdateClusterConfig", hook)
    try:
        eks.update_cluster_config(name=name, resourcesVpcConfig=keep)
    finally:
        eks.meta.events.unregister("before-sign.eks.UpdateClusterConfig", hook)
    return group_id


def seed(endpoint: str, clusters: int) -> dict[str, object]:
    c = _clients(endpoint)
    ec2, iam, eks = c["ec2"], c["iam"], c["eks"]
    vpc_id, subnet_ids = seed_network(ec2)
    cluster_role = seed_role(iam, CLUSTER_ROLE, "eks.amazonaws.com", CLUSTER_POLICIES, False)
    node_role = seed_role(iam, NODE_ROLE, "ec2.amazonaws.com", NODE_POLICIES, True)
    existing = set(eks.list_clusters()["clusters"])
    result = {"vpc": vpc_id, "subnets": subnet_ids, "node_role": node_role, "clusters": {}}
    for name in cluster_names(clusters):
        if name not in existing:
            eks.create_cluster(name=name, version=KUBERNETES_VERSION, roleArn=cluster_role,
                               resourcesVpcConfig={"subnetIds": subnet_ids,
                                                   "endpointPrivateAccess": True,
                                                   "endpointPublicAccess": True},
                               accessConfig={"authenticationMode": "API_AND_CONFIG_MAP",
                                             "bootstrapClusterCreatorAdminPermissions": True},
                               tags={"sandbox": "true"})
            ec2.create_tags(Resources=subnet_ids,
                            Tags=[{"Key": f"kubernetes.io/cluster/{name}", "Value": "shared"}])
        seed_cluster_security_group(ec2, eks, name, vpc_id)
        nodegroup = f"{name}-cpu"
        if nodegroup not in eks.list_nodegroups(clusterName=name)["nodegroups"]:
            eks.create_nodegroup(clusterName=name, nodegroupName=nodegroup,
                                 scalingConfig={"minSize": 2, "maxSize": 2, "desiredSize": 2},
                                 subnets=subnet_ids, instanceTypes=["m5.xlarge"],
                                 nodeRole=node_role, labels={"sandbox/pool": "cpu"},
                                 tags={"sandbox": "true"})
        result["clusters"][name] = [nodegroup]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"), required=False)
    parser.add_argument("--clusters", type=int,
                        default=int(os.environ.get("SANDBOX_EKS_CLUSTERS") or 1))
    args = parser.parse_args(argv)
    if not args.endpoint:
        parser.error("--endpoint or AWS_ENDPOINT_URL is required")
    if args.clusters < 1:
        parser.error("at least one cluster")
    print(json.dumps(seed(args.endpoint, args.clusters)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
