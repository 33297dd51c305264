"""Run a codespace's lifecycle commands as the devcontainer spec runs them.

Order: (repo2docker's ``postBuild``), ``initializeCommand``, ``onCreateCommand``,
``updateContentCommand``, ``postCreateCommand``, ``postStartCommand``, ``postAttachCommand``.
The create-time commands
(``onCreateCommand``, ``updateContentCommand``, ``postCreateCommand``) run once per workspace:
each one that succeeds leaves a marker under ``.git/codespace-lifecycle/``, so a command that
failed (and the ones after it) run again at the next start while the ones that succeeded do
not. ``postStartCommand`` and ``postAttachCommand`` run on every start (a local codespace is
attached when it starts); ``initializeCommand`` runs on the host before anything else, which
locally is the codespace itself, so it runs first on every start.

``waitFor`` (default ``updateContentCommand``) splits the due commands: the codespace becomes
available once the waited-for command is done; the later ones run in the background
(:mod:`codespace.lifecycle_runner`) with their output in the same log file. A waited-for
command may run for ``timeout`` seconds at most; past it its process group is killed.

A string is run by ``/bin/sh -c`` (the repository author's own command, as in
devcontainer.json), a list is an argument vector, and a map runs its named commands in
parallel. The first failure stops the later commands and raises :class:`LifecycleError`.
Every line goes to ``.codespace-logs/lifecycle.log`` and each command's state to
``.codespace-logs/lifecycle-status.json`` (:mod:`codespace.lifecycle_status` prints it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from codespace.lifecycle_status import LOG_DIR, LOG_FILE, StatusFile
from codespace.local.limits import own_oom_kills
from codespace.spec.lifecycle import (
    DEFAULT_WAIT_FOR,
    EVERY_START,
    ONCE_PER_WORKSPACE,
    ORDER,
    POST_BUILD,
    Step,
    describe,
    split_for_wait,
    to_argv,
)
from codespace.streaming import stream

OnLine = Callable[[str], None]

LEGACY_MARKER = "codespace-created"  # all create-time commands done (earlier releases)
__all__ = [
    "DEFAULT_WAIT_FOR",
    "EVERY_START",
    "LOG_DIR",
    "LOG_FILE",
    "ORDER",
    "POST_BUILD",
    "LifecycleError",
    "Step",
    "describe",
    "due_steps",
    "run_steps",
    "split_for_wait",
    "to_argv",
]


class LifecycleError(RuntimeError):
    """A lifecycle command failed or timed out; later commands did not run."""

    def __init__(
        self,
        name: str,
        label: str,
        returncode: int,
        tail: str,
        *,
        timeout: float | None = None,
        out_of_memory: bool = False,
    ) -> None:
        self.name, self.label, self.returncode, self.tail = name, label, returncode, tail
        self.out_of_memory = out_of_memory
        self.timeout = timeout
        if timeout is not None:
            message = f"{name} ({label}) did not finish within {timeout:g} s and was stopped"
        elif out_of_memory:
            message = f"{name} ({label}) was killed: the codespace ran out of memory"
        else:
            message = f"{name} ({label}) exited with status {returncode}"
        super().__init__(message)

    @property
    def timed_out(self) -> bool:
        return self.timeout is not None

    def markdown(self, *, background: bool = False) -> str:
        """A section of ``CODESPACE_ERRORS.md`` that says what failed and what to do."""
        if self.timed_out:
            what = (
                f"`{self.label}` did not finish within {self.timeout:g} s and was stopped; the "
                "codespace started without it (raise the hub's lifecycle timeout, move the "
                "command after `waitFor`, or make it finish sooner). It runs again at the "
                "next start"
            )
        elif self.out_of_memory:
            what = (
                f"`{self.label}` was killed by the kernel: the codespace used all of its memory "
                "limit (ask for more with `resources.memory`). It runs again at the next start"
            )
        else:
            what = (
                f"`{self.label}` exited with status {self.returncode}; it runs again at the "
                "next start"
            )
        when = " (in the background, after the codespace started)" if background else ""
        return (
            f"## `{self.name}` failed{when}\n\n{what}, and the commands after it did not run. "
            "The full output is in `.codespace-logs/lifecycle.log`.\n\n"
            f"```\n{self.tail}\n```\n"
        )


def markers_dir(workspace: Path) -> Path:
    """Where the create-time commands that succeeded in this workspace are remembered."""
    return workspace / ".git" / "codespace-lifecycle"


def is_done(workspace: Path, name: str) -> bool:
    if name not in ONCE_PER_WORKSPACE:
        return False
    legacy = workspace / ".git" / LEGACY_MARKER
    return legacy.exists() or (markers_dir(workspace) / name).exists()


def mark_done(workspace: Path, name: str) -> None:
    if name in ONCE_PER_WORKSPACE and (workspace / ".git").is_dir():
        markers_dir(workspace).mkdir(exist_ok=True)
        (markers_dir(workspace) / name).touch()


def due_steps(steps: Iterable[Step], workspace: Path) -> list[Step]:
    """The commands to run on this start: the launch plan's, less the create-time ones
    that already succeeded in this workspace."""
    return [step for step in steps if not is_done(workspace, step.name)]


async def run_steps(
    steps: list[Step],
    workspace: Path,
    *,
    env: Mapping[str, str],
    on_line: OnLine | None = None,
    on_step: Callable[[Step], None] | None = None,
    timeout: float | None = None,
) -> None:
    """Run ``steps`` in order, each within ``timeout`` seconds. Raises LifecycleError."""
    if not steps:
        return
    status = StatusFile(workspace / LOG_DIR)
    status.set_pending([step.name for step in steps])
    log_path = workspace / LOG_DIR / LOG_FILE
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")

        def emit(line: str) -> None:
            log.write(line + "\n")
            log.flush()
            if on_line is not None:
                on_line(line)

        for index, step in enumerate(steps):
            if on_step is not None:
                on_step(step)
            emit(f"--- {step.name}")
            status.update(step.name, "running")
            try:
                await _run_step(step, workspace, env, emit, timeout)
            except LifecycleError as error:
                status.update(step.name, "timed out" if error.timed_out else "failed", error)
                status.set_skipped([later.name for later in steps[index + 1 :]])
                emit(f"--- {error}; the commands after it did not run")
                raise
            except asyncio.CancelledError:
                status.update(step.name, "stopped")
                raise
            status.update(step.name, "done")
            mark_done(workspace, step.name)


async def _run_step(
    step: Step,
    cwd: Path,
    env: Mapping[str, str],
    emit: OnLine,
    timeout: float | None,
) -> None:
    if isinstance(step.command, dict):
        commands = list(step.command.items())
    else:
        commands = [("", step.command)]

    async def one(label: str, command: str | list[str]) -> None:
        prefix = f"[{label}] " if label else ""
        emit(f"{prefix}$ {describe(command)}")
        ooms = own_oom_kills()
        finished = await stream(
            to_argv(command),
            cwd=cwd,
            env=env,
            on_line=lambda line: emit(prefix + line),
            timeout=timeout,
        )
        if not finished.ok:
            raise LifecycleError(
                step.name,
                label or describe(command),
                finished.returncode,
                finished.tail_text(),
                timeout=timeout if finished.timed_out else None,
                out_of_memory=finished.returncode in (-9, 137) and own_oom_kills() != ooms,
            )

    tasks = [asyncio.ensure_future(one(label, command)) for label, command in commands]
    try:
        await asyncio.gather(*tasks)
    finally:  # one failed, or we were cancelled: stop the others
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
