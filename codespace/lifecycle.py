"""Run a codespace's lifecycle commands in the devcontainer order, streaming their output.

``onCreateCommand``, ``updateContentCommand`` and ``postCreateCommand`` run once per workspace
(a marker inside ``.git`` remembers that they succeeded); ``postStartCommand`` and
``postAttachCommand`` run on every start (a local codespace is attached when it starts).
``initializeCommand`` runs on the host before anything else; locally the host is the codespace,
so it runs first on every start. A string is run by ``/bin/sh -c`` (the repository author's own
command, as in devcontainer.json), a list is an argument vector, and a map runs its named
commands in parallel. The first failure stops the later commands and raises
:class:`LifecycleError`. Every line also goes to a log file in the workspace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from codespace.spec.model import Codespace, Command
from codespace.streaming import stream

OnLine = Callable[[str], None]

ONCE_PER_WORKSPACE = ("onCreateCommand", "updateContentCommand", "postCreateCommand")
EVERY_START = ("initializeCommand", "postStartCommand", "postAttachCommand")
LOG_DIR = ".codespace-logs"
LOG_FILE = "lifecycle.log"


class LifecycleError(RuntimeError):
    """A lifecycle command failed; later commands did not run."""

    def __init__(self, name: str, label: str, returncode: int, tail: str) -> None:
        self.name, self.label, self.returncode, self.tail = name, label, returncode, tail
        super().__init__(f"{name} ({label}) exited with status {returncode}")


@dataclass(frozen=True)
class Step:
    """One lifecycle command due on this start."""

    name: str
    command: Command


def created_marker(workspace: Path) -> Path:
    """Exists once the create-time commands of this workspace have all succeeded."""
    return workspace / ".git" / "codespace-created"


def due_steps(spec: Codespace, *, created: bool) -> list[Step]:
    """The commands to run on this start, in the devcontainer order."""
    steps = []
    for name, command in spec.lifecycle():
        if name in ONCE_PER_WORKSPACE and created:
            continue
        steps.append(Step(name, command))
    return steps


def to_argv(command: str | list[str]) -> list[str]:
    """A lifecycle command as an argument vector (strings go to ``/bin/sh -c``)."""
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return list(command)


def describe(command: str | list[str]) -> str:
    return command if isinstance(command, str) else " ".join(command)


async def run_lifecycle(
    spec: Codespace,
    workspace: Path,
    *,
    env: Mapping[str, str],
    on_line: OnLine | None = None,
    on_step: Callable[[Step], None] | None = None,
) -> list[Step]:
    """Run the commands due on this start; return them. Raises LifecycleError on a failure."""
    marker = created_marker(workspace)
    steps = due_steps(spec, created=marker.exists())
    if not steps:
        _mark_created(marker)
        return []
    log_path = workspace / LOG_DIR / LOG_FILE
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n=== start {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")

        def emit(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            if on_line is not None:
                on_line(line)

        for index, step in enumerate(steps):
            if on_step is not None:
                on_step(step)
            emit(f"--- {step.name}")
            await _run_step(step, workspace, env, emit)
            if not any(later.name in ONCE_PER_WORKSPACE for later in steps[index + 1 :]):
                _mark_created(marker)
    return steps


def _mark_created(marker: Path) -> None:
    if marker.parent.is_dir() and not marker.exists():
        marker.touch()


async def _run_step(step: Step, cwd: Path, env: Mapping[str, str], emit: OnLine) -> None:
    if isinstance(step.command, dict):
        commands = list(step.command.items())
    else:
        commands = [("", step.command)]

    async def one(label: str, command: str | list[str]) -> None:
        prefix = f"[{label}] " if label else ""
        emit(f"{prefix}$ {describe(command)}")
        finished = await stream(
            to_argv(command), cwd=cwd, env=env, on_line=lambda line: emit(prefix + line)
        )
        if not finished.ok:
            raise LifecycleError(
                step.name, label or describe(command), finished.returncode, finished.tail_text()
            )

    results = await asyncio.gather(
        *(one(label, command) for label, command in commands), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result
