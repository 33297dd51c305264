"""The Slurm backend's pure reading side: Slurm's job list -> the platform's job state.

Each REST API version has its reader (:data:`READERS`; 22.05's ``squeue --json`` prints the
v0.0.38 shape). A job's state comes from Slurm's entries and the markers its batch script
left (:mod:`codespace.jobs.slurm_payload`): the exit code and reason the script wrote win
over Slurm's words, and a job Slurm no longer lists is judged by them alone.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codespace.jobs.models import JobSpec, JobState

# --- reading Slurm's jobs ------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmTask:
    """One entry of Slurm's job list: a job, an array task, or an array's pending rest."""

    job_id: str  # the job's own id
    array_job_id: str | None  # the array's id (what sbatch answered) for an array task
    indexes: tuple[int, ...]  # the array indexes it stands for (``(0,)`` for a plain job)
    state: str  # Slurm's state word (PENDING, RUNNING, COMPLETED, ...)
    state_reason: str
    exit_code: int | None  # in the shell's convention (128 + signal)
    start: float | None
    end: float | None
    comment: str
    user: str = ""

    @property
    def submitted_id(self) -> str:
        """The id the job was submitted as (the array's id for an array task)."""
        return self.array_job_id or self.job_id


def shell_exit(status: int | None) -> int | None:
    """A wait status (what Slurm reports: ``code << 8 | signal``) as the shell's exit code."""
    if status is None:
        return None
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return status >> 8


def array_indexes(text: str) -> tuple[int, ...]:
    """``"0-3,5%2"`` -> (0, 1, 2, 3, 5)."""
    found: list[int] = []
    for part in text.split("%")[0].split(","):
        if not part.strip():
            continue
        first, _, last = part.partition("-")
        step = 1
        if ":" in last:
            last, _, step_text = last.partition(":")
            step = int(step_text)
        found.extend(range(int(first), int(last or first) + 1, step))
    return tuple(found)


def _time(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None


def read_v0_0_38(entry: Mapping[str, Any]) -> SlurmTask:
    """One job of ``GET /slurm/v0.0.38/jobs`` (and of 22.05's ``squeue --json``)."""
    array_id = entry.get("array_job_id") or 0
    task = entry.get("array_task_id")
    if array_id and task is not None:
        indexes: tuple[int, ...] = (int(task),)
    elif array_id:
        indexes = array_indexes(str(entry.get("array_task_string") or ""))
    else:
        indexes = (0,)
    state = str(entry.get("job_state") or "")
    exit_code = entry.get("exit_code")
    return SlurmTask(
        job_id=str(entry["job_id"]),
        array_job_id=str(array_id) if array_id else None,
        indexes=indexes,
        state=state,
        state_reason=str(entry.get("state_reason") or ""),
        exit_code=shell_exit(exit_code) if isinstance(exit_code, int) else None,
        start=None if state == "PENDING" else _time(entry.get("start_time")),
        end=_time(entry.get("end_time")) if state in FINAL_STATES else None,
        comment=str(entry.get("comment") or ""),
        user=str(entry.get("user_name") or ""),
    )


READERS: dict[str, Callable[[Mapping[str, Any]], SlurmTask]] = {"v0.0.38": read_v0_0_38}


# --- Slurm's states in the platform's words ---------------------------------------------------

# Slurm state -> (platform state, reason); None: the reason comes from the exit code.
STATES: dict[str, tuple[JobState, str | None]] = {
    "PENDING": ("queued", ""),
    "REQUEUED": ("queued", "requeued by Slurm"),
    "REQUEUE_HOLD": ("queued", "requeued and held by Slurm"),
    "REQUEUE_FED": ("queued", "requeued by Slurm"),
    "CONFIGURING": ("running", "starting (nodes being configured)"),
    "RUNNING": ("running", ""),
    "COMPLETING": ("running", "completing"),
    "RESIZING": ("running", "resizing"),
    "SIGNALING": ("running", "being signalled"),
    "STAGE_OUT": ("running", "staging out"),
    "SUSPENDED": ("running", "suspended by Slurm"),
    "STOPPED": ("running", "stopped by Slurm"),
    "COMPLETED": ("succeeded", ""),
    "FAILED": ("failed", None),
    "CANCELLED": ("cancelled", "cancelled"),
    "REVOKED": ("cancelled", "revoked by Slurm (federation)"),
    "TIMEOUT": ("failed", "time limit reached (Slurm)"),
    "DEADLINE": ("failed", "deadline reached (Slurm)"),
    "NODE_FAIL": ("failed", "node failure (Slurm)"),
    "BOOT_FAIL": ("failed", "node boot failure (Slurm)"),
    "OUT_OF_MEMORY": ("failed", "out of memory"),
    "PREEMPTED": ("failed", "preempted by Slurm"),
    "SPECIAL_EXIT": ("failed", "special exit (Slurm)"),
}
FINAL_STATES = frozenset(
    k for k, (state, _) in STATES.items() if state not in ("queued", "running")
)
WAITING = {
    "None": "",
    "Resources": "waiting for resources",
    "Priority": "waiting for higher-priority jobs",
    "Dependency": "waiting for the jobs it runs after",
    "BeginTime": "waiting for its start time",
    "JobHeldUser": "held by the user",
    "JobHeldAdmin": "held by an administrator",
    "ReqNodeNotAvail": "waiting for a node (required node not available)",
    "DependencyNeverSatisfied": "a job it runs after did not succeed",
}


def exit_reason(code: int | None) -> str:
    """``exit code 3``, ``killed by SIGKILL (exit code 137)``."""
    if code is None:
        return "no exit status"
    if 128 < code < 128 + signal.NSIG:
        try:
            return f"killed by {signal.Signals(code - 128).name} (exit code {code})"
        except ValueError:
            pass
    return f"exit code {code}"


@dataclass
class TaskView:
    """One array index (or the one task of a plain job) as the backend sees it."""

    index: int
    state: JobState = "queued"
    reason: str = ""
    exit_code: int | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Markers:
    """What the job's script left in its directory: per index, start, exit code, reason."""

    started: Mapping[int, str] = field(default_factory=dict)  # index -> Slurm job id
    exits: Mapping[int, int] = field(default_factory=dict)
    reasons: Mapping[int, str] = field(default_factory=dict)
    times: Mapping[int, tuple[float | None, float | None]] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return bool(self.started or self.exits)


def task_view(index: int, task: SlurmTask | None, markers: Markers) -> TaskView:
    """One index's state from Slurm's entry (None: Slurm has none) and the markers."""
    code = markers.exits.get(index)
    reason = markers.reasons.get(index, "")
    if task is None:
        if code is not None:
            state: JobState = "succeeded" if code == 0 else "failed"
            why = "" if code == 0 else reason or exit_reason(code)
            return TaskView(index, state, why, code, *markers.times.get(index, (None, None)))
        if index in markers.started:
            return TaskView(
                index, "failed", "lost: Slurm no longer knows the job and it left no exit status"
            )
        return TaskView(index, "queued")
    state, why = STATES.get(task.state, ("running", f"Slurm state {task.state}"))
    if task.state in ("PENDING", "REQUEUED") and task.state_reason:
        why = WAITING.get(task.state_reason, f"waiting ({task.state_reason})")
    if task.state == "CANCELLED" and task.state_reason == "DependencyNeverSatisfied":
        why = WAITING["DependencyNeverSatisfied"]
    code = code if code is not None else task.exit_code
    if state == "failed" and reason:
        why = reason
    elif state == "failed" and why is None:
        why = exit_reason(code)
    start = task.start
    if state == "cancelled" and index not in markers.started:
        code = start = None  # cancelled before it started
    if state in ("queued", "running"):
        code = None
    return TaskView(index, state, why or "", code, start, task.end)


def _iso(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def summarize(spec: JobSpec, tasks: Sequence[TaskView]) -> dict[str, Any]:
    """The record's ``state``, ``reason``, ``started``/``finished`` and ``exitCode``."""
    starts = [t.start for t in tasks if t.start is not None]
    update: dict[str, Any] = {"started": _iso(min(starts)) if starts else None}
    final = [t for t in tasks if t.state in ("succeeded", "failed", "cancelled")]
    if len(final) == len(tasks):
        failed = [t for t in tasks if t.state != "succeeded"]
        codes = [t.exit_code for t in failed] or [t.exit_code for t in tasks]
        ends = [t.end for t in tasks if t.end is not None]
        update |= {"finished": _iso(max(ends)) if ends else None, "exitCode": codes[0]}
        if not failed:
            return {**update, "state": "succeeded", "reason": ""}
        first = failed[0]
        reason = first.reason
        if spec.array:
            reason = f"task {first.index}: {reason} ({len(failed)} of {len(tasks)} tasks failed)"
        state = "cancelled" if all(t.state == "cancelled" for t in failed) else "failed"
        return {**update, "state": state, "reason": reason}
    running = [t for t in tasks if t.state == "running"]
    if running or final:
        reasons = [t.reason for t in running if t.reason]
        return {**update, "state": "running", "reason": reasons[0] if reasons else ""}
    reasons = [t.reason for t in tasks if t.reason]
    return {**update, "state": "queued", "reason": reasons[0] if reasons else ""}


# --- errors ---------------------------------------------------------------------------------------

# Slurm error numbers that mean "try again" (the controller is down, busy or restarting):
# EAGAIN, ETIMEDOUT, ECONNREFUSED, the 1xxx communication and 5xxx socket errors.
_TRANSIENT_ERRNO = {11, 110, 111}
_TRANSIENT_TEXT = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Zero Bytes were transmitted"
    r"|Resource temporarily unavailable|Connection refused|Communication connection failure"
    r"|Slurm backup controller in standby mode|Transport endpoint",
    re.IGNORECASE,
)


def transient_errno(number: int) -> bool:
    return number in _TRANSIENT_ERRNO or 1000 <= number < 2000 or 5000 <= number < 6000


def transient_text(text: str) -> bool:
    """Whether a Slurm tool's message says the controller could not be reached."""
    return bool(_TRANSIENT_TEXT.search(text))
