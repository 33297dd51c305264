"""A spawn's progress log, replayable by every client that opens the spawn page.

``ProgressLog`` is what :meth:`Spawner.progress` reads: a list of JupyterHub progress events
(``{"progress": pct, "message": text}``) plus a condition to wait for new ones. Each message
carries the time since the spawn started, so the spawn page shows which step is slow.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

MAX_LINE = 300


class ProgressLog:
    """Events of one spawn; ``follow()`` replays them from the start and waits for more."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.events: list[dict[str, object]] = []
        self.progress = 0
        self.closed = False
        self._changed = asyncio.Event()

    def _add(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.events.append({"progress": self.progress, "message": f"[{elapsed:5.1f}s] {message}"})
        self._changed.set()

    def step(self, progress: int, message: str) -> None:
        self.progress = max(self.progress, min(progress, 99))
        self._add(message)

    def line(self, text: str) -> None:
        text = text.rstrip()
        if text:
            self._add("    " + (text if len(text) <= MAX_LINE else text[:MAX_LINE] + " ..."))

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    async def follow(self) -> AsyncIterator[dict[str, object]]:
        sent = 0
        while True:
            while sent < len(self.events):
                yield self.events[sent]
                sent += 1
            if self.closed:
                return
            self._changed.clear()
            await self._changed.wait()
