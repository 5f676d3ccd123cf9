"""Fixtures for the AWS emulator's live tests (names aws_*). Test modules import them with
``from conftest_aws import *``; they need the running sandbox's variables (.sandbox/env)."""

from __future__ import annotations

import json
import os
import urllib.request
import uuid

import boto3
import pytest
from botocore.config import Config

__all__ = ["aws_env", "aws_client", "aws_sandbox", "aws_journal", "aws_seed", "aws_name",
           "SandboxApi", "Journal"]


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    missing = [v for v in ("AWS_ENDPOINT_URL", "SANDBOX_AWS_JOURNAL", "AWS_ACCESS_KEY_ID")
               if not os.environ.get(v)]
    if missing:
        pytest.fail(f"{', '.join(missing)} unset: start the sandbox (sandbox/sandboxctl up) and "
                    "source .sandbox/env (make integration does both)", pytrace=False)
    return {"endpoint": os.environ["AWS_ENDPOINT_URL"],
            "journal": os.environ["SANDBOX_AWS_JOURNAL"]}


@pytest.fixture(scope="session")
def aws_client(aws_env):
    cache: dict[tuple, object] = {}

    def make(service: str, retries: str = "standard", max_attempts: int | None = None):
        key = (service, retries, max_attempts)
        if key not in cache:
            r = {"mode": retries}
            if max_attempts:
                r["max_attempts"] = max_attempts
            cache[key] = boto3.client(service, region_name="us-east-2",
                                      endpoint_url=aws_env["endpoint"], config=Config(retries=r))
        return cache[key]

    return make


class SandboxApi:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint.rstrip("/")

    def call(self, method: str, path: str, payload: object = None, raw: bool = False) -> tuple[int, object]:
        """(status, body): the body parsed as JSON, or its bytes when raw."""
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = resp.read()
                return resp.status, body if raw else json.loads(body or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def fault(self, **spec: object) -> None:
        status, body = self.call("POST", "/_sandbox/faults", spec)
        assert status == 201, body

    def clear(self) -> None:
        self.call("DELETE", "/_sandbox/faults")


@pytest.fixture
def aws_sandbox(aws_env):
    api = SandboxApi(aws_env["endpoint"])
    yield api
    api.clear()


class Journal:
    def __init__(self, path: str):
        self.path = path
        self.offset = os.path.getsize(path)

    def entries(self, **match: object) -> list[dict]:
        with open(self.path, encoding="utf-8") as fh:
            fh.seek(self.offset)
            rows = [json.loads(line) for line in fh if line.strip()]
        return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


@pytest.fixture
def aws_journal(aws_env):
    return Journal(aws_env["journal"])


@pytest.fixture(scope="session")
def aws_seed(aws_client):
    eks = aws_client("eks")
    cluster = eks.describe_cluster(name="sandbox")["cluster"]
    ng = eks.describe_nodegroup(clusterName="sandbox", nodegroupName="sandbox-cpu")["nodegroup"]
    return {"cluster": cluster, "subnets": cluster["resourcesVpcConfig"]["subnetIds"],
            "node_role": ng["nodeRole"]}


@pytest.fixture
def aws_name(request):
    """A unique name for the resources one test creates."""
    return f"t-{request.node.name[:20].strip('_').replace('_', '-')}-{uuid.uuid4().hex[:6]}".lower()
