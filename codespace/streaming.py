"""Run a subprocess from an argument list and stream its output line by line.

Each process leads a process group of its own, so that when it is cancelled or runs past its
``timeout`` everything it started (a shell's children, ``pip``'s build backends) ends with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

OnLine = Callable[[str], None]
DRAIN_SECONDS = 1.0
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Finished:
    """How a streamed process ended and the last lines it printed (stdout and stderr merged)."""

    returncode: int
    tail: tuple[str, ...]
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail_text(self, lines: int = 12) -> str:
        return "\n".join(self.tail[-lines:])


async def stream(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    on_line: OnLine | None = None,
    keep: int = 40,
    timeout: float | None = None,
    input: bytes | None = None,
    grace: float = 0.0,
) -> Finished:
    """Run ``argv`` with stdout and stderr merged; call ``on_line`` for every line printed.

    Past ``timeout`` seconds the process group is killed and ``Finished.timed_out`` is set;
    a cancelled call kills the group too. ``input`` is written to its stdin.
    A cancelled call gives the group ``grace`` seconds after SIGTERM before SIGKILL.
    """
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL if input is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=1 << 20,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=keep)
    if input is not None:
        assert process.stdin is not None
        process.stdin.write(input)
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()

    async def read() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            if on_line is not None:
                on_line(line)

    async def run() -> int:
        reader = asyncio.ensure_future(read())
        # ``process.wait()`` also waits for the pipe to close, which a daemon the command
        # left behind (``mlflow ui &``) keeps open: watch the exit status instead, read what
        # is buffered, then stop listening (the daemon keeps running).
        while not reader.done() and process.returncode is None:
            await asyncio.wait({reader}, timeout=POLL_SECONDS)
        if reader.done():
            return await process.wait()
        await asyncio.wait({reader}, timeout=DRAIN_SECONDS)
        _stop_reading(process, reader)
        return await _exit_status(process)

    try:
        returncode = await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        kill_group(process.pid)
        return Finished(await _exit_status(process), tuple(tail), timed_out=True)
    except asyncio.CancelledError:
        if grace > 0:
            kill_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(_exit_status(process)), grace)
        kill_group(process.pid)
        raise
    return Finished(returncode, tuple(tail))


def _stop_reading(process: asyncio.subprocess.Process, reader: asyncio.Future) -> None:
    reader.cancel()
    transport = getattr(process, "_transport", None)  # close our end of the pipe
    if transport is not None:
        transport.close()


async def _exit_status(process: asyncio.subprocess.Process) -> int:
    """The exit status, without waiting for pipes that another process may hold open."""
    while process.returncode is None:
        await asyncio.sleep(POLL_SECONDS)
    return process.returncode


def kill_group(group: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process group (SIGKILL by default); nothing happens when it is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
