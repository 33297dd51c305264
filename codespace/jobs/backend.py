"""The one interface every job backend implements (local processes, Slurm, Argo Workflows).

Backends are async (the server extension awaits them on Jupyter's event loop) and built by
the server extension from one plain :class:`JobSettings` (``from_settings``), like the
dataset backends. Several are active at once: a job's ``backend`` picks one of the
configured backends by its name (``kind``), the site's default otherwise.

Every backend:
- runs a job in the codespace's own environment: the server's environment variables (the
  launch plan's: ``VIRTUAL_ENV``, ``PATH``, ``CODESPACE_*``) or, off this machine, the
  codespace's image (``CODESPACE_IMAGE``), with the job's datasets;
- honours ``Submission.idempotencyKey``: submitting the same key again returns the jobs the
  first submission made and creates nothing;
- scopes everything to ``settings.owner``: another user's job id is :class:`JobNotFound`;
- refuses a bad spec before anything is created (:class:`JobError` naming the field).
"""

from __future__ import annotations

import secrets
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from codespace.jobs.models import JobRecord, Submission, log_path, output_notebook


class JobError(Exception):
    """A job request that cannot be honoured; the message says why (HTTP 400)."""


class JobNotFound(JobError):
    """No job with that id for this user (HTTP 404, whoever owns it)."""


class BackendUnavailable(JobError):
    """A configured backend could not be built or reached (HTTP 503)."""


@dataclass(frozen=True)
class JobSettings:
    """What the server extension knows that a job backend may need (plain data)."""

    workspace: Path  # the codespace's workspace: jobs run there (cwd), paths are relative to it
    state_dir: Path  # the backend's persistent state (job records survive restarts)
    owner: str  # the hub user the jobs belong to
    environment: Mapping[str, str] = field(default_factory=dict)  # the server's env to run in
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the spec's ``jobs:`` key
    options: Mapping[str, Any] = field(default_factory=dict)  # the backend's own settings


class JobBackend(ABC):
    """Submit, list, inspect, read the logs of and cancel jobs."""

    kind: str = "abstract"
    # Whether the backend honours ``JobSpec.afterJobs`` (waiting for jobs of earlier
    # submissions); the server refuses such a spec for a backend that does not.
    supports_after_jobs: bool = False

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: JobSettings) -> Self:
        """The backend as the server extension configured it."""

    @abstractmethod
    async def submit(self, submission: Submission) -> list[JobRecord]:
        """Create the submission's jobs (or return those an equal idempotency key made)."""

    @abstractmethod
    async def list(self) -> list[JobRecord]:
        """The owner's jobs, newest first, with fresh states."""

    @abstractmethod
    async def get(self, job_id: str) -> JobRecord:
        """One of the owner's jobs with a fresh state; JobNotFound otherwise."""

    @abstractmethod
    async def logs(self, job_id: str, tail: int | None = None) -> str:
        """The job's output so far (the last ``tail`` lines when given)."""

    @abstractmethod
    async def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued or running job (a finished one is returned as it is)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and tasks (the server is stopping)."""


def open_store(path: Path, schema: str) -> sqlite3.Connection:
    """A backend's SQLite state file: WAL, autocommit (one short transaction per change),
    shared by the server's threads, with ``schema`` applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db


def new_records(
    submission: Submission, owner: str, kind: str, reason: str = ""
) -> tuple[dict[str, str], list[JobRecord]]:
    """Fresh ids (``<kind>-<hex>``, by job name) and queued records for a submission's jobs."""
    now = datetime.now(UTC)
    submission_id = f"s-{secrets.token_hex(6)}"
    ids = {spec.name: f"{kind}-{secrets.token_hex(6)}" for spec in submission.jobs}
    records = [
        JobRecord(
            id=ids[spec.name],
            name=spec.name,
            owner=owner,
            backend=spec.backend or kind,
            submission=submission_id,
            submitted=now,
            reason=reason,
            logPath=log_path(ids[spec.name], spec),
            outputNotebook=output_notebook(ids[spec.name], spec),
            spec=spec,
        )
        for spec in submission.jobs
    ]
    return ids, records
