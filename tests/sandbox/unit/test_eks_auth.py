"""EKS token checks (sandbox/aws/eks_auth.py) on tokens made by botocore's own presigner, the way
`aws eks get-token` makes them: the right secret and cluster pass; everything EKS refuses is refused."""

import base64
import datetime

import boto3
import botocore.auth
import pytest

from sandbox.aws import eks_auth

EMULATOR = "127.0.0.1:4566"
OWN = {EMULATOR, "localhost:4566"}
KEY, SECRET = "AKIAEXAMPLEKEY000001", "s3cret/with+chars"


def presign(cluster="sandbox", secret=SECRET, endpoint=f"http://{EMULATOR}", session_token=None, at=None,
            monkeypatch=None, header=True):
    """A presigned GetCallerIdentity URL made by botocore; signed at `at` (UTC) when given."""
    sts = boto3.client("sts", region_name="us-east-2", endpoint_url=endpoint, aws_access_key_id=KEY,
                       aws_secret_access_key=secret, aws_session_token=session_token)
    if header:
        sts.meta.events.register("before-sign.sts.GetCallerIdentity",
                                 lambda request, **_: request.headers.__setitem__("x-k8s-aws-id", cluster))
    if at is not None:
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: at.replace(tzinfo=None))
    return sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")


def token(url):
    return eks_auth.TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def verify(tok, cluster="sandbox", secret=SECRET, at=None):
    return eks_auth.verify(tok, cluster, OWN, lambda p: secret, at or now())


def refused(reason, tok, **kw):
    with pytest.raises(eks_auth.TokenError) as exc:
        verify(tok, **kw)
    assert exc.value.reason == reason, exc.value
    return str(exc.value)


def test_botocore_token_verifies_for_its_cluster_and_secret():
    p = verify(token(presign()))
    assert (p.access_key, p.region, p.service, p.host) == (KEY, "us-east-2", "sts", EMULATOR)
    assert sorted(p.signed_headers) == ["host", "x-k8s-aws-id"]


def test_regional_sts_host_and_session_token_verify():
    p = verify(token(presign(endpoint="https://sts.us-east-2.amazonaws.com", session_token="FwoG/tok+en=")))
    assert p.host == "sts.us-east-2.amazonaws.com" and p.security_token == "FwoG/tok+en="


def test_wrong_secret_refused():
    assert "secret of " + KEY in refused("signature", token(presign()), secret="testing")


def test_token_for_another_cluster_refused():
    assert "'sandbox-2'" in refused("signature", token(presign(cluster="sandbox")), cluster="sandbox-2")


@pytest.mark.parametrize("old,new", [("Version=2011-06-15", "Version=2011-06-15&X-Amz-Security-Token=x"),
                                     ("X-Amz-Expires=60", "X-Amz-Expires=61")])
def test_tampered_query_refused(old, new):
    url = presign()
    assert old in url
    refused("signature", token(url.replace(old, new)))


def test_tampered_signature_refused():
    url = presign()
    sig = url.rsplit("X-Amz-Signature=", 1)[1]
    refused("signature", token(url.replace(sig, sig[::-1])))


def test_token_16_minutes_old_refused(monkeypatch):
    signed = now() - datetime.timedelta(minutes=16)
    tok = token(presign(at=signed, monkeypatch=monkeypatch))
    assert "expired" in refused("expired", tok)
    # The same token was good 14 minutes after signing: only the age refuses it.
    verify(tok, at=signed + datetime.timedelta(minutes=14))


def test_token_from_the_future_refused(monkeypatch):
    refused("future", token(presign(at=now() + datetime.timedelta(minutes=10), monkeypatch=monkeypatch)))


def test_bad_base64_refused():
    refused("format", eks_auth.TOKEN_PREFIX + "not*base64!")
    refused("format", eks_auth.TOKEN_PREFIX + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("="))


def test_unsigned_cluster_header_refused():
    assert "x-k8s-aws-id" in refused("format", token(presign(header=False)))


def test_wrong_prefix_refused():
    tok = token(presign())
    refused("format", "k8s-aws-v2." + tok[len(eks_auth.TOKEN_PREFIX):])
    refused("format", tok[len(eks_auth.TOKEN_PREFIX):])


def test_foreign_host_and_plain_http_sts_refused():
    refused("format", token(presign(endpoint="http://127.0.0.1:9999")))
    refused("format", token(presign(endpoint="http://sts.us-east-2.amazonaws.com")))
    refused("format", token(presign(endpoint="https://sts.us-east-2.amazonaws.com.evil.example")))


def test_other_action_or_extra_parameter_refused():
    url = presign()
    refused("format", token(url.replace("Action=GetCallerIdentity", "Action=AssumeRole")))
    refused("format", token(url + "&Extra=1"))


def test_username_placeholders():
    role = eks_auth.Identity(arn="arn:aws:sts::123456789012:assumed-role/r/jo@example.com",
                             account="123456789012", user_id="AROAX:jo@example.com", access_key="ASIAX",
                             principal_arns=["arn:aws:iam::123456789012:role/r"], session_name="jo@example.com")
    tpl = "arn:aws:sts::123456789012:assumed-role/r/{{SessionName}}"
    assert eks_auth.username(tpl, role) == "arn:aws:sts::123456789012:assumed-role/r/jo-example.com"
    filled = eks_auth.username("{{SessionNameRaw}}/{{AccessKeyID}}/{{AccountID}}", role)
    assert filled == "jo@example.com/ASIAX/123456789012"
    user = eks_auth.Identity(arn="arn:aws:iam::123456789012:user/u", account="123456789012", user_id="AIDAX",
                             access_key="AKIAX", principal_arns=["arn:aws:iam::123456789012:user/u"])
    with pytest.raises(eks_auth.TokenError):
        eks_auth.username(tpl, user)
    with pytest.raises(eks_auth.TokenError):
        eks_auth.username("system:node:{{EC2PrivateDNSName}}", user)


def test_user_info_groups_from_cluster_scoped_policies_only():
    ident = eks_auth.Identity(arn="arn:aws:iam::123456789012:user/u", account="123456789012", user_id="AIDAX",
                              access_key="AKIAX", principal_arns=["arn:aws:iam::123456789012:user/u"])
    assoc = [{"policyArn": eks_auth.POLICY_ARN_PREFIX + "AmazonEKSViewPolicy", "accessScope": {"type": "cluster"}},
             {"policyArn": eks_auth.POLICY_ARN_PREFIX + "AmazonEKSEditPolicy",
              "accessScope": {"type": "namespace", "namespaces": ["a"]}},
             {"policyArn": eks_auth.POLICY_ARN_PREFIX + "AmazonEKSAdminViewPolicy", "accessScope": {"type": "cluster"}}]
    entry = {"username": "arn:aws:iam::123456789012:user/u", "kubernetesGroups": ["team"]}
    user = eks_auth.user_info(entry, assoc, ident)
    assert user["username"] == "arn:aws:iam::123456789012:user/u"
    assert user["uid"] == "aws-iam-authenticator:123456789012:AIDAX"
    assert user["groups"] == ["team", "sandbox:eks-access-policy:AmazonEKSViewPolicy"]
    _groups, ignored = eks_auth.policy_groups(assoc)
    assert len(ignored) == 2 and "namespaces" in ignored[0]


def test_review_shapes():
    req = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": "t"}}
    assert eks_auth.token_of(req) == "t"
    ok = eks_auth.review(req, user={"username": "u"})
    assert ok == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "status": {"authenticated": True, "user": {"username": "u"}}}
    assert eks_auth.review(req, error="expired: x")["status"] == {"authenticated": False, "error": "expired: x"}
    with pytest.raises(eks_auth.TokenError):
        eks_auth.token_of({"kind": "SubjectAccessReview"})
