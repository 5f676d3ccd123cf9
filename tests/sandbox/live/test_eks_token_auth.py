"""The sandbox's kube-apiserver authenticates EKS tokens as EKS does (20-kube's token webhook, the
emulator's sandbox/aws/eks_access.py): a token made by botocore for an identity with an access entry
gets in as the entry's username; a token for another cluster, an old one, or one of an identity
without an access entry gets 401; access policies decide what it may do. Also the access entry API
round trip. Tokens are made here, independently of the code under test, with botocore's presigner.
"""
import base64
import datetime
import json
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from _eks import api, make_token
from _kube import kubectl

REQUIRED = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KUBECTL_BIN",
            "SANDBOX_EKS_TOKEN_CLUSTER", "SANDBOX_KUBE_SERVER", "SANDBOX_KUBE_AUDIT")
POLICY = "arn:aws:eks::aws:cluster-access-policy/"




@pytest.fixture(scope="module")
def cluster(env, tmp_path_factory):
    """DescribeCluster of the cluster the apiserver plays: its endpoint and CA file."""
    found = boto3.client("eks").describe_cluster(name=env["SANDBOX_EKS_TOKEN_CLUSTER"])["cluster"]
    ca = tmp_path_factory.mktemp("eks") / "ca.crt"
    ca.write_bytes(base64.b64decode(found["certificateAuthority"]["data"]))
    return {"name": found["name"], "endpoint": found["endpoint"], "ca": str(ca), "raw": found}




def with_token(env, cluster, token, tmp_path, *args):
    """kubectl with a kubeconfig made of DescribeCluster's endpoint and CA and the token."""
    path = tmp_path / f"kubeconfig-{uuid.uuid4().hex[:6]}"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "eks",
        "clusters": [{"name": "eks", "cluster": {"server": cluster["endpoint"], "certificate-authority": cluster["ca"]}}],
        "users": [{"name": "eks", "user": {"token": token}}],
        "contexts": [{"name": "eks", "context": {"cluster": "eks", "user": "eks"}}]}))
    return kubectl(env, *args, kubeconfig=str(path), check=False)


def refusals(env, cluster):
    with urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/_sandbox/eks/clusters/{cluster['name']}/tokenreview") as r:
        return json.loads(r.read())["refused"]


def test_describe_cluster_names_the_sandbox_apiserver(env, cluster):
    assert cluster["endpoint"] == env["SANDBOX_KUBE_SERVER"]
    assert open(cluster["ca"]).read().startswith("-----BEGIN CERTIFICATE-----")
    assert cluster["raw"]["accessConfig"] == {"authenticationMode": "API_AND_CONFIG_MAP",
                                              "bootstrapClusterCreatorAdminPermissions": True}


def test_env_identity_gets_in_as_its_access_entry(env, cluster, tmp_path):
    me = boto3.client("sts").get_caller_identity()["Arn"]
    entry = boto3.client("eks").describe_access_entry(clusterName=cluster["name"], principalArn=me)["accessEntry"]
    token = make_token(cluster["name"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    r = with_token(env, cluster, token, tmp_path, "get", "namespaces", "-o", "name")
    assert r.returncode == 0 and "namespace/default" in r.stdout, r.stderr
    who = json.loads(with_token(env, cluster, token, tmp_path, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["username"] == entry["username"] == me
    assert "sandbox:eks-access-policy:AmazonEKSClusterAdminPolicy" in who["groups"]
    assert who["uid"].startswith("aws-iam-authenticator:123456789012:")
    name = f"eks-token-{uuid.uuid4().hex[:6]}"
    assert with_token(env, cluster, token, tmp_path, "create", "configmap", name, "-n", "default").returncode == 0
    with_token(env, cluster, token, tmp_path, "delete", "configmap", name, "-n", "default")
    with open(env["SANDBOX_KUBE_AUDIT"]) as f:
        users = {e["user"]["username"] for e in map(json.loads, f)
                 if (e.get("objectRef") or {}).get("name") == name and e["verb"] == "create"}
    assert users == {me}


def test_token_for_another_cluster_is_refused(env, cluster):
    before = refusals(env, cluster).get("signature", 0)
    token = make_token("sandbox-2", env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    assert api(cluster, token, "GET", "/api")[0] == 401
    assert refusals(env, cluster).get("signature", 0) == before + 1


def test_token_signed_16_minutes_ago_is_refused(env, cluster, monkeypatch):
    before = refusals(env, cluster).get("expired", 0)
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=16)
    token = make_token(cluster["name"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], at=old,
                       monkeypatch=monkeypatch)
    assert api(cluster, token, "GET", "/api")[0] == 401
    assert refusals(env, cluster).get("expired", 0) == before + 1


@pytest.fixture
def iam_user():
    """A new IAM user with a key and no policies (a token needs none), removed afterwards."""
    iam = boto3.client("iam")
    name = f"eks-token-{uuid.uuid4().hex[:8]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    key = iam.create_access_key(UserName=name)["AccessKey"]
    yield {"arn": arn, "key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    iam.delete_user(UserName=name)


def test_access_entry_decides_who_gets_in(env, cluster, iam_user):
    eks, name = boto3.client("eks"), cluster["name"]
    fresh = lambda: make_token(name, iam_user["key"], iam_user["secret"])  # noqa: E731
    before = refusals(env, cluster).get("no-access-entry", 0)
    assert api(cluster, fresh(), "GET", "/api/v1/namespaces/default/pods")[0] == 401
    assert refusals(env, cluster).get("no-access-entry", 0) == before + 1
    eks.create_access_entry(clusterName=name, principalArn=iam_user["arn"])
    try:
        eks.associate_access_policy(clusterName=name, principalArn=iam_user["arn"], accessScope={"type": "cluster"},
                                    policyArn=POLICY + "AmazonEKSViewPolicy")
        token = fresh()
        assert api(cluster, token, "GET", "/api/v1/namespaces/default/pods")[0] == 200
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "eks-view-cannot"}, "stringData": {"a": "b"}}
        status, body = api(cluster, token, "POST", "/api/v1/namespaces/default/secrets", secret)
        assert status == 403 and body["details"]["kind"] == "secrets", body
    finally:
        eks.delete_access_entry(clusterName=name, principalArn=iam_user["arn"])
    assert api(cluster, fresh(), "GET", "/api/v1/namespaces/default/pods")[0] == 401


def error(call):
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"]


def test_access_entry_api_round_trip(cluster, iam_user):
    eks, name, arn = boto3.client("eks"), cluster["name"], iam_user["arn"]
    created = eks.create_access_entry(clusterName=name, principalArn=arn, kubernetesGroups=["team-a"],
                                      tags={"owner": "test"})["accessEntry"]
    try:
        assert created["username"] == arn and created["type"] == "STANDARD" and created["kubernetesGroups"] == ["team-a"]
        assert created["accessEntryArn"].startswith(f"arn:aws:eks:us-east-2:123456789012:access-entry/{name}/user/")
        assert eks.describe_access_entry(clusterName=name, principalArn=arn)["accessEntry"] == created
        assert arn in eks.list_access_entries(clusterName=name)["accessEntries"]
        assert error(lambda: eks.create_access_entry(clusterName=name, principalArn=arn)) == "ResourceInUseException"
        assoc = eks.associate_access_policy(clusterName=name, principalArn=arn, policyArn=POLICY + "AmazonEKSEditPolicy",
                                            accessScope={"type": "namespace", "namespaces": ["a", "b"]})
        assert assoc["associatedAccessPolicy"]["accessScope"] == {"type": "namespace", "namespaces": ["a", "b"]}
        listed = eks.list_associated_access_policies(clusterName=name, principalArn=arn)["associatedAccessPolicies"]
        assert [p["policyArn"] for p in listed] == [POLICY + "AmazonEKSEditPolicy"]
        assert arn in eks.list_access_entries(clusterName=name, associatedPolicyArn=POLICY + "AmazonEKSEditPolicy")[
            "accessEntries"]
        updated = eks.update_access_entry(clusterName=name, principalArn=arn, username="alice")["accessEntry"]
        assert updated["username"] == "alice" and updated["kubernetesGroups"] == ["team-a"]
        eks.disassociate_access_policy(clusterName=name, principalArn=arn, policyArn=POLICY + "AmazonEKSEditPolicy")
        assert eks.list_associated_access_policies(clusterName=name, principalArn=arn)["associatedAccessPolicies"] == []
        assert error(lambda: eks.associate_access_policy(
            clusterName=name, principalArn=arn, policyArn=POLICY + "NoSuchPolicy",
            accessScope={"type": "cluster"})) == "ResourceNotFoundException"
        assert error(lambda: eks.associate_access_policy(
            clusterName=name, principalArn=arn, policyArn=POLICY + "AmazonEKSViewPolicy",
            accessScope={"type": "namespace"})) == "InvalidParameterException"
    finally:
        eks.delete_access_entry(clusterName=name, principalArn=arn)
    assert error(lambda: eks.describe_access_entry(clusterName=name, principalArn=arn)) == "ResourceNotFoundException"
    assert error(lambda: eks.create_access_entry(
        clusterName=name, principalArn="arn:aws:iam::123456789012:user/nobody-" + uuid.uuid4().hex[:6])) \
        == "InvalidParameterException"
    assert error(lambda: eks.create_access_entry(
        clusterName=name, principalArn=arn, kubernetesGroups=["system:masters"])) == "InvalidParameterException"
    assert error(lambda: eks.list_access_entries(clusterName="no-such-cluster")) == "ResourceNotFoundException"
