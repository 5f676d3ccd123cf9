"""Patch 1 of sandbox/aws/patches.py (the EKS node AMI parameters and images), in-process: the
catalogue publishes the parameters where AWS publishes them, and the patched moto answers SSM
GetParameter and EC2 DescribeImages for them. The running emulator is tested in
tests/sandbox/live/test_aws_patches.py.

The patch replaces two moto methods; the fixture puts them back after each test, so the module
tests that run moto in the same process see moto unpatched (and their AMIs only).
"""

from __future__ import annotations

import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import AmiBackend
from moto.ssm.models import ParameterDict, ssm_backends

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from sandbox.aws import patches  # noqa: E402

REGION = "us-east-2"
VERSIONS = sorted(patches.EKS_AMI_RELEASES)
BOTTLEROCKET = "/aws/service/bottlerocket/aws-k8s-{v}-nvidia/x86_64"


@pytest.fixture
def patched_moto(monkeypatch):
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    moto_own = (ParameterDict._check_loading_status, AmiBackend._load_amis)
    patches.patch_eks_optimized_ami_parameters()
    try:
        with mock_aws():
            # moto keeps its backends between mocks and re-creates them on reset: reset them
            # here so they load what the patch publishes, and again on leaving (after moto's own
            # methods are back) so no later test meets the patched AMIs.
            _reset_backends()
            yield boto3.client("ssm", region_name=REGION), boto3.client("ec2", region_name=REGION)
            ParameterDict._check_loading_status, AmiBackend._load_amis = moto_own
            _reset_backends()
    finally:
        ParameterDict._check_loading_status, AmiBackend._load_amis = moto_own


def _reset_backends():
    ec2_backends[DEFAULT_ACCOUNT_ID][REGION].reset()
    ssm_backends[DEFAULT_ACCOUNT_ID][REGION].reset()


def test_bottlerocket_parameters_for_every_minor_of_the_eks_amis():
    params = patches.eks_ssm_parameters(REGION)
    release = patches.BOTTLEROCKET_IMAGE_VERSION
    for version in VERSIONS:
        base = BOTTLEROCKET.format(v=version)
        image = params[base + "/latest/image_id"]
        assert image.startswith("ami-0")
        assert params[base + "/latest/image_version"] == release
        # The per-release path names the same image, as Bottlerocket publishes both.
        assert params["%s/%s/image_id" % (base, release)] == image
        assert params["%s/%s/image_version" % (base, release)] == release
    images = [params[BOTTLEROCKET.format(v=v) + "/latest/image_id"] for v in VERSIONS]
    eks = [params["/aws/service/eks/optimized-ami/%s/amazon-linux-2023/x86_64/nvidia/recommended/image_id" % v] for v in VERSIONS]
    assert len(set(images + eks)) == 2 * len(VERSIONS), "every AMI has its own id"


def test_bottlerocket_is_an_ami_type_of_the_catalogue():
    """A node group created with amiType BOTTLEROCKET_x86_64_NVIDIA (no launch template) gets the
    image and EKS's releaseVersion for Bottlerocket: the image_version."""
    ami = patches.eks_ami(REGION, "1.31", "BOTTLEROCKET_x86_64_NVIDIA")
    assert ami["image_name"] == "bottlerocket-aws-k8s-1.31-nvidia-x86_64-v" + patches.BOTTLEROCKET_IMAGE_VERSION
    assert ami["release_version"] == patches.BOTTLEROCKET_IMAGE_VERSION
    assert patches.eks_ami(REGION, "1.31", "AL2023_x86_64_NVIDIA")["image_id"] != ami["image_id"]


def test_patched_moto_answers_the_bottlerocket_parameter_and_image(patched_moto):
    ssm, ec2 = patched_moto
    for version in VERSIONS:
        name = BOTTLEROCKET.format(v=version) + "/latest/image_id"
        image_id = ssm.get_parameter(Name=name)["Parameter"]["Value"]
        image = ec2.describe_images(ImageIds=[image_id])["Images"][0]
        assert image["Name"] == "bottlerocket-aws-k8s-%s-nvidia-x86_64-v%s" % (version, patches.BOTTLEROCKET_IMAGE_VERSION)
        assert image["OwnerId"] == patches.BOTTLEROCKET_AMI_OWNER
        assert image["RootDeviceName"] == "/dev/xvda"
        devices = {m["DeviceName"]: m["Ebs"] for m in image["BlockDeviceMappings"]}
        assert sorted(devices) == ["/dev/xvda", "/dev/xvdb"], image["BlockDeviceMappings"]
        assert all(ebs.get("SnapshotId") and ebs.get("VolumeSize") for ebs in devices.values())
    by_path = ssm.get_parameters_by_path(Path=BOTTLEROCKET.format(v="1.31"), Recursive=True)["Parameters"]
    assert sorted(p["Name"].rsplit("/", 2)[-2] + "/" + p["Name"].rsplit("/", 1)[-1] for p in by_path) == sorted(
        "%s/%s" % (release, leaf) for release in ("latest", patches.BOTTLEROCKET_IMAGE_VERSION) for leaf in ("image_id", "image_version"))


def test_patched_moto_still_answers_the_eks_parameters_and_refuses_others(patched_moto):
    ssm, ec2 = patched_moto
    image_id = ssm.get_parameter(Name="/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/nvidia/recommended/image_id")
    image = ec2.describe_images(ImageIds=[image_id["Parameter"]["Value"]])["Images"][0]
    assert image["OwnerId"] == patches.EKS_AMI_OWNER
    assert [m["DeviceName"] for m in image["BlockDeviceMappings"]] == ["/dev/xvda"]
    # As AWS: no Bottlerocket variant for a minor it does not publish, no x86_64 path under arm64's name.
    for name in (BOTTLEROCKET.format(v="1.28") + "/latest/image_id", "/aws/service/bottlerocket/aws-k8s-1.31-nvidia/arm64/latest/image_id"):
        with pytest.raises(ssm.exceptions.ParameterNotFound):
            ssm.get_parameter(Name=name)


def test_a_launch_template_with_both_bottlerocket_volumes_launches(patched_moto):
    """What eks_gpu_nodegroup writes for Bottlerocket (both devices, sizes given) starts instances,
    as an Auto Scaling group of the emulator does."""
    ssm, ec2 = patched_moto
    image_id = ssm.get_parameter(Name=BOTTLEROCKET.format(v="1.31") + "/latest/image_id")["Parameter"]["Value"]
    ebs = {"VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}
    ec2.create_launch_template(LaunchTemplateName="bottlerocket", LaunchTemplateData={
        "ImageId": image_id, "InstanceType": "g4dn.xlarge",
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": dict(ebs, VolumeSize=4)},
                                {"DeviceName": "/dev/xvdb", "Ebs": dict(ebs, VolumeSize=60)}]})
    instance = ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateName": "bottlerocket"})["Instances"][0]
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}])["Volumes"]
    sizes = {v["Attachments"][0]["Device"]: (v["Size"], v["Encrypted"]) for v in volumes}
    # (moto adds an 8 GiB /dev/sda1 to every instance launched from a template, whatever its AMI.)
    assert {d: sizes.get(d) for d in ("/dev/xvda", "/dev/xvdb")} == {"/dev/xvda": (4, True), "/dev/xvdb": (60, True)}


def test_moto_without_the_patch_has_no_bottlerocket_ami(monkeypatch):
    """Last in the file: after the tests above, moto is its own again (the module tests that
    pick moto's first `amazon` AMI would otherwise get a Bottlerocket one)."""
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        names = [i.get("Name") or "" for i in ec2.describe_images(Owners=["amazon"])["Images"]]
        assert names and not any(n.startswith("bottlerocket-aws-k8s-") for n in names)
        with pytest.raises(boto3.client("ssm", region_name=REGION).exceptions.ParameterNotFound):
            boto3.client("ssm", region_name=REGION).get_parameter(Name=BOTTLEROCKET.format(v="1.31") + "/latest/image_id")
