"""What the roles need of moto beyond the patches, checked so a moto upgrade that breaks it
shows here (see sandbox/README.md, "What moto still lacks")."""

from __future__ import annotations

import json

from conftest_aws import *  # noqa: F401,F403 - the aws_* fixtures


def test_launch_template_versions_default_and_delete(aws_client, aws_name):
    ec2 = aws_client("ec2")
    lt = ec2.create_launch_template(LaunchTemplateName=aws_name,
                                    LaunchTemplateData={"InstanceType": "m5.large"})
    tid = lt["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(LaunchTemplateId=tid, SourceVersion="1",
                                       LaunchTemplateData={"InstanceType": "g5.xlarge"})
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=tid)
    assert sorted(v["VersionNumber"] for v in versions["LaunchTemplateVersions"]) == [1, 2]
    ec2.modify_launch_template(LaunchTemplateId=tid, DefaultVersion="2")
    got = ec2.describe_launch_templates(LaunchTemplateIds=[tid])["LaunchTemplates"][0]
    assert got["DefaultVersionNumber"] == 2 and got["LatestVersionNumber"] == 2
    ec2.delete_launch_template(LaunchTemplateId=tid)
    assert ec2.describe_launch_templates(
        Filters=[{"Name": "launch-template-name", "Values": [aws_name]}])["LaunchTemplates"] == []


def test_step_scaling_policy_lifecycle(aws_client, aws_seed, aws_name):
    ec2, autoscaling = aws_client("ec2"), aws_client("autoscaling")
    tid = ec2.create_launch_template(LaunchTemplateName=aws_name, LaunchTemplateData={
        "InstanceType": "m5.large"})["LaunchTemplate"]["LaunchTemplateId"]
    try:
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=aws_name, MinSize=0, MaxSize=2, DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateId": tid}, VPCZoneIdentifier=aws_seed["subnets"][0])
        autoscaling.put_scaling_policy(
            AutoScalingGroupName=aws_name, PolicyName="out", PolicyType="StepScaling",
            AdjustmentType="ChangeInCapacity", MetricAggregationType="Average",
            EstimatedInstanceWarmup=300,
            StepAdjustments=[{"MetricIntervalLowerBound": 0.0, "MetricIntervalUpperBound": 10.0,
                              "ScalingAdjustment": 1},
                             {"MetricIntervalLowerBound": 10.0, "ScalingAdjustment": 2}])
        policy = autoscaling.describe_policies(AutoScalingGroupName=aws_name)["ScalingPolicies"][0]
        assert policy["PolicyType"] == "StepScaling"
        assert [s["ScalingAdjustment"] for s in policy["StepAdjustments"]] == [1, 2]
        autoscaling.delete_policy(AutoScalingGroupName=aws_name, PolicyName="out")
        assert autoscaling.describe_policies(AutoScalingGroupName=aws_name)["ScalingPolicies"] == []
    finally:
        autoscaling.delete_auto_scaling_group(AutoScalingGroupName=aws_name, ForceDelete=True)
        ec2.delete_launch_template(LaunchTemplateId=tid)


def test_metric_alarm_with_metrics_insights_query(aws_client, aws_name):
    cloudwatch = aws_client("cloudwatch")
    metrics = [{"Id": "q1", "Period": 60, "ReturnData": True, "Expression":
                'SELECT AVG(DCGM_FI_DEV_GPU_UTIL) FROM SCHEMA("ContainerInsights", ClusterName)'}]
    cloudwatch.put_metric_alarm(AlarmName=aws_name, EvaluationPeriods=3, Threshold=80.0,
                                ComparisonOperator="GreaterThanThreshold", Metrics=metrics,
                                AlarmActions=["arn:aws:autoscaling:us-east-2:123456789012:x"])
    try:
        alarm = cloudwatch.describe_alarms(AlarmNames=[aws_name])["MetricAlarms"][0]
        assert alarm["Metrics"] == metrics
    finally:
        cloudwatch.delete_alarms(AlarmNames=[aws_name])
    assert cloudwatch.describe_alarms(AlarmNames=[aws_name])["MetricAlarms"] == []


def test_iam_inline_role_policies(aws_client, aws_name):
    iam = aws_client("iam")
    iam.create_role(RoleName=aws_name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "autoscaling:SetDesiredCapacity", "Resource": "*"}]}
    try:
        iam.put_role_policy(RoleName=aws_name, PolicyName="scale", PolicyDocument=json.dumps(doc))
        assert iam.get_role_policy(RoleName=aws_name, PolicyName="scale")["PolicyDocument"] == doc
        assert iam.list_role_policies(RoleName=aws_name)["PolicyNames"] == ["scale"]
        iam.delete_role_policy(RoleName=aws_name, PolicyName="scale")
        assert iam.list_role_policies(RoleName=aws_name)["PolicyNames"] == []
    finally:
        iam.delete_role(RoleName=aws_name)


def test_seed_looks_like_an_account(aws_client, aws_seed):
    ec2, iam, eks = aws_client("ec2"), aws_client("iam"), aws_client("eks")
    subnets = ec2.describe_subnets(SubnetIds=aws_seed["subnets"])["Subnets"]
    assert len(subnets) == 3 and len({s["AvailabilityZone"] for s in subnets}) == 3
    for subnet in subnets:
        tags = {t["Key"]: t["Value"] for t in subnet["Tags"]}
        assert tags["sandbox:tier"] == "private" and tags["Name"].startswith("sandbox-private-")
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(
        RoleName="sandbox-eks-node-role")["AttachedPolicies"]}
    assert {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
            "AmazonEC2ContainerRegistryReadOnly"} <= attached
    assert aws_seed["cluster"]["version"] == "1.31"
    ng = eks.describe_nodegroup(clusterName="sandbox", nodegroupName="sandbox-cpu")["nodegroup"]
    assert ng["instanceTypes"] == ["m5.xlarge"]
    assert ng["scalingConfig"] == {"minSize": 2, "maxSize": 2, "desiredSize": 2}
