"""A developer's side of the delivery pipeline: clone this machine's remote, commit, push, wait.

The remote is the deployer's (``pipeline remote``); its hook runs the real
workflow with act. The suite only pushes and then reads the run records the
workflow's stages wrote, and what runs in the cluster.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from deployer.actions import pipeline
from deployer.actions.pipeline import RunRecord
from deployer.lower.waiting import wait_until

# A pipeline run on this machine: tests ~35 s, build, staging rollout, validation.
RUN_TIMEOUT_S = 900
FAILING_TEST = '''"""Pushed by the acceptance suite: a red test that must stop the pipeline."""


def test_the_release_gate_holds() -> None:
    assert 1 + 1 == 3, "deliberately failing: the pipeline must stop after its tests"
'''


@dataclass(frozen=True)
class Push:
    """One commit pushed to the remote, and when."""

    label: str
    branch: str
    commit: str
    pushed_at: float

    @property
    def revision(self) -> str:
        """The tag suffix the pipeline's build gives this commit (``git rev-parse --short=12``)."""
        return self.commit[:12]


@dataclass
class Developer:
    """A clone of the pipeline's remote, committing as a developer would."""

    home: Path
    clone: Path
    pushes: dict[str, Push] = field(default_factory=dict)

    @classmethod
    def clone_remote(cls, home: Path, into: Path) -> Developer:
        remote = home / pipeline.REMOTE
        git(["clone", "--quiet", str(remote), str(into)], cwd=into.parent)
        return cls(home, into)

    def push(self, label: str, branch: str, files: dict[str, str], message: str) -> Push:
        """Commit ``files`` on top of main as ``branch`` and push it (the hook queues a run)."""
        git(["fetch", "--quiet", "origin"], cwd=self.clone)
        git(["checkout", "--quiet", "-B", branch, "origin/main"], cwd=self.clone)
        for relative, text in files.items():
            path = self.clone / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git(["add", "--all"], cwd=self.clone)
        git(["commit", "--quiet", "-m", message], cwd=self.clone)
        commit = git(["rev-parse", "HEAD"], cwd=self.clone).strip()
        pushed_at = time.time()
        git(["push", "--quiet", "origin", f"HEAD:refs/heads/{branch}"], cwd=self.clone)
        self.pushes[label] = Push(label, branch, commit, pushed_at)
        return self.pushes[label]

    def finished_run(self, push: Push, timeout: float = RUN_TIMEOUT_S) -> RunRecord:
        """The pipeline run of ``push``, once it has finished (success or failure)."""

        def finished() -> RunRecord | None:
            found = pipeline.find_runs(self.home, push.commit)
            done = [run for run in found if run.status in ("success", "failure")]
            return done[0] if done else None

        run, _ = wait_until(
            finished, timeout=timeout, interval=2, describe=f"the pipeline run of {push.label}"
        )
        return run


def git(arguments: list[str], cwd: Path) -> str:
    """git as a developer runs it: their identity, none of an outer hook's or tox's state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_AUTHOR_NAME="Acceptance Developer",
        GIT_AUTHOR_EMAIL="developer@ce.local",
        GIT_COMMITTER_NAME="Acceptance Developer",
        GIT_COMMITTER_EMAIL="developer@ce.local",
    )
    completed = subprocess.run(
        ["git", *arguments], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    if completed.returncode != 0:
        raise AssertionError(f"git {' '.join(arguments)} failed: {completed.stderr.strip()}")
    return completed.stdout


def push_the_three_commits(developer: Developer) -> None:
    """A green commit on main, a green one on a feature branch, a red one on main (only the
    green main commit may get past its tests, so staging must get that one)."""
    nonce = uuid.uuid4().hex[:8]
    note = f"# Release note {nonce}\n\nPushed by the acceptance suite to exercise the pipeline.\n"
    developer.push("green-main", "main", {f"docs/releases/{nonce}.md": note}, f"Release {nonce}")
    developer.push(
        "green-branch",
        f"feature/{nonce}",
        {f"docs/releases/{nonce}-draft.md": note},
        f"Draft {nonce} (feature branch)",
    )
    developer.push(
        "red-main",
        "main",
        {f"engine/tests/test_release_gate_{nonce}.py": FAILING_TEST},
        f"A change whose test fails ({nonce})",
    )
