"""One test (at least) per patch in sandbox/aws/patches.py, against the running sandbox."""

from __future__ import annotations

import contextlib

import pytest
from botocore.exceptions import ClientError

from conftest_aws import *  # noqa: F401,F403 - the aws_* fixtures

VERSIONS = ["1.29", "1.30", "1.31", "1.32", "1.33"]
PREFIX = "/aws/service/eks/optimized-ami"


@contextlib.contextmanager
def nodegroup(eks, name, subnets, role, cluster="sandbox", **kw):
    ng = eks.create_nodegroup(clusterName=cluster, nodegroupName=name, subnets=subnets,
                              nodeRole=role, **kw)["nodegroup"]
    try:
        yield ng
    finally:
        with contextlib.suppress(eks.exceptions.ResourceNotFoundException):
            eks.delete_nodegroup(clusterName=cluster, nodegroupName=name)


@contextlib.contextmanager
def launch_template(ec2, name, data):
    lt = ec2.create_launch_template(LaunchTemplateName=name,
                                    LaunchTemplateData=data)["LaunchTemplate"]
    try:
        yield lt
    finally:
        with contextlib.suppress(ClientError):
            ec2.delete_launch_template(LaunchTemplateId=lt["LaunchTemplateId"])


def asg_of(autoscaling, ng):
    name = ng["resources"]["autoScalingGroups"][0]["name"]
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])
    return groups["AutoScalingGroups"][0] if groups["AutoScalingGroups"] else None


# 1 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", VERSIONS)
def test_eks_ami_ssm_parameters_name_existing_images(aws_client, version):
    ssm, ec2 = aws_client("ssm"), aws_client("ec2")
    paths = [f"{PREFIX}/{version}/amazon-linux-2023/x86_64/nvidia/recommended/image_id",
             f"{PREFIX}/{version}/amazon-linux-2023/x86_64/standard/recommended/image_id"]
    if version != "1.33":
        paths.append(f"{PREFIX}/{version}/amazon-linux-2-gpu/recommended/image_id")
    ids = [ssm.get_parameter(Name=p)["Parameter"]["Value"] for p in paths]
    assert len(set(ids)) == len(ids)
    images = {i["ImageId"]: i for i in ec2.describe_images(ImageIds=ids)["Images"]}
    assert set(images) == set(ids)
    for image in images.values():
        assert image["OwnerId"] == "602401143452"
        assert f"-{version}-v" in image["Name"]
    release = ssm.get_parameter(
        Name=f"{PREFIX}/{version}/amazon-linux-2023/x86_64/nvidia/recommended/release_version")
    assert release["Parameter"]["Value"].startswith(version + ".")


def test_eks_ami_ssm_no_al2_from_1_33_as_aws(aws_client):
    ssm = aws_client("ssm")
    with pytest.raises(ClientError) as err:
        ssm.get_parameter(Name=f"{PREFIX}/1.33/amazon-linux-2-gpu/recommended/image_id")
    assert err.value.response["Error"]["Code"] == "ParameterNotFound"


@pytest.mark.parametrize("version", VERSIONS)
def test_bottlerocket_ssm_parameters_name_images_with_a_data_volume(aws_client, version):
    ssm, ec2 = aws_client("ssm"), aws_client("ec2")
    base = f"/aws/service/bottlerocket/aws-k8s-{version}-nvidia/x86_64"
    image_id = ssm.get_parameter(Name=f"{base}/latest/image_id")["Parameter"]["Value"]
    release = ssm.get_parameter(Name=f"{base}/latest/image_version")["Parameter"]["Value"]
    assert ssm.get_parameter(Name=f"{base}/{release}/image_id")["Parameter"]["Value"] == image_id
    image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["Name"] == f"bottlerocket-aws-k8s-{version}-nvidia-x86_64-v{release}"
    assert image["RootDeviceName"] == "/dev/xvda"
    assert [m["DeviceName"] for m in image["BlockDeviceMappings"]] == ["/dev/xvda", "/dev/xvdb"]
    eks_image = ssm.get_parameter(
        Name=f"{PREFIX}/{version}/amazon-linux-2023/x86_64/nvidia/recommended/image_id")
    assert eks_image["Parameter"]["Value"] != image_id


# 2 -------------------------------------------------------------------------------------------
def test_nodegroup_has_real_autoscaling_group(aws_client, aws_seed, aws_name):
    eks, autoscaling = aws_client("eks"), aws_client("autoscaling")
    with nodegroup(eks, aws_name, aws_seed["subnets"], aws_seed["node_role"],
                   scalingConfig={"minSize": 1, "maxSize": 4, "desiredSize": 2},
                   instanceTypes=["g4dn.xlarge"], tags={"team": "ml"},
                   labels={"a": "1"}) as ng:
        name = ng["resources"]["autoScalingGroups"][0]["name"]
        assert name.startswith(f"eks-{aws_name}-")
        group = asg_of(autoscaling, ng)
        assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (1, 4, 2)
        assert len(group["Instances"]) == 2
        assert sorted(group["VPCZoneIdentifier"].split(",")) == sorted(aws_seed["subnets"])
        assert group["LaunchTemplate"]["LaunchTemplateId"].startswith("lt-")
        tags = {t["Key"]: t["Value"] for t in group["Tags"]}
        assert tags["eks:cluster-name"] == "sandbox"
        assert tags["eks:nodegroup-name"] == aws_name
        assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
        assert tags["k8s.io/cluster-autoscaler/sandbox"] == "owned"

        update = eks.update_nodegroup_config(
            clusterName="sandbox", nodegroupName=aws_name,
            scalingConfig={"minSize": 0, "maxSize": 6, "desiredSize": 3},
            labels={"addOrUpdateLabels": {"b": "2"}, "removeLabels": ["a"]},
            taints={"addOrUpdateTaints": [{"key": "nvidia.com/gpu", "value": "true",
                                           "effect": "NO_SCHEDULE"}]})["update"]
        assert update["status"] == "Successful" and update["type"] == "ConfigUpdate"
        group = asg_of(autoscaling, ng)
        assert (group["MinSize"], group["MaxSize"], group["DesiredCapacity"]) == (0, 6, 3)
        described = eks.describe_nodegroup(clusterName="sandbox",
                                           nodegroupName=aws_name)["nodegroup"]
        assert described["scalingConfig"] == {"minSize": 0, "maxSize": 6, "desiredSize": 3}
        assert described["labels"] == {"b": "2"}
        assert described["taints"] == [{"key": "nvidia.com/gpu", "value": "true",
                                        "effect": "NO_SCHEDULE"}]

        eks.update_nodegroup_config(clusterName="sandbox", nodegroupName=aws_name,
                                    taints={"removeTaints": [{"key": "nvidia.com/gpu",
                                                              "effect": "NO_SCHEDULE"}]})
        assert eks.describe_nodegroup(clusterName="sandbox",
                                      nodegroupName=aws_name)["nodegroup"]["taints"] == []

        with pytest.raises(ClientError) as err:
            eks.update_nodegroup_config(clusterName="sandbox", nodegroupName=aws_name,
                                        scalingConfig={"minSize": 5, "maxSize": 4,
                                                       "desiredSize": 4})
        assert err.value.response["Error"]["Code"] == "InvalidParameterException"

        # A scaling policy (or a Cluster Autoscaler) sets the group's desired capacity: EKS
        # reports it as the node group's desiredSize, and a later partial update keeps it.
        autoscaling.set_desired_capacity(AutoScalingGroupName=name, DesiredCapacity=1)
        assert eks.describe_nodegroup(clusterName="sandbox", nodegroupName=aws_name)["nodegroup"]["scalingConfig"] == \
            {"minSize": 0, "maxSize": 6, "desiredSize": 1}
        eks.update_nodegroup_config(clusterName="sandbox", nodegroupName=aws_name, scalingConfig={"maxSize": 5})
        assert asg_of(autoscaling, ng)["DesiredCapacity"] == 1
        assert eks.describe_nodegroup(clusterName="sandbox", nodegroupName=aws_name)["nodegroup"]["scalingConfig"] == \
            {"minSize": 0, "maxSize": 5, "desiredSize": 1}

        deleted = eks.delete_nodegroup(clusterName="sandbox", nodegroupName=aws_name)
        assert deleted["nodegroup"]["status"] == "DELETING"
        assert asg_of(autoscaling, ng) is None


# 3 -------------------------------------------------------------------------------------------
def test_update_nodegroup_version_with_launch_template(aws_client, aws_seed, aws_name):
    eks, ec2, autoscaling = aws_client("eks"), aws_client("ec2"), aws_client("autoscaling")
    with launch_template(ec2, aws_name, {"InstanceType": "g4dn.xlarge"}) as lt, \
            nodegroup(eks, aws_name, aws_seed["subnets"], aws_seed["node_role"],
                      launchTemplate={"id": lt["LaunchTemplateId"], "version": "1"}) as ng:
        ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"],
                                           SourceVersion="1",
                                           LaunchTemplateData={"InstanceType": "g5.xlarge"})
        update = eks.update_nodegroup_version(
            clusterName="sandbox", nodegroupName=aws_name,
            launchTemplate={"id": lt["LaunchTemplateId"], "version": "2"})["update"]
        assert update["type"] == "VersionUpdate"
        assert {"type": "LaunchTemplateVersion", "value": "2"} in update["params"]
        got = eks.describe_update(name="sandbox", nodegroupName=aws_name,
                                  updateId=update["id"])["update"]
        assert got["id"] == update["id"] and got["status"] == "Successful"
        described = eks.describe_nodegroup(clusterName="sandbox",
                                           nodegroupName=aws_name)["nodegroup"]
        assert described["launchTemplate"]["version"] == "2"
        assert described["instanceTypes"] == ["g5.xlarge"]
        assert asg_of(autoscaling, ng)["LaunchTemplate"]["Version"] == "2"

        config = eks.update_nodegroup_config(
            clusterName="sandbox", nodegroupName=aws_name,
            scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1})["update"]
        ids = eks.list_updates(name="sandbox", nodegroupName=aws_name)["updateIds"]
        assert ids == [update["id"], config["id"]]
        got = eks.describe_update(name="sandbox", nodegroupName=aws_name,
                                  updateId=config["id"])["update"]
        assert {"type": "DesiredSize", "value": "1"} in got["params"]

        with pytest.raises(ClientError) as err:
            eks.describe_update(name="sandbox", nodegroupName=aws_name, updateId="nope")
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_update_nodegroup_version_kubernetes_version(aws_client, aws_seed, aws_name):
    eks, ec2, autoscaling, ssm = (aws_client("eks"), aws_client("ec2"),
                                  aws_client("autoscaling"), aws_client("ssm"))
    with nodegroup(eks, aws_name, aws_seed["subnets"], aws_seed["node_role"],
                   version="1.30", instanceTypes=["g4dn.xlarge"]) as ng:
        assert ng["version"] == "1.30" and ng["amiType"] == "AL2023_x86_64_NVIDIA"
        update = eks.update_nodegroup_version(clusterName="sandbox",
                                              nodegroupName=aws_name)["update"]
        assert {"type": "Version", "value": "1.31"} in update["params"]
        described = eks.describe_nodegroup(clusterName="sandbox",
                                           nodegroupName=aws_name)["nodegroup"]
        release = ssm.get_parameter(
            Name=f"{PREFIX}/1.31/amazon-linux-2023/x86_64/nvidia/recommended/release_version")
        assert described["version"] == "1.31"
        assert described["releaseVersion"] == release["Parameter"]["Value"]
        lt = asg_of(autoscaling, ng)["LaunchTemplate"]
        version = ec2.describe_launch_template_versions(
            LaunchTemplateId=lt["LaunchTemplateId"],
            Versions=[lt["Version"]])["LaunchTemplateVersions"][0]
        image = ssm.get_parameter(
            Name=f"{PREFIX}/1.31/amazon-linux-2023/x86_64/nvidia/recommended/image_id")
        assert version["LaunchTemplateData"]["ImageId"] == image["Parameter"]["Value"]
        with pytest.raises(ClientError) as err:
            eks.update_nodegroup_version(clusterName="sandbox", nodegroupName=aws_name,
                                         version="1.32")
        assert err.value.response["Error"]["Code"] == "InvalidParameterException"


# 4 -------------------------------------------------------------------------------------------
@pytest.fixture
def aws_asg_pair(aws_client, aws_seed, aws_name):
    ec2, autoscaling = aws_client("ec2"), aws_client("autoscaling")
    with launch_template(ec2, aws_name, {"InstanceType": "m5.large"}) as lt:
        names = [f"{aws_name}-a", f"{aws_name}-b"]
        for name in names:
            autoscaling.create_auto_scaling_group(
                AutoScalingGroupName=name, MinSize=0, MaxSize=2, DesiredCapacity=0,
                LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "1"},
                VPCZoneIdentifier=aws_seed["subnets"][0])
        yield names
        for name in names:
            autoscaling.delete_auto_scaling_group(AutoScalingGroupName=name, ForceDelete=True)


def test_put_scaling_policy_returns_policy_arn(aws_client, aws_asg_pair):
    autoscaling = aws_client("autoscaling")
    group = aws_asg_pair[0]
    resp = autoscaling.put_scaling_policy(
        AutoScalingGroupName=group, PolicyName="gpu-scale-out", PolicyType="StepScaling",
        AdjustmentType="ChangeInCapacity",
        StepAdjustments=[{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}])
    described = autoscaling.describe_policies(AutoScalingGroupName=group)["ScalingPolicies"]
    assert resp["PolicyARN"] == described[0]["PolicyARN"]
    assert resp["PolicyARN"].startswith("arn:aws:autoscaling:us-east-2:")


def test_scaling_policies_are_per_group(aws_client, aws_asg_pair):
    autoscaling = aws_client("autoscaling")
    for group in aws_asg_pair:
        autoscaling.put_scaling_policy(
            AutoScalingGroupName=group, PolicyName="scale-out", PolicyType="StepScaling",
            AdjustmentType="ChangeInCapacity",
            StepAdjustments=[{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}])
    for group in aws_asg_pair:
        assert len(autoscaling.describe_policies(AutoScalingGroupName=group)
                   ["ScalingPolicies"]) == 1
    autoscaling.delete_policy(AutoScalingGroupName=aws_asg_pair[0], PolicyName="scale-out")
    assert autoscaling.describe_policies(AutoScalingGroupName=aws_asg_pair[0])[
        "ScalingPolicies"] == []
    assert len(autoscaling.describe_policies(AutoScalingGroupName=aws_asg_pair[1])
               ["ScalingPolicies"]) == 1


# 5 -------------------------------------------------------------------------------------------
def test_launch_template_version_inherits_source_version(aws_client, aws_name):
    ec2 = aws_client("ec2")
    data = {"ImageId": "ami-0123456789abcdef0", "InstanceType": "g4dn.xlarge",
            "UserData": "IyEvYmluL2Jhc2g=",
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 100}}]}
    with launch_template(ec2, aws_name, data) as lt:
        v2 = ec2.create_launch_template_version(
            LaunchTemplateId=lt["LaunchTemplateId"], SourceVersion="1",
            LaunchTemplateData={"InstanceType": "g5.2xlarge"})["LaunchTemplateVersion"]
        got = ec2.describe_launch_template_versions(
            LaunchTemplateId=lt["LaunchTemplateId"], Versions=[str(v2["VersionNumber"])])
        got = got["LaunchTemplateVersions"][0]["LaunchTemplateData"]
        assert got["InstanceType"] == "g5.2xlarge"
        assert got["ImageId"] == data["ImageId"]
        assert got["UserData"] == data["UserData"]
        assert got["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 100
        v3 = ec2.create_launch_template_version(
            LaunchTemplateId=lt["LaunchTemplateId"],
            LaunchTemplateData={"InstanceType": "m5.large"})["LaunchTemplateVersion"]
        assert "ImageId" not in v3["LaunchTemplateData"]  # no SourceVersion: nothing inherited


@pytest.mark.parametrize("source", [None, "1"])
def test_autoscaling_group_launches_from_a_later_version_with_user_data(aws_client, aws_name, source):
    # moto kept a new version's UserData as text, and launching an instance from it failed (500).
    ec2, autoscaling = aws_client("ec2"), aws_client("autoscaling")
    with launch_template(ec2, aws_name, {"InstanceType": "m5.large", "UserData": "IyEvYmluL2Jhc2g="}) as lt:
        extra = {"SourceVersion": source} if source else {}
        ec2.create_launch_template_version(LaunchTemplateId=lt["LaunchTemplateId"], **extra,
                                           LaunchTemplateData={"InstanceType": "m5.xlarge", "UserData": "IyEvYmluL3No"})
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=aws_name, MinSize=1, MaxSize=1, DesiredCapacity=1, AvailabilityZones=["us-east-2a"],
            LaunchTemplate={"LaunchTemplateId": lt["LaunchTemplateId"], "Version": "2"})
        try:
            group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[aws_name])["AutoScalingGroups"][0]
            assert len(group["Instances"]) == 1
        finally:
            autoscaling.delete_auto_scaling_group(AutoScalingGroupName=aws_name, ForceDelete=True)


# 6 -------------------------------------------------------------------------------------------
def test_nodegroup_defaults_from_cluster_and_launch_template(aws_client, aws_seed, aws_name):
    eks, ec2 = aws_client("eks"), aws_client("ec2")
    with launch_template(ec2, aws_name, {"ImageId": "ami-0123456789abcdef0",
                                         "InstanceType": "g4dn.2xlarge"}) as lt, \
            nodegroup(eks, aws_name, aws_seed["subnets"], aws_seed["node_role"],
                      launchTemplate={"name": aws_name}) as ng:
        assert ng["version"] == aws_seed["cluster"]["version"] == "1.31"
        assert ng["instanceTypes"] == ["g4dn.2xlarge"]
        assert ng["amiType"] == "CUSTOM"
        assert ng["releaseVersion"] == "ami-0123456789abcdef0"
        assert ng["launchTemplate"] == {"name": aws_name, "id": lt["LaunchTemplateId"],
                                        "version": "1"}
    with nodegroup(eks, aws_name + "-b", aws_seed["subnets"], aws_seed["node_role"]) as ng:
        assert ng["version"] == "1.31"
        assert ng["instanceTypes"] == ["t3.medium"]
        assert ng["amiType"] == "AL2023_x86_64_STANDARD"
        assert ng["releaseVersion"].startswith("1.31.")


def test_nodegroup_with_missing_launch_template_is_refused(aws_client, aws_seed, aws_name):
    eks = aws_client("eks")
    with pytest.raises(ClientError) as err:
        eks.create_nodegroup(clusterName="sandbox", nodegroupName=aws_name,
                             subnets=aws_seed["subnets"], nodeRole=aws_seed["node_role"],
                             launchTemplate={"id": "lt-0000000000000000", "version": "1"})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert aws_name not in eks.list_nodegroups(clusterName="sandbox")["nodegroups"]


# 7 -------------------------------------------------------------------------------------------
def test_nodegroup_tags(aws_client, aws_seed, aws_name):
    eks = aws_client("eks")
    with nodegroup(eks, aws_name, aws_seed["subnets"], aws_seed["node_role"],
                   tags={"team": "ml", "env": "test"}) as ng:
        arn = ng["nodegroupArn"]
        described = eks.describe_nodegroup(clusterName="sandbox", nodegroupName=aws_name)
        assert described["nodegroup"]["tags"] == {"team": "ml", "env": "test"}
        assert eks.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "ml",
                                                                       "env": "test"}
        eks.tag_resource(resourceArn=arn, tags={"cost": "gpu"})
        eks.untag_resource(resourceArn=arn, tagKeys=["env"])
        assert eks.list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "ml",
                                                                       "cost": "gpu"}
        described = eks.describe_nodegroup(clusterName="sandbox", nodegroupName=aws_name)
        assert described["nodegroup"]["tags"] == {"team": "ml", "cost": "gpu"}


def test_list_metrics_names_each_metric_once(aws_client, aws_name):
    """patch_cloudwatch_list_metrics: one entry per (namespace, name, dimensions), however many
    datapoints; a dimension filter still selects by name and value."""
    cloudwatch = aws_client("cloudwatch")
    namespace = "Sandbox/" + aws_name
    for value in (1.0, 2.0, 3.0):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=[
            {"MetricName": "m", "Value": value},
            {"MetricName": "m", "Value": value, "Dimensions": [{"Name": "a", "Value": "1"}, {"Name": "b", "Value": "2"}]},
            {"MetricName": "m", "Value": value, "Dimensions": [{"Name": "b", "Value": "2"}, {"Name": "a", "Value": "1"}]},
            {"MetricName": "m", "Value": value, "Dimensions": [{"Name": "a", "Value": "9"}]},
        ])
    listed = cloudwatch.list_metrics(Namespace=namespace)["Metrics"]
    keys = sorted(tuple(sorted((d["Name"], d["Value"]) for d in m.get("Dimensions", []))) for m in listed)
    assert keys == [(), (("a", "1"), ("b", "2")), (("a", "9"),)], listed
    only = cloudwatch.list_metrics(Namespace=namespace, Dimensions=[{"Name": "a", "Value": "9"}])["Metrics"]
    assert [m["Dimensions"] for m in only] == [[{"Name": "a", "Value": "9"}]]
