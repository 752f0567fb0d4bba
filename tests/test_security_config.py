"""Encryption configuration and the audit-chain verifier, without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deployer import cli
from deployer.errors import ConfigError
from deployer.lower import audit_chain, encryption_config
from deployer.lower.encryption_config import EncryptionKey


def test_keys_round_trip_newest_first_and_file_is_private(tmp_path: Path) -> None:
    keys = [EncryptionKey.generate(), EncryptionKey.generate()]
    path = tmp_path / "enc" / "config.yaml"
    encryption_config.write(path, keys)
    assert encryption_config.read(path) == keys
    assert path.stat().st_mode & 0o777 == 0o600
    assert "identity" not in path.read_text()
    assert encryption_config.storage_prefix(keys[0].name).startswith(b"k8s:enc:secretbox:v1:key-")


def test_unreadable_configuration_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unreadable encryption configuration"):
        encryption_config.parse("resources: []")
    with pytest.raises(ConfigError, match="no encryption configuration"):
        encryption_config.read(tmp_path / "missing.yaml")


def chained(count: int, chain: str = "pod/1/abc") -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    previous = audit_chain.GENESIS
    for seq in range(1, count + 1):
        event: dict[str, object] = {
            "chain": chain,
            "seq": seq,
            "outcome": "denied",
            "prev": previous,
        }
        event["hash"] = audit_chain.event_hash(event)
        previous = str(event["hash"])
        events.append(event)
    return events


def test_verifier_detects_alteration_removal_and_reordering() -> None:
    events = chained(4)
    assert audit_chain.verify(events).intact
    altered = [dict(e) for e in events]
    altered[1]["outcome"] = "allowed"
    assert "altered" in audit_chain.verify(altered).problems[0]
    assert "removed" in audit_chain.verify(events[:1] + events[2:]).problems[0]
    assert audit_chain.verify([events[0], events[2], events[1], events[3]]).problems


def test_chains_of_several_processes_are_verified_apart() -> None:
    mixed = [e for pair in zip(chained(3, "a"), chained(3, "b"), strict=True) for e in pair]
    report = audit_chain.verify(mixed)
    assert report.intact and report.chains == {"a": 3, "b": 3}


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "engine.log"
    lines = [json.dumps({"msg": "audit", "audit": e}) for e in chained(3)]
    log.write_text("\n".join(["not json", *lines]) + "\n")
    assert cli.verify_audit_log(str(log)) == 0
    log.write_text("\n".join([lines[0], lines[2]]) + "\n")
    assert cli.verify_audit_log(str(log)) == 1
    assert "TAMPERED" in capsys.readouterr().out
    log.write_text("nothing here\n")
    with pytest.raises(ConfigError, match="no audit events"):
        cli.verify_audit_log(str(log))


def test_environment_certificates_chain_to_their_own_ca_only() -> None:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec

    from deployer.lower import certificates

    # Same name on purpose: only the key may decide which CA a certificate belongs to.
    dev, production = certificates.issue_ca("engine CA"), certificates.issue_ca("engine CA")
    leaf = certificates.issue_leaf(dev, "engine-postgres", ["engine-postgres"], server=True)
    cert = x509.load_pem_x509_certificate(leaf.cert_pem.encode())
    for ca, should_verify in ((dev, True), (production, False)):
        issuer = x509.load_pem_x509_certificate(ca.cert_pem.encode())
        key = issuer.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        try:
            cert.verify_directly_issued_by(issuer)
            verified = True
        except InvalidSignature:
            verified = False
        assert verified is should_verify
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["engine-postgres"]
    assert 29 * 86400 < certificates.seconds_left(leaf.cert_pem) <= 30 * 86400
