"""Make sure a Docker engine that runs privileged containers is up."""

from __future__ import annotations

import logging

from deployer.catalog import go_programs
from deployer.errors import PrerequisiteError
from deployer.lower import docker_engine, gobuild
from deployer.lower.docker_client import BuildContext, DockerClient
from deployer.settings import Paths, load_versions

log = logging.getLogger(__name__)

PROBE_IMAGE = "ce.local/privileged-probe:1"


def ensure_engine(paths: Paths) -> DockerClient:
    """Reuse a working engine or start ours; prove privileged containers run."""
    log.info("==> Docker engine")
    versions = load_versions(paths)
    go = gobuild.go_version()
    programs = go_programs(paths, versions)
    capfilter = gobuild.build(programs["runc-capfilter"], paths.go_bin, go)
    pause = gobuild.build(programs["pause"], paths.go_bin, go)
    docker_engine.raise_sysctls()
    if docker_engine.socket_answers(docker_engine.DEFAULT_SOCKET):
        log.info("   reusing the engine on %s", docker_engine.DEFAULT_SOCKET)
    else:
        docker_engine.start_engine(paths.docker_state, capfilter.binary("runc-capfilter"))
    client = DockerClient()
    if not client.image_exists(PROBE_IMAGE):
        context = BuildContext('FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n')
        context.add("pause", pause.binary("pause"))
        client.build(context, PROBE_IMAGE, labels={})
    problem = client.probe_privileged(PROBE_IMAGE, ["-v"])
    if problem:
        raise PrerequisiteError(
            "the Docker engine cannot start privileged containers, which kind needs "
            f"({problem}). Stop that engine so the deployer starts its own with the "
            "runc-capfilter runtime, or register "
            f"{capfilter.binary('runc-capfilter')} as its default runtime in daemon.json"
        )
    info = client.info()
    log.info(
        "   engine %s ready (cgroup v%s, runtime %s)",
        info.get("ServerVersion"),
        info.get("CgroupVersion"),
        info.get("DefaultRuntime"),
    )
    return client
