"""Evidence bundles: sealed, then every kind of change to them is named."""

from __future__ import annotations

import json
import stat
import tarfile
from pathlib import Path

import pytest

from deployer.actions import evidence
from deployer.cli import parser, run_evidence
from deployer.errors import ConfigError
from deployer.lower import signing


@pytest.fixture(autouse=True)
def own_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keys are made under a throw-away ~/.config, never the user's."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    monkeypatch.delenv(signing.KEY_FILE_ENV, raising=False)
    return home


@pytest.fixture
def report(tmp_path: Path) -> Path:
    directory = tmp_path / "reports" / "20261126T000000Z"
    (directory / "evidence").mkdir(parents=True)
    (directory / "junit.xml").write_text("<testsuite/>")
    (directory / "requirements.json").write_text(json.dumps({"summary": {"passed": 24}}))
    (directory / "evidence" / "etcd-raw.txt").write_bytes(b"k8s:enc:aescbc:v1:key2:\x00\x01")
    return directory


def sealed(report: Path) -> tuple[evidence.Sealed, signing.SigningKey]:
    key = signing.load_or_create()
    return evidence.seal(report, key, {"revision": "abc"}), key


def test_a_sealed_report_verifies_as_a_folder_and_as_an_archive(report: Path) -> None:
    seal, key = sealed(report)
    public = key.private.public_key()
    assert seal.files == 3
    for bundle in (report, seal.archive):
        verdict = evidence.verify(bundle, public)
        assert verdict.intact, verdict
        assert verdict.signer == key.fingerprint
        assert verdict.facts == {"revision": "abc"}


def test_every_altered_added_or_removed_file_is_named(report: Path) -> None:
    _, key = sealed(report)
    (report / "evidence" / "etcd-raw.txt").write_bytes(b"k8s:enc:aescbc:v1:key2:\x00\x02")
    (report / "evidence" / "planted.png").write_bytes(b"\x89PNG")
    (report / "junit.xml").unlink()
    verdict = evidence.verify(report, key.private.public_key())
    assert verdict.signature_valid  # the manifest itself is untouched
    assert verdict.altered == ["evidence/etcd-raw.txt"]
    assert verdict.added == ["evidence/planted.png"]
    assert verdict.removed == ["junit.xml"]
    assert not verdict.intact


def test_an_edited_manifest_or_another_key_breaks_the_signature(report: Path) -> None:
    _, key = sealed(report)
    manifest = report / evidence.MANIFEST
    other = signing.Ed25519PrivateKey.generate().public_key()
    assert not evidence.verify(report, other).signature_valid
    # Whoever edits a file and its digest in the manifest cannot sign again.
    document = json.loads(manifest.read_bytes())
    (report / "junit.xml").write_text("<testsuite failures='0'/>")
    document["files"]["junit.xml"] = evidence.file_digests(report)["junit.xml"]
    manifest.write_text(json.dumps(document, indent=1, sort_keys=True))
    verdict = evidence.verify(report, key.private.public_key())
    assert not verdict.signature_valid
    assert not verdict.intact


def test_one_changed_byte_in_the_archive_is_caught(report: Path, tmp_path: Path) -> None:
    seal, key = sealed(report)
    with tarfile.open(seal.archive) as tar:
        tar.extractall(tmp_path / "copy", filter="data")
    copy = tmp_path / "copy" / report.name
    data = bytearray((copy / "requirements.json").read_bytes())
    data[-2] ^= 0x01
    (copy / "requirements.json").write_bytes(bytes(data))
    forged = tmp_path / "forged.tar.gz"
    with tarfile.open(forged, "w:gz") as tar:
        tar.add(copy, arcname=copy.name)
    assert evidence.verify(forged, key.private.public_key()).altered == ["requirements.json"]


def test_the_key_is_made_once_private_to_its_owner_with_its_public_part_beside(
    own_config_home: Path,
) -> None:
    with pytest.raises(ConfigError, match="pass --public-key"):
        signing.local_public_key()  # nothing to verify with yet, and none is made
    first = signing.load_or_create()
    assert first.created
    key_file = Path(first.source)
    assert key_file.is_relative_to(own_config_home)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert signing.public_file(key_file).read_bytes() == first.public_pem
    again = signing.load_or_create()
    assert not again.created and again.fingerprint == first.fingerprint


def test_a_key_from_the_environment_is_used_and_a_bad_one_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    made = signing.load_or_create(tmp_path / "k.pem")
    monkeypatch.setenv(signing.KEY_ENV, (tmp_path / "k.pem").read_text())
    assert signing.load_or_create().fingerprint == made.fingerprint
    assert signing.fingerprint(signing.local_public_key()[0]) == made.fingerprint
    monkeypatch.setenv(signing.KEY_ENV, "not a key")
    with pytest.raises(ConfigError, match="not an unencrypted PEM private key"):
        signing.load_or_create()


def evidence_command(*argv: str) -> int:
    return run_evidence(parser().parse_args(["evidence", *argv]))


def test_the_cli_exits_0_when_intact_1_when_tampered_2_when_unusable(
    report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evidence_command("seal", str(report)) == 0
    assert evidence_command("verify", str(report)) == 0
    assert "evidence intact" in capsys.readouterr().out
    (report / "junit.xml").write_text("<testsuite errors='1'/>")
    assert evidence_command("verify", str(report)) == 1
    out = capsys.readouterr().out
    assert "ALTERED: junit.xml" in out and "evidence TAMPERED" in out
    (report / evidence.SIGNATURE).unlink()
    for unusable in (report.parent / "missing", report):  # main() exits with exit_code 2
        with pytest.raises(ConfigError):
            evidence_command("verify", str(unusable))
    assert ConfigError.exit_code == 2


def test_a_release_passes_the_gate_only_if_a_passing_sealed_run_ran_its_digests(
    report: Path,
) -> None:
    running = {"ce.local/engine-api:1.0.0-abc": "sha256:aaa"}
    key = signing.load_or_create()
    public = key.private.public_key()
    facts = {"pytest_exit_status": 0, "engine_images_under_test": {"staging": running}}
    evidence.seal(report, key, facts)
    assert evidence.release_gate(report, public, running).intact
    with pytest.raises(ConfigError, match="did not run"):
        evidence.release_gate(report, public, {"ce.local/engine-api:1.0.0-abc": "sha256:bbb"})
    evidence.seal(report, key, {**facts, "pytest_exit_status": 1})
    with pytest.raises(ConfigError, match="did not pass"):
        evidence.release_gate(report, public, running)
    evidence.seal(report, key, facts)
    (report / "junit.xml").write_text("<testsuite/> ")
    with pytest.raises(ConfigError, match="not intact"):
        evidence.release_gate(report, public, running)
