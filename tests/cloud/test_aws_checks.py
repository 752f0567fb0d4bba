"""The AWS checks against moto's server on 127.0.0.1: each passes on a compliant resource
and fails on a deliberately non-compliant one, in the same account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from deployer.actions import cloud_checks
from deployer.actions.cloud_checks import Finding
from deployer.cli import dispatch, parser
from deployer.errors import ConfigError
from deployer.settings import default_paths

REGION = "eu-west-3"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def account(endpoint: str) -> dict[str, str]:
    """One compliant and one non-compliant resource of each kind; their identifiers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        return build_account(endpoint)


def client(endpoint: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def build_account(endpoint: str) -> dict[str, str]:
    kms, s3, rds = client(endpoint, "kms"), client(endpoint, "s3"), client(endpoint, "rds")
    made: dict[str, str] = {}
    good_key = kms.create_key(Description="rotated")["KeyMetadata"]
    kms.enable_key_rotation(KeyId=good_key["KeyId"])
    made["good_key"], made["bad_key"] = (
        good_key["Arn"],
        kms.create_key(Description="never rotated")["KeyMetadata"]["Arn"],
    )
    location = {"LocationConstraint": REGION}
    for name, compliant in (("ce-good", True), ("ce-bad", False)):
        s3.create_bucket(Bucket=name, CreateBucketConfiguration=location)
        if compliant:
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": good_key["Arn"],
                            }
                        }
                    ]
                },
            )
            s3.put_public_access_block(
                Bucket=name,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            )
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps(tls_only(name)))
    for name, compliant in (("ce-good", True), ("ce-bad", False)):
        group = f"{name}-pg15"
        rds.create_db_parameter_group(
            DBParameterGroupName=group, DBParameterGroupFamily="postgres15", Description=name
        )
        rds.modify_db_parameter_group(
            DBParameterGroupName=group,
            Parameters=[
                {
                    "ParameterName": "rds.force_ssl",
                    "ParameterValue": "1" if compliant else "0",
                    "ApplyMethod": "immediate",
                }
            ],
        )
        made[name + "_db"] = rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBInstanceClass="db.t4g.medium",
            Engine="postgres",
            AllocatedStorage=20,
            MasterUsername="admin_user",
            MasterUserPassword="not-a-real-password-1",  # pragma: allowlist secret
            StorageEncrypted=compliant,
            PubliclyAccessible=not compliant,
            DBParameterGroupName=group,
        )["DBInstance"]["DBInstanceArn"]
    trail = client(endpoint, "cloudtrail")
    for name, compliant in (("ce-good", True), ("ce-bad", False)):
        arn = trail.create_trail(
            Name=f"{name}-trail",
            S3BucketName="ce-good",
            IsMultiRegionTrail=compliant,
            EnableLogFileValidation=compliant,
            **({"KmsKeyId": good_key["Arn"]} if compliant else {}),
        )["TrailARN"]
        trail.start_logging(Name=arn)
        made[name + "_trail"] = arn
    iam = client(endpoint, "iam")
    for name, action in (("ce-good", "s3:GetObject"), ("ce-bad", "*")):
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": action, "Resource": "*"}],
        }
        made[name + "_policy"] = iam.create_policy(
            PolicyName=name, PolicyDocument=json.dumps(document)
        )["Policy"]["Arn"]
    eks = client(endpoint, "eks")
    for name, compliant in (("ce-good", True), ("ce-bad", False)):
        made[name + "_cluster"] = eks.create_cluster(
            name=name,
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={
                "subnetIds": ["subnet-a", "subnet-b"],
                "endpointPrivateAccess": True,
                "endpointPublicAccess": not compliant,
            },
            encryptionConfig=(
                [{"resources": ["secrets"], "provider": {"keyArn": good_key["Arn"]}}]
                if compliant
                else []
            ),
        )["cluster"]["arn"]
    secrets = client(endpoint, "secretsmanager")
    made["ce-good_secret"] = secrets.create_secret(
        Name="ce-good", SecretString="x", KmsKeyId=good_key["Arn"]
    )["ARN"]
    made["ce-bad_secret"] = secrets.create_secret(Name="ce-bad", SecretString="x")["ARN"]
    return made


def tls_only(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyWithoutTLS",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def findings(endpoint: str, check: str) -> dict[str, Finding]:
    return {f.resource: f for f in cloud_checks.run_checks(REGION, endpoint, (check,))}


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        ("kms-rotation", "good_key", "bad_key"),
        ("rds-at-rest", "ce-good_db", "ce-bad_db"),
        ("rds-tls", "ce-good_db", "ce-bad_db"),
        ("cloudtrail", "ce-good_trail", "ce-bad_trail"),
        ("iam-wildcard", "ce-good_policy", "ce-bad_policy"),
        ("secrets-kms", "ce-good_secret", "ce-bad_secret"),
        ("eks-secrets", "ce-good_cluster", "ce-bad_cluster"),
    ],
)
def test_each_check_passes_the_compliant_resource_and_fails_the_other(
    endpoint: str, account: dict[str, str], check: str, good: str, bad: str
) -> None:
    found = findings(endpoint, check)
    assert found[account[good]].compliant, found[account[good]]
    assert not found[account[bad]].compliant, found[account[bad]]


@pytest.mark.parametrize("check", ["s3-encryption", "s3-public-access", "s3-tls-only"])
def test_bucket_checks_pass_the_compliant_bucket_and_fail_the_other(
    endpoint: str, account: dict[str, str], check: str
) -> None:
    found = findings(endpoint, check)
    assert found["ce-good"].compliant, found["ce-good"]
    assert not found["ce-bad"].compliant, found["ce-bad"]


def test_every_finding_names_its_requirement(endpoint: str, account: dict[str, str]) -> None:
    every = cloud_checks.run_checks(REGION, endpoint)
    assert {f.requirement for f in every} <= {"R4.1", "R4.2", "R4.3", "R4.4", "R4.5"}
    assert {f.check for f in every} == {c.name for c in cloud_checks.CHECKS}


def test_the_command_exits_1_naming_each_failure_and_2_when_the_account_is_unreachable(
    endpoint: str, account: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["aws-check", "--region", REGION, "--endpoint-url", endpoint]
    assert dispatch(parser().parse_args(arguments), default_paths()) == 1
    out = capsys.readouterr().out
    assert f"FAIL R4.2 kms-rotation      {account['bad_key']}: rotation OFF" in out
    assert f"PASS R4.2 kms-rotation      {account['good_key']}: rotation enabled" in out
    unreachable = ["aws-check", "--region", REGION, "--endpoint-url", "http://127.0.0.1:9"]
    with pytest.raises(ConfigError, match="could not read the account"):
        dispatch(parser().parse_args(unreachable), default_paths())
