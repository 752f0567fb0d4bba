"""Run a subprocess with a deadline, its output streamed to the log."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from deployer.errors import CommandError

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0


def run(
    command: Sequence[str | Path],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    describe: str = "",
) -> str:
    """Run ``command`` (check=True semantics) and return its combined output.

    Every line goes to the debug log; a heartbeat at INFO level shows long
    steps are alive. Failure or timeout raises CommandError with the tail of
    the output so the user sees why without opening the log.
    """
    argv = [str(part) for part in command]
    label = describe or Path(argv[0]).name
    full_env = {**os.environ, **(env or {})}
    log.debug("run: %s (cwd=%s, timeout=%ss)", " ".join(argv), cwd, timeout)
    started = time.monotonic()
    lines: list[str] = []
    with subprocess.Popen(  # noqa: S603 - argv list, no shell
        argv,
        cwd=cwd,
        env=full_env,
        stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        # Its own process group, so stopping it stops its children too (they hold the pipe).
        start_new_session=True,
    ) as process:
        reader = threading.Thread(target=_pump, args=(process, lines, label), daemon=True)
        reader.start()
        if input_text is not None:
            assert process.stdin is not None
            process.stdin.write(input_text)
            process.stdin.close()
        try:
            _wait(process, argv, label, lines, started, timeout)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM: stop the child now. Leaving the with-block first would
            # close its stdout under the reader thread and hang until the child ends.
            _kill_group(process)
            raise
        reader.join(timeout=5)
    output = "\n".join(lines)
    if process.returncode != 0:
        raise CommandError(
            argv, f"exited with status {process.returncode}", "\n".join(list(lines)[-20:])
        )
    return output


def _kill_group(process: subprocess.Popen[str]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone
    process.wait()


def _pump(process: subprocess.Popen[str], lines: list[str], label: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        stripped = line.rstrip("\n")
        lines.append(stripped)
        log.debug("[%s] %s", label, stripped)


def _wait(
    process: subprocess.Popen[str],
    argv: list[str],
    label: str,
    lines: list[str],
    started: float,
    timeout: float,
) -> None:
    """Wait for exit with a deadline, logging a heartbeat so long steps show progress."""
    next_beat = started + HEARTBEAT_SECONDS
    while True:
        try:
            process.wait(timeout=1.0)
            return
        except subprocess.TimeoutExpired:
            now = time.monotonic()
            if now - started > timeout:
                _kill_group(process)
                raise CommandError(
                    argv, f"timed out after {timeout:.0f}s", "\n".join(list(lines)[-20:])
                ) from None
            if now >= next_beat:
                last = lines[-1] if lines else ""
                log.info("   ... %s still running (%.0fs) %s", label, now - started, last[:100])
                next_beat = now + HEARTBEAT_SECONDS
