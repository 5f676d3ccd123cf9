"""The emulator enforces IAM (sandbox/aws/iam_enforce.py) and the generated least-privilege policy
(playbooks/iam_policy.yml) is exactly enough for cluster_gpu:

- a user holding the generated policy runs playbooks/cluster_gpu.yml: create, no-op, update (a
  new launch template version rolled with UpdateNodegroupVersion) and absent, with no refusal;
- the same AWS calls, made directly with boto3 in the role's order, pass with the whole policy
  and fail with AccessDenied naming an action of the statement whenever any one statement is
  left out (one case per statement);
- the conditions hold: what the policy does not own is refused (an untagged launch template,
  another role, another alarm prefix, another secret).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest_aws import *  # noqa: F401,F403 - the aws_* fixtures

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ACCOUNT = "123456789012"
CLUSTER = "sandbox"
CPU_NODEGROUP = "sandbox-cpu"
NODE_ROLE = "arn:aws:iam::%s:role/sandbox-eks-node-role" % ACCOUNT
OWN_TAG = "k8s.io/cluster-autoscaler/%s" % CLUSTER
SECRET_PREFIX = "genai-stack-iam/"
SLR = "AWSServiceRoleForAmazonEKSNodegroup"
DENIED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
ALL_ALLOWED = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _generate(directory, nodegroups):
    """The policy, from the playbook a user runs, for the sandbox's names."""
    dest = os.path.join(directory, "policy.json")
    extra = {"iam_policy_account_id": ACCOUNT, "iam_policy_cluster_name": CLUSTER, "iam_policy_region": "us-east-2",
             "iam_policy_node_role_arns": [NODE_ROLE], "iam_policy_nodegroup_names": nodegroups,
             "iam_policy_secret_name_prefixes": [SECRET_PREFIX], "iam_policy_dest": dest}
    run = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "playbooks/iam_policy.yml", "-e", json.dumps(extra)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    with open(dest, encoding="utf-8") as handle:
        return json.load(handle)


def _without(policy, sid):
    reduced = json.loads(json.dumps(policy))
    reduced["Statement"] = [s for s in reduced["Statement"] if s["Sid"] != sid]
    return reduced


class User:
    """An IAM user of the emulator holding one policy document, with its clients."""

    def __init__(self, iam, document):
        self.name = "iam-enf-" + uuid.uuid4().hex[:8]
        iam.create_user(UserName=self.name)
        iam.put_user_policy(UserName=self.name, PolicyName="policy", PolicyDocument=json.dumps(document))
        key = iam.create_access_key(UserName=self.name)["AccessKey"]
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        self.session = boto3.session.Session(aws_access_key_id=self.key_id, aws_secret_access_key=self.secret, region_name="us-east-2")
        self._iam = iam

    def client(self, service):
        return self.session.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], config=Config(retries={"max_attempts": 1}))

    def env(self):
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret}

    def remove(self):
        # The user itself stays (without policy or key, it can do nothing): moto 5.2.5 keeps a
        # deleted user's object, and GET /moto-api/data.json then fails looking up its groups.
        self._iam.delete_user_policy(UserName=self.name, PolicyName="policy")
        self._iam.delete_access_key(UserName=self.name, AccessKeyId=self.key_id)


@pytest.fixture
def iam_root(aws_client):
    return aws_client("iam")


@pytest.fixture
def no_service_linked_role(iam_root):
    """The account before its first managed node group: EKS must create its role."""
    try:
        iam_root.delete_role(RoleName=SLR)
    except ClientError:
        pass
    yield
    # Back as seeded (the sandbox's CPU node group implies it), whether or not a refused run got
    # as far as EKS creating it.
    _ensure_slr(iam_root)


def _user_data_free_template_data(ami):
    return {"ImageId": ami, "InstanceType": "g4dn.xlarge",
            "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": OWN_TAG, "Value": "owned"}]}]}


def _lifecycle(user, names, seed):
    """cluster_gpu's AWS calls in its order: create, roll, scale, label, tag, absent. Returns the calls made."""
    eks, ec2, ssm, iam = user.client("eks"), user.client("ec2"), user.client("ssm"), user.client("iam")
    autoscaling, cloudwatch, secrets = user.client("autoscaling"), user.client("cloudwatch"), user.client("secretsmanager")
    done = []

    def call(client, operation, **kwargs):
        result = getattr(client, operation)(**kwargs)
        done.append(operation)
        return result

    call(eks, "describe_cluster", name=CLUSTER)
    ami = call(ssm, "get_parameter", Name="/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/nvidia/recommended/image_id")["Parameter"]["Value"]
    call(ec2, "describe_images", ImageIds=[ami])
    call(ec2, "describe_subnets", SubnetIds=seed["subnets"])
    call(iam, "get_role", RoleName="sandbox-eks-node-role")
    document = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"}]})
    call(iam, "put_role_policy", RoleName="sandbox-eks-node-role", PolicyName=names["policy"], PolicyDocument=document)
    call(iam, "get_role_policy", RoleName="sandbox-eks-node-role", PolicyName=names["policy"])
    call(ec2, "describe_launch_templates", Filters=[{"Name": "launch-template-name", "Values": [names["template"]]}])
    template = call(ec2, "create_launch_template", LaunchTemplateName=names["template"], LaunchTemplateData=_user_data_free_template_data(ami),
                    TagSpecifications=[{"ResourceType": "launch-template", "Tags": [{"Key": OWN_TAG, "Value": "owned"}]}])["LaunchTemplate"]
    call(eks, "create_nodegroup", clusterName=CLUSTER, nodegroupName=names["nodegroup"], subnets=seed["subnets"], nodeRole=NODE_ROLE,
         scalingConfig={"minSize": 1, "maxSize": 2, "desiredSize": 1}, tags={OWN_TAG: "owned"},
         launchTemplate={"id": template["LaunchTemplateId"], "version": "1"})
    group = call(eks, "describe_nodegroup", clusterName=CLUSTER, nodegroupName=names["nodegroup"])["nodegroup"]
    asg = group["resources"]["autoScalingGroups"][0]["name"]
    call(autoscaling, "describe_auto_scaling_groups", AutoScalingGroupNames=[asg])
    call(autoscaling, "describe_policies", AutoScalingGroupName=asg)
    policy_arn = call(autoscaling, "put_scaling_policy", AutoScalingGroupName=asg, PolicyName=names["alarm"], PolicyType="StepScaling",
                      AdjustmentType="ChangeInCapacity", StepAdjustments=[{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}])["PolicyARN"]
    call(cloudwatch, "describe_alarms", AlarmNames=[names["alarm"]])
    call(cloudwatch, "put_metric_alarm", AlarmName=names["alarm"], ComparisonOperator="GreaterThanThreshold", EvaluationPeriods=1, Threshold=40,
         MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average", Period=120, AlarmActions=[policy_arn])
    # A changed template: a new version, the default moved, the node group rolled to it.
    call(ec2, "describe_launch_template_versions", LaunchTemplateId=template["LaunchTemplateId"], Versions=["1"])
    data = dict(_user_data_free_template_data(ami), InstanceType="g5.xlarge")
    version = call(ec2, "create_launch_template_version", LaunchTemplateId=template["LaunchTemplateId"], SourceVersion="1",
                   LaunchTemplateData=data)["LaunchTemplateVersion"]["VersionNumber"]
    call(ec2, "modify_launch_template", LaunchTemplateId=template["LaunchTemplateId"], DefaultVersion=str(version))
    update = call(eks, "update_nodegroup_version", clusterName=CLUSTER, nodegroupName=names["nodegroup"],
                  launchTemplate={"id": template["LaunchTemplateId"], "version": str(version)})["update"]
    call(eks, "describe_update", name=CLUSTER, nodegroupName=names["nodegroup"], updateId=update["id"])
    call(eks, "update_nodegroup_config", clusterName=CLUSTER, nodegroupName=names["nodegroup"],
         scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1})
    call(eks, "tag_resource", resourceArn=group["nodegroupArn"], tags={"team": "ml"})
    call(eks, "untag_resource", resourceArn=group["nodegroupArn"], tagKeys=["team"])
    # The CPU node group's label (eks_nodegroup_labels).
    call(eks, "describe_nodegroup", clusterName=CLUSTER, nodegroupName=CPU_NODEGROUP)
    call(eks, "update_nodegroup_config", clusterName=CLUSTER, nodegroupName=CPU_NODEGROUP, labels={"addOrUpdateLabels": {"capability": "cpu"}})
    # k8s_secret's Secrets Manager source.
    call(secrets, "get_secret_value", SecretId=names["secret"])
    # absent
    call(cloudwatch, "delete_alarms", AlarmNames=[names["alarm"]])
    call(autoscaling, "delete_policy", AutoScalingGroupName=asg, PolicyName=names["alarm"])
    call(eks, "delete_nodegroup", clusterName=CLUSTER, nodegroupName=names["nodegroup"])
    call(ec2, "delete_launch_template", LaunchTemplateId=template["LaunchTemplateId"])
    call(iam, "delete_role_policy", RoleName="sandbox-eks-node-role", PolicyName=names["policy"])
    return done


@pytest.fixture
def lifecycle_names(aws_client, iam_root):
    suffix = uuid.uuid4().hex[:6]
    names = {"nodegroup": "iam-gpu-%s" % suffix, "template": "%s-iam-gpu-%s" % (CLUSTER, suffix), "alarm": "%s-iam-gpu-%s-cpu" % (CLUSTER, suffix),
             "policy": "iam-enf-%s" % suffix, "secret": "%siam-enf-%s" % (SECRET_PREFIX, suffix)}
    secrets = aws_client("secretsmanager")
    secrets.create_secret(Name=names["secret"], SecretString="value-of-the-secret")
    yield names
    # Whatever a refused lifecycle left, removed as the account root.
    for cleanup in (lambda: aws_client("cloudwatch").delete_alarms(AlarmNames=[names["alarm"]]),
                    lambda: aws_client("eks").delete_nodegroup(clusterName=CLUSTER, nodegroupName=names["nodegroup"]),
                    lambda: aws_client("ec2").delete_launch_template(LaunchTemplateName=names["template"]),
                    lambda: iam_root.delete_role_policy(RoleName="sandbox-eks-node-role", PolicyName=names["policy"]),
                    lambda: secrets.delete_secret(SecretId=names["secret"], ForceDeleteWithoutRecovery=True)):
        try:
            cleanup()
        except ClientError:
            pass


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return _generate(str(tmp_path_factory.mktemp("iam")), ["iam-gpu", "gpu-nodes", CPU_NODEGROUP])


def _policy_for_lifecycle(policy, names):
    """The generated policy, its node group list naming this test's node group."""
    document = json.loads(json.dumps(policy).replace(":nodegroup/%s/iam-gpu/*" % CLUSTER, ":nodegroup/%s/%s/*" % (CLUSTER, names["nodegroup"])))
    for statement in document["Statement"]:
        for key, value in (statement.get("Condition") or {}).get("StringEquals", {}).items():
            if key == "aws:ResourceTag/eks:nodegroup-name":
                statement["Condition"]["StringEquals"][key] = [names["nodegroup"] if v == "iam-gpu" else v for v in value]
    return document


def test_the_whole_policy_is_enough(iam_root, aws_seed, lifecycle_names, generated, no_service_linked_role, aws_journal):
    user = User(iam_root, _policy_for_lifecycle(generated, lifecycle_names))
    try:
        done = _lifecycle(user, lifecycle_names, aws_seed)
    finally:
        user.remove()
    assert done[-1] == "delete_role_policy", done
    assert SLR in _roles(iam_root), "EKS did not create %s on the account's first node group" % SLR
    refused = [e for e in aws_journal.entries(client=user.key_id) if e["status"] >= 400]
    assert not refused, refused


STATEMENTS = ["EksReadCluster", "EksCreateOwnedNodegroups", "EksManageNamedNodegroups", "Ec2Lookups", "Ec2CreateOwnedLaunchTemplates",
              "Ec2TagLaunchTemplatesOnCreate", "Ec2ChangeOwnedLaunchTemplates", "EksChecksRunInstancesWithTheTemplate", "SsmEksAmiParameters",
              "NodeRoleInlinePolicy", "PassNodeRoleToEks", "EksNodegroupServiceLinkedRole", "AutoScalingLookups",
              "StepScalingOnTheNodegroups", "ScalingAlarmsByNamePrefix", "K8sSecretFromSecretsManager"]


def test_every_statement_of_the_policy_is_tested(generated):
    assert [s["Sid"] for s in generated["Statement"]] == STATEMENTS


@pytest.mark.parametrize("sid", STATEMENTS)
def test_a_policy_missing_one_statement_is_refused_naming_its_action(sid, iam_root, aws_seed, lifecycle_names, generated,
                                                                      no_service_linked_role):
    whole = _policy_for_lifecycle(generated, lifecycle_names)
    actions = next(s["Action"] for s in whole["Statement"] if s["Sid"] == sid)
    user = User(iam_root, _without(whole, sid))
    try:
        with pytest.raises(ClientError) as refused:
            _lifecycle(user, lifecycle_names, aws_seed)
    finally:
        user.remove()
    error = refused.value.response["Error"]
    assert error["Code"] in DENIED, error
    named = [a for a in actions if "perform: %s " % a in error["Message"]]
    assert named, "%s: the refusal names none of %s: %s" % (sid, actions, error["Message"])


def _roles(iam):
    return {r["RoleName"] for r in iam.list_roles(PathPrefix="/aws-service-role/")["Roles"]}


def _ensure_slr(iam):
    if SLR not in _roles(iam):
        iam.create_role(RoleName=SLR, Path="/aws-service-role/eks-nodegroup.amazonaws.com/",
                        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Principal": {"Service": "eks-nodegroup.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))


def _refusal(call):
    try:
        call()
    except ClientError as exc:
        return exc.response["Error"]["Code"], exc.response["Error"]["Message"]
    return None


def test_conditions_refuse_what_the_policy_does_not_own(iam_root, aws_client, aws_seed, generated, aws_name):
    user = User(iam_root, generated)
    ec2, iam, cloudwatch, eks = user.client("ec2"), user.client("iam"), user.client("cloudwatch"), user.client("eks")
    other_secret = aws_client("secretsmanager").create_secret(Name="other/%s" % aws_name, SecretString="x")["ARN"]
    try:
        cases = {
            "ec2:CreateLaunchTemplate": lambda: ec2.create_launch_template(LaunchTemplateName=aws_name, LaunchTemplateData={"ImageId": "ami-1"}),
            "iam:PutRolePolicy": lambda: iam.put_role_policy(RoleName="sandbox-eks-cluster-role", PolicyName="x", PolicyDocument=json.dumps(ALL_ALLOWED)),
            "cloudwatch:PutMetricAlarm": lambda: cloudwatch.put_metric_alarm(
                AlarmName="other-%s" % aws_name, ComparisonOperator="GreaterThanThreshold", EvaluationPeriods=1, Threshold=1,
                MetricName="CPUUtilization", Namespace="AWS/EC2", Statistic="Average", Period=60),
            "iam:PassRole": lambda: eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="gpu-nodes", subnets=aws_seed["subnets"],
                                                         nodeRole="arn:aws:iam::%s:role/sandbox-eks-cluster-role" % ACCOUNT, tags={OWN_TAG: "owned"}),
            "eks:CreateNodegroup": lambda: eks.create_nodegroup(clusterName=CLUSTER, nodegroupName="gpu-nodes", subnets=aws_seed["subnets"],
                                                                nodeRole=NODE_ROLE),
            "secretsmanager:GetSecretValue": lambda: user.client("secretsmanager").get_secret_value(SecretId=other_secret),
            "eks:DeleteNodegroup": lambda: eks.delete_nodegroup(clusterName=CLUSTER, nodegroupName="some-other-group"),
        }
        results = {action: _refusal(call) for action, call in cases.items()}
    finally:
        user.remove()
        aws_client("secretsmanager").delete_secret(SecretId=other_secret, ForceDeleteWithoutRecovery=True)
    for action, result in results.items():
        assert result is not None, "%s was allowed" % action
        code, message = result
        assert code in DENIED and "perform: %s " % action in message, (action, code, message)


def test_cluster_gpu_role_under_the_generated_policy(iam_root, generated, no_service_linked_role, aws_journal, tmp_path):
    """The real role, as a user holding the generated policy: create, no-op, update, absent."""
    nodegroup = "iam-gpu"
    user = User(iam_root, generated)
    env = dict(os.environ, **user.env())
    base = {"cluster_gpu_nodegroup_name": nodegroup, "cluster_gpu_kubernetes_enabled": False}

    def run(**extra):
        args = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "playbooks/cluster_gpu.yml", "-e", json.dumps(dict(base, **extra))]
        done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        return int(done.stdout.rsplit("changed=", 1)[1].split()[0])

    try:
        assert run() > 0
        assert run() == 0
        assert run(cluster_gpu_instance_type="g5.2xlarge") > 0
        assert run(cluster_gpu_state="absent") > 0
    finally:
        user.remove()
    mine = aws_journal.entries(client=user.key_id)
    operations = {e["operation"] for e in mine}
    assert {"CreateNodegroup", "UpdateNodegroupVersion", "DeleteNodegroup", "PutScalingPolicy", "PutMetricAlarm"} <= operations, operations
    assert not [e for e in mine if e["status"] == 403], [e for e in mine if e["status"] == 403]
