"""Images for clusters the deployer did not create: registry refs, contexts, bad input."""

from pathlib import Path

import pytest
import yaml

from deployer import cli
from deployer.actions.registry import in_registry
from deployer.errors import ConfigError
from deployer.lower.kube import pinned_context


@pytest.mark.parametrize(
    ("ref", "registry", "expected"),
    [
        ("ce.local/engine-api:1.0.0-abc", "localhost:5001", "localhost:5001/engine-api:1.0.0-abc"),
        (
            "ce.local/engine-api:1.0.0-abc",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ce/",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ce/engine-api:1.0.0-abc",
        ),
        ("registry.k8s.io/pause:3.10.1", "localhost:5001", "localhost:5001/pause:3.10.1"),
        ("busybox:1", "localhost:5001", "localhost:5001/busybox:1"),
        # read back from a cluster and deployed again: unchanged
        (
            "localhost:5001/engine-api:1.0.0-abc",
            "localhost:5001",
            "localhost:5001/engine-api:1.0.0-abc",
        ),
    ],
)
def test_an_image_is_named_by_the_registry_it_is_pushed_to(
    ref: str, registry: str, expected: str
) -> None:
    assert in_registry(ref, registry) == expected


def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "contexts": [{"name": "dev", "context": {}}, {"name": "prod-like", "context": {}}],
            }
        )
    )
    return path


def test_a_context_is_pinned_in_a_copy_and_the_original_is_untouched(tmp_path: Path) -> None:
    original = kubeconfig(tmp_path)
    pinned = pinned_context(original, "prod-like", tmp_path / "pinned")
    assert yaml.safe_load(pinned.read_text())["current-context"] == "prod-like"
    assert yaml.safe_load(original.read_text())["current-context"] == "dev"
    assert pinned.stat().st_mode & 0o077 == 0
    assert pinned_context(original, None, tmp_path / "pinned") == original


def test_an_unknown_context_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no context 'nope'"):
        pinned_context(kubeconfig(tmp_path), "nope", tmp_path / "pinned")


def test_deploying_to_a_cluster_we_did_not_create_needs_a_registry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["deploy", "--env", "dev", "--kubeconfig", str(kubeconfig(tmp_path))])
    assert code == ConfigError.exit_code
    assert "--kubeconfig needs --registry" in capsys.readouterr().err
