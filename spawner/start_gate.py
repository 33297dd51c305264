"""At most N codespace servers start at once; the others wait in line and say so.

The CPU-heavy part of a local start is the single-user server's own start (importing
Jupyter Server, JupyterLab and JupyterHub's single-user code: about a CPU-second each). When
20 people start at once on a small machine, starting them all together makes every one of
them slow (they finish together, at the end, and contention costs CPU of its own); starting
a few at a time, first come first served, lets the first ones in line work at once and
finishes the whole line sooner. The gate is held from the server's launch until it listens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class StartGate:
    """A fair (FIFO) limit on concurrent server starts, with the length of the line."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._semaphore = asyncio.Semaphore(self.size)
        self.waiting = 0

    @asynccontextmanager
    async def slot(self, on_wait: Callable[[int], None]) -> AsyncIterator[None]:
        """Hold one of the slots; ``on_wait(place)`` is called when this start must wait."""
        if self._semaphore.locked() or self.waiting:
            self.waiting += 1
            on_wait(self.waiting)
            try:
                await self._semaphore.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._semaphore.acquire()
        try:
            yield
        finally:
            self._semaphore.release()


_GATES: dict[int, StartGate] = {}


def gate_for(size: int) -> StartGate:
    """The hub's one gate for server starts (one per size, should the setting change)."""
    if size not in _GATES:
        _GATES[size] = StartGate(size)
    return _GATES[size]


async def wait_listening(
    host: str, port: int, alive: Callable[[], bool], timeout: float, interval: float = 0.05
) -> bool:
    """Wait until ``host:port`` accepts a connection (True), the process ends or the time is
    up (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(interval)
            continue
        writer.close()
        await writer.wait_closed()
        return True
    return False
