"""Acceptance suite wiring: command-line options, the session cluster, report hooks.

Steps live in steps/common (loaded below); the report plugin in steps/support/report.py.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import MaxRetryError

# Steps and their helpers assert; let pytest rewrite them before conftest imports them.
pytest.register_assert_rewrite("steps")

from deployer.actions import cluster as cluster_actions
from deployer.actions import release
from deployer.actions.build import build_all
from deployer.actions.deploy import Target
from deployer.actions.engine import ensure_engine
from deployer.actions.registry import publish
from deployer.errors import DeployerError
from deployer.settings import Paths, default_paths
from steps.support import lanes, matrix
from steps.support.environments import (
    Environments,
    needed_in_order,
    releases_needed,
    scenario_steps,
)
from steps.support.kube import Kube
from steps.support.provider import ClusterProvider, existing_provider, kind_provider
from steps.support.report import (
    REQUIREMENT_MARK,
    record_session_fact,
    run_directory,
    scenario_title,
)

COULD_NOT_RUN = 6
NO_CLUSTER = pytest.StashKey[str]()
PRELOADING = pytest.StashKey[Environments]()  # the session's environments, building releases

pytest_plugins = [
    "steps.support.lanes",  # first: its autouse fixture takes the scenario's turn first
    "steps.support.report",
    "steps.common.cluster_steps",
    "steps.common.workload_steps",
    "steps.common.network_steps",
    "steps.common.storage_steps",
    "steps.common.metrics_steps",
    "steps.common.healing_steps",
    "steps.common.environment_steps",
    "steps.common.rollout_steps",
    "steps.common.autoscaling_steps",
    "steps.common.alert_latency_steps",
    "steps.common.auth_steps",
    "steps.common.image_steps",
    "steps.common.encryption_steps",
    "steps.common.secret_steps",
    "steps.common.audit_steps",
    "steps.common.transit_steps",
    "steps.common.cluster_security_steps",
    "steps.common.observability_steps",
    "steps.common.monitoring_access_steps",
    "steps.common.delivery_steps",
    "steps.common.rollback_steps",
]

log = logging.getLogger(__name__)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("consciousness-engine", "Consciousness Engine acceptance suite")
    group.addoption(
        "--kubeconfig",
        type=Path,
        default=None,
        help="run against this existing cluster instead of creating a kind cluster",
    )
    group.addoption("--context", default=None, help="kubeconfig context (with --kubeconfig)")
    group.addoption(
        "--registry",
        default=None,
        help="push the stack's images here and have the cluster pull them (with --kubeconfig: "
        "deploy the engine to a cluster this suite did not create; e.g. localhost:5001 from "
        "`python -m deployer registry up`, or an ECR repository)",
    )
    group.addoption(
        "--cluster-name",
        default="ce-acceptance",
        help="name of the ephemeral kind cluster (default: ce-acceptance)",
    )
    group.addoption("--workers", type=int, default=2, help="kind worker nodes (default: 2)")
    group.addoption(
        "--reuse-cluster",
        action="store_true",
        help="reuse the kind cluster of that name if it exists; never delete it",
    )
    group.addoption(
        "--keep-cluster", action="store_true", help="do not delete the kind cluster at the end"
    )
    group.addoption(
        "--toolbox-image",
        default="ce.local/toolbox:bookworm",
        help="image for the suite's probe pods (must be pullable by the cluster)",
    )
    group.addoption(
        "--list",
        dest="list_matrix",
        action="store_true",
        help="print the traceability matrix (criteria, scenarios, tags, environments); run none",
    )
    group.addoption(
        "--nightly",
        action="store_true",
        help="also run the @nightly scenarios (longer measurements; scripts/nightly sets it)",
    )
    group.addoption(
        "--acceptance-report",
        action="store_true",
        help="write reports/<UTC timestamp>/ and reports/latest",
    )


def pytest_configure(config: pytest.Config) -> None:
    """CI stops jobs with SIGTERM: raise KeyboardInterrupt so fixtures still delete the cluster."""
    if config.option.list_matrix:
        config.option.collectonly = True

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@pytest.hookimpl(tryfirst=True)  # before -m selects: the markers added here select too
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scenarios tagged @not_implemented are reported as such, never run, never passed.
    Each scenario is also marked with its criterion's group (R4 for R4.2) and with the
    environments it deploys (env_staging), so ``-m R4`` or ``-m env_staging`` selects.

    The delivery pipeline's scenarios run last: it rolls a new release onto the
    environments the other scenarios deployed (a rollout, not a second deploy).
    Just before them come the @light ones: they run while the pipeline's staging
    deploy does (the suite releases staging to it when the first of them starts).
    @nightly scenarios (minutes-long measurements) run only with --nightly."""
    if not config.option.nightly:
        nightly = [item for item in items if item.get_closest_marker("nightly")]
        if nightly:
            config.hook.pytest_deselected(items=nightly)
            items[:] = [item for item in items if not item.get_closest_marker("nightly")]
    items.sort(key=run_order)
    steps_of = scenario_steps(Path(config.rootpath) / "features")
    for item in items:
        if item.get_closest_marker("not_implemented"):
            item.add_marker(pytest.mark.skip(reason="not implemented: steps are not written yet"))
        for group in {
            m.name.split(".")[0] for m in item.iter_markers() if REQUIREMENT_MARK.match(m.name)
        }:
            item.add_marker(group)
        for name in needed_in_order(steps_of, [scenario_title(item)]):
            item.add_marker(matrix.ENVIRONMENT_MARK + name)


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.list_matrix:
        features = Path(session.config.rootpath) / "features"
        print("\n" + "\n".join(matrix.lines(session.items, features / "criteria.toml")))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Exit 1 means non-compliant (a criterion failed); 6 means the run could not judge
    (no cluster to run on, or its API unreachable), so CI can tell a red release from a
    broken runner."""
    reason = session.config.stash.get(NO_CLUSTER, None)
    if reason and hasattr(session.config, "workeroutput"):  # the controller judges
        session.config.workeroutput["ce_no_cluster"] = reason
    if reason and session.exitstatus == pytest.ExitCode.TESTS_FAILED:
        session.exitstatus = COULD_NOT_RUN
        record_session_fact(session.config, "could_not_run", reason)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist's controller: a lane that found no cluster makes the run "could not run"."""
    reason = getattr(node, "workeroutput", {}).get("ce_no_cluster")
    if reason:
        node.config.stash[NO_CLUSTER] = reason


def run_order(item: pytest.Item) -> int:
    if item.get_closest_marker("delivery"):
        return 2
    return 1 if item.get_closest_marker("light") else 0


@pytest.fixture(scope="session")
def paths() -> Paths:
    return default_paths()


@pytest.fixture(scope="session")
def cluster_provider(request: pytest.FixtureRequest, paths: Paths) -> Iterator[ClusterProvider]:
    """The session's cluster: created once, logs exported, deleted even when tests fail."""
    options = request.config.option
    if not lanes.sets_up(request.config):  # the side lane: the main lane's cluster
        yield lanes.published_provider(request.config)
        return
    try:
        if options.kubeconfig:
            provider = existing_provider(options.kubeconfig, options.context)
        else:
            provider = kind_provider(
                paths,
                options.cluster_name,
                options.workers,
                reuse=options.reuse_cluster,
                keep=options.keep_cluster,
                with_engine=bool(environments_needed(request.session)),
            )
    except DeployerError as error:  # no verdict on any criterion: the run exits 6, not 1
        request.config.stash[NO_CLUSTER] = str(error).splitlines()[0]
        lanes.publish_cluster(request.config, {"error": request.config.stash[NO_CLUSTER]})
        raise
    lanes.publish_cluster(request.config, lanes.provider_document(provider))
    record_session_fact(request.config, "cluster", provider.name)
    if provider.seconds_to_ready is not None:
        record_session_fact(
            request.config, "cluster_seconds_to_ready", round(provider.seconds_to_ready, 1)
        )
    try:
        yield provider
    finally:
        lanes.main_finished(request.config)  # the side lane runs on this cluster until then
        report_dir = run_directory(request.config)
        if report_dir is not None:
            provider.export_logs(paths, report_dir / "cluster-logs")
        provider.teardown(paths)


@pytest.fixture(scope="session")
def kube(request: pytest.FixtureRequest, cluster_provider: ClusterProvider) -> Kube:
    try:
        kube = Kube.from_kubeconfig(cluster_provider.kubeconfig, cluster_provider.context)
        version = client.VersionApi(kube.api).get_code()
    except (ConfigException, ApiException, MaxRetryError, OSError) as error:
        request.config.stash[NO_CLUSTER] = f"the cluster's API cannot be reached: {error}"
        raise
    record_session_fact(request.config, "kubernetes_version", version.git_version)
    return kube


@pytest.fixture(scope="session")
def toolbox_image(request: pytest.FixtureRequest, paths: Paths) -> str:
    """The probe pods' image; pushed first when the cluster pulls from --registry."""
    image: str = request.config.option.toolbox_image
    registry = request.config.option.registry
    if not registry:
        return image
    docker = ensure_engine(paths)
    if not docker.image_exists(image):  # built with the node image's preloads (cached)
        build_all(paths, docker)
    return publish(docker, [image], registry)[image]


@pytest.fixture(scope="session", autouse=True)
def environments_ahead(request: pytest.FixtureRequest) -> None:
    """The environments the selected scenarios need start deploying once the cluster is
    up, while the cluster's own scenarios run; a scenario waits for its environment."""
    names = environments_needed(request.session) if lanes.sets_up(request.config) else []
    provider: ClusterProvider | None = (
        request.getfixturevalue("cluster_provider") if names else None
    )
    if provider is not None and provider.kind_name is not None:
        environments: Environments = request.getfixturevalue("environments")
        environments.deploy_ahead(names)
        steps_of = scenario_steps(Path(request.config.rootpath) / "features")
        environments.preload_releases(*releases_needed(steps_of, selected(request.session)))
        request.config.stash[PRELOADING] = environments


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Once no @quiet scenario is left to run, the releases may be loaded."""
    environments = item.config.stash.get(PRELOADING, None)
    if environments is None or environments.preload_now.is_set():
        return
    later = item.session.items[item.session.items.index(item) + 1 :]
    if not any(other.get_closest_marker("quiet") for other in later):
        log.info("building and loading the releases the scenarios roll out, in the background")
        environments.preload_now.set()


def selected(session: pytest.Session) -> list[str]:
    """The titles of the scenarios this run executes."""
    return [
        scenario_title(item)
        for item in session.items
        if not item.get_closest_marker("not_implemented")
    ]


def environments_needed(session: pytest.Session) -> list[str]:
    """The environments the selected scenarios deploy, in the order they first need them."""
    features = Path(session.config.rootpath) / "features"
    return needed_in_order(scenario_steps(features), selected(session))


@pytest.fixture(scope="session")
def environments(
    request: pytest.FixtureRequest,
    cluster_provider: ClusterProvider,
    kube: Kube,
    paths: Paths,
    toolbox_image: str,
) -> Iterator[Environments]:
    """The engine's environments, each deployed the first time a scenario needs it: images
    loaded into the kind cluster built here, or pushed to --registry for any cluster."""
    registry = request.config.option.registry
    if cluster_provider.kind_name is not None:
        handle = cluster_actions.existing(paths, cluster_provider.kind_name)
        target = Target(handle.kubeconfig, handle.kubectl, handle.kind, handle.name, registry)
    elif registry:
        target = cluster_actions.pulling_target(
            paths, cluster_provider.kubeconfig, cluster_provider.context, registry
        )
    else:
        reason = (
            "not applicable: on a cluster this suite did not create, deploying the engine "
            "needs --registry (its nodes pull the images)"
        )
        lanes.refuse_environments(request.config, environments_needed(request.session), reason)
        pytest.skip(reason)
    if not lanes.sets_up(request.config):
        yield lanes.PublishedEnvironments(
            paths, kube, target, toolbox_image, shared=lanes.board(request.config)
        )
        return
    deployed = Environments(
        paths,
        kube,
        target,
        toolbox_image,
        images=cluster_provider.engine_images,
        announce=lanes.announcer(request.config),
    )
    try:
        yield deployed
    finally:
        if deployed.ahead is not None:
            deployed.ahead.join()
        lanes.main_finished(request.config)  # the side lane uses these environments until then
        record_images_under_test(request.config, kube, deployed)
        deployed.cleanup()


def record_images_under_test(config: pytest.Config, kube: Kube, deployed: Environments) -> None:
    """For the evidence bundle: each environment's image refs and the digests its pods ran."""
    running: dict[str, Any] = {}
    for name, environment in deployed.deployed.items():
        try:
            running[name] = release.running_digests(kube.api, environment.namespace)
        except (DeployerError, ApiException) as error:
            running[name] = f"unknown: {error}"
    record_session_fact(config, "engine_images_under_test", running)
