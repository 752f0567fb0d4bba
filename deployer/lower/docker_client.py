"""The Docker SDK, narrowed to what the build needs, with errors a user can act on."""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from deployer.errors import BuildError, PrerequisiteError
from deployer.lower import proc

log = logging.getLogger(__name__)

CACHE_LABEL = "ce.cache-key"
RELEASE_LABEL = "io.consciousness-engine.release"  # built by the delivery pipeline


@dataclass
class BuildContext:
    """An in-memory docker build context: a Dockerfile plus files."""

    dockerfile: str
    files: dict[str, tuple[Path, int]] = field(default_factory=dict)  # name -> (source, mode)

    def add(self, name: str, source: Path, mode: int = 0o755) -> None:
        self.files[name] = (source, mode)

    def tar(self) -> io.BytesIO:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            data = self.dockerfile.encode()
            info = tarfile.TarInfo("Dockerfile")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            for name, (source, mode) in sorted(self.files.items()):
                if source.is_dir():
                    archive.add(source, arcname=name)
                    continue
                info = archive.gettarinfo(str(source), arcname=name)
                info.mode = mode
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                with source.open("rb") as handle:
                    archive.addfile(info, handle)
        buffer.seek(0)
        return buffer


class DockerClient:
    """Docker engine access for builds; one instance per command."""

    def __init__(self, base_url: str | None = None) -> None:
        try:
            self._client = (
                docker.DockerClient(base_url=base_url, timeout=600)
                if base_url
                else docker.from_env(timeout=600)
            )
            self._client.ping()
        except docker.errors.DockerException as error:
            raise PrerequisiteError(
                f"cannot reach the Docker engine ({error}); run `python -m deployer engine up` "
                "or set DOCKER_HOST"
            ) from None

    @property
    def api(self) -> Any:
        return self._client.api

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = self._client.info()
        return info

    def image_exists(self, ref: str) -> bool:
        try:
            self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        return True

    def image_id(self, ref: str) -> str | None:
        """The image's content ID (sha256 of its config), or None when there is no such tag."""
        try:
            image_id: str = self._client.images.get(ref).id
        except docker.errors.ImageNotFound:
            return None
        return image_id

    def image_labels(self, ref: str) -> Mapping[str, str]:
        try:
            image = self._client.images.get(ref)
        except docker.errors.ImageNotFound:
            return {}
        labels: Mapping[str, str] = image.labels or {}
        return labels

    def image_size(self, ref: str) -> int:
        size: int = self._client.images.get(ref).attrs["Size"]
        return size

    def import_tarball(self, tarball: Path, ref: str) -> None:
        repository, tag = ref.rsplit(":", 1)
        with tarball.open("rb") as handle:
            self._client.api.import_image_from_data(handle, repository=repository, tag=tag)
        if not self.image_exists(ref):
            raise BuildError(f"docker import of {tarball} did not produce {ref}")

    def build(
        self,
        context: BuildContext,
        ref: str,
        labels: Mapping[str, str],
        args: Mapping[str, str] | None = None,
    ) -> None:
        """Build ``ref`` from ``context``; the build log goes to the debug log."""
        stream = self._client.api.build(
            fileobj=context.tar(),
            custom_context=True,
            tag=ref,
            labels=dict(labels),
            buildargs=dict(args or {}),
            rm=True,
            forcerm=True,
            decode=True,
        )
        last: list[str] = []
        for chunk in stream:
            if "error" in chunk:
                raise BuildError(
                    f"building {ref} failed: {chunk['error'].strip()}\n" + "\n".join(last[-10:])
                )
            text = str(chunk.get("stream", "")).rstrip()
            if text:
                last.append(text)
                log.debug("[build %s] %s", ref, text)
        if not self.image_exists(ref):
            raise BuildError(f"building {ref} produced no image:\n" + "\n".join(last[-10:]))

    def push(self, source: str, destination: str) -> str:
        """Tag ``source`` as ``destination`` and push it; return the registry's digest."""
        repository, tag = destination.rsplit(":", 1)
        try:
            self._client.images.get(source).tag(repository, tag)
            stream = self._client.api.push(repository, tag=tag, stream=True, decode=True)
            digest = ""
            for chunk in stream:
                if "error" in chunk:
                    raise BuildError(f"pushing {destination} failed: {chunk['error'].strip()}")
                digest = chunk.get("aux", {}).get("Digest", digest)
        except docker.errors.DockerException as error:
            raise BuildError(f"pushing {destination} failed: {error}") from None
        return str(digest)

    def save(self, refs: Iterable[str], destination: Path) -> None:
        """Write ``refs`` as one docker-archive tarball (what ``ctr import`` reads)."""
        # The SDK saves one image per call; the CLI writes several with shared layers.
        partial = destination.with_suffix(".partial")
        proc.run(["docker", "save", "-o", partial, *refs], timeout=900, describe="docker save")
        partial.rename(destination)

    def run_detached(self, ref: str, name: str, command: list[str], **options: Any) -> Any:
        try:
            old = self._client.containers.get(name)
            old.remove(force=True)
        except docker.errors.NotFound:
            pass
        return self._client.containers.run(ref, command, name=name, detach=True, **options)

    def exec(self, container: Any, command: list[str], what: str) -> str:
        result = container.exec_run(command, demux=False)
        output = (result.output or b"").decode(errors="replace")
        log.debug("[%s] %s", what, output)
        if result.exit_code != 0:
            raise BuildError(f"{what} failed (exit {result.exit_code}): {output[-2000:]}")
        return output

    def exec_in(self, name: str, command: list[str]) -> tuple[int, bytes]:
        """Run ``command`` in the running container ``name``; (exit code, stdout+stderr)."""
        try:
            result = self._client.containers.get(name).exec_run(command, demux=False)
        except docker.errors.DockerException as error:
            raise PrerequisiteError(
                f"cannot run a command in container {name!r}: {error}"
            ) from None
        return int(result.exit_code), bytes(result.output or b"")

    def image_chunks(self, ref: str) -> Iterator[bytes]:
        """The bytes of ``ref`` as `docker save` writes them (every layer), streamed."""
        try:
            image = self._client.images.get(ref)
        except docker.errors.DockerException as error:
            raise PrerequisiteError(f"image {ref} is not in the Docker engine: {error}") from None
        yield from image.save(named=True)

    def put_file(self, container: Any, source: Path, directory: str) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            archive.add(source, arcname=source.name)
        buffer.seek(0)
        container.put_archive(directory, buffer.getvalue())

    def commit(
        self, container: Any, ref: str, changes: list[str], labels: Mapping[str, str]
    ) -> None:
        repository, tag = ref.rsplit(":", 1)
        conf = {"Labels": dict(labels)}
        container.commit(repository=repository, tag=tag, changes=changes, conf=conf)

    def read_file(self, image: str, path: str) -> str:
        """One file out of an image (e.g. its dpkg database), via a throwaway container."""
        output = self._client.containers.run(
            image, [path], entrypoint=["cat"], remove=True, network_mode="none"
        )
        text = bytes(output).decode(errors="replace")
        if not text:
            raise BuildError(f"{path} is empty in {image}")
        return text

    def remove_other_tags(self, keep: str) -> list[str]:
        """Untag every other tag of ``keep``'s repository (old builds, not the pipeline's
        releases); return what went."""
        repository = keep.rsplit(":", 1)[0]
        removed = []
        for image in self._client.images.list(name=repository):
            if RELEASE_LABEL in (image.labels or {}):
                continue  # the pipeline's releases stay: an environment may run them
            removed += self._untag(tag for tag in image.tags if tag != keep)
        return removed

    def remove_all_but_newest(
        self, repository: str, keep: int, keep_tags: Collection[str] = ()
    ) -> list[str]:
        """Untag all but the ``keep`` newest images of ``repository`` and ``keep_tags`` (an
        image a container still uses stays too); return what went."""
        images = sorted(
            self._client.images.list(name=repository),
            key=lambda image: str(image.attrs.get("Created", "")),
            reverse=True,
        )
        return self._untag(
            tag for image in images[keep:] for tag in image.tags if tag not in keep_tags
        )

    def _untag(self, tags: Iterable[str]) -> list[str]:
        removed = []
        for tag in tags:
            try:
                self._client.images.remove(tag, noprune=False)
            except docker.errors.APIError as error:
                log.debug("kept %s: %s", tag, error)
                continue
            removed.append(tag)
        return removed

    def power(self, name: str, on: bool) -> None:
        """Start or stop (SIGTERM, then SIGKILL after 10 s) the container ``name``."""
        try:
            container = self._client.containers.get(name)
            container.start() if on else container.stop(timeout=10)
        except docker.errors.DockerException as error:
            verb = "start" if on else "stop"
            raise PrerequisiteError(f"cannot {verb} container {name!r}: {error}") from None

    def container_running(self, name: str, ref: str | None) -> bool:
        """Is container ``name`` running (from image ``ref``, when given)?"""
        try:
            container = self._client.containers.get(name)
        except docker.errors.NotFound:
            return False
        image_matches = ref is None or ref in (container.image.tags or [])
        return bool(container.status == "running" and image_matches)

    def container_logs(self, name: str) -> str:
        try:
            return str(self._client.containers.get(name).logs().decode(errors="replace"))
        except docker.errors.NotFound:
            return ""

    def ensure_network(self, name: str) -> None:
        """A user-defined bridge network (kind makes "kind" itself; reused if it exists)."""
        if not self._client.networks.list(names=[name]):
            self._client.networks.create(name, driver="bridge")

    def remove_container(self, name: str) -> None:
        try:
            self._client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass

    def probe_privileged(self, ref: str, command: list[str]) -> str | None:
        """Run ``command`` privileged; return None on success, else the engine's error."""
        try:
            self._client.containers.run(
                ref, command, privileged=True, remove=True, network_mode="none"
            )
        except docker.errors.ContainerError as error:
            return f"exit {error.exit_status}: {error.stderr!r}"
        except docker.errors.APIError as error:
            return str(error.explanation or error)
        return None
