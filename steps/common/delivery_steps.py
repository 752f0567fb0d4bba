"""Steps for the delivery pipeline (R2): real pushes, the real workflow run by act, real promote.

The pushes happen once per session (the runner takes one run at a time);
each scenario checks its criterion on what the runs recorded and on what the
cluster runs, which the pipeline's own records cannot fake.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd import given, then, when

from deployer.actions import deploy, pipeline, release
from deployer.actions.engine_images import image_refs
from deployer.actions.pipeline import RunRecord
from deployer.lower.docker_client import DockerClient
from deployer.settings import Paths
from steps.support import lanes
from steps.support.delivery import Developer, push_the_three_commits
from steps.support.environments import Environment, Environments, api_call
from steps.support.kube import Kube
from steps.support.provider import LOCAL_IMAGES, ClusterProvider
from steps.support.report import RecordFigure

log = logging.getLogger(__name__)

PROMOTE_TIMEOUT_S = 600


@pytest.fixture(scope="session")
def staging_hold(paths: Paths, cluster_provider: ClusterProvider) -> Iterator[ExitStack]:
    """The suite holds staging's pipeline lock while its scenarios use staging: a run's
    staging deploy waits (automatically, no one approves it) until the delivery scenarios.
    A cluster this suite did not create has no pipeline of ours deploying to it."""
    hold = ExitStack()
    if cluster_provider.kind_name is None:
        yield hold
        return
    hold.enter_context(
        pipeline.environment_lock(
            paths,
            cluster_provider.kind_name,
            "staging",
            holder=f"the acceptance suite (pid {os.getpid()}) while its scenarios use staging",
        )
    )
    with hold:
        yield hold


@pytest.fixture(scope="session")
def developer(
    paths: Paths,
    cluster_provider: ClusterProvider,
    staging_hold: ExitStack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Developer]:
    """This machine's pipeline remote (seeded with this checkout's HEAD) and a clone of it."""
    cluster_provider.require(LOCAL_IMAGES, "deploying images the pipeline built on this machine")
    assert cluster_provider.kind_name is not None
    home = tmp_path_factory.mktemp("pipeline")
    pipeline.create_remote(paths, home, paths.repo, cluster_provider.kind_name)
    yield Developer.clone_remote(home, home / "clone")
    # A run left behind (a scenario failed or timed out) must not deploy to a cluster in
    # teardown; torn down before the staging hold is released.
    for run_id in pipeline.cancel_unfinished(home):
        log.warning("cancelled pipeline run %s", run_id)


@pytest.fixture(scope="session")
def pushed(developer: Developer) -> Developer:
    """The three commits, pushed once for every R2 scenario."""
    push_the_three_commits(developer)
    return developer


def delivery_runs_here(request: pytest.FixtureRequest) -> bool:
    """Delivery scenarios are selected, and the cluster can run images built on this machine."""
    if not any(
        item.get_closest_marker("delivery") and not item.get_closest_marker("not_implemented")
        for item in request.session.items
    ):
        return False
    provider: ClusterProvider = request.getfixturevalue("cluster_provider")
    return provider.can(LOCAL_IMAGES)


@pytest.fixture(scope="session", autouse=True)
def early_pushes(request: pytest.FixtureRequest) -> None:
    """Push as soon as the cluster is up when delivery scenarios are selected: the runs'
    tests and builds overlap the first scenarios, and their staging deploy waits for the
    suite's hold. A failure here is not the first scenario's: it is raised again to the
    delivery scenarios, which ask for the same fixture."""
    if not lanes.sets_up(request.config) or not delivery_runs_here(request):
        return
    try:
        request.getfixturevalue("pushed")
    except Exception as error:  # noqa: BLE001 - reported by the delivery scenarios
        log.warning("pushing to the pipeline failed; the delivery scenarios will say: %s", error)


@pytest.fixture(autouse=True)
def staging_to_the_pipeline_beside_light_scenarios(request: pytest.FixtureRequest) -> None:
    """The first @light scenario hands staging to the pipeline: its deploy and validation
    run while the light scenarios (which use no staging and need no quiet machine) do."""
    if request.node.get_closest_marker("light") and delivery_runs_here(request):
        request.getfixturevalue("staging_released")


@pytest.fixture(scope="session")
def staging_released(environments: Environments, staging_hold: ExitStack) -> None:
    """Staging is up (the pipeline delivers onto it), then its lock is released."""
    environments.ensure("staging")
    staging_hold.close()
    log.info("staging handed to the pipeline")


@pytest.fixture(scope="session")
def pipeline_runs(pushed: Developer, staging_released: None) -> dict[str, RunRecord]:
    """The finished runs."""
    return {label: pushed.finished_run(push) for label, push in pushed.pushes.items()}


@given("the pipeline's git remote on this machine", target_fixture="remote_developer")
def _(developer: Developer) -> Developer:
    return developer


@when(
    "commits are pushed: tests passing on main, on a feature branch, and a failing test on main",
    target_fixture="runs",
)
def _(pipeline_runs: dict[str, RunRecord], record_figure: RecordFigure) -> dict[str, RunRecord]:
    for label, run in pipeline_runs.items():
        record_figure(f"pipeline_run_seconds[{label}]", _seconds(run.started, run.finished))
    return pipeline_runs


@then("the pipeline ran the fast tests for each pushed commit and recorded the result")
def _(runs: dict[str, RunRecord], developer: Developer, record_figure: RecordFigure) -> None:
    expected = {"green-main": "success", "green-branch": "success", "red-main": "failure"}
    for label, result in expected.items():
        run, push = runs[label], developer.pushes[label]
        assert run.commit == push.commit and run.ref == f"refs/heads/{push.branch}", run
        test = run.stages.get("test")
        assert test is not None, f"{label}: no test stage ran ({_log_tail(developer, run)})"
        assert test.result == result, f"{label}: tests {test.result}, expected {result}: {test}"
        record_figure(f"test_stage_seconds[{label}]", test.seconds or 0.0)
        record_figure(f"push_to_tests_started_s[{label}]", round(test.started - push.pushed_at, 1))
    red = runs["red-main"].stages["test"]
    assert "test_the_release_gate_holds" in red.details.get("output_tail", ""), red.details


@then("only the passing commit on main went past the tests")
def _(runs: dict[str, RunRecord]) -> None:
    assert set(runs["green-main"].stages) == {"test", "build", "deploy", "validate"}, runs
    assert runs["green-main"].status == "success", runs["green-main"]
    for label in ("green-branch", "red-main"):
        assert set(runs[label].stages) == {"test"}, f"{label} went further: {runs[label].stages}"
    assert runs["green-branch"].status == "success"
    assert runs["red-main"].status == "failure"


@then(
    "the passing commit on main has engine images tagged with that commit, "
    "with image IDs and an SBOM"
)
def _(runs: dict[str, RunRecord], developer: Developer, record_figure: RecordFigure) -> None:
    push, build = developer.pushes["green-main"], runs["green-main"].stages["build"]
    assert build.result == "success", build
    docker = DockerClient()
    images: dict[str, str] = build.details["images"]
    for component in ("api", "worker"):
        assert images[component].endswith(f"-{push.revision}"), images
    for ref, image_id in build.details["image_ids"].items():
        assert docker.image_id(ref) == image_id, f"{ref}: not the image the build recorded"
        record_figure(f"image_bytes[{ref.split('/')[-1]}]", build.details["image_bytes"][ref])
    labels = docker.image_labels(images["api"])
    assert labels.get("org.opencontainers.image.revision") == push.revision, labels
    sbom = json.loads(Path(build.details["sbom"]).read_text())
    assert sbom["bomFormat"] == "CycloneDX" and len(sbom["components"]) > 50, sbom.keys()
    record_figure("build_stage_seconds", build.seconds or 0.0)
    record_figure("sbom_components", len(sbom["components"]))


@then("the commits that did not pass or were not on main have no image")
def _(paths: Paths, developer: Developer) -> None:
    docker = DockerClient()
    for label in ("green-branch", "red-main"):
        tags = image_refs(paths, rev=developer.pushes[label].revision)
        for ref in (tags.api, tags.worker):
            assert docker.image_id(ref) is None, f"{label}: {ref} exists"


@then("staging runs exactly the images built for the passing commit, with no manual step")
def _(
    runs: dict[str, RunRecord],
    developer: Developer,
    kube: Kube,
    cluster_provider: ClusterProvider,
    environments: Environments,
    record_figure: RecordFigure,
) -> None:
    run, push = runs["green-main"], developer.pushes["green-main"]
    assert "build" in run.stages, (
        f"the passing commit's run built nothing: {_log_tail(developer, run)}"
    )
    build = run.stages["build"].details
    pods = kube.core.list_namespaced_pod("ce-staging", label_selector=deploy.PART_OF)
    live = [p for p in pods.items if p.metadata.deletion_timestamp is None]
    assert live, "no engine pod in staging"
    for pod in live:
        for status in pod.status.container_statuses or []:
            assert status.image in build["image_ids"], f"{pod.metadata.name} runs {status.image}"
            node_id, node_digests = _node_image(cluster_provider, pod.spec.node_name, status.image)
            assert node_id == build["image_ids"][status.image], (pod.metadata.name, node_id)
            assert status.image_id.rsplit("@", 1)[-1] in node_digests, status.image_id
    validate, deployed = run.stages["validate"], run.stages["deploy"]
    # The run waited for staging while the suite's other scenarios used it: not pipeline time.
    waited = deployed.details["waited_for_environment_s"]
    took = (validate.finished or 0) - push.pushed_at - waited
    record_figure("push_to_staging_validated_s", round(took, 1))
    record_figure("waited_for_staging_held_by_the_suite_s", waited)
    record_figure("staging_deploy_seconds", deployed.details["seconds"])
    environments.adopt("staging", release.images_of(build["images"], build["revision"]))


@then("staging's engine answers as that commit's release")
def _(environment: Environment, kube: Kube, developer: Developer) -> None:
    answer = api_call(kube, environment, "GET", "/info", token=environment.token("reader"))
    assert answer.status == 200, answer
    assert answer.body["config"]["revision"] == developer.pushes["green-main"].revision, answer


@when(
    'the operator runs "python -m deployer promote --to production" once',
    target_fixture="promotion",
)
def _(
    paths: Paths, cluster_provider: ClusterProvider, record_figure: RecordFigure
) -> dict[str, Any]:
    assert cluster_provider.kind_name is not None
    started = time.time()
    completed = _deployer(
        paths, "promote", "--to", "production", "--cluster", cluster_provider.kind_name
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    record_figure("promote_seconds", round(time.time() - started, 1))
    return {"started": started, "output": completed.stdout}


@then("production runs the same image digests as staging validated")
def _(kube: Kube, runs: dict[str, RunRecord], environments: Environments) -> None:
    validated = runs["green-main"].stages["validate"].details
    production = release.running_digests(kube.api, "ce-production")
    assert production == validated["digests"], (production, validated["digests"])
    assert release.running_digests(kube.api, "ce-staging") == validated["digests"]
    build = runs["green-main"].stages["build"].details
    environments.adopt("production", release.images_of(build["images"], build["revision"]))


@then("the promotion is recorded with who promoted which release and when")
def _(
    kube: Kube, promotion: dict[str, Any], developer: Developer, record_figure: RecordFigure
) -> None:
    recorded = [p for p in release.promotions(kube.api) if p.promoted_at >= promotion["started"]]
    assert len(recorded) == 1, recorded
    latest = recorded[0]
    assert latest.revision == developer.pushes["green-main"].revision, latest
    assert latest.source == "staging" and latest.target == "production" and latest.who, latest
    record_figure("promotion_record", f"{latest.who} promoted {latest.revision} to production")


@then("promoting a release staging never validated is refused and production is unchanged")
def _(
    paths: Paths, kube: Kube, cluster_provider: ClusterProvider, environments: Environments
) -> None:
    assert cluster_provider.kind_name is not None
    before = release.running_digests(kube.api, "ce-production")
    never_validated = environments.session_images().revision
    completed = _deployer(
        paths, "promote", "--to", "production", "--revision", never_validated,
        "--cluster", cluster_provider.kind_name,
    )  # fmt: skip
    assert completed.returncode == 2, completed.stdout[-3000:]
    assert "refusing to promote" in completed.stdout and "not passed validation" in completed.stdout
    assert release.running_digests(kube.api, "ce-production") == before


def _deployer(paths: Paths, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The deployer's command line, as the operator runs it (one command, its own process)."""
    return subprocess.run(
        [sys.executable, "-m", "deployer", *arguments],
        cwd=paths.repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the deployer reports on stderr
        text=True,
        timeout=PROMOTE_TIMEOUT_S,
    )


def _node_image(provider: ClusterProvider, node: str, ref: str) -> tuple[str, set[str]]:
    """The image ``ref`` as the node's runtime holds it: its ID and its content digests."""
    code, output = provider.node_exec(node, ["crictl", "inspecti", "-o", "json", ref])
    assert code == 0, output.decode(errors="replace")
    status = json.loads(output)["status"]
    return status["id"], {digest.rsplit("@", 1)[-1] for digest in status.get("repoDigests", [])}


def _seconds(started: float | None, finished: float | None) -> float:
    return round((finished or 0.0) - (started or 0.0), 1)


def _log_tail(developer: Developer, run: RunRecord) -> str:
    log = developer.home / "runs" / run.id / "pipeline.log"
    return log.read_text()[-2000:] if log.exists() else "no pipeline log"
