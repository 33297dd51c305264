"""What the jobs SDK returns: immutable records built from the REST JSON (stdlib only).

The kernel side runs in the repository's environment, so these are frozen dataclasses, not
the server's pydantic models (:mod:`codespace.jobs.models`); the field names are the REST
fields, the models' names (``record.exitCode``, ``record.spec.resources.timeLimit``).
Sequences are tuples; times are the ISO 8601 strings the server sends; keys a newer server
adds are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# The shared JSON-record behaviour (from_json, to_json, a short repr) of the datasets records.
from codespace.datasets.records import _Record

FINISHED = ("succeeded", "failed", "cancelled")


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in values or ())


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclasses.dataclass(frozen=True, repr=False)
class JobResources(_Record):
    """cpu, memory and gpu in the ``.codespace`` spec's words, plus a time limit."""

    cpu: float | None = None
    memory: str | None = None
    gpu: Mapping[str, Any] | None = None
    timeLimit: str | None = None

    def __hash__(self) -> int:
        return hash((self.cpu, self.memory, self.timeLimit))


@dataclasses.dataclass(frozen=True, repr=False)
class JobSpec(_Record):
    """A job as submitted: exactly one of ``command``, ``script`` and ``notebook``."""

    name: str
    command: tuple[str, ...] | None = None
    script: str | None = None
    notebook: str | None = None
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    args: tuple[str, ...] = ()
    resources: JobResources = dataclasses.field(default_factory=JobResources)
    datasets: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    array: int | None = None
    retries: int = 0
    backoff: float = 10.0
    after: tuple[str, ...] = ()
    afterJobs: tuple[str, ...] = ()
    backend: str | None = None
    prewarm: bool = False  # the job starts when its datasets' prewarm has completed
    releaseCache: bool = False  # the datasets' cached copy is released after the job

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        command = values.get("command")
        return {
            **values,
            "command": None if command is None else _strings(command),
            "parameters": dict(values.get("parameters") or {}),
            "args": _strings(values.get("args")),
            "resources": JobResources.from_json(values.get("resources") or {}),
            "datasets": _strings(values.get("datasets")),
            "env": dict(values.get("env") or {}),
            "after": _strings(values.get("after")),
            "afterJobs": _strings(values.get("afterJobs")),
        }

    def __hash__(self) -> int:
        return hash((self.name, self.command, self.script, self.notebook))


@dataclasses.dataclass(frozen=True, repr=False)
class JobRecord(_Record):
    """A job as its backend knows it: state (with the reason), times, exit code, files."""

    id: str
    name: str
    owner: str
    backend: str
    submission: str
    submitted: str
    spec: JobSpec
    backendId: str | None = None
    state: str = "queued"
    reason: str = ""
    started: str | None = None
    finished: str | None = None
    exitCode: int | None = None
    logPath: str | None = None
    outputNotebook: str | None = None

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "spec": JobSpec.from_json(values.get("spec") or {})}

    def __hash__(self) -> int:
        return hash((self.id, self.state, self.finished))

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    @property
    def elapsed(self) -> float | None:
        """Seconds it ran (so far, while it runs); None before it started."""
        started = _time(self.started)
        if started is None:
            return None
        end = _time(self.finished) or datetime.now(UTC)
        return max((end - started).total_seconds(), 0.0)


__all__ = ["JobRecord", "JobResources", "JobSpec"]
