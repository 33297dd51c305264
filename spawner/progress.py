"""A spawn's progress log, replayable by every client that opens the spawn page.

``ProgressLog`` is what :meth:`Spawner.progress` reads: a list of JupyterHub progress events
(``{"progress": pct, "message": text}``) plus a condition to wait for new ones. Each message
carries the time since the spawn started, so the spawn page shows which step is slow.

The log also marks the start pipeline's *phases* (:data:`PHASES`), for the spawn metrics
(:mod:`spawner.metrics`): a step whose message starts with ``<phase>:`` (the local pipeline's
convention, :mod:`codespace.local.prepare`) or that names its ``phase=`` starts that phase; a
phase lasts until the next one starts, the last one until the spawn ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

MAX_LINE = 300
# The start pipeline's phases, in order: the repository is fetched, its spec resolved, the
# environment built or found (an image in a cluster), datasets mounted, lifecycle commands
# run, the server started (a pod scheduled and running in a cluster).
PHASES = ("fetch", "resolve", "environment", "datasets", "lifecycle", "server")


def phase_of(message: str) -> str | None:
    """The phase a step message names by its prefix (``"fetch: ..."``), if any."""
    head, colon, _ = message.partition(":")
    return head if colon and head in PHASES else None


class ProgressLog:
    """Events of one spawn; ``follow()`` replays them from the start and waits for more."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.events: list[dict[str, object]] = []
        self.phases: list[tuple[str, float]] = []  # (phase, monotonic time it started)
        self.progress = 0
        self.closed = False
        self._changed = asyncio.Event()

    def _add(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        self.events.append({"progress": self.progress, "message": f"[{elapsed:5.1f}s] {message}"})
        self._changed.set()

    def step(self, progress: int, message: str, phase: str | None = None) -> None:
        self.progress = max(self.progress, min(progress, 99))
        self.mark(phase or phase_of(message))
        self._add(message)

    def mark(self, phase: str | None) -> None:
        """Start ``phase`` (nothing when it is None or already the current one)."""
        if phase is not None and (not self.phases or self.phases[-1][0] != phase):
            self.phases.append((phase, time.monotonic()))

    def phase_durations(self, end: float) -> dict[str, float]:
        """Seconds spent in each phase, in the order they started; a phase entered twice
        (a cluster reads recorded datasets before the spec) adds up; the last phase ends
        at ``end`` (monotonic)."""
        ends = [started for _, started in self.phases[1:]] + [end]
        spent: dict[str, float] = {}
        for (name, started), stop in zip(self.phases, ends, strict=True):
            spent[name] = spent.get(name, 0.0) + max(0.0, stop - started)
        return spent

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

    async def then(
        self, after: AsyncIterator[dict[str, object]]
    ) -> AsyncIterator[dict[str, object]]:
        """This log's events until it closes, then ``after``'s (KubeSpawner's pod events);
        what this log says once closed (a pod made again) comes before the next of them."""
        async for event in self.follow():
            yield event
        seen = len(self.events)
        async for event in after:
            for note in self.events[seen:]:
                yield note
            seen = len(self.events)
            yield event
        for note in self.events[seen:]:
            yield note
