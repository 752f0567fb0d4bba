"""pytest plugin: the release-approval report.

Each run writes reports/<UTC timestamp>/ (JUnit XML, HTML, requirements.json)
and points reports/latest at it. requirements.json has one entry per
criterion R1.1..R5.5 with a status, its scenarios and the figures they
measured; the HTML report shows the same as a 25-row coverage table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from deployer.actions import evidence
from deployer.lower import signing
from steps.support import approval
from steps.support.host_cpu import CpuWindow

REQUIREMENT_IDS = [f"R{group}.{item}" for group in range(1, 6) for item in range(1, 6)]
REQUIREMENT_MARK = re.compile(r"^R[1-5]\.[1-5]$")
FIGURE_PREFIX = "figure."
LEFT_OUT = "left_out"  # a part of a scenario this provider could not check (JUnit property)
FAILED_STEP = "failed_step"  # "<given|when|then> <step text>" of a failed scenario
DETAIL_LINES = 25
NOT_IMPLEMENTED = "not implemented"
NOT_APPLICABLE = "not applicable"

# Worst status wins when a criterion has several scenarios.
# not_run: the criterion has scenarios, but this run deselected them (-k, -m).
SEVERITY = ["failed", "skipped", "not_implemented", "not_applicable", "not_run", "passed"]


RecordFigure = Callable[[str, float | int | str], None]
RecordLeftOut = Callable[[str], None]


@pytest.fixture
def record_figure(record_property: Callable[[str, object], None]) -> RecordFigure:
    """Record a measured figure: it lands in the JUnit properties and requirements.json."""

    def record(name: str, value: float | int | str) -> None:
        record_property(FIGURE_PREFIX + name, value)

    return record


@pytest.fixture
def record_left_out(record_property: Callable[[str, object], None]) -> RecordLeftOut:
    """Name a part of the scenario that was not checked on this provider (a fault it cannot
    make): the scenario may still pass on the rest, and the report says "passed in part"
    with what was left out, so an approver never reads a partial pass as a whole one."""

    def record(what: str) -> None:
        record_property(LEFT_OUT, what)

    return record


@dataclass
class ScenarioResult:
    nodeid: str
    name: str
    requirements: list[str]
    title: str = ""  # the scenario's own title, from the feature file
    status: str = "passed"
    reason: str = ""
    detail: str = ""  # the end of a failure's output
    duration_s: float = 0.0
    host_busy_pct: float | None = None  # the host's CPU over setup, call and teardown
    figures: dict[str, Any] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)


@dataclass
class ReportState:
    directory: Path
    worker: bool = False  # an xdist worker: it hands its facts to the controller, which writes
    results: dict[str, ScenarioResult] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    session: dict[str, Any] = field(default_factory=dict)
    deselected: set[str] = field(default_factory=set)  # criteria of deselected scenarios
    exit_status: int | None = None


STATE_KEY = pytest.StashKey[ReportState]()
WINDOW_KEY = pytest.StashKey[CpuWindow]()
REPORT_DIR_KEY = "ce_report_dir"  # xdist workerinput: the controller's run folder


def report_root(config: pytest.Config) -> Path:
    return Path(config.rootpath) / "reports"


def pytest_configure(config: pytest.Config) -> None:
    if config.option.collectonly or not config.getoption("acceptance_report"):
        return
    handed = getattr(config, "workerinput", {}).get(REPORT_DIR_KEY)
    if handed:  # an xdist worker writes evidence into the controller's folder
        config.stash[STATE_KEY] = ReportState(Path(handed), worker=True)
        return
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    directory = report_root(config) / stamp
    directory.mkdir(parents=True, exist_ok=True)
    if not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(directory / "junit.xml")
    if hasattr(config.option, "htmlpath") and not config.option.htmlpath:
        config.option.htmlpath = str(directory / "report.html")
        config.option.self_contained_html = True
    config.stash[STATE_KEY] = ReportState(directory)
    config.pluginmanager.register(Recorder(config.stash[STATE_KEY]), "ce-report-recorder")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker's evidence goes to the one run folder."""
    state = _state(node.config)
    if state is not None:
        node.workerinput[REPORT_DIR_KEY] = str(state.directory)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist: a worker's session facts and deselected criteria join the controller's."""
    state = _state(node.config)
    handed = getattr(node, "workeroutput", {}).get("ce_report")
    if state is not None and handed:
        state.session.update(handed["session"])
        state.deselected.update(handed["deselected"])


def point_latest(config: pytest.Config, directory: Path) -> None:
    """reports/latest names a sealed run: moved only once this run's bundle is sealed, so
    a run that started meanwhile (and waits for the cluster) cannot swap it under the
    verification of this one."""
    latest = report_root(config) / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(directory.name)


def _state(config: pytest.Config) -> ReportState | None:
    return config.stash.get(STATE_KEY, None)


def run_directory(config: pytest.Config) -> Path | None:
    """This run's report folder (None without --acceptance-report)."""
    state = _state(config)
    return state.directory if state is not None else None


def evidence_dir(config: pytest.Config) -> Path:
    """Where a scenario keeps files for the report (screenshots, CSVs, plots)."""
    state = _state(config)
    base = state.directory if state is not None else report_root(config) / "untracked"
    return base / "evidence"


def scenario_title(item: pytest.Item) -> str:
    """A scenario's own title ("" for a test that is not a scenario): pytest-bdd documents
    a scenario's test as "<feature file>: <scenario>"."""
    feature, _, scenario = str(getattr(item, "obj", None).__doc__).partition(": ")
    return scenario if feature.endswith(".feature") else ""


def record_session_fact(config: pytest.Config, name: str, value: Any) -> None:
    """Facts about the whole run (cluster provider, seconds to a Ready cluster, versions)."""
    state = _state(config)
    if state is not None:
        state.session[name] = value


def load_budgets(root: Path) -> dict[str, Any]:
    path = root / "benchmarks" / "budgets.toml"
    return tomllib.loads(path.read_text()) if path.exists() else {}


def classify_skip(reason: str) -> str:
    lowered = reason.lower()
    if NOT_IMPLEMENTED in lowered:
        return "not_implemented"
    if NOT_APPLICABLE in lowered:
        return "not_applicable"
    return "skipped"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, Any, None]:
    """How busy the host was during each scenario: with a kind cluster built here the
    host is every node, so this says which scenarios had the CPU to themselves and which
    left it idle (waiting on a controller's clock), i.e. what parallel scenarios could
    gain on this machine."""
    item.stash[WINDOW_KEY] = CpuWindow()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """What the report needs of the item travels on the report itself (xdist hands
    reports, not items, to the controller): its criteria, title and host CPU share."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if _state(item.config) is None:
        return
    report.ce_scenario = {  # type: ignore[attr-defined]
        "name": item.name,
        "requirements": sorted(
            m.name for m in item.iter_markers() if REQUIREMENT_MARK.match(m.name)
        ),
        "title": scenario_title(item),
    }
    window = item.stash.get(WINDOW_KEY, None)
    if report.when == "teardown" and window is not None:
        report.ce_host_busy_pct = window.share().busy_pct  # type: ignore[attr-defined]


@dataclass(eq=False)  # a plugin: hashed by identity
class Recorder:
    """The serial run's or the xdist controller's account of each scenario, from its
    reports (registered as a plugin at configure, as it holds this run's state)."""

    state: ReportState

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        scenario = getattr(report, "ce_scenario", None)
        if scenario is not None:
            record_report(self.state, report, scenario)


def record_report(state: ReportState, report: pytest.TestReport, scenario: dict[str, Any]) -> None:
    result = state.results.setdefault(
        report.nodeid,
        ScenarioResult(
            nodeid=report.nodeid,
            name=scenario["name"],
            requirements=list(scenario["requirements"]),
            title=scenario["title"],
        ),
    )
    result.duration_s += report.duration
    busy = getattr(report, "ce_host_busy_pct", None)
    if busy is not None:
        result.host_busy_pct = busy
    for key, value in report.user_properties:
        if key.startswith(FIGURE_PREFIX):
            result.figures[key[len(FIGURE_PREFIX) :]] = value
        elif key == LEFT_OUT and value not in result.left_out:
            result.left_out.append(str(value))
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        result.status, result.reason = classify_skip(reason), reason.removeprefix("Skipped: ")
    elif report.failed:
        result.status = "failed"
        result.reason = (
            f"{report.when}: {report.longreprtext.strip().splitlines()[-1][:300]}"
            if report.longreprtext
            else report.when
        )
        result.detail = "\n".join(report.longreprtext.strip().splitlines()[-DETAIL_LINES:])


def pytest_bdd_step_error(request: pytest.FixtureRequest, step: Any) -> None:
    """Name the step that failed in the JUnit properties: a negative control counts a
    failure in a Given (the setup) as proving nothing, and a reader sees where it broke."""
    request.node.user_properties.append((FAILED_STEP, f"{step.type} {step.name}"))


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        state = _state(item.config)
        if state is not None:
            state.deselected.update(
                m.name for m in item.iter_markers() if REQUIREMENT_MARK.match(m.name)
            )


def scenario_entry(result: ScenarioResult) -> dict[str, Any]:
    return {
        "name": result.name,
        "title": result.title,
        "nodeid": result.nodeid,
        "status": result.status,
        "reason": result.reason,
        "detail": result.detail,
        "duration_s": round(result.duration_s, 2),
        "host_busy_pct": result.host_busy_pct,
        "figures": result.figures,
        "left_out": result.left_out,
    }


def coverage(state: ReportState) -> dict[str, dict[str, Any]]:
    """One entry per criterion: worst scenario status, its scenarios, merged figures."""
    table: dict[str, dict[str, Any]] = {}
    for requirement in REQUIREMENT_IDS:
        scenarios = [r for r in state.results.values() if requirement in r.requirements]
        unrun = "not_run" if requirement in state.deselected else "not_implemented"
        statuses = [r.status for r in scenarios] or [unrun]
        status = min(statuses, key=SEVERITY.index)
        figures: dict[str, Any] = {}
        for scenario in scenarios:
            figures.update(scenario.figures)
        table[requirement] = {
            "status": status,
            "scenarios": [scenario_entry(r) for r in scenarios],
            "figures": figures,
            # A pass that left parts out (this provider cannot make them) is a pass in part.
            "left_out": [what for r in scenarios if r.status == "passed" for what in r.left_out],
        }
    return table


def host_cpu_use(results: list[ScenarioResult]) -> dict[str, float]:
    """The host's CPU over the scenarios, weighted by their time: the busy share, and the
    idle core-seconds, which is the most a second lane of scenarios could use."""
    measured = [r for r in results if r.host_busy_pct is not None and r.duration_s > 0]
    seconds = sum(r.duration_s for r in measured)
    if not seconds:
        return {}
    busy = sum(r.duration_s * (r.host_busy_pct or 0.0) for r in measured) / seconds
    cores = os.cpu_count() or 1
    return {
        "scenario_seconds": round(seconds, 1),
        "host_busy_pct": round(busy, 1),
        "idle_core_seconds": round(seconds * cores * (100 - busy) / 100, 1),
    }


def run_document(state: ReportState, root: Path, exitstatus: int) -> dict[str, Any]:
    """requirements.json's content: the coverage table, the session facts, the budgets."""
    table = coverage(state)
    summary = {
        status: sum(1 for entry in table.values() if entry["status"] == status)
        for status in SEVERITY
    }
    summary["passed_in_part"] = sum(
        1 for entry in table.values() if approval.shown_status(entry) == "passed_in_part"
    )
    return {
        "generated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_s": round(time.time() - state.started, 1),
        "pytest_exit_status": int(exitstatus),
        "summary": summary,
        "session": state.session,
        "host_cpu_during_scenarios": host_cpu_use(list(state.results.values())),
        "budgets": load_budgets(root),
        "requirements": table,
        "other_scenarios": [
            scenario_entry(r) for r in state.results.values() if not r.requirements
        ],
    }


def approval_fragment(document: dict[str, Any], root: Path, state: ReportState) -> str:
    return approval.page(
        document,
        approval.load_criteria(root / "features" / "criteria.toml"),
        document["budgets"],
        state.directory / "evidence",
        approval.latest_controls(root / "reports"),
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    state = _state(session.config)
    if state is None:
        return
    if state.worker:
        session.config.workeroutput["ce_report"] = {  # type: ignore[attr-defined]
            "session": state.session,
            "deselected": sorted(state.deselected),
        }
        return
    root = Path(session.config.rootpath)
    exitstatus = int(session.exitstatus)  # conftest may have told "could not run" apart
    document = run_document(state, root, exitstatus)
    (state.directory / "requirements.json").write_text(json.dumps(document, indent=2, default=str))
    (state.directory / "summary.html").write_text(
        approval.standalone(approval_fragment(document, root, state))
    )
    state.exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Seal the report once every file is written (pytest-html writes at session finish)."""
    state = _state(config)
    if state is None or state.exit_status is None:
        return
    key = signing.load_or_create()
    if key.created:
        print(
            f"\nNew evidence signing key {key.source}; publish its public part: "
            f"{signing.public_file(Path(key.source))}"
        )
    facts = {
        "revision": git_revision(Path(config.rootpath)),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(state.started)),
        "pytest_exit_status": state.exit_status,
        **state.session,
    }
    sealed = evidence.seal(state.directory, key, facts)
    point_latest(config, state.directory)
    print(f"\nEvidence bundle: {sealed.archive} ({sealed.files} files, signed by {sealed.signer})")


def git_revision(root: Path) -> str:
    """HEAD, marked "+changes" when the working tree differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def pytest_html_results_summary(
    prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
) -> None:
    """The approval page opens report.html; pytest-html's own table follows it."""
    state = _state(session.config)
    if state is None:
        return
    root = Path(session.config.rootpath)
    document = run_document(state, root, int(session.exitstatus))
    prefix.append(approval.embedded(approval_fragment(document, root, state)))
