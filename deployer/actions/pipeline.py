"""The delivery pipeline on this machine: a git remote whose hook runs our workflows with act.

Hosted CI runs .github/workflows/pipeline.yml itself. Here, ``pipeline remote``
makes a bare repository whose post-receive hook hands every pushed commit to
``pipeline trigger``; a detached ``pipeline run`` then checks the commit out in
the runner's workspace and runs the same workflow with nektos/act on a
self-hosted runner (this machine, two runners, each with its workspace). The
workflow's steps call ``pipeline test|build|deploy|validate``, which record what
they did in the run's folder: ``pipeline status`` and the acceptance scenarios
read those records, never the workflow's intentions.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from deployer.catalog import go_programs
from deployer.errors import CommandError, ConfigError, DeployerError
from deployer.lower import gobuild, proc
from deployer.settings import Paths, load_versions

log = logging.getLogger(__name__)

REMOTE = "engine.git"
WORKFLOW = ".github/workflows/pipeline.yml"
ZERO = "0" * 40
RUN_TIMEOUT_S = 45 * 60
RUNNERS = 2
# What the runner must not inherit from whoever pushed: an outer tox or pytest, or git's hook state.
INHERITED_PREFIXES = ("GIT_", "TOX_", "PYTEST_", "VIRTUAL_ENV", "PYTHONPATH", "_PYTEST")


@dataclass
class StageRecord:
    """What one pipeline stage did, written by the stage itself."""

    stage: str
    result: str  # "running", "success" or "failure"
    started: float
    finished: float | None = None
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else round(self.finished - self.started, 1)


@dataclass
class RunRecord:
    """One pipeline run: a pushed commit, its ref, its stages and its outcome."""

    id: str
    commit: str
    ref: str
    before: str
    queued: float
    status: str = "queued"  # queued, running, success, failure, cancelled
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    runner_pid: int | None = None  # leads the runner's process group (act and the steps)
    stages: dict[str, StageRecord] = field(default_factory=dict)

    @property
    def branch(self) -> str:
        return self.ref.removeprefix("refs/heads/")


def home_config(home: Path) -> dict[str, str]:
    path = home / "config.json"
    if not path.exists():
        raise ConfigError(
            f"no pipeline remote in {home}; create one: python -m deployer pipeline remote"
        )
    config: dict[str, str] = json.loads(path.read_text())
    return config


def create_remote(paths: Paths, home: Path, source: Path, cluster: str) -> Path:
    """A bare repository seeded with ``source``'s HEAD on main, whose hook starts a run per push.

    Idempotent: an existing remote keeps its history; its hook and settings are rewritten."""
    remote = home / REMOTE
    home.mkdir(parents=True, exist_ok=True)
    if not (remote / "HEAD").exists():
        head = proc.run(["git", "-C", source, "rev-parse", "HEAD"], timeout=30).strip()
        proc.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", remote], timeout=30)
        proc.run(
            ["git", "-C", remote, "fetch", "--quiet", source, f"{head}:refs/heads/main"],
            timeout=300,
        )
        log.info("pipeline remote %s seeded with %s on main", remote, head[:12])
    hook = remote / "hooks" / "post-receive"
    command = " ".join(
        shlex.quote(part)
        for part in (sys.executable, "-m", "deployer", "pipeline", "trigger", "--home", str(home))
    )
    hook.write_text(
        "#!/bin/sh\n"
        "# Written by `python -m deployer pipeline remote`: each pushed ref starts a run.\n"
        "while read -r before after ref; do\n"
        f"  env -u GIT_DIR -u GIT_QUARANTINE_PATH PYTHONPATH={shlex.quote(str(paths.repo))} \\\n"
        f'    {command} --before "$before" --after "$after" --ref "$ref"\n'
        "done\n"
    )
    hook.chmod(0o755)
    (home / "config.json").write_text(json.dumps({"cluster": cluster, "remote": str(remote)}))
    return remote


def trigger(paths: Paths, home: Path, before: str, after: str, ref: str) -> RunRecord | None:
    """Queue a run for one pushed ref and start its runner detached, so the push returns."""
    if after == ZERO:
        print(f"pipeline: {ref} deleted, nothing to run")
        return None
    run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{after[:8]}-{secrets.token_hex(2)}"
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    record = RunRecord(run_id, after, ref, before, time.time())
    save_run(run_dir, record)
    with (run_dir / "runner.log").open("w") as out:
        runner = subprocess.Popen(  # noqa: S603 - argv list, no shell
            [
                sys.executable,
                "-m",
                "deployer",
                "pipeline",
                "run",
                "--home",
                str(home),
                "--id",
                run_id,
            ],
            cwd=paths.repo,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    record.runner_pid = runner.pid
    save_run(run_dir, record)
    print(f"pipeline: run {run_id} queued for {after[:12]} ({ref}); log {run_dir / 'pipeline.log'}")
    return record


def run(paths: Paths, home: Path, run_id: str) -> int:
    """Check the commit out in the runner's workspace and run the workflow with act."""
    run_dir = home / "runs" / run_id
    record = load_run(run_dir)
    with runner_slot(home) as slot:
        record.status, record.started = "running", time.time()
        save_run(run_dir, record)
        workspace = home / f"workspace-{slot}"
        try:
            config = home_config(home)
            program = go_programs(paths, load_versions(paths))["act"]
            act = gobuild.build(program, paths.go_bin, gobuild.go_version())
            env = _runner_env(paths, slot)
            _check_out(Path(config["remote"]), workspace, record, env)
            event = run_dir / "event.json"
            event.write_text(json.dumps(_push_event(record)))
            argv = [
                str(act.binary("act")),
                "push",
                "--eventpath", str(event),
                "--workflows", WORKFLOW,
                "--platform", "ubuntu-latest=-self-hosted",
                "--var", f"CE_WORKSPACE={workspace}",
                "--var", f"CE_CLUSTER={config['cluster']}",
                "--env", f"CE_PIPELINE_RUN_DIR={run_dir}",
            ]  # fmt: skip
            with (run_dir / "pipeline.log").open("w") as out:
                completed = subprocess.run(  # noqa: S603 - argv list, no shell
                    argv,
                    cwd=workspace,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=RUN_TIMEOUT_S,
                    check=False,
                )
            record.exit_code = completed.returncode
        except (DeployerError, OSError, subprocess.SubprocessError) as error:
            with (run_dir / "pipeline.log").open("a") as out:
                out.write(f"\npipeline runner: {error}\n")
            record.exit_code = -1
        record.status = "success" if record.exit_code == 0 else "failure"
        record.finished = time.time()
        save_run(run_dir, record)
    log.info("pipeline run %s: %s", run_id, record.status)
    return 0 if record.status == "success" else 1


@contextmanager
def runner_slot(home: Path, slots: int = RUNNERS) -> Iterator[int]:
    """One of ``slots`` runners on this machine (the others wait): two, so that one run's
    tests overlap another's build and deploy on 2 cores; each runner has its workspace."""
    (home / "runners").mkdir(exist_ok=True)
    while True:
        for slot in range(slots):
            with (home / "runners" / f"{slot}.lock").open("w") as lock:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                try:
                    yield slot
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                return
        time.sleep(1)


@contextmanager
def environment_lock(
    paths: Paths, cluster: str, environment: str, holder: str = ""
) -> Iterator[float]:
    """One pipeline step at a time on an environment, and none while someone holds it (the
    acceptance suite, while its scenarios use staging); yields the seconds waited. The
    workflow's ``concurrency`` says the same to hosted CI."""
    folder = paths.pipeline_home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{cluster}-{environment}.lock"
    started = time.monotonic()
    with path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            log.info("waiting for %s/%s, held by %s", cluster, environment, lock.read().strip())
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write(holder or f"pipeline step, pid {os.getpid()}")
        lock.flush()
        try:
            yield round(time.monotonic() - started, 1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _check_out(remote: Path, workspace: Path, record: RunRecord, clean: dict[str, str]) -> None:
    shutil.rmtree(workspace, ignore_errors=True)
    subprocess.run(  # noqa: S603
        ["git", "clone", "--quiet", "--shared", "--no-checkout", str(remote), str(workspace)],
        env=clean, check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    subprocess.run(  # noqa: S603
        ["git", "-C", str(workspace), "checkout", "--quiet", "-B", record.branch, record.commit],
        env=clean, check=True, timeout=120, capture_output=True,
    )  # fmt: skip


def _push_event(record: RunRecord) -> dict[str, Any]:
    return {
        "ref": record.ref,
        "before": record.before,
        "after": record.commit,
        "repository": {"name": "consciousness-engine", "default_branch": "main"},
        "head_commit": {"id": record.commit},
        "pusher": {"name": os.environ.get("USER", "unknown")},
    }


def _runner_env(paths: Paths, slot: int) -> dict[str, str]:
    """The runner's environment: ours, minus an outer tox/pytest/git; the interpreter that
    runs the deployer first on PATH (the workflow calls ``python``); test virtualenvs of
    its own, kept in the cache across runs (a checkout elsewhere must not rebuild ours).
    Each runner slot has its own virtualenvs and virtualenv seed cache: two runs creating
    the same ones at once on a new machine broke each other's (a seed directory deleted
    under the other's feet)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED_PREFIXES)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    work = paths.cache / "pipeline-tox" / f"runner-{slot}"
    env["CE_TOX_WORK_DIR"] = str(work)
    env["VIRTUALENV_OVERRIDE_APP_DATA"] = str(work / "virtualenv-app-data")
    return env


def cancel_unfinished(home: Path) -> list[str]:
    """Stop every run still queued or running (its runner's whole process group): what a
    CI system does to a job whose caller went away. Returns the cancelled run IDs."""
    cancelled = []
    for record in runs(home, limit=1000):
        if record.status not in ("queued", "running") or record.runner_pid is None:
            continue
        try:
            os.killpg(record.runner_pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        record.status, record.finished = "cancelled", time.time()
        save_run(home / "runs" / record.id, record)
        cancelled.append(record.id)
    return cancelled


def save_run(run_dir: Path, record: RunRecord) -> None:
    data = asdict(record)
    data.pop("stages")
    tmp = run_dir / "run.json.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(run_dir / "run.json")


def load_run(run_dir: Path) -> RunRecord:
    """A run's record; fields a newer deployer added are ignored, not an error."""
    data = json.loads((run_dir / "run.json").read_text())
    known = {f.name for f in fields(RunRecord)} - {"stages"}
    record = RunRecord(**{k: v for k, v in data.items() if k in known})
    stages = [StageRecord(**json.loads(p.read_text())) for p in run_dir.glob("stage-*.json")]
    record.stages = {stage.stage: stage for stage in sorted(stages, key=lambda s: s.started)}
    return record


def runs(home: Path, limit: int = 20) -> list[RunRecord]:
    """The most recent runs first."""
    folders = sorted((home / "runs").glob("*/run.json"), reverse=True)[:limit]
    return [load_run(path.parent) for path in folders]


def find_runs(home: Path, commit: str) -> list[RunRecord]:
    return [record for record in runs(home, limit=200) if record.commit.startswith(commit)]


# --- stages (called by the workflow's steps) ----------------------------------------------


def stage_dir() -> Path | None:
    """Where this job records its stages: the run's folder when a runner gave one."""
    given = os.environ.get("CE_PIPELINE_RUN_DIR")
    return Path(given) if given else None


@contextmanager
def stage(name: str) -> Iterator[StageRecord]:
    """Record a stage's start, outcome and details; a failure is recorded, then raised."""
    record = StageRecord(name, "running", time.time())
    folder = stage_dir()

    def write() -> None:
        if folder is not None:
            (folder / f"stage-{name}.json").write_text(json.dumps(asdict(record), indent=2))

    write()
    try:
        yield record
    except (DeployerError, AssertionError) as error:
        record.result, record.error, record.finished = "failure", str(error)[-2000:], time.time()
        write()
        raise
    record.result, record.finished = "success", time.time()
    write()
    log.info("stage %s: success in %.1fs", name, record.seconds or 0.0)


TEST_ENVS = "unit,engine"


def stage_test(paths: Paths) -> None:
    """The fast tests: the deployer's unit tests and the engine's tests against a real Postgres."""
    with stage("test") as record:
        record.details["tox_envs"] = TEST_ENVS
        try:
            proc.run(
                [paths.repo / "scripts" / "tox", "-e", TEST_ENVS],
                cwd=paths.repo,
                timeout=20 * 60,
                describe="tests",
            )
        except CommandError as failed:
            record.details["output_tail"] = failed.output_tail
            raise DeployerError(f"tests failed ({TEST_ENVS})") from None


def actionlint(paths: Paths) -> int:
    """Lint the workflows with actionlint (built from its pinned Go module); its exit code."""
    program = go_programs(paths, load_versions(paths))["actionlint"]
    built = gobuild.build(program, paths.go_bin, gobuild.go_version())
    workflows = sorted((paths.repo / ".github" / "workflows").glob("*.yml"))
    completed = subprocess.run(  # noqa: S603 - argv list, no shell
        [str(built.binary("actionlint")), "-color=false", *map(str, workflows)],
        cwd=paths.repo,
        check=False,
        timeout=300,
    )
    if completed.returncode == 0:
        print(f"actionlint: {len(workflows)} workflows clean")
    return completed.returncode


def format_status(records: list[RunRecord]) -> list[str]:
    """``pipeline status``: one line per run, then its stages."""
    lines = []
    for record in records:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.queued))
        took = (
            f"{record.finished - record.started:.0f}s"
            if record.finished and record.started
            else "-"
        )
        lines.append(
            f"{record.id}  {record.commit[:12]}  {record.branch:<20} "
            f"{record.status:<8} {when}  {took}"
        )
        for stage_record in record.stages.values():
            image = stage_record.details.get("images", {}).get("api", "")
            lines.append(
                f"    {stage_record.stage:<9} {stage_record.result:<8} "
                f"{stage_record.seconds if stage_record.seconds is not None else '-':>6}s  {image}"
            )
    return lines
