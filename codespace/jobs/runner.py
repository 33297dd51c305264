"""The local runner's pure part: what to run for a job, and where a job stands.

No I/O here (the process side is :mod:`codespace.jobs.processes`, the scheduler
:mod:`codespace.jobs.local`): a job is a :class:`LocalJob` (its record, one :class:`Task` per
array index, the ids it waits for) and these functions turn plain data into plain data:

- :func:`program`: the argv of a command, script or notebook job, or :class:`ProgramError`
  with the reason (a command that does not exist, a script that is missing);
- :func:`job_environment`: the server's environment plus the job's ``env`` and the
  ``CODESPACE_JOB_*`` variables;
- :func:`dependency_verdict`: run, wait or be cancelled, from the states of the jobs waited for;
- :func:`summarize`: the record's state, reason, times and exit code from the tasks.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from codespace.jobs.models import (
    JOBS_DIR,
    JobRecord,
    JobSpec,
    job_dir,
    output_notebook,
    seconds,
)

GIT_EXCLUDE = f"/{JOBS_DIR}/"
KERNEL = "codespace"  # the repository environment's kernelspec (found through JUPYTER_PATH)

TaskState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Verdict = Literal["run", "wait", "cancel"]
FINAL_TASK = ("succeeded", "failed", "cancelled")


class ProgramError(Exception):
    """The job cannot start at all (retrying would not help); the message is the reason."""


@dataclass
class Task:
    """One process of a job (an array job has one per index) and its current attempt."""

    index: int
    state: TaskState = "queued"
    attempt: int = 0  # attempts started so far
    pid: int | None = None  # while its process runs
    last_pid: int | None = None  # the latest attempt's process (the record's backendId)
    ticks: int | None = None  # the process's start time (/proc/<pid>/stat), against pid reuse
    started: float | None = None  # this attempt's start (epoch seconds)
    first_started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    reason: str = ""
    not_before: float = 0.0  # a retry waits for its backoff
    killing: str | None = None  # why it is being killed ("cancelled", "time limit ...")
    kill_at: float | None = None  # when SIGTERM turns into SIGKILL

    @property
    def final(self) -> bool:
        return self.state in FINAL_TASK


@dataclass
class LocalJob:
    """A job of the local backend: the record the API shows plus what the runner needs."""

    record: JobRecord
    tasks: list[Task]
    after: list[str] = field(default_factory=list)  # ids of jobs that must succeed first
    cancelled: str | None = None  # the reason, once cancel() was called
    waiting: str = ""  # why a queued job has not started
    prewarmed: bool = False  # its datasets' prewarm completed (a ``prewarm`` job may start)

    @property
    def spec(self) -> JobSpec:
        return self.record.spec

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def settled(self) -> bool:
        """Finished, and no process of it is left (nothing more to watch)."""
        return self.record.done and all(task.pid is None for task in self.tasks)

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": [dataclasses.asdict(task) for task in self.tasks],
            "after": self.after,
            "cancelled": self.cancelled,
            "waiting": self.waiting,
            "prewarmed": self.prewarmed,
        }

    @classmethod
    def from_json(cls, record: JobRecord, data: Mapping[str, Any]) -> LocalJob:
        return cls(
            record=record,
            tasks=[Task(**task) for task in data.get("tasks", [])],
            after=list(data.get("after", [])),
            cancelled=data.get("cancelled"),
            waiting=data.get("waiting", ""),
            prewarmed=bool(data.get("prewarmed", False)),
        )


def new_tasks(spec: JobSpec) -> list[Task]:
    return [Task(index=index) for index in range(spec.array or 1)]


# --- files ------------------------------------------------------------------------------


# --- what to run --------------------------------------------------------------------------


def job_environment(
    base: Mapping[str, str], spec: JobSpec, job_id: str, index: int, workspace: Path
) -> dict[str, str]:
    """The server's environment (the launch plan's), the job's ``env``, and ours."""
    env = {**base, **spec.env}
    env.setdefault("PYTHONUNBUFFERED", "1")  # logs follow the program as it prints
    env["CODESPACE_JOB_ID"] = job_id
    env["CODESPACE_JOB_NAME"] = spec.name
    env["CODESPACE_JOB_DIR"] = str(workspace / job_dir(job_id))
    if spec.array:
        env["CODESPACE_JOB_INDEX"] = str(index)
        env["CODESPACE_JOB_COUNT"] = str(spec.array)
    else:
        env.pop("CODESPACE_JOB_INDEX", None)
        env.pop("CODESPACE_JOB_COUNT", None)
    if spec.datasets:
        env["CODESPACE_JOB_DATASETS"] = ",".join(spec.datasets)
    return env


Which = Callable[[str, str | None], str | None]


def _which(name: str, path: str | None) -> str | None:
    return shutil.which(name, path=path)


def environment_python(env: Mapping[str, str], which: Which = _which) -> str:
    """The repository environment's Python: ``$VIRTUAL_ENV/bin/python``, else the PATH's."""
    venv = env.get("VIRTUAL_ENV")
    if venv:
        found = which(str(Path(venv) / "bin" / "python"), None)
        if found:
            return found
    for name in ("python", "python3"):
        found = which(name, env.get("PATH"))
        if found:
            return found
    raise ProgramError("no python on the job's PATH to run the script with")


def program(
    spec: JobSpec,
    *,
    workspace: Path,
    env: Mapping[str, str],
    platform_python: str,
    index: int = 0,
    job_id: str,
    which: Which = _which,
    exists: Callable[[Path], bool] = Path.is_file,
) -> list[str]:
    """The job's argv, with the program resolved now (so "not found" is a reason, not a 127)."""
    if spec.command is not None:
        first, *rest = spec.command
        if "/" in first:
            found = which(str(workspace / first), None)
            where = "in the workspace" if not first.startswith("/") else ""
        else:
            found = which(first, env.get("PATH"))
            where = "on the job's PATH"
        if not found:
            raise ProgramError(f"command {first!r} not found {where}".rstrip())
        return [found, *rest]
    if spec.script is not None:
        path = workspace / spec.script
        if not exists(path):
            raise ProgramError(f"script {spec.script!r} not found in the workspace")
        if path.suffix == ".py":
            return [environment_python(env, which), str(path), *spec.args]
        if not which(str(path), None):
            raise ProgramError(f"script {spec.script!r} is not executable (chmod +x, or a .py)")
        return [str(path), *spec.args]
    return notebook_program(spec, workspace, platform_python, index, job_id, exists)


def notebook_program(
    spec: JobSpec,
    workspace: Path,
    platform_python: str,
    index: int,
    job_id: str,
    exists: Callable[[Path], bool] = Path.is_file,
) -> list[str]:
    """papermill from the platform, kernel ``codespace``, parameters as one JSON (YAML) map."""
    assert spec.notebook is not None
    source = workspace / spec.notebook
    if not exists(source):
        raise ProgramError(f"notebook {spec.notebook!r} not found in the workspace")
    output = workspace / str(output_notebook(job_id, spec, index))
    argv = [platform_python, "-I", "-m", "papermill", str(source), str(output)]
    argv += ["-k", KERNEL, "--cwd", str(source.parent), "--log-output", "--no-progress-bar"]
    if spec.parameters:
        argv += ["-y", json.dumps(spec.parameters)]
    return argv


# --- where a job stands -------------------------------------------------------------------


def retry_delay(spec: JobSpec, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1`` (``backoff``, doubling each time)."""
    return spec.backoff * 2 ** max(attempt - 1, 0)


def time_limit(spec: JobSpec) -> int | None:
    limit = spec.resources.timeLimit
    return None if limit is None else seconds(limit)


def exit_reason(code: int | None) -> str:
    """``exit code 3``, ``killed by SIGKILL`` (shell convention: 128 + the signal)."""
    if code is None:
        return "no exit status"
    if code > 128 and code - 128 < signal.NSIG:
        try:
            return f"killed by {signal.Signals(code - 128).name} (exit code {code})"
        except ValueError:
            pass
    return f"exit code {code}"


def normalize_exit(code: int) -> int:
    """Popen's negative signal numbers in the shell's convention (128 + signal)."""
    return 128 - code if code < 0 else code


def dependency_verdict(
    job: LocalJob, states: Mapping[str, tuple[str, str] | None]
) -> tuple[Verdict, str]:
    """Run, wait, or cancel (a dependency failed, was cancelled or is unknown), with why.

    ``states``: job id -> (name, state) of each job waited for; None when it does not exist.
    """
    waiting = []
    for job_id in job.after:
        known = states.get(job_id)
        if known is None:
            return "cancel", f"dependency {job_id} does not exist"
        name, state = known
        if state in ("failed", "cancelled"):
            return "cancel", f"dependency {name!r} ({job_id}) {state}"
        if state != "succeeded":
            waiting.append(repr(name))
    if waiting:
        return "wait", f"waiting for {', '.join(waiting)}"
    return "run", ""


def _iso(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def summarize(job: LocalJob) -> dict[str, Any]:
    """The record's ``state``, ``reason``, times and ``exitCode`` from the tasks (pure)."""
    tasks = job.tasks
    starts = [t.first_started for t in tasks if t.first_started is not None]
    update: dict[str, Any] = {"started": _iso(min(starts)) if starts else None}
    pids = [str(t.last_pid) for t in tasks if t.last_pid is not None]
    if pids:
        update["backendId"] = ",".join(pids)
    if job.cancelled is not None:
        ends = [t.finished for t in tasks if t.finished is not None]
        finished = job.record.finished or _iso(max(ends) if ends else None)
        return {**update, "state": "cancelled", "reason": job.cancelled, "finished": finished}
    if all(t.final for t in tasks):
        failed = [t for t in tasks if t.state != "succeeded"]
        codes = [t.exit_code for t in failed] or [t.exit_code for t in tasks]
        update |= {"finished": _iso(max(t.finished or 0 for t in tasks)), "exitCode": codes[0]}
        if not failed:
            return {**update, "state": "succeeded", "reason": ""}
        first = failed[0]
        reason = first.reason
        if job.spec.array:
            reason = f"task {first.index}: {reason} ({len(failed)} of {len(tasks)} tasks failed)"
        state = "cancelled" if all(t.state == "cancelled" for t in failed) else "failed"
        return {**update, "state": state, "reason": reason}
    running = [t for t in tasks if t.state == "running"]
    retrying = [t for t in tasks if t.state == "queued" and t.attempt > 0]
    if running or retrying or any(t.final for t in tasks):
        reasons = [t.reason for t in running + retrying if t.reason]
        return {**update, "state": "running", "reason": reasons[0] if reasons else ""}
    return {**update, "state": "queued", "reason": job.waiting}
