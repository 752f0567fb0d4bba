"""Old node images and their preload archives go; the newest and what a container uses stay."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors

from deployer.actions import build
from deployer.lower.docker_client import DockerClient
from deployer.settings import default_paths


class FakeImages:
    def __init__(self, images: list[Any], in_use: set[str]) -> None:
        self.images, self.in_use = images, in_use
        self.removed: list[str] = []

    def list(self, name: str) -> list[Any]:
        return [image for image in self.images if image.repository == name]

    def remove(self, tag: str, noprune: bool) -> None:
        if tag in self.in_use:
            raise docker.errors.APIError("conflict: image is being used by a container")
        self.removed.append(tag)


def image(repository: str, key: str, created: str) -> Any:
    return SimpleNamespace(
        repository=repository, tags=[f"{repository}:{key}"], attrs={"Created": created}
    )


def fake_docker(
    images: list[Any], in_use: frozenset[str] = frozenset()
) -> tuple[DockerClient, Any]:
    fake = FakeImages(images, set(in_use))
    client = DockerClient.__new__(DockerClient)  # no engine to ping
    client._client = SimpleNamespace(images=fake)
    return client, fake


def test_all_but_the_newest_images_of_a_repository_are_untagged() -> None:
    repo = "ce.local/kind-node"
    client, fake = fake_docker(
        [
            image(repo, "a", "2026-11-26T19:57:00Z"),
            image(repo, "c", "2026-11-27T15:59:00Z"),
            image(repo, "b", "2026-11-27T07:36:00Z"),
            image(repo, "old-in-use", "2026-11-25T00:00:00Z"),
        ],
        in_use=frozenset({f"{repo}:old-in-use"}),
    )
    assert client.remove_all_but_newest(repo, keep=2) == [f"{repo}:a"]
    assert fake.removed == [f"{repo}:a"]  # the one a cluster still runs on stays


def test_a_node_image_build_forgets_the_archives_and_older_images(tmp_path: Path) -> None:
    paths = dataclasses.replace(default_paths(), cache=tmp_path)
    (tmp_path / "images").mkdir()
    for key in ("old", "new"):
        (tmp_path / "images" / f"cluster-images-{key}.tar").write_bytes(b"tar")
    repo, stage = build.NODE_IMAGE_REPOSITORY, f"{build.NODE_IMAGE_REPOSITORY}-stage"
    client, fake = fake_docker(
        [image(r, k, f"2026-11-2{n}T00:00:00Z") for r in (repo, stage) for n, k in enumerate("xyz")]
    )
    build.forget_older_node_images(paths, client, {f"{repo}:x", f"{stage}:x"})
    assert not list((tmp_path / "images").iterdir())
    assert fake.removed == []  # x is the one in use here, y and z the newest
    build.forget_older_node_images(paths, client, {f"{repo}:z", f"{stage}:z"})
    assert fake.removed == [f"{repo}:x", f"{stage}:x"]
