"""Steps that ship bad engine releases and watch Argo Rollouts take them back (R2.5)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from pytest_bdd import given, parsers, then, when

from deployer.actions import deploy as deploy_action
from deployer.actions.engine_images import EngineImages
from deployer.errors import DeployerError, ReleaseRolledBack
from deployer.lower import rollouts
from deployer.lower.waiting import WaitTimeout, wait_until
from steps.common.rollout_steps import TRAFFIC_TIMEOUT_S
from steps.common.workload_steps import Traffic
from steps.support import clients, releases
from steps.support.environments import Environment, Environments, api_call
from steps.support.kube import Kube, is_ready
from steps.support.report import RecordFigure

# After a rollback the old pods' answers may still be in flight: watch a little longer.
SETTLE_S = 5.0


@dataclass(frozen=True)
class Episode:
    """One bad release, from the deploy command to the previous release serving again."""

    release: releases.Release
    images: EngineImages
    started: float
    finished: float
    rolled_back: ReleaseRolledBack | None
    error: str = ""  # the deploy neither went live nor was rolled back

    @property
    def figures(self) -> str:
        """The prefix of this episode's figures in the report."""
        return self.release.slug.replace("-", "_")


@given(
    parsers.parse("bad releases are built and on the nodes: {names}"),
    target_fixture="bad_releases",
)
def _(
    environments: Environments, environment: Environment, names: str
) -> list[tuple[releases.Release, EngineImages]]:
    """Before the client starts: building and loading is not part of an episode."""
    serving = deploy_action.serving_release(environments.kube.api, environment.namespace)
    assert serving is not None, f"{environment.namespace} serves no release yet"
    built = []
    for name in (n.strip() for n in names.split(",")):
        # An engine-api release: the worker and the database stay as they are.
        images = dataclasses.replace(
            environments.bad_release(name), worker=serving.worker, postgres=serving.postgres
        )
        built.append((releases.BAD_RELEASES[name], images))
    return built


@when("each bad release is deployed with the deployer", target_fixture="episodes")
def _(
    environments: Environments,
    environment: Environment,
    bad_releases: list[tuple[releases.Release, EngineImages]],
) -> tuple[EngineImages, list[Episode]]:
    previous = deploy_action.serving_release(environments.kube.api, environment.namespace)
    assert previous is not None
    episodes: list[Episode] = []
    for release, images in bad_releases:
        if episodes:
            # Each episode is judged on its own window (its rollback's settle time included):
            # a run once started the 5xx release inside the crash-loop one's settle window,
            # and that release's canary errors were counted against the crash loop.
            time.sleep(max(0.0, episodes[-1].finished + SETTLE_S - time.time()))
        started, rolled, error = time.time(), None, ""
        try:
            deploy_action.deploy(
                environments.paths, environment.name, environments.target, images=images
            )
        except ReleaseRolledBack as rollback:
            rolled = rollback
        except DeployerError as stuck:
            error = str(stuck)
        episodes.append(Episode(release, images, started, time.time(), rolled, error))
        if rolled is None:  # it went live or hung: put the good release back before the next
            deploy_action.deploy(
                environments.paths, environment.name, environments.target, images=previous
            )
    return previous, episodes


@then("Argo Rollouts rolled every one of them back with no human action")
def _(episodes: tuple[EngineImages, list[Episode]], record_figure: RecordFigure) -> None:
    _, ran = episodes
    for episode in ran:
        slug = episode.figures
        rolled = episode.rolled_back
        assert rolled is not None, (
            f"the {episode.release.name!r} release ({episode.images.api}) was not rolled "
            f"back: {episode.error or 'it went live'}"
        )
        record_figure(f"{slug}_seconds_to_rollback", round(rolled.seconds_to_abort, 1))
        record_figure(f"{slug}_seconds_until_desired_state_restored", round(rolled.seconds, 1))
        record_figure(f"{slug}_rollback_reason", rolled.reason)
    expected = {  # the controller's own words for each cause
        "never-ready": "timed out progressing",
        "crash-loop": "timed out progressing",
        "5xx-route": 'Metric "canary-5xx" assessed Failed',
    }
    for episode in ran:
        wanted = expected[episode.release.slug]
        reason = episode.rolled_back.reason if episode.rolled_back else ""
        assert wanted in reason, (
            f"the {episode.release.name!r} release was rolled back for another reason than "
            f"{wanted}: {reason}"
        )


@then("the environment serves the previous release again, on every pod")
def _(kube: Kube, environment: Environment, episodes: tuple[EngineImages, list[Episode]]) -> None:
    previous, _ = episodes
    state = rollouts.state(kube.api, environment.namespace, deploy_action.API_ROLLOUT)
    assert state is not None and state.healthy, f"engine-api's Rollout is not Healthy: {state}"
    pods = [
        pod
        for pod in kube.core.list_namespaced_pod(
            environment.namespace, label_selector="app.kubernetes.io/name=engine-api"
        ).items
        if pod.metadata.deletion_timestamp is None
    ]
    images = sorted({pod.spec.containers[0].image for pod in pods})
    assert images == [previous.api], f"engine-api pods run {images}, expected {previous.api}"
    assert len([p for p in pods if is_ready(p)]) == state.desired, "not every pod is Ready"
    answer = api_call(kube, environment, "GET", "/info", environment.token("reader"))
    assert answer.status == 200 and answer.body["config"]["revision"] == previous.revision, (
        f"/info answered {answer}"
    )


@then(
    "users saw no failed request while a release that never served was out, and the errors "
    "of the one that did are counted"
)
def _(
    kube: Kube,
    traffic: Traffic,
    episodes: tuple[EngineImages, list[Episode]],
    record_figure: RecordFigure,
) -> None:
    _, ran = episodes
    window_end = ran[-1].finished + SETTLE_S

    def logged_past_the_last_window() -> list[dict[str, Any]] | None:
        # A request is logged once answered (or timed out), so the ones sent just before
        # the last episode ended show up later: a run failed reading the log 63 ms early.
        logged = traffic.requests(kube)
        return logged if logged and logged[-1]["t"] >= window_end else None

    try:
        logged, _ = wait_until(
            logged_past_the_last_window,
            timeout=SETTLE_S + TRAFFIC_TIMEOUT_S + 15,
            interval=1,
            describe="the client's log to reach past the last release's window",
        )
    except WaitTimeout as error:
        raise AssertionError(f"the client stopped early: {error}") from None
    for episode in ran:
        window = [r for r in logged if episode.started <= r["t"] <= episode.finished + SETTLE_S]
        failed = [r for r in window if not r["ok"]]
        slug = episode.figures
        record_figure(f"{slug}_requests_during_episode", len(window))
        record_figure(f"{slug}_failed_requests_during_episode", len(failed))
        assert window, f"no request was sent while the {episode.release.name!r} release was out"
        if episode.release.slug == "5xx-route":
            # Control: that release did answer users (its route failed), so the analysis,
            # not luck, is what took it back.
            assert failed, "the 5xx release never answered a user: the analysis proved nothing"
        else:
            listed = "; ".join(
                f"{clients.clock(r['t'])} after {r['ms']} ms: {r['detail']}" for r in failed[:5]
            )
            assert not failed, (
                f"{len(failed)} of {len(window)} requests failed while the "
                f"{episode.release.name!r} release was out: {listed}"
            )
