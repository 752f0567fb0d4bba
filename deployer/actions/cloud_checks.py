"""Compliance of the AWS footprint (infra/terraform), read from the account itself with boto3.

Each check is tagged with the criterion it serves and returns one finding per
resource it looked at, compliant or not, so a report shows what was examined,
not only what failed. A check that finds no resource of its kind says so
(a missing trail is itself a finding).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from deployer.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    check: str
    requirement: str
    resource: str
    compliant: bool
    detail: str


@dataclass(frozen=True)
class Check:
    name: str
    requirement: str
    what: str
    run: Callable[[Any], Iterator[tuple[str, bool, str]]]  # (resource, compliant, detail)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def kms_rotation(session: Any) -> Iterator[tuple[str, bool, str]]:
    kms = session.client("kms")
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            meta = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            if meta.get("KeyManager") != "CUSTOMER" or meta.get("KeyState") != "Enabled":
                continue
            if meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
                continue  # AWS rotates symmetric keys only
            on = kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]
            yield meta["Arn"], bool(on), "rotation enabled" if on else "rotation OFF"


def _bucket_settings(
    session: Any, read: str, missing: str
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each bucket's answer to ``read`` (an S3 client method), None when it has none."""
    s3 = session.client("s3")
    for bucket in s3.list_buckets()["Buckets"]:
        try:
            yield bucket["Name"], getattr(s3, read)(Bucket=bucket["Name"])
        except ClientError as error:
            if _code(error) != missing:
                raise
            yield bucket["Name"], None


def s3_encryption(session: Any) -> Iterator[tuple[str, bool, str]]:
    settings = _bucket_settings(
        session, "get_bucket_encryption", "ServerSideEncryptionConfigurationNotFoundError"
    )
    for name, answer in settings:
        if answer is None:
            yield name, False, "no default encryption"
            continue
        rules = answer["ServerSideEncryptionConfiguration"]["Rules"]
        algorithms = {r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules}
        kms = bool(algorithms & {"aws:kms", "aws:kms:dsse"})
        yield name, kms, f"default encryption {', '.join(sorted(algorithms))}"


def s3_public_access(session: Any) -> Iterator[tuple[str, bool, str]]:
    settings = _bucket_settings(
        session, "get_public_access_block", "NoSuchPublicAccessBlockConfiguration"
    )
    for name, answer in settings:
        if answer is None:
            yield name, False, "no public access block"
            continue
        off = sorted(k for k, v in answer["PublicAccessBlockConfiguration"].items() if not v)
        yield name, not off, "all public access blocked" if not off else f"not blocked: {off}"


def s3_tls_only(session: Any) -> Iterator[tuple[str, bool, str]]:
    for name, answer in _bucket_settings(session, "get_bucket_policy", "NoSuchBucketPolicy"):
        if answer is None:
            yield name, False, "no bucket policy: plain HTTP is allowed"
            continue
        denies = [
            s
            for s in _statements(json.loads(answer["Policy"]))
            if s.get("Effect") == "Deny"
            and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower()
            == "false"
        ]
        yield name, bool(denies), "plain HTTP denied" if denies else "plain HTTP allowed"


def rds_encryption_and_exposure(session: Any) -> Iterator[tuple[str, bool, str]]:
    rds = session.client("rds")
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            problems = []
            if not db.get("StorageEncrypted"):
                problems.append("storage NOT encrypted")
            if db.get("PubliclyAccessible"):
                problems.append("publicly accessible")
            yield (
                db["DBInstanceArn"],
                not problems,
                "; ".join(problems) or "encrypted storage, not public",
            )


def rds_tls_required(session: Any) -> Iterator[tuple[str, bool, str]]:
    rds = session.client("rds")
    for page in rds.get_paginator("describe_db_instances").paginate():
        for db in page["DBInstances"]:
            if not str(db.get("Engine", "")).startswith("postgres"):
                continue
            groups = [g["DBParameterGroupName"] for g in db.get("DBParameterGroups", [])]
            forced = any(_force_ssl(rds, group) for group in groups)
            detail = "rds.force_ssl = 1" if forced else f"TLS not required by {groups}"
            yield db["DBInstanceArn"], forced, detail


def _force_ssl(rds: Any, group: str) -> bool:
    paginator = rds.get_paginator("describe_db_parameters")
    for page in paginator.paginate(DBParameterGroupName=group):
        for parameter in page["Parameters"]:
            if parameter["ParameterName"] == "rds.force_ssl":
                return str(parameter.get("ParameterValue")) == "1"
    return False


def cloudtrail(session: Any) -> Iterator[tuple[str, bool, str]]:
    trail_api = session.client("cloudtrail")
    trails = trail_api.describe_trails(includeShadowTrails=False)["trailList"]
    if not trails:
        yield "cloudtrail", False, "no trail: management API calls are not recorded"
    for trail in trails:
        logging_on = trail_api.get_trail_status(Name=trail["TrailARN"])["IsLogging"]
        problems = [
            text
            for text, bad in (
                ("not multi-region", not trail.get("IsMultiRegionTrail")),
                ("log file validation off", not trail.get("LogFileValidationEnabled")),
                ("not KMS-encrypted", not trail.get("KmsKeyId")),
                ("not logging", not logging_on),
            )
            if bad
        ]
        detail = "; ".join(problems) or "multi-region, validated, encrypted, logging"
        yield trail["TrailARN"], not problems, detail


def iam_no_wildcard_admin(session: Any) -> Iterator[tuple[str, bool, str]]:
    iam = session.client("iam")
    for page in iam.get_paginator("list_policies").paginate(Scope="Local"):
        for policy in page["Policies"]:
            version = iam.get_policy_version(
                PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
            )["PolicyVersion"]["Document"]
            document = json.loads(version) if isinstance(version, str) else version
            wildcard = [
                s
                for s in _statements(document)
                if s.get("Effect") == "Allow"
                and "*" in _as_list(s.get("Action"))
                and "*" in _as_list(s.get("Resource"))
            ]
            detail = "Allow * on *" if wildcard else "no Allow * on *"
            yield policy["Arn"], not wildcard, detail


def secrets_customer_key(session: Any) -> Iterator[tuple[str, bool, str]]:
    secrets = session.client("secretsmanager")
    for page in secrets.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            key = secret.get("KmsKeyId")
            own = bool(key) and not str(key).endswith("alias/aws/secretsmanager")
            detail = f"encrypted with {key}" if own else "AWS-managed default key"
            yield secret["ARN"], own, detail


def eks_secrets_and_endpoint(session: Any) -> Iterator[tuple[str, bool, str]]:
    eks = session.client("eks")
    for name in eks.list_clusters()["clusters"]:
        cluster = eks.describe_cluster(name=name)["cluster"]
        encrypted = any(
            "secrets" in c.get("resources", []) for c in cluster.get("encryptionConfig", [])
        )
        vpc = cluster.get("resourcesVpcConfig", {})
        problems = []
        if not encrypted:
            problems.append("Secrets NOT envelope-encrypted with KMS")
        if vpc.get("endpointPublicAccess", True):
            problems.append("public API endpoint")
        yield cluster["arn"], not problems, "; ".join(problems) or "KMS Secrets, private endpoint"


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


CHECKS = (
    Check("kms-rotation", "R4.2", "customer keys rotate", kms_rotation),
    Check("s3-encryption", "R4.2", "buckets encrypt with KMS by default", s3_encryption),
    Check("s3-public-access", "R4.3", "buckets block all public access", s3_public_access),
    Check("s3-tls-only", "R4.1", "buckets refuse plain HTTP", s3_tls_only),
    Check("rds-at-rest", "R4.2", "databases encrypted, not public", rds_encryption_and_exposure),
    Check("rds-tls", "R4.1", "Postgres requires TLS", rds_tls_required),
    Check("cloudtrail", "R4.5", "an audit trail records every region", cloudtrail),
    Check("iam-wildcard", "R4.4", "no policy allows everything", iam_no_wildcard_admin),
    Check("secrets-kms", "R4.3", "secrets under a customer key", secrets_customer_key),
    Check("eks-secrets", "R4.2", "EKS encrypts Secrets, API private", eks_secrets_and_endpoint),
)


def run_checks(
    region: str, endpoint_url: str | None = None, only: tuple[str, ...] = ()
) -> list[Finding]:
    """Every check against the account boto3's credential chain reaches (or ``endpoint_url``)."""
    session = _Session(region, endpoint_url)
    findings = []
    for check in CHECKS:
        if only and check.name not in only:
            continue
        try:
            for resource, compliant, detail in check.run(session):
                findings.append(Finding(check.name, check.requirement, resource, compliant, detail))
        except (ClientError, BotoCoreError) as error:
            raise ConfigError(
                f"AWS check {check.name} could not read the account: {error}"
            ) from None
    return findings


class _Session:
    """A boto3 session whose clients all go to one endpoint (a local emulator) when given."""

    def __init__(self, region: str, endpoint_url: str | None) -> None:
        self.session = boto3.session.Session(region_name=region)
        self.endpoint_url = endpoint_url

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint_url)
