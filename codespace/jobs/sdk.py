"""Module-level job functions for notebooks: a :class:`Job` handle over the REST client.

Kernel side: standard library only (the records are :mod:`codespace.jobs.records`)::

    from codespace import jobs
    job = jobs.submit(script="train.py", args=["--epochs", "3"], resources={"timeLimit": "1h"})
    job.wait()                 # the final JobRecord
    print(job.logs(tail=20))
    nb = jobs.submit(notebook="report.ipynb", parameters={"alpha": 0.5})
    nb.wait().outputNotebook   # the executed copy, relative to the workspace
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from codespace.client import CodespaceClient
from codespace.jobs.records import JobRecord


def _client(client: CodespaceClient | None) -> CodespaceClient:
    return client or CodespaceClient()


def default_name(command: Sequence[str] | None, script: str | None, notebook: str | None) -> str:
    """A job name (a DNS label) from what it runs: ``train.py``, ``python train.py`` -> train."""
    path = notebook or script
    if path is None and command:
        program = PurePosixPath(command[0]).name
        scripts = [arg for arg in command[1:2] if arg.endswith(".py")]
        path = scripts[0] if program.startswith("python") and scripts else None
        stem = program if path is None else PurePosixPath(path).stem
    else:
        stem = PurePosixPath(path).stem if path else "job"
    label = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")[:63].strip("-")
    return label or "job"


def job_spec(
    command: Sequence[str] | None = None,
    script: str | None = None,
    notebook: str | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    args: Sequence[str] | None = None,
    name: str | None = None,
    backend: str | None = None,
    resources: Mapping[str, Any] | None = None,
    datasets: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    array: int | None = None,
    retries: int = 0,
    after: Sequence[Job | str] | None = None,
    prewarm: bool = False,
    release_cache: bool = False,
) -> dict[str, Any]:
    """The JSON job spec ``submit`` sends (also used by the CLI); unset keys are left out,
    so the codespace's ``jobs:`` defaults apply to them."""
    if isinstance(command, str):
        raise TypeError("command is an argument list, e.g. ['python', 'train.py']")
    spec: dict[str, Any] = {"name": name or default_name(command, script, notebook)}
    optional = {
        "command": None if command is None else builtins.list(command),
        "script": script,
        "notebook": notebook,
        "parameters": None if parameters is None else dict(parameters),
        "args": None if args is None else builtins.list(args),
        "backend": backend,
        "resources": None if resources is None else _resources(resources),
        "datasets": None if datasets is None else builtins.list(datasets),
        "env": None if env is None else {str(k): str(v) for k, v in env.items()},
        "array": array,
        "retries": retries or None,
        "afterJobs": [j.id if isinstance(j, Job) else str(j) for j in after] if after else None,
        "prewarm": True if prewarm else None,
        "releaseCache": True if release_cache else None,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    return spec


def _resources(resources: Any) -> dict[str, Any]:
    if hasattr(resources, "to_json"):
        resources = resources.to_json()
    aliases = {"time_limit": "timeLimit"}
    return {aliases.get(k, k): v for k, v in dict(resources).items() if v is not None}


class Job:
    """A handle on one job: ``.id``, ``.status()``, ``.logs()``, ``.wait()``, ``.cancel()``."""

    def __init__(self, record: JobRecord, client: CodespaceClient | None = None) -> None:
        self.record = record  # as last seen
        self._api = client

    @property
    def client(self) -> CodespaceClient:
        if self._api is None:
            self._api = CodespaceClient()
        return self._api

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def output_notebook(self) -> str | None:
        """The executed notebook (workspace-relative) of a notebook job, else None."""
        return self.record.outputNotebook

    def status(self) -> JobRecord:
        """The job's record, fresh from the server (``.state``, ``.reason``, ``.exitCode``)."""
        self.record = JobRecord.from_json(self.client.get_job(self.id))
        return self.record

    def logs(self, tail: int | None = None) -> str:
        """Its output so far (the last ``tail`` lines)."""
        return self.client.job_logs(self.id, tail)

    def wait(self, timeout: float | None = None, poll: float = 1.0) -> JobRecord:
        """Block until the job has finished; its final record. TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.status().done:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} is still {self.record.state} after {timeout}s")
            pause = poll if deadline is None else min(poll, max(deadline - time.monotonic(), 0))
            time.sleep(pause)
        return self.record

    def cancel(self) -> JobRecord:
        self.record = JobRecord.from_json(self.client.cancel_job(self.id))
        return self.record

    def resubmit(self) -> Job:
        """The same spec again, as a new job."""
        [record] = self.client.resubmit_job(self.id)
        return Job(JobRecord.from_json(record), self._api)

    def __repr__(self) -> str:
        reason = f", reason={self.record.reason!r}" if self.record.reason else ""
        return f"Job(id={self.id!r}, name={self.name!r}, state={self.record.state!r}{reason})"


def submit(
    command: Sequence[str] | None = None,
    *,
    script: str | None = None,
    notebook: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    name: str | None = None,
    backend: str | None = None,
    resources: Mapping[str, Any] | None = None,
    datasets: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    array: int | None = None,
    retries: int = 0,
    after: Sequence[Job | str] | None = None,
    args: Sequence[str] | None = None,
    prewarm: bool = False,
    release_cache: bool = False,
    client: CodespaceClient | None = None,
) -> Job:
    """Submit one job: an argv ``command``, a workspace ``script`` (with ``args``), or a
    ``notebook`` executed with papermill (its ``parameters`` injected).

    ``resources``: ``{"cpu": 2, "memory": "8Gi", "gpu": 1, "timeLimit": "2h"}``; ``after``:
    jobs (or ids) that must succeed first; ``backend``: a configured backend by name.
    ``prewarm=True``: the job starts once its ``datasets`` are prewarmed (a cached copy, a
    Fluid DataLoad); ``release_cache=True``: their cached copy is released after it ends.
    One idempotency key per call: a retried request never makes a second job.
    """
    spec = job_spec(
        command,
        script,
        notebook,
        parameters=parameters,
        args=args,
        name=name,
        backend=backend,
        resources=resources,
        datasets=datasets,
        env=env,
        array=array,
        retries=retries,
        after=after,
        prewarm=prewarm,
        release_cache=release_cache,
    )
    api = _client(client)
    [record] = api.submit_jobs({"jobs": [spec]})
    return Job(JobRecord.from_json(record), api)


def list(*, client: CodespaceClient | None = None) -> builtins.list[Job]:
    """Your jobs, newest first."""
    api = _client(client)
    return [Job(JobRecord.from_json(item), api) for item in api.list_jobs()]


def get(job_id: str, *, client: CodespaceClient | None = None) -> Job:
    """One of your jobs, with a fresh record."""
    api = _client(client)
    return Job(JobRecord.from_json(api.get_job(job_id)), api)
