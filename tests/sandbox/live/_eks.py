"""EKS tokens and raw API requests for the live tests, made independently of the collection's code:
the token with botocore's own presigner, the request with urllib and the cluster's CA."""
import base64
import json
import ssl
import time
import urllib.error
import urllib.request

import boto3
import botocore.auth

_issued = set()


def make_token(cluster, key, secret, at=None, monkeypatch=None):
    """An EKS token for `cluster` as `aws eks get-token` makes it (signed at `at` when given, through
    `monkeypatch`); never the same string twice: a token is the same within one signing second, and
    the API server caches each token's answer for 30 s."""
    sts = boto3.client("sts", region_name="us-east-2", aws_access_key_id=key, aws_secret_access_key=secret)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity",
                             lambda request, **_: request.headers.__setitem__("x-k8s-aws-id", cluster))
    if at is not None:
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: at.replace(tzinfo=None))
    while True:
        url = sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
        token = "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
        if token not in _issued:
            _issued.add(token)
            return token
        time.sleep(0.3)


def api(cluster, token, method, path, body=None):
    """(HTTP status, parsed body) of one request with the bearer token to the cluster's API server
    (`server` of a fleet.json entry, or DescribeCluster's `endpoint`), trusting only its CA file `ca`."""
    server = cluster.get("server") or cluster["endpoint"]
    req = urllib.request.Request(server + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=cluster["ca"]), timeout=20) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")
