"""The pipeline's plumbing without act or a cluster: the remote, its hook, run and stage records."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from deployer.actions import pipeline
from deployer.errors import ConfigError, DeployerError
from deployer.settings import Paths


def git(*arguments: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t")
    env.update(GIT_COMMITTER_EMAIL="t@t")
    done = subprocess.run(
        ["git", *arguments], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    repo = tmp_path / "source"
    repo.mkdir()
    git("init", "--quiet", "--initial-branch=feature", cwd=repo)
    (repo / "README.md").write_text("hello\n")
    git("add", "README.md", cwd=repo)
    git("commit", "--quiet", "-m", "first", cwd=repo)
    return repo


def test_the_remote_is_seeded_on_main_and_its_hook_triggers_a_run(
    tmp_path: Path, source: Path
) -> None:
    home = tmp_path / "home"
    paths = Paths(repo=Path(__file__).resolve().parent.parent, cache=tmp_path / "cache")
    remote = pipeline.create_remote(paths, home, source, "ce-test")
    head = git("rev-parse", "HEAD", cwd=source)
    assert git("rev-parse", "refs/heads/main", cwd=remote) == head
    hook = remote / "hooks" / "post-receive"
    assert os.access(hook, os.X_OK)
    assert "pipeline trigger" in hook.read_text() and str(home) in hook.read_text()
    assert pipeline.home_config(home) == {"cluster": "ce-test", "remote": str(remote)}
    # Idempotent: a second call keeps the history and rewrites the settings.
    pipeline.create_remote(paths, home, source, "ce-other")
    assert pipeline.home_config(home)["cluster"] == "ce-other"
    assert git("rev-parse", "refs/heads/main", cwd=remote) == head


def test_a_missing_remote_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no pipeline remote"):
        pipeline.home_config(tmp_path)


def test_a_deleted_branch_starts_no_run(tmp_path: Path) -> None:
    paths = Paths(repo=tmp_path, cache=tmp_path)
    assert pipeline.trigger(paths, tmp_path, "a" * 40, pipeline.ZERO, "refs/heads/x") is None
    assert not (tmp_path / "runs").exists()


def test_stages_record_success_and_failure_in_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "runs" / "20260101T000000-abcdef12-0000"
    run_dir.mkdir(parents=True)
    record = pipeline.RunRecord("20260101T000000-abcdef12-0000", "abcdef12" * 5, "refs/heads/main",
                                pipeline.ZERO, 1.0)  # fmt: skip
    pipeline.save_run(run_dir, record)
    monkeypatch.setenv("CE_PIPELINE_RUN_DIR", str(run_dir))
    with pipeline.stage("test") as stage:
        stage.details["tox_envs"] = "unit"
    with pytest.raises(DeployerError), pipeline.stage("build"):
        raise DeployerError("no space left")
    loaded = pipeline.load_run(run_dir)
    assert loaded.stages["test"].result == "success" and loaded.stages["test"].finished
    assert loaded.stages["build"].result == "failure"
    assert "no space left" in loaded.stages["build"].error
    assert pipeline.find_runs(tmp_path, "abcdef12")[0].id == record.id
    lines = pipeline.format_status(pipeline.runs(tmp_path))
    assert lines[0].startswith(record.id) and "main" in lines[0]
    assert any("build" in line and "failure" in line for line in lines[1:])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "queued"


def test_unfinished_runs_are_cancelled_with_their_whole_process_group(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "20260101T000000-0000aaaa-0001"
    run_dir.mkdir(parents=True)
    runner = subprocess.Popen(["sleep", "60"], start_new_session=True)
    record = pipeline.RunRecord(run_dir.name, "0" * 40, "refs/heads/main", pipeline.ZERO, 1.0)
    record.status, record.runner_pid = "running", runner.pid
    pipeline.save_run(run_dir, record)
    assert pipeline.cancel_unfinished(tmp_path) == [run_dir.name]
    assert runner.wait(timeout=10) == -15
    assert pipeline.load_run(run_dir).status == "cancelled"
    assert pipeline.cancel_unfinished(tmp_path) == []


def test_each_runner_slot_has_its_own_virtualenvs(tmp_path: Path) -> None:
    """Two runs creating the same virtualenvs at once broke each other on a new machine."""
    paths = Paths(repo=tmp_path, cache=tmp_path / "cache")
    first, second = pipeline._runner_env(paths, 0), pipeline._runner_env(paths, 1)
    for key in ("CE_TOX_WORK_DIR", "VIRTUALENV_OVERRIDE_APP_DATA"):
        assert first[key] != second[key]
        assert first[key].startswith(str(paths.cache))
