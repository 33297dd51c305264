"""The local job backend (the embedded default): jobs are processes of the codespace's server.

The server already runs as the codespace's account, in its cgroup and sandbox, with the
launch plan's environment (the repository environment first on ``PATH``), so a job started
here runs exactly where the notebook runs, in the workspace. What it adds:

- a scheduler task on the server's event loop (running only while jobs are unfinished) that
  starts queued tasks when their ``after`` jobs succeeded and a slot is free (the
  ``concurrency`` option, default: the CPUs), watches running ones, enforces the time limit
  (SIGTERM to the process group, SIGKILL after ``kill_grace`` seconds), retries failures
  after ``backoff`` seconds (doubling) and cancels the dependents of a failed job;
- state in SQLite under ``state_dir`` (:mod:`codespace.jobs.store`): a restarted server
  re-attaches the processes still running (pid + start time) and marks the lost ones failed;
- logs and output notebooks under ``<workspace>/codespace-jobs/<id>/`` (git-excluded);
- run after prewarm: with a :class:`~codespace.jobs.prewarm.PrewarmGate` (the job service
  gives it, from the server's dataset backend), a ``prewarm`` job's datasets are prewarmed
  at submission and the job starts once they all completed (its reason says "waiting for the
  prewarm of X (37%)"; a failed prewarm fails it with the prewarm's reason); after a
  ``releaseCache`` job ends, its datasets' cached copy is released unless another unfinished
  job uses them (a note in its log says what was done).

Options (``JobSettings.options``): ``concurrency`` (int), ``kill_grace`` and
``poll_interval`` (seconds).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from codespace.git import with_excludes
from codespace.jobs import processes
from codespace.jobs.backend import JobBackend, JobError, JobNotFound, JobSettings, new_records
from codespace.jobs.models import JOBS_DIR, JobRecord, Submission, job_dir, log_name
from codespace.jobs.prewarm import PrewarmGate, PrewarmVerdict
from codespace.jobs.runner import (
    GIT_EXCLUDE,
    LocalJob,
    ProgramError,
    Task,
    dependency_verdict,
    exit_reason,
    job_environment,
    new_tasks,
    normalize_exit,
    program,
    retry_delay,
    summarize,
    time_limit,
)
from codespace.jobs.store import JobStore

log = logging.getLogger(__name__)

OPTIONS: dict[str, type] = {"concurrency": int, "kill_grace": float, "poll_interval": float}
LOST = "lost: the process ended while the server was away and left no exit status"
PREWARM_POLL = 1.0  # seconds between asking the dataset backend where prewarms stand
PREWARM_CHECK_TIMEOUT = 10.0  # a slow dataset backend must not stall the scheduler longer
NO_GATE = "this server has no dataset backend to prewarm with or release a cache through"


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def parse_options(options: dict[str, Any]) -> dict[str, Any]:
    """The backend's options, checked (a wrong name or value is an error naming it)."""
    parsed: dict[str, Any] = {"concurrency": _cpus(), "kill_grace": 10.0, "poll_interval": 0.5}
    for name, value in options.items():
        kind = OPTIONS.get(name)
        if kind is None:
            known = ", ".join(OPTIONS)
            raise JobError(f"local job backend: unknown option {name!r} (known: {known})")
        try:
            parsed[name] = kind(value)
        except (TypeError, ValueError) as error:
            raise JobError(f"local job backend: option {name!r}: {error}") from error
        if parsed[name] <= 0:
            raise JobError(f"local job backend: option {name!r} must be positive")
    return parsed


class LocalJobBackend(JobBackend):
    """Jobs as processes of this server, state in SQLite, survivors re-attached on restart."""

    kind = "local"
    supports_after_jobs = True
    # Set by the job service (from the server's dataset backend); None: no prewarm here.
    prewarm_gate: PrewarmGate | None = None

    def __init__(
        self,
        settings: JobSettings,
        *,
        concurrency: int,
        kill_grace: float = 10.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.settings = settings
        self.workspace = Path(settings.workspace)
        self.owner = settings.owner
        self.concurrency = concurrency
        self.kill_grace = kill_grace
        self.poll_interval = poll_interval
        self.store = JobStore(Path(settings.state_dir) / "jobs.sqlite3")
        self.exits = Path(settings.state_dir) / "exits"
        self._active: dict[str, LocalJob] | None = None  # loaded on first use
        self._procs: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
        self._finished: dict[str, tuple[str, str]] = {}  # id -> (name, state)
        self._wake: asyncio.Event | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._workspace_ready = False
        self._prewarm: dict[str, tuple[PrewarmVerdict, str]] = {}  # job id -> the gate's word
        self._prewarm_due = 0.0  # when to ask the gate again (monotonic)
        self._releases: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: JobSettings) -> Self:
        return cls(settings, **parse_options(dict(settings.options)))

    # --- the interface ----------------------------------------------------------------------

    async def submit(self, submission: Submission) -> list[JobRecord]:
        active = self._attach()
        key = submission.idempotencyKey
        if key is not None:
            made = self.store.submission(self.owner, key)
            if made is not None:
                return [await self.get(job_id) for job_id in made]
        for spec in submission.jobs:
            for job_id in spec.afterJobs:
                if self._lookup(job_id) is None:
                    raise JobError(f"job {spec.name!r}: afterJobs names no job {job_id!r}")
        await self._start_prewarms(submission)
        jobs = self._new_jobs(submission)
        self.store.add(jobs, key)
        for job in jobs:
            active[job.id] = job
        self._kick()
        return [job.record for job in jobs]

    async def list(self) -> list[JobRecord]:
        self._attach()
        return [job.record for job in self.store.list(self.owner)]

    async def get(self, job_id: str) -> JobRecord:
        return self._job(job_id).record

    async def logs(self, job_id: str, tail: int | None = None) -> str:
        job = self._job(job_id)
        paths = [self.workspace / job_dir(job.id) / log_name(job.spec, t.index) for t in job.tasks]
        if not job.spec.array:
            return await asyncio.to_thread(processes.read_tail, paths[0], tail)
        parts = []
        for index, path in enumerate(paths):
            text = await asyncio.to_thread(processes.read_tail, path, tail)
            parts.append(f"==> task {index} <==\n{text}")
        return "\n".join(parts)

    async def cancel(self, job_id: str) -> JobRecord:
        job = self._job(job_id)
        if job.record.done:
            return job.record
        self._cancel(job, "cancelled", time.time())
        self._refresh(job)
        self.store.save([job])
        self._kick()
        return job.record

    async def close(self) -> None:
        """Stop watching; the jobs' processes keep running (a restart re-attaches them)."""
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        if self._scheduler is not None:
            self._scheduler.cancel()
            try:
                await self._scheduler
            except asyncio.CancelledError:
                pass
            self._scheduler = None
        self.store.close()

    # --- jobs -------------------------------------------------------------------------------

    def _attach(self) -> dict[str, LocalJob]:
        """Load the unfinished jobs once (a restart finds its jobs here) and watch them."""
        if self._active is None:
            self._active = {job.id: job for job in self.store.unsettled(self.owner)}
            self._kick()
        return self._active

    def _lookup(self, job_id: str) -> LocalJob | None:
        active = self._attach()
        return active.get(job_id) or self.store.get(self.owner, job_id)

    def _job(self, job_id: str) -> LocalJob:
        job = self._lookup(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    def _new_jobs(self, submission: Submission) -> list[LocalJob]:
        ids, records = new_records(submission, self.owner, self.kind)
        return [
            LocalJob(
                record=record,
                tasks=new_tasks(record.spec),
                after=[ids[name] for name in record.spec.after] + list(record.spec.afterJobs),
            )
            for record in records
        ]

    def _refresh(self, job: LocalJob) -> None:
        job.record = job.record.model_copy(update=summarize(job))

    def _cancel(self, job: LocalJob, reason: str, now: float) -> None:
        job.cancelled = reason
        job.record = job.record.model_copy(update={"finished": datetime.fromtimestamp(now, UTC)})
        for task in job.tasks:
            if task.pid is not None:
                self._kill(task, "cancelled", now)
            elif not task.final:
                task.state, task.finished, task.reason = "cancelled", now, reason

    # --- the scheduler ----------------------------------------------------------------------

    def _kick(self) -> None:
        """Run the scheduler now (start it if it is not running)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop (yet): the next call from the loop starts it
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._scheduler is None or self._scheduler.done():
            self._scheduler = asyncio.create_task(self._schedule(), name="codespace-local-jobs")

    async def _schedule(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                await self._check_prewarms()
                self._tick(time.time())
            except Exception:  # a bug must not stop every job from being watched
                log.exception("local jobs: the scheduler's step failed")
            if not self._active:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass

    def _tick(self, now: float) -> None:
        """One step: watch running tasks, settle dependencies, start what may start."""
        active = self._active or {}
        changed: dict[str, LocalJob] = {}
        for job in active.values():
            for task in job.tasks:
                if task.pid is not None and self._watch(job, task, now):
                    changed[job.id] = job
        running = sum(1 for job in active.values() for t in job.tasks if t.pid is not None)
        for job in active.values():
            if job.cancelled is None:
                changed_here, started = self._advance(job, now, running)
                running += started
                if changed_here:
                    changed[job.id] = job
        for job in changed.values():
            self._refresh(job)
        self.store.save(changed.values())
        settled = [job for job in active.values() if job.settled]
        for job in settled:
            self._finished[job.id] = (job.record.name, job.record.state)
            self._prewarm.pop(job.id, None)
            del active[job.id]
        for job in settled:
            if job.spec.releaseCache:
                self._release_later(job)

    def _advance(self, job: LocalJob, now: float, running: int) -> tuple[bool, int]:
        """Cancel, keep waiting, or start the job's due tasks: (changed, processes started)."""
        verdict, why = dependency_verdict(job, {i: self._state_of(i) for i in job.after})
        if verdict == "cancel":
            self._cancel(job, why, now)
            return True, 0
        prewarm, prewarm_why = self._prewarm_verdict(job)
        if prewarm == "fail":
            self._fail_queued(job, prewarm_why, now)
            return True, 0
        if verdict == "wait" or prewarm == "wait":
            why = "; ".join(w for w in (why, prewarm_why) if w)
            changed, job.waiting = job.waiting != why, why
            return changed, 0
        changed, started = False, 0
        if job.spec.prewarm and not job.prewarmed:
            job.prewarmed = changed = True
        for task in job.tasks:
            if task.state != "queued" or task.not_before > now:
                continue
            if running + started >= self.concurrency:
                why = f"waiting for a free slot ({self.concurrency} running)"
                changed, job.waiting = changed or job.waiting != why, why
                break
            self._start(job, task, now)
            started += task.pid is not None
            changed = True
        return changed, started

    # --- run after prewarm --------------------------------------------------------------

    async def _start_prewarms(self, submission: Submission) -> None:
        """Prewarm the datasets of the submission's ``prewarm`` jobs (JobError: none made)."""
        wanted = [n for spec in submission.jobs if spec.prewarm for n in spec.datasets]
        releasing = any(spec.releaseCache for spec in submission.jobs)
        if (wanted or releasing) and self.prewarm_gate is None:
            raise JobError(f"prewarm and releaseCache: {NO_GATE}")
        if wanted:
            assert self.prewarm_gate is not None
            await self.prewarm_gate.start(wanted)
            self._prewarm_due = 0.0  # ask at once: a completed prewarm starts the job now

    async def _check_prewarms(self) -> None:
        """Ask the gate where the prewarms of waiting ``prewarm`` jobs stand (throttled)."""
        if time.monotonic() < self._prewarm_due:
            return
        self._prewarm_due = time.monotonic() + max(self.poll_interval, PREWARM_POLL)
        for job in list((self._active or {}).values()):
            if not job.spec.prewarm or job.prewarmed or job.record.done or job.cancelled:
                continue
            if self.prewarm_gate is None:  # e.g. restarted without a dataset backend
                self._prewarm[job.id] = ("fail", f"prewarm: {NO_GATE}")
                continue
            try:
                check = self.prewarm_gate.done(job.spec.datasets)
                self._prewarm[job.id] = await asyncio.wait_for(check, PREWARM_CHECK_TIMEOUT)
            except Exception as error:  # the dataset backend's trouble: keep waiting
                log.exception("local jobs: the prewarm of %s could not be checked", job.id)
                why = str(error) or type(error).__name__
                self._prewarm[job.id] = ("wait", f"waiting for the prewarm (not checked: {why})")

    def _prewarm_verdict(self, job: LocalJob) -> tuple[PrewarmVerdict, str]:
        if not job.spec.prewarm or job.prewarmed:
            return "run", ""
        names = ", ".join(job.spec.datasets)
        return self._prewarm.get(job.id, ("wait", f"waiting for the prewarm of {names}"))

    def _fail_queued(self, job: LocalJob, reason: str, now: float) -> None:
        """Fail a job none of whose tasks started (its prewarm failed)."""
        for task in job.tasks:
            if not task.final:
                task.state, task.reason, task.finished = "failed", reason, now

    def _release_later(self, job: LocalJob) -> None:
        """Release the ended job's datasets that no unfinished job uses, in the background."""
        in_use = {name for other in (self._active or {}).values() for name in other.spec.datasets}
        names = [name for name in job.spec.datasets if name not in in_use]
        kept = [name for name in job.spec.datasets if name in in_use]
        notes = [f"{name}: kept, another unfinished job uses it" for name in kept]
        task = asyncio.create_task(self._release(job, names, notes))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, job: LocalJob, names: list[str], notes: list[str]) -> None:
        try:
            if names and self.prewarm_gate is not None:
                notes = [*await self.prewarm_gate.release(names), *notes]
            elif names:
                notes.append(f"not released: {NO_GATE}")
        except Exception as error:  # reported in the job's log
            log.exception("local jobs: releasing the cache of %s failed", job.id)
            notes.append(f"releasing the cache failed: {error}")
        log.info("local jobs: %s: releaseCache: %s", job.id, "; ".join(notes))
        path = self.workspace / job_dir(job.id) / log_name(job.spec, 0)
        if path.parent.is_dir():
            text = "".join(f"--- codespace: releaseCache: {note}\n" for note in notes)
            await asyncio.to_thread(_append, path, text)

    def _state_of(self, job_id: str) -> tuple[str, str] | None:
        active = self._active or {}
        if job_id in active:
            return active[job_id].record.name, active[job_id].record.state
        if job_id not in self._finished:
            job = self.store.get(self.owner, job_id)
            if job is None:
                return None
            self._finished[job_id] = (job.record.name, job.record.state)
        return self._finished[job_id]

    # --- processes --------------------------------------------------------------------------

    def _start(self, job: LocalJob, task: Task, now: float) -> None:
        spec = job.spec
        env = job_environment(self.settings.environment, spec, job.id, task.index, self.workspace)
        try:
            argv = program(
                spec,
                workspace=self.workspace,
                env=env,
                platform_python=sys.executable,
                index=task.index,
                job_id=job.id,
            )
            self._prepare_workspace()
            log_file = self.workspace / job_dir(job.id) / log_name(spec, task.index)
            if task.attempt:
                with open(log_file, "a", encoding="utf-8") as out:
                    out.write(f"--- codespace: attempt {task.attempt + 1} of {spec.retries + 1}\n")
            exit_file = self.exits / f"{job.id}.{task.index}.{task.attempt + 1}"
            proc = processes.spawn(
                argv, cwd=self.workspace, env=env, log=log_file, exit_file=exit_file
            )
        except ProgramError as error:
            task.state, task.reason, task.finished = "failed", str(error), now
            return
        except OSError as error:
            task.state, task.reason, task.finished = "failed", f"cannot start: {error}", now
            return
        self._procs[(job.id, task.index)] = proc
        task.attempt += 1
        task.state, task.pid, task.ticks = "running", proc.pid, processes.start_ticks(proc.pid)
        task.last_pid = proc.pid
        task.started, task.exit_code, task.not_before = now, None, 0.0
        task.first_started = task.first_started or now
        task.reason = f"attempt {task.attempt} of {spec.retries + 1}" if task.attempt > 1 else ""

    def _watch(self, job: LocalJob, task: Task, now: float) -> bool:
        """Check one running task: ended, over its time limit, due for SIGKILL."""
        assert task.pid is not None
        proc = self._procs.get((job.id, task.index))
        exit_file = self.exits / f"{job.id}.{task.index}.{task.attempt}"
        if proc is not None:
            code = proc.poll()
            ended = code is not None
            if ended:
                recorded = processes.read_exit(exit_file)
                code = recorded if recorded is not None else normalize_exit(code)
        else:  # re-attached after a restart: not our child, its exit file says how it ended
            ended = not processes.alive(task.pid, task.ticks)
            code = processes.read_exit(exit_file) if ended else None
        if ended:
            self._procs.pop((job.id, task.index), None)
            self._ended(job, task, code, now)
            return True
        if task.killing is not None:
            if task.kill_at is not None and now >= task.kill_at:
                processes.kill_group(task.pid, signal.SIGKILL)
                task.kill_at = None
            return False
        limit = time_limit(job.spec)
        if limit is not None and task.started is not None and now - task.started >= limit:
            self._kill(task, f"time limit {job.spec.resources.timeLimit} reached", now)
            return True
        return False

    def _kill(self, task: Task, why: str, now: float) -> None:
        if task.pid is None or task.killing == "cancelled":
            return
        task.killing, task.kill_at = why, now + self.kill_grace
        if processes.alive(task.pid, task.ticks):
            processes.kill_group(task.pid, signal.SIGTERM)

    def _ended(self, job: LocalJob, task: Task, code: int | None, now: float) -> None:
        killing, task.killing, task.kill_at = task.killing, None, None
        task.pid, task.ticks, task.finished, task.exit_code = None, None, now, code
        if job.cancelled is not None or killing == "cancelled":
            task.state, task.reason = "cancelled", job.cancelled or "cancelled"
        elif killing is not None:
            self._failed(job, task, killing, now)
        elif code == 0:
            task.state, task.reason = "succeeded", ""
        elif code is None:
            task.state, task.reason = "failed", LOST
        else:
            self._failed(job, task, exit_reason(code), now)

    def _failed(self, job: LocalJob, task: Task, reason: str, now: float) -> None:
        """Fail the task, or queue its next attempt after the backoff."""
        retries = job.spec.retries
        if task.attempt <= retries:
            delay = retry_delay(job.spec, task.attempt)
            task.state, task.not_before = "queued", now + delay
            task.reason = f"{reason}; attempt {task.attempt + 1} of {retries + 1} in {delay:g}s"
            return
        task.state = "failed"
        task.reason = f"{reason} (attempt {task.attempt} of {retries + 1})" if retries else reason

    def _prepare_workspace(self) -> None:
        """The jobs directory, and its line in the checkout's ``.git/info/exclude``."""
        if self._workspace_ready:
            return
        (self.workspace / JOBS_DIR).mkdir(exist_ok=True)
        exclude = self.workspace / ".git" / "info" / "exclude"
        if exclude.parent.parent.is_dir():
            text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
            updated = with_excludes(text, [GIT_EXCLUDE])
            if updated is not None:
                exclude.parent.mkdir(exist_ok=True)
                exclude.write_text(updated, encoding="utf-8")
        self._workspace_ready = True


def _append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(text)
