"""Run a subprocess from an argument list and stream its output line by line."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

OnLine = Callable[[str], None]


@dataclass(frozen=True)
class Finished:
    """How a streamed process ended and the last lines it printed (stdout and stderr merged)."""

    returncode: int
    tail: tuple[str, ...]

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
) -> Finished:
    """Run ``argv`` with stdout and stderr merged; call ``on_line`` for every line printed."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=1 << 20,
    )
    tail: deque[str] = deque(maxlen=keep)
    assert process.stdout is not None
    try:
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            if on_line is not None:
                on_line(line)
        returncode = await process.wait()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    return Finished(returncode, tuple(tail))
