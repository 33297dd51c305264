"""Run after prewarm: what the local job backend asks of the dataset backend (a small gate).

A job with ``prewarm: true`` starts only when a prewarm of each of its ``datasets`` has
completed; with ``releaseCache: true`` their cached copy is released after it ends. The
local job backend does not know dataset backends: the job service hands it a
:class:`PrewarmGate` (server side, built by the server extension from its dataset backend),
so job backends stay plain (``JobSettings`` holds data only):

- :meth:`PrewarmGate.start` at submission: a prewarm of each dataset, reusing one that is
  running or one that completed for the whole dataset; a dataset that does not exist or
  cannot be prewarmed here is a :class:`JobError` before any job is created;
- :meth:`PrewarmGate.done` while the job is queued: ``("run", "")``, ``("wait", "waiting
  for the prewarm of X (37%)")`` or ``("fail", "the prewarm of 'X' failed: <its reason>")``;
- :meth:`PrewarmGate.release` after the job: the dataset backend's ``release_cache(name)``
  when it has one (the local catalog backend does; Fluid's cache belongs to its runtime).

:class:`DatasetPrewarmGate` is the gate over any :class:`~codespace.datasets.backend.
DatasetBackend` (``prewarm``, ``prewarm_history``, ``get``), local or Fluid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol

from codespace.datasets.errors import DatasetError
from codespace.jobs.backend import JobError

PrewarmVerdict = Literal["run", "wait", "fail"]


class PrewarmGate(Protocol):
    """Prewarm datasets for jobs, say when they are ready, release their cache."""

    async def start(self, names: Sequence[str]) -> None:
        """Start (or reuse) a prewarm of each dataset; JobError when one cannot be."""

    async def done(self, names: Sequence[str]) -> tuple[PrewarmVerdict, str]:
        """Whether every dataset's prewarm completed: run, wait or fail, with why."""

    async def release(self, names: Sequence[str]) -> list[str]:
        """Release the datasets' cached copy; what was done, one note per dataset."""


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


class DatasetPrewarmGate:
    """A :class:`PrewarmGate` over a dataset backend (duck-typed: no dataset import here)."""

    def __init__(self, datasets: Any) -> None:
        self.datasets = datasets
        self._ops: dict[str, str] = {}  # dataset -> the prewarm operation jobs wait for

    async def _history(self, name: str) -> list[Any]:
        try:
            return list(await self.datasets.prewarm_history(name))
        except DatasetError as error:
            raise JobError(f"datasets: {error}") from error

    async def start(self, names: Sequence[str]) -> None:
        for name in _unique(names):
            history = await self._history(name)
            newest = history[0] if history else None
            if newest is not None and (
                not newest.finished or (newest.phase == "Complete" and list(newest.paths) == ["/"])
            ):
                self._ops[name] = newest.id  # running, or the whole dataset is cached
                continue
            try:
                op = await self.datasets.prewarm(name)
            except DatasetError as error:
                raise JobError(f"datasets: cannot prewarm {name!r}: {error}") from error
            self._ops[name] = op.id

    async def done(self, names: Sequence[str]) -> tuple[PrewarmVerdict, str]:
        waiting = []
        for name in _unique(names):
            try:
                history = await self._history(name)
            except JobError as error:
                return "fail", str(error)
            wanted = self._ops.get(name)
            op = next((o for o in history if o.id == wanted), history[0] if history else None)
            if op is None:  # no prewarm known (its history was released): start one
                await self.start([name])
                waiting.append(f"{name} (starting)")
            elif op.phase == "Failed":
                return "fail", f"the prewarm of {name!r} failed: {op.message or 'no reason given'}"
            elif op.phase != "Complete":
                waiting.append(f"{name} ({await self._progress(name, op)})")
        if waiting:
            return "wait", f"waiting for the prewarm of {', '.join(waiting)}"
        return "run", ""

    async def _progress(self, name: str, op: Any) -> str:
        """``37%`` from the operation's bytes, else the dataset's ``cachedPercentage``."""
        if op.bytesTotal:
            return f"{100 * op.bytesDone / op.bytesTotal:.0f}%"
        try:
            cached = (await self.datasets.get(name)).status.cachedPercentage
        except DatasetError:
            cached = None
        return cached or str(op.phase).lower()

    async def release(self, names: Sequence[str]) -> list[str]:
        release = getattr(self.datasets, "release_cache", None)
        if release is None:
            kind = getattr(self.datasets, "kind", "this")
            return [f"the {kind} dataset backend cannot release a cache: kept"]
        notes = []
        for name in _unique(names):
            try:
                notes.append(await release(name))
            except DatasetError as error:
                notes.append(f"{name}: not released: {error}")
            self._ops.pop(name, None)
        return notes
