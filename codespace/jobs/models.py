"""Jobs, server side: the job spec a user submits and the record a backend keeps.

One vocabulary for every backend (local processes, Slurm, Argo Workflows): a job runs an argv
``command``, a ``script`` of the repository, or a ``notebook`` executed with papermill (its
``parameters`` injected, the executed copy kept next to the logs), in the codespace's own
environment (its launch plan's) with its datasets. ``resources`` use the ``.codespace``
spec's words (``cpu``, ``memory``, ``gpu``) plus a ``timeLimit``. A :class:`Submission` is one
or more jobs; ``after`` names other jobs of the same submission (a DAG) and
``idempotencyKey`` makes a retried submission return the jobs it already made. ``prewarm``
starts a job only once its datasets' prewarm (a local cache copy, a Fluid ``DataLoad``) has
completed; ``releaseCache`` drops the cached copy after the job ends.

The kernel-side SDK (:mod:`codespace.jobs`) never imports this module (no pydantic there).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from codespace.spec.model import GpuRequest

# In the workspace: each job's logs and outputs (kept out of git status; not hidden, so the
# file browser and the contents API serve them), for every backend.
JOBS_DIR = "codespace-jobs"
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")
JOB_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$|^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def seconds(limit: str) -> int:
    """A time limit (``"30m"``, ``"2h"``, ``"1d"``, ``"HH:MM:SS"``, ``"D-HH:MM:SS"``) in seconds."""
    match = _TIME.match(limit.strip())
    if match is None:
        raise ValueError(
            f"time limit {limit!r} is not a duration such as '30m', '2h' or 'HH:MM:SS'"
        )
    if match[5]:
        return int(match[5]) * _UNITS[match[6]]
    days, hours, minutes, secs = (int(match[i] or 0) for i in (1, 2, 3, 4))
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


def _repo_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{value!r} is not a path inside the workspace (such as train.py)")
    return str(path)


class JobResources(_Model):
    cpu: float | None = Field(None, gt=0, description="CPU cores")
    memory: str | None = Field(None, description="Memory, e.g. '8Gi'")
    gpu: GpuRequest | None = Field(None, description="As resources.gpu of the .codespace spec")
    timeLimit: str | None = Field(None, description="'30m', '2h', 'HH:MM:SS'")

    @field_validator("timeLimit")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None:
            seconds(value)
        return value

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value} if value else None
        return value


class JobSpec(_Model):
    """One job. Exactly one of ``command``, ``script`` and ``notebook``."""

    name: str = Field(..., description="DNS label: a-z, 0-9 and '-', at most 63")
    command: list[str] | None = Field(None, min_length=1, description="argv, run as is")
    script: str | None = Field(None, description="a script of the workspace, run with its env")
    notebook: str | None = Field(None, description="a notebook, executed with papermill")
    parameters: dict[str, Any] = Field(default_factory=dict, description="papermill parameters")
    args: list[str] = Field(default_factory=list, description="arguments for a script")
    resources: JobResources = Field(default_factory=JobResources)
    datasets: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    array: int | None = Field(None, ge=1, le=10000, description="run N copies (task index env)")
    retries: int = Field(0, ge=0, le=10)
    backoff: float = Field(10.0, ge=0, description="seconds before the first retry (doubles)")
    after: list[str] = Field(default_factory=list, description="jobs of this submission first")
    afterJobs: list[str] = Field(
        default_factory=list,
        description="ids of the owner's earlier jobs (same backend) that must succeed first",
    )
    backend: str | None = Field(None, description="a configured backend; default: the site's")
    prewarm: bool = Field(
        False,
        description="prewarm the job's datasets first; the job starts when their prewarm completes",
    )
    releaseCache: bool = Field(
        False, description="after the job ends, release the datasets' cached copy"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not JOB_NAME.match(value):
            raise ValueError(f"job name {value!r} must be a DNS label (a-z, 0-9, '-')")
        return value

    @field_validator("script", "notebook")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else _repo_path(value)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"environment variable name {key!r} is not valid")
        return value

    @model_validator(mode="after")
    def _one_program(self) -> JobSpec:
        given = [k for k in ("command", "script", "notebook") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of command, script and notebook"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.parameters and self.notebook is None:
            raise ValueError("parameters are for a notebook job")
        if self.notebook is not None and not self.notebook.endswith(".ipynb"):
            raise ValueError(f"notebook {self.notebook!r} is not an .ipynb file")
        for flag in ("prewarm", "releaseCache"):
            if getattr(self, flag) and not self.datasets:
                raise ValueError(f"{flag} needs datasets: name the datasets to {flag}")
        return self


class Submission(_Model):
    """What a user submits: jobs (a DAG through ``after``) and an idempotency key."""

    jobs: list[JobSpec] = Field(..., min_length=1, max_length=100)
    idempotencyKey: str | None = Field(None, min_length=8, max_length=128)

    @model_validator(mode="after")
    def _graph(self) -> Submission:
        names = [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise ValueError("job names in a submission must be unique")
        known = set(names)
        for job in self.jobs:
            missing = [name for name in job.after if name not in known]
            if missing:
                raise ValueError(f"job {job.name!r}: after names unknown jobs {missing}")
        order = topological_order(self.jobs)  # raises on a cycle
        self.jobs = order
        return self


def topological_order(jobs: list[JobSpec]) -> list[JobSpec]:
    """The jobs so that each comes after the jobs it waits for; ValueError on a cycle."""
    by_name = {job.name: job for job in jobs}
    done: dict[str, bool] = {}  # False: in progress, True: placed
    order: list[JobSpec] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if done.get(name) is True:
            return
        if done.get(name) is False:
            raise ValueError(f"jobs wait for each other in a cycle: {' -> '.join((*path, name))}")
        done[name] = False
        for before in by_name[name].after:
            visit(before, (*path, name))
        done[name] = True
        order.append(by_name[name])

    for job in jobs:
        visit(job.name, ())
    return order


# --- where a job's files go, in the workspace (the same for every backend) ---------------------


def job_dir(job_id: str) -> str:
    """The job's directory, relative to the workspace."""
    return f"{JOBS_DIR}/{job_id}"


def log_name(spec: JobSpec, index: int | str) -> str:
    return f"output-{index}.log" if spec.array else "output.log"


def log_path(job_id: str, spec: JobSpec) -> str:
    """The record's ``logPath``: the log file, or for an array the directory of its logs."""
    return job_dir(job_id) if spec.array else f"{job_dir(job_id)}/output.log"


def output_notebook(job_id: str, spec: JobSpec, index: int | str = 0) -> str | None:
    """Where papermill writes the executed notebook (for an array: task ``index``'s)."""
    if spec.notebook is None:
        return None
    stem = PurePosixPath(spec.notebook).stem
    name = f"{stem}-{index}.ipynb" if spec.array else f"{stem}.ipynb"
    return f"{job_dir(job_id)}/{name}"


class JobRecord(_Model):
    """A job as a backend knows it."""

    id: str = Field(..., description="the platform's id (stable across backends)")
    name: str
    owner: str
    backend: str
    backendId: str | None = Field(None, description="the engine's id (Slurm job id, ...)")
    submission: str = Field(..., description="the id of the submission it belongs to")
    state: JobState = "queued"
    reason: str = ""
    submitted: datetime
    started: datetime | None = None
    finished: datetime | None = None
    exitCode: int | None = None
    logPath: str | None = Field(None, description="its log, relative to the workspace")
    outputNotebook: str | None = Field(None, description="the executed notebook, if any")
    spec: JobSpec

    @property
    def done(self) -> bool:
        return self.state in FINISHED
