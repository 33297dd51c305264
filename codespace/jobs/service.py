"""Several job backends behind one API: what the REST handlers (and tests) call.

The server extension configures backends by name (``local``, ``slurm``, ``argo``, ...) and
gives :class:`JobService` a factory for each; a backend is built on first use, so a server
start imports no engine client. The service:

- reads a request body (a :class:`Submission`, or one job spec as a shorthand), applies the
  codespace's ``jobs:`` defaults where a job leaves them unset, and validates it: a bad spec
  is a :class:`JobError` naming the field (``jobs[0].resources.timeLimit: ...``) before any
  backend sees it;
- routes a submission to the backend its jobs name (default: the site's), refusing a name
  that is not configured (the message lists the configured ones);
- finds a job by id across the backends (another user's id is :class:`JobNotFound`);
- lists every backend's jobs, newest first;
- counts submissions and, at each listing, each backend's jobs by state
  (:mod:`codespace.jobs.metrics`);
- gives the backends that can wait for a prewarm (an attribute ``prewarm_gate``: the local
  one) its :class:`~codespace.jobs.prewarm.PrewarmGate` over the server's dataset backend,
  when the server extension passed one (``prewarm_gate=``).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from codespace.backends import Backends
from codespace.jobs import metrics
from codespace.jobs.backend import BackendUnavailable, JobBackend, JobError, JobNotFound
from codespace.jobs.models import JobRecord, Submission
from codespace.jobs.prewarm import PrewarmGate

DEFAULTED = ("resources", "datasets", "backend", "env")  # keys the ``jobs:`` defaults fill


def field_errors(error: ValidationError) -> str:
    """pydantic's errors as ``jobs[0].resources.timeLimit: <message>``, one per field."""
    lines = []
    for item in error.errors():
        where = ""
        for part in item["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else part)
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)


def with_defaults(job: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The job spec with the ``jobs:`` defaults where it leaves them unset.

    ``resources`` and ``env`` merge key by key (the job's own values win); ``datasets`` and
    ``backend`` apply when the job has none.
    """
    merged = dict(job)
    for key in DEFAULTED:
        default = defaults.get(key)
        if default is None:
            continue
        own = merged.get(key)
        if key in ("resources", "env") and isinstance(default, Mapping):
            if own is None or isinstance(own, Mapping):
                merged[key] = {**default, **(own or {})}
        elif own is None:
            merged[key] = default
    return merged


def parse_submission(body: Any, defaults: Mapping[str, Any] | None = None) -> Submission:
    """A request body as a Submission (one job spec is a shorthand); JobError naming fields."""
    if not isinstance(body, Mapping):
        raise JobError("the request body must be a JSON object: a submission or one job spec")
    if "jobs" in body:
        data = dict(body)
    else:
        job = dict(body)
        key = job.pop("idempotencyKey", None)
        data = {"jobs": [job], **({"idempotencyKey": key} if key is not None else {})}
    jobs = data["jobs"]
    if defaults and isinstance(jobs, list):
        data["jobs"] = [with_defaults(j, defaults) if isinstance(j, Mapping) else j for j in jobs]
    try:
        return Submission.model_validate(data)
    except ValidationError as error:
        raise JobError(field_errors(error)) from error


class JobService(Backends[JobBackend, JobRecord]):
    """The configured backends, by name, built lazily; one API over all of them."""

    kind = noun = "job"
    error, not_found, unavailable = JobError, JobNotFound, BackendUnavailable

    def __init__(
        self,
        factories: Mapping[str, Callable[[], JobBackend]],
        default: str,
        defaults: Callable[[], Mapping[str, Any]] = dict,
        prewarm_gate: PrewarmGate | None = None,
    ) -> None:
        super().__init__(factories, default)
        self.defaults = defaults
        self.prewarm_gate = prewarm_gate

    def key(self, record: JobRecord) -> str:
        return record.id

    def created(self, record: JobRecord) -> datetime:
        return record.submitted

    def prepare(self, backend: JobBackend) -> None:
        if self.prewarm_gate is not None and hasattr(backend, "prewarm_gate"):
            backend.prewarm_gate = self.prewarm_gate

    async def submit(self, body: Any) -> builtins.list[JobRecord]:
        submission = parse_submission(body, self.defaults())
        names = {job.backend or self.default for job in submission.jobs}
        if len(names) > 1:
            raise JobError(f"jobs of one submission run on one backend (got {sorted(names)})")
        [name] = names
        backend = self.usable(name)
        if any(job.afterJobs for job in submission.jobs) and not backend.supports_after_jobs:
            raise JobError(f"backend {name!r} cannot wait for jobs of other submissions")
        jobs = [job.model_copy(update={"backend": name}) for job in submission.jobs]
        records = await backend.submit(submission.model_copy(update={"jobs": jobs}))
        self._owners.update((record.id, name) for record in records)
        metrics.submitted(name, len(records))
        return records

    async def _list_one(self, name: str) -> builtins.list[JobRecord]:
        records = await super()._list_one(name)
        metrics.listed(name, records)
        return records

    async def refresh_metrics(self) -> None:
        """List the backends built so far (building none), so the jobs gauge is current."""
        names = builtins.list(self._built)
        await asyncio.gather(*(self._list_one(name) for name in names), return_exceptions=True)

    async def logs(self, job_id: str, tail: int | None = None) -> str:
        backend, record = await self.find(job_id)
        return await backend.logs(record.id, tail)

    async def cancel(self, job_id: str) -> JobRecord:
        backend, record = await self.find(job_id)
        return await backend.cancel(record.id)

    async def resubmit(self, job_id: str) -> builtins.list[JobRecord]:
        """The job's spec again, alone, as a new submission (it waits for nothing)."""
        _, record = await self.find(job_id)
        spec = record.spec.model_copy(update={"after": [], "afterJobs": []})
        return await self.submit({"jobs": [spec.model_dump(mode="json")]})
