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
- gives the backends that can wait for a prewarm (an attribute ``prewarm_gate``: the local
  one) its :class:`~codespace.jobs.prewarm.PrewarmGate` over the server's dataset backend,
  when the server extension passed one (``prewarm_gate=``).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from codespace.jobs.backend import BackendUnavailable, JobBackend, JobError, JobNotFound
from codespace.jobs.models import JobRecord, Submission
from codespace.jobs.prewarm import PrewarmGate

log = logging.getLogger(__name__)

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


class JobService:
    """The configured backends, by name, built lazily; one API over all of them."""

    def __init__(
        self,
        factories: Mapping[str, Callable[[], JobBackend]],
        default: str,
        defaults: Callable[[], Mapping[str, Any]] = dict,
        prewarm_gate: PrewarmGate | None = None,
    ) -> None:
        if default not in factories:
            configured = ", ".join(factories) or "none"
            raise ValueError(f"default job backend {default!r} is not configured ({configured})")
        self.factories = dict(factories)
        self.default = default
        self.defaults = defaults
        self.prewarm_gate = prewarm_gate
        self._built: dict[str, JobBackend] = {}
        self._owners: dict[str, str] = {}  # job id -> backend name, as seen

    def backends(self) -> builtins.list[dict[str, Any]]:
        return [{"name": name, "default": name == self.default} for name in self.factories]

    def backend(self, name: str) -> JobBackend:
        """The backend configured as ``name``, built on first use."""
        if name not in self.factories:
            configured = ", ".join(self.factories)
            raise JobError(f"backend {name!r} is not configured here (configured: {configured})")
        if name not in self._built:
            try:
                self._built[name] = self.factories[name]()
            except Exception as error:  # the site's configuration or engine, not the request
                log.exception("job backend %s could not be built", name)
                raise BackendUnavailable(f"backend {name!r} is unavailable: {error}") from error
            built = self._built[name]
            if self.prewarm_gate is not None and hasattr(built, "prewarm_gate"):
                built.prewarm_gate = self.prewarm_gate
        return self._built[name]

    async def submit(self, body: Any) -> builtins.list[JobRecord]:
        submission = parse_submission(body, self.defaults())
        names = {job.backend or self.default for job in submission.jobs}
        if len(names) > 1:
            raise JobError(f"jobs of one submission run on one backend (got {sorted(names)})")
        [name] = names
        backend = self.backend(name)
        if any(job.afterJobs for job in submission.jobs) and not backend.supports_after_jobs:
            raise JobError(f"backend {name!r} cannot wait for jobs of other submissions")
        jobs = [job.model_copy(update={"backend": name}) for job in submission.jobs]
        records = await backend.submit(submission.model_copy(update={"jobs": jobs}))
        self._owners.update((record.id, name) for record in records)
        return records

    async def list(self) -> tuple[builtins.list[JobRecord], dict[str, str]]:
        """Every backend's jobs, newest first, and the backends that failed (name -> why)."""
        names = builtins.list(self.factories)
        results = await asyncio.gather(
            *(self._list_one(name) for name in names), return_exceptions=True
        )
        records: builtins.list[JobRecord] = []
        problems: dict[str, str] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                problems[name] = str(result)
                continue
            records.extend(result)
            self._owners.update((record.id, name) for record in result)
        records.sort(key=lambda record: record.submitted.timestamp(), reverse=True)
        return records, problems

    async def _list_one(self, name: str) -> builtins.list[JobRecord]:
        return await self.backend(name).list()

    async def find(self, job_id: str) -> tuple[JobBackend, JobRecord]:
        """The backend holding ``job_id`` and its record; JobNotFound from all of them."""
        known = self._owners.get(job_id)
        order = [known] if known else []
        order += [name for name in self.factories if name != known]
        unavailable = []
        for name in order:
            try:
                backend = self.backend(name)
                record = await backend.get(job_id)
            except JobNotFound:
                continue
            except BackendUnavailable:
                unavailable.append(name)
                continue
            self._owners[job_id] = name
            return backend, record
        if unavailable:
            raise BackendUnavailable(
                f"no job {job_id!r} in the backends that answered ({', '.join(unavailable)}: "
                "unavailable)"
            )
        raise JobNotFound(f"no job {job_id!r}")

    async def get(self, job_id: str) -> JobRecord:
        return (await self.find(job_id))[1]

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

    async def close(self) -> None:
        for backend in reversed(builtins.list(self._built.values())):
            await backend.close()
        self._built.clear()
