"""One exception tree; every message tells the user what to do next."""

from __future__ import annotations


class DeployerError(Exception):
    """Base class: a failure the CLI reports as one clear line and an exit code."""

    exit_code = 1


class PrerequisiteError(DeployerError):
    """Something the machine must provide is missing (root, a tool, free disk)."""

    exit_code = 3


class ConfigError(DeployerError):
    """The user asked for something that does not exist or cannot work."""

    exit_code = 2


class BuildError(DeployerError):
    """Building a binary or an image failed."""

    exit_code = 4


class ClusterError(DeployerError):
    """Creating, reaching or deleting a cluster failed."""

    exit_code = 5


class CommandError(DeployerError):
    """A subprocess failed or timed out; carries the tail of its output."""

    def __init__(self, command: list[str], detail: str, output_tail: str = "") -> None:
        self.command = command
        self.output_tail = output_tail
        shown = " ".join(command[:6]) + (" ..." if len(command) > 6 else "")
        message = f"`{shown}` {detail}"
        if output_tail:
            message += f"\n--- last output ---\n{output_tail}"
        super().__init__(message)


class ReleaseRolledBack(DeployerError):
    """The progressive-delivery controller aborted a release; the previous one serves again.

    Not a crash: the protection worked. The pipeline stops here and says why."""

    exit_code = 6

    def __init__(
        self, release: str, previous: str, reason: str, seconds_to_abort: float, seconds: float
    ) -> None:
        self.release, self.previous, self.reason = release, previous, reason
        self.seconds_to_abort, self.seconds = seconds_to_abort, seconds
        super().__init__(
            f"release {release} was rolled back automatically after {seconds_to_abort:.0f}s "
            f"({reason}); {previous} serves again"
        )
