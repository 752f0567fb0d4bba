"""Two lanes of scenarios on one cluster, with pytest-xdist: ``tox -e acceptance -- -n 2``.

The *main* lane is the serial run as it always was: it creates the cluster,
deploys the environments, runs every scenario that disturbs what others use
(``@alone``: a node lost, the API server or Prometheus restarted, faults in an
environment, timing trials) and every ordered one (``@light`` beside the
pipeline's staging deploy, ``@delivery`` last). The *side* lane runs the rest
(scenarios that neither disturb nor use staging, which the pipeline takes over)
on the same cluster and environments, which the main lane publishes to a folder
the controller hands both workers (its *board*).

A read-write lock across the two processes keeps them apart: an ``@alone``
scenario waits until the side lane's current scenario ends and holds the side
lane off until it ends. The main lane's delivery scenarios and its teardown of the
cluster wait until the side lane has finished.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

from deployer.actions.engine_images import EngineImages
from deployer.lower.waiting import wait_until
from steps.support.environments import (
    Environment,
    Environments,
    needed_in_order,
    scenario_steps,
)
from steps.support.provider import ClusterProvider
from steps.support.report import (
    REPORT_DIR_KEY,
    record_session_fact,
    run_directory,
    scenario_title,
)

log = logging.getLogger(__name__)

ALONE = "alone"  # marker: disturbs what other scenarios use, so runs with no other beside it
ORDERED = ("light", "delivery", "quiet", "nightly", "not_implemented")
EXCLUSIVE = (ALONE, "quiet", "delivery")  # in the main lane: nothing runs beside these
MAIN, SIDE, SERIAL = "main", "side", "serial"
BOARD_KEY = "ce_lanes_board"  # workerinput: the folder the lanes share
BOARD = pytest.StashKey[Path]()  # the controller's board
WAIT_S = 3600.0  # what one lane waits for the other at most (the whole run's scale)
CLUSTER = "cluster"
SIDE_STARTED, SIDE_FINISHED, MAIN_FINISHED = "side-started", "side-finished", "main-finished"
LANE = pytest.StashKey[str]()
SIDE_ITEMS = pytest.StashKey[int]()
NEEDS = pytest.StashKey[list[str]]()  # the environments a scenario deploys
ITEM_LANE = pytest.StashKey[str]()
LANES = "lanes"  # the board's document: each scenario's node id and lane


@dataclass(frozen=True)
class Board:
    """The folder the lanes share: what the main lane set up, and the lock."""

    path: Path

    def publish(self, name: str, document: dict[str, Any]) -> None:
        """Written whole, then renamed: a reader never sees half a document."""
        draft = self.path / f".{name}.json"
        draft.write_text(json.dumps(document, default=str))
        draft.replace(self.path / f"{name}.json")

    def read(self, name: str) -> dict[str, Any] | None:
        path = self.path / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def await_document(self, name: str, what: str) -> dict[str, Any]:
        """The main lane's document ``name``; fails with the main lane's own error, or when
        the main lane has finished without publishing it."""

        def published() -> dict[str, Any] | None:
            document = self.read(name)
            if document is None and self.read(MAIN_FINISHED) is not None:
                return {"error": "the main lane finished without it"}
            return document

        document = published()
        if document is None:
            log.info("side lane: waiting for the main lane's %s", what)
            found, waited = wait_until(
                published, timeout=WAIT_S, interval=1.0, describe=f"the main lane's {what}"
            )
            log.info("side lane: %s ready after %.0fs", what, waited)
            document = found
        if "error" in document:
            if str(document["error"]).startswith("not applicable"):
                pytest.skip(document["error"])  # what the main lane's own scenarios say too
            pytest.fail(f"the main lane could not provide {what}: {document['error']}")
        return document

    @contextmanager
    def turn(self, exclusive: bool, title: str) -> Iterator[None]:
        """Shared, or exclusive for an @alone scenario. A waiting exclusive request holds
        the turnstile, so the other lane cannot start one more shared scenario ahead of it."""
        with (
            open(self.path / "turnstile.lock", "a") as turnstile,
            open(self.path / "cluster.lock", "a") as cluster,
        ):
            take(turnstile, fcntl.LOCK_EX, "the turnstile", title)
            if exclusive:
                take(cluster, fcntl.LOCK_EX, "the other lane's scenario to end", title)
                fcntl.flock(turnstile, fcntl.LOCK_UN)
            else:
                fcntl.flock(turnstile, fcntl.LOCK_UN)
                take(cluster, fcntl.LOCK_SH, "an @alone scenario to end", title)
            try:
                yield
            finally:
                fcntl.flock(cluster, fcntl.LOCK_UN)


def take(handle: Any, mode: int, waiting_for: str, title: str) -> None:
    """flock, saying in the log when the other lane makes this scenario wait."""
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("lanes: %r waits for %s", title, waiting_for)
        fcntl.flock(handle, mode)


def board(config: pytest.Config) -> Board | None:
    """The shared folder on an xdist worker; None in a serial run."""
    folder = getattr(config, "workerinput", {}).get(BOARD_KEY)
    return Board(Path(folder)) if folder else None


def lane(config: pytest.Config) -> str:
    """serial (no xdist), main or side: the lane of the scenarios this process runs."""
    return config.stash.get(LANE, SERIAL)


def sets_up(config: pytest.Config) -> bool:
    """Whether this process deploys, pushes and tears down (serial or main lane)."""
    return lane(config) != SIDE


def side_eligible(item: pytest.Item, environments: list[str]) -> bool:
    """Neither disturbing nor ordered, and not on staging (the pipeline takes staging over
    while the main lane's @light scenarios run)."""
    if item.get_closest_marker(ALONE) or any(item.get_closest_marker(m) for m in ORDERED):
        return False
    return "staging" not in environments


@pytest.hookimpl(hookwrapper=True)
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Generator[None, None, None]:
    """After -k/-m have selected: the lanes of what is left."""
    yield
    assign(config, items)


def assign(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: give each scenario its lane, and write the split to the board
    for the controller's scheduler. Every worker collects the same items and computes
    the same split. One worker, or nothing for one lane: all main."""
    shared = board(config)
    if shared is None:
        return
    steps_of = scenario_steps(Path(config.rootpath) / "features")
    needs = [needed_in_order(steps_of, [scenario_title(item)]) for item in items]
    side = [side_eligible(item, need) for item, need in zip(items, needs, strict=True)]
    workers = int(getattr(config, "workerinput", {}).get("workercount", 1))
    if workers < 2 or all(side) or not any(side):
        side = [False] * len(items)
    config.stash[SIDE_ITEMS] = sum(side)
    for item, on_side, need in zip(items, side, needs, strict=True):
        item.stash[NEEDS] = need
        item.stash[ITEM_LANE] = SIDE if on_side else MAIN
    shared.publish(LANES, {item.nodeid: item.stash[ITEM_LANE] for item in items})


class LaneScheduling(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped
    """xdist's scheduling by scope, where a scope is a lane: each lane goes whole to one
    worker, which runs it in collection order."""

    def __init__(self, config: pytest.Config, shared: Board, log: Any = None) -> None:
        super().__init__(config, log)
        self.shared = shared

    def _split_scope(self, nodeid: str) -> str:
        lanes = self.shared.read(LANES) or {}
        return str(lanes.get(nodeid, MAIN))


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LaneScheduling | None:
    folder = config.stash.get(BOARD, None)
    return LaneScheduling(config, Board(folder), log) if folder is not None else None


def environment_document(name: str) -> str:
    """The board's document for one environment, as the main lane deployed it."""
    return f"environment-{name}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """On the controller of ``-n N``: one board for the run. On a worker: its log goes to
    a file in the run folder (xdist shows a worker's scenarios, not its live log)."""
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        config.stash[BOARD] = Path(tempfile.mkdtemp(prefix="ce-lanes-"))
    run_folder = getattr(config, "workerinput", {}).get(REPORT_DIR_KEY)
    if run_folder and board(config) is not None:
        worker = config.workerinput["workerid"]  # type: ignore[attr-defined]
        handler = logging.FileHandler(Path(run_folder) / f"worker-{worker}.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)


def pytest_sessionstart(session: pytest.Session) -> None:
    """The report says how the run was laid out: its times depend on it."""
    if session.config.stash.get(BOARD, None) is not None:
        record_session_fact(session.config, "lanes", "main and side (pytest-xdist, -n 2)")


def pytest_report_header(config: pytest.Config) -> list[str]:
    folder = run_directory(config)
    if config.stash.get(BOARD, None) is None:
        return []
    logs = f"; each worker's log: {folder}/worker-gw*.log" if folder is not None else ""
    return [f"lanes: main and side (steps/support/lanes.py){logs}"]


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: hand each worker the board."""
    folder = node.config.stash.get(BOARD, None)
    if folder is not None:
        node.workerinput[BOARD_KEY] = str(folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(BOARD, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> None:
    """The first scenario a worker runs tells its lane (the scheduler sends a lane whole)."""
    shared = board(item.config)
    if shared is None or LANE in item.config.stash:
        return
    item.config.stash[LANE] = item.stash.get(ITEM_LANE, MAIN)
    log.info("lanes: this worker runs the %s lane", lane(item.config))
    if lane(item.config) == SIDE:
        shared.publish(SIDE_STARTED, {"pid": os.getpid()})


def pytest_sessionfinish(session: pytest.Session) -> None:
    shared = board(session.config)
    if shared is not None:
        shared.publish(f"{lane(session.config)}-finished", {"pid": os.getpid()})


@pytest.fixture(autouse=True)
def lane_turn(request: pytest.FixtureRequest) -> Iterator[None]:
    """The side lane waits for what the main lane sets up; an @alone scenario has the
    cluster to itself; delivery waits until the side lane is done."""
    shared = board(request.config)
    if shared is None:
        yield
        return
    item = request.node
    if lane(request.config) == SIDE:
        shared.await_document(CLUSTER, "cluster")
        for name in item.stash.get(NEEDS, []):
            shared.await_document(environment_document(name), f"{name!r} environment")
    elif item.get_closest_marker("delivery"):
        await_side_finished(request.config)
    alone = lane(request.config) != SIDE and any(
        item.get_closest_marker(name) for name in EXCLUSIVE
    )
    with shared.turn(alone, item.name):
        yield


def main_finished(config: pytest.Config) -> None:
    """The main lane ran its last scenario and deployed all it will: say so (a side
    scenario still waiting for something fails now, not at the deadline), then wait until
    the side lane, which runs on this cluster and these environments, has finished."""
    shared = board(config)
    if shared is None or lane(config) != MAIN:
        return
    shared.publish(MAIN_FINISHED, {"pid": os.getpid()})
    await_side_finished(config)


def await_side_finished(config: pytest.Config) -> None:
    """Until the side lane has run its last scenario (or its worker is gone)."""
    shared = board(config)
    if shared is None or not config.stash.get(SIDE_ITEMS, 0) or lane(config) != MAIN:
        return

    def finished() -> bool:
        if shared.read(SIDE_FINISHED) is not None:
            return True
        started = shared.read(SIDE_STARTED)
        return started is not None and not alive(int(started["pid"]))

    log.info("main lane: waiting for the side lane to finish")
    _, waited = wait_until(finished, timeout=WAIT_S, interval=1.0, describe="the side lane")
    log.info("main lane: the side lane finished (waited %.0fs)", waited)


def refuse_environments(config: pytest.Config, names: list[str], reason: str) -> None:
    """The main lane will deploy none of ``names``: the side lane's scenarios fail now."""
    shared = board(config)
    if shared is not None and lane(config) == MAIN:
        for name in names:
            shared.publish(environment_document(name), {"error": reason})


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def publish_cluster(config: pytest.Config, document: dict[str, Any]) -> None:
    shared = board(config)
    if shared is not None and lane(config) == MAIN:
        shared.publish(CLUSTER, document)


def provider_document(provider: ClusterProvider) -> dict[str, Any]:
    return {
        "name": provider.name,
        "kubeconfig": str(provider.kubeconfig),
        "kind_name": provider.kind_name,
        "context": provider.context,
        "capabilities": sorted(provider.capabilities),
    }


def published_provider(config: pytest.Config) -> ClusterProvider:
    """The side lane's view of the main lane's cluster: the same capabilities, never deleted."""
    shared = board(config)
    assert shared is not None
    document = shared.await_document(CLUSTER, "cluster")
    return ClusterProvider(
        document["name"],
        Path(document["kubeconfig"]),
        kind_name=document["kind_name"],
        capabilities=frozenset(document["capabilities"]),
        context=document["context"],
    )


def announcer(config: pytest.Config) -> Callable[[str, Environment | BaseException], None] | None:
    """The main lane's ``Environments.announce``: each environment, once deployed, for the
    side lane (or the error that stopped it)."""
    shared = board(config)
    if shared is None or lane(config) != MAIN:
        return None

    def announce(name: str, outcome: Environment | BaseException) -> None:
        if isinstance(outcome, BaseException):
            shared.publish(environment_document(name), {"error": str(outcome).splitlines()[0]})
        else:
            shared.publish(environment_document(name), asdict(outcome))

    return announce


@dataclass
class PublishedEnvironments(Environments):
    """The side lane's environments: those the main lane deployed, never deployed here."""

    shared: Board | None = None

    def ensure(self, name: str) -> Environment:
        if name not in self.deployed:
            assert self.shared is not None
            document = self.shared.await_document(
                environment_document(name), f"{name!r} environment"
            )
            images = EngineImages(**document.pop("images"))
            if images.sbom is not None:
                images.sbom = Path(images.sbom)
            self.deployed[name] = Environment(images=images, **document)
        return self.deployed[name]

    def cleanup(self) -> None:
        """The main lane deletes what it created."""
