"""The Slurm job backend: jobs go to a Slurm cluster through slurmrestd, or the Slurm CLI.

Through **slurmrestd** (``url`` set) each request carries the user's JWT
(``X-SLURM-USER-NAME`` / ``X-SLURM-USER-TOKEN``), so Slurm runs the job as that user; the
payload is built per REST API version (``api_version``, default ``v0.0.38``: Debian 12's
Slurm 22.05). Without a ``url`` (or with ``mode: cli``) it runs ``sbatch --parsable``,
``squeue --json`` and ``scancel`` as the server's own user (argument lists, never a shell).

What a job runs, and how it reports, is :mod:`codespace.jobs.slurm_payload`'s batch script:
the workspace as working directory, the codespace's environment, papermill for notebooks,
``CODESPACE_JOB_INDEX`` from ``SLURM_ARRAY_TASK_ID``, retries inside the allocation, the
time limit to the second, and markers (started, exit code, reason) next to the logs in
``<workspace>/codespace-jobs/<id>/``. ``after`` (and ``afterJobs``) become
``--dependency=afterok:<ids>``: a submission's jobs are submitted in its topological order.

Reliability. Records live in SQLite under ``state_dir`` (:mod:`codespace.jobs.slurm_store`),
written before Slurm is asked. Every Slurm job carries the comment ``codespace:<id>``:

- when Slurm cannot be reached (slurmctld down or restarting), the backend keeps trying for
  ``submit_timeout`` seconds, and before each new attempt looks the job up by its comment,
  so a submission that went through although its answer was lost is not made twice; a job
  still unsubmitted when the time is up stays ``queued`` (reason: waiting for Slurm), and a
  background task (and every ``list``/``get``) finishes its submission later;
- a slurmctld killed before it saved its state forgets jobs it had accepted (and hands their
  ids out again): a job Slurm no longer lists under its comment is judged by its markers: one
  that started is never submitted again (its exit code comes from the markers), one that
  never started (no marker, and Slurm listed it as queued less than ``MinJobAge`` ago, or
  never) is resubmitted; the rest fail with the reason. The workspace must be on a
  filesystem the cluster shares (Slurm writes the logs and markers there).

So with slurmctld killed during a burst of submissions and restarted, nothing is lost and
nothing runs twice. Idempotency keys map to the submission's jobs; another owner's id is
:class:`~codespace.jobs.backend.JobNotFound`.

Options (``JobSettings.options``): ``url``, ``api_version``, ``token`` / ``token_file``
(the user's JWT; ``{owner}`` and ``~`` expand; else ``SLURM_JWT`` from the environment),
``user_name`` (default: the token's user; ``{owner}`` expands), ``mode`` (``rest`` or
``cli``), ``bin_dir`` and ``slurm_conf`` (for the CLI), ``partition``, ``account``, ``qos``,
``python`` (the platform's Python, which runs papermill; default: this one), ``kernel``
(default ``codespace``), ``submit_timeout`` (60 s), ``request_timeout`` (30 s),
``poll_interval`` (1 s: how long one view of Slurm's queue serves).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from codespace.git import with_excludes
from codespace.jobs.backend import (
    BackendUnavailable,
    JobBackend,
    JobError,
    JobNotFound,
    JobSettings,
    new_records,
)
from codespace.jobs.models import JOBS_DIR, JobRecord, Submission, job_dir, log_name
from codespace.jobs.slurm_client import (
    SlurmClient,
    SlurmRefused,
    SlurmUnavailable,
    make_client,
    parse_options,
)
from codespace.jobs.slurm_payload import (
    KERNEL,
    Site,
    comment,
    slurm_job,
)
from codespace.jobs.slurm_states import Markers, SlurmTask, TaskView, summarize, task_view
from codespace.jobs.slurm_store import Entry, SlurmStore

log = logging.getLogger(__name__)
MAX_RESUBMITS = 3
RESUME_INTERVAL = 5.0  # seconds between background attempts at jobs Slurm has not accepted
SEEN_REFRESH = 30.0  # seconds between writes of "Slurm still lists it" for an unchanged job
# A job Slurm listed as queued less than this long ago and no longer lists was lost, not
# purged: Slurm keeps a finished or cancelled job for MinJobAge (300 s by default) at least.
PURGE_SAFE = 240.0
NEVER_STARTED = "lost: Slurm no longer knows the job and it never started"
NO_PREWARM = (
    "is not supported by the Slurm backend: a batch job cannot wait for a dataset's cache copy "
    "here; prewarm the dataset first (codespace datasets prewarm NAME), or use the local or "
    "Argo backend"
)


def refuse_prewarm(submission: Submission) -> None:
    """JobError for a job asking for ``prewarm`` or ``releaseCache`` (before anything is made)."""
    for job in submission.jobs:
        for flag in ("prewarm", "releaseCache"):
            if getattr(job, flag):
                raise JobError(f"job {job.name!r}: {flag} {NO_PREWARM}")


def read_markers(directory: Path) -> Markers:
    """The ``.task-<i>.started|exit|reason`` files the batch script left."""
    started: dict[int, str] = {}
    exits: dict[int, int] = {}
    reasons: dict[int, str] = {}
    times: dict[int, list[float | None]] = {}
    try:
        names = [n for n in os.listdir(directory) if n.startswith(".task-")]
    except OSError:
        return Markers()
    for name in names:
        index_text, _, kind = name[len(".task-") :].partition(".")
        try:
            index, path = int(index_text), directory / name
            text = path.read_text().strip()
            if kind == "started":
                started[index] = text
                times.setdefault(index, [None, None])[0] = path.stat().st_mtime
            elif kind == "exit":
                exits[index] = int(text)
                times.setdefault(index, [None, None])[1] = path.stat().st_mtime
            elif kind == "reason":
                reasons[index] = text
        except (OSError, ValueError):
            continue
    spans = {index: (start, end) for index, (start, end) in times.items()}
    return Markers(started, exits, reasons, spans)


def read_tail(path: Path, lines: int | None, limit: int = 8 << 20) -> str:
    """The file's text (its last ``lines`` lines; at most ``limit`` bytes from the end)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(size - limit, 0))
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return ""
    text = data.decode("utf-8", errors="replace")
    if lines is None:
        return text
    return "".join(text.splitlines(keepends=True)[-lines:]) if lines > 0 else ""


class SlurmBackend(JobBackend):
    """Jobs on Slurm (slurmrestd or the CLI), records in SQLite, found again by comment."""

    kind = "slurm"
    supports_after_jobs = True

    def __init__(
        self,
        settings: JobSettings,
        client: SlurmClient,
        *,
        python: str = sys.executable,
        kernel: str = KERNEL,
        partition: str | None = None,
        account: str | None = None,
        qos: str | None = None,
        submit_timeout: float = 60.0,
        poll_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.owner = settings.owner
        self.workspace = Path(os.path.abspath(settings.workspace))
        self.site = Site(str(self.workspace), python, kernel, partition, account, qos)
        self.client = client
        self.store = SlurmStore(Path(settings.state_dir) / "slurm-jobs.sqlite3")
        self.submit_timeout = submit_timeout
        self.poll_interval = poll_interval
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing = asyncio.Lock()
        self._resuming: asyncio.Task[None] | None = None
        self._view: tuple[float, float, dict[str, list[SlurmTask]]] | None = None
        self._workspace_ready = False

    @classmethod
    def from_settings(cls, settings: JobSettings) -> Self:
        options = parse_options(settings.options)
        client = make_client(options, settings.environment, settings.owner)
        keys = ("python", "kernel", "partition", "account", "qos", "submit_timeout")
        return cls(
            settings,
            client,
            poll_interval=options.get("poll_interval", 1.0),
            **{key: options[key] for key in keys if key in options},
        )

    # --- the interface ----------------------------------------------------------------------

    async def submit(self, submission: Submission) -> list[JobRecord]:
        refuse_prewarm(submission)
        key = submission.idempotencyKey
        lock = self._lock(f"key:{key}") if key else contextlib.nullcontext()
        async with lock:
            if key is not None:
                made = self.store.submission(self.owner, key)
                if made is not None:
                    return await self._records([entry.id for entry in made])
            entries = self._new_entries(submission)
            if not self.store.add(entries, key):  # another server took the key meanwhile
                made = self.store.submission(self.owner, key or "") or []
                return await self._records([entry.id for entry in made])
            self._prepare(entries)
            try:
                for entry in entries:
                    if not await self._submit_entry(entry.id):
                        break  # Slurm is away: the background task submits the rest
            except SlurmRefused as error:
                await self._refused(entries, error)
            return [self._entry(entry.id).record for entry in entries]

    async def list(self) -> list[JobRecord]:
        await self._refresh(None)
        return [entry.record for entry in self.store.list(self.owner)]

    async def get(self, job_id: str) -> JobRecord:
        entry = self._entry(job_id)
        if not entry.record.done:
            await self._refresh({job_id})
            entry = self._entry(job_id)
        return entry.record

    async def logs(self, job_id: str, tail: int | None = None) -> str:
        entry = self._entry(job_id)
        spec = entry.record.spec
        directory = self.workspace / job_dir(job_id)
        if not spec.array:
            return await asyncio.to_thread(read_tail, directory / log_name(spec, 0), tail)
        parts = []
        for index in range(spec.array):
            text = await asyncio.to_thread(read_tail, directory / log_name(spec, index), tail)
            parts.append(f"==> task {index} <==\n{text}")
        return "\n".join(parts)

    async def cancel(self, job_id: str) -> JobRecord:
        entry = self._entry(job_id)
        if entry.record.done:
            return entry.record
        entry.cancelled = True  # first: a submission still trying gives up
        self.store.save([entry])
        async with self._lock(job_id):
            entry = self._entry(job_id)
            entry.cancelled = True  # again: a submission in flight saved its own copy
            if entry.slurm_id is not None:
                try:
                    await self.client.cancel(entry.slurm_id)
                except SlurmUnavailable as error:
                    message = f"Slurm cannot be reached to cancel the job: {error}"
                    raise BackendUnavailable(message) from error
            now = datetime.now(UTC)
            update = {"state": "cancelled", "reason": "cancelled", "finished": now}
            entry.record = entry.record.model_copy(update=update)
            self.store.save([entry])
        return entry.record

    async def close(self) -> None:
        if self._resuming is not None:
            self._resuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resuming
        await self.client.close()
        self.store.close()

    # --- records ------------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _entry(self, job_id: str) -> Entry:
        entry = self.store.get(self.owner, job_id)
        if entry is None:
            raise JobNotFound(f"no job {job_id!r}")
        return entry

    async def _records(self, ids: list[str]) -> list[JobRecord]:
        await self._refresh(set(ids))
        return [self._entry(job_id).record for job_id in ids]

    def _new_entries(self, submission: Submission) -> list[Entry]:
        for spec in submission.jobs:  # jobs of earlier submissions (same backend)
            for job_id in spec.afterJobs:
                if self.store.get(self.owner, job_id) is None:
                    raise JobError(f"job {spec.name!r}: afterJobs names no job {job_id!r}")
        ids, records = new_records(submission, self.owner, self.kind, reason="submitting to Slurm")
        return [
            Entry(
                record,
                after=[ids[name] for name in record.spec.after] + list(record.spec.afterJobs),
            )
            for record in records
        ]

    def _prepare(self, entries: list[Entry]) -> None:
        """The jobs' directories (the job writes there as the workspace's owner) and the
        checkout's ``.git/info/exclude`` line for them."""
        root = self.workspace / JOBS_DIR
        directories = [root] + [self.workspace / job_dir(entry.id) for entry in entries]
        owner = self.workspace.stat()
        for directory in directories:
            directory.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0 and owner.st_uid != 0:  # a root server, a user's workspace
                os.chown(directory, owner.st_uid, owner.st_gid)
        if self._workspace_ready:
            return
        exclude = self.workspace / ".git" / "info" / "exclude"
        if exclude.parent.parent.is_dir():
            text = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
            updated = with_excludes(text, [f"/{JOBS_DIR}/"])
            if updated is not None:
                exclude.parent.mkdir(exist_ok=True)
                exclude.write_text(updated, encoding="utf-8")
        self._workspace_ready = True

    def _environment(self) -> dict[str, str]:
        return dict(self.settings.environment) or dict(os.environ)

    def _markers(self, job_id: str) -> Markers:
        return read_markers(self.workspace / job_dir(job_id))

    def _update(self, entry: Entry, *, force: bool = True, **update: Any) -> None:
        record = entry.record.model_copy(update=update)
        if force or record != entry.record:
            entry.record = record
            self.store.save([entry])

    # --- submitting -----------------------------------------------------------------------------

    def _after_ids(self, entry: Entry) -> list[str] | None:
        """The Slurm ids ``entry`` runs after; None while one is not submitted yet.

        A job it runs after that failed or was cancelled before Slurm had it cancels it.
        """
        found = []
        for job_id in entry.after:
            before = self.store.get(self.owner, job_id)
            if before is None:
                raise SlurmRefused(f"job {entry.record.name!r} runs after unknown job {job_id!r}")
            state = before.record.state
            if state == "succeeded":
                continue  # done already (Slurm may have forgotten it)
            if state in ("failed", "cancelled"):
                reason = f"dependency {before.record.name!r} ({job_id}) {state}"
                entry.cancelled = True
                self._update(entry, state="cancelled", reason=reason, finished=datetime.now(UTC))
                return None
            if before.slurm_id is None:
                return None
            found.append(before.slurm_id)
        return found

    def _assign(self, entry: Entry, slurm_id: str, reason: str = "") -> None:
        entry.assigned = time.time()
        self._update(entry, backendId=slurm_id, reason=reason)

    async def _submit_entry(
        self, job_id: str, *, lookup: bool = False, patience: float | None = None
    ) -> bool:
        """Give the job to Slurm once: retried while Slurm is unreachable (``patience``
        seconds, default ``submit_timeout``), looked up by its comment before each retry,
        never submitted again once its script started. False: Slurm could not be reached."""
        async with self._lock(job_id):
            entry = self._entry(job_id)
            if entry.slurm_id is not None or entry.cancelled or entry.record.done:
                return True
            after = self._after_ids(entry)
            if after is None:
                if not entry.record.done:
                    self._update(entry, reason="waiting for the jobs it runs after to be submitted")
                return True
            job = slurm_job(entry.record.spec, job_id, self.site, self._environment(), after)
            patience = self.submit_timeout if patience is None else patience
            deadline, delay = time.monotonic() + patience, 0.25
            while True:
                markers = self._markers(job_id)
                if markers.ran:  # it ran under an id whose answer was lost
                    self._assign(entry, min(markers.started.values(), default="?"))
                    return True
                try:
                    found = await self._find(job_id) if lookup else None
                    self._assign(entry, found or await self.client.submit(job))
                    return True
                except SlurmUnavailable as error:
                    lookup = True
                    reason = f"waiting for Slurm to accept the job: {error}"
                    if self._entry(job_id).cancelled or time.monotonic() > deadline:
                        self._resume_later()
                        self._update(entry, reason=reason)
                        return False
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 4.0)

    async def _find(self, job_id: str) -> str | None:
        """The Slurm id of the job with this platform id's comment (the first, if several)."""
        tasks = await self.client.jobs()
        ids = {task.submitted_id for task in tasks if task.comment == comment(job_id)}
        if not ids:
            return None
        first, *duplicates = sorted(ids, key=int)
        for duplicate in duplicates:  # a retried request that went through twice
            with contextlib.suppress(SlurmUnavailable, SlurmRefused):
                await self.client.cancel(duplicate)
        return first

    async def _refused(self, entries: list[Entry], error: SlurmRefused) -> None:
        """Slurm refused a job of the submission: undo it (cancel what was made); raise."""
        current = [self._entry(entry.id) for entry in entries]
        made = [entry for entry in current if entry.slurm_id is not None]
        if not made:
            self.store.remove_submission(self.owner, entries[0].record.submission)
            raise JobError(str(error)) from error
        for entry in made:
            with contextlib.suppress(SlurmUnavailable, SlurmRefused):
                await self.client.cancel(entry.slurm_id or "")
        now = datetime.now(UTC)
        for entry in current:
            refused = entry.slurm_id is None and not entry.record.done
            state = "failed" if refused else "cancelled"
            reason = str(error) if refused else f"cancelled: another job was refused ({error})"
            entry.cancelled = True
            self._update(entry, state=state, reason=reason, finished=now)
        raise JobError(str(error)) from error

    # --- refreshing ---------------------------------------------------------------------------

    def _resume_later(self) -> None:
        """Keep finishing unsubmitted jobs in the background (no one may look for a while)."""
        if self._resuming is None or self._resuming.done():
            self._resuming = asyncio.get_running_loop().create_task(self._resume())

    async def _resume(self) -> None:
        while True:
            await asyncio.sleep(RESUME_INTERVAL)
            try:
                await self._refresh(None)
            except Exception:
                log.exception("slurm job backend: resuming submissions failed")
            pending = self.store.list(self.owner, unsettled=True)
            if not any(e.slurm_id is None and not e.cancelled for e in pending):
                return

    async def _slurm_view(self) -> tuple[float, dict[str, list[SlurmTask]]] | None:
        """(when the view was asked for, comment -> Slurm's entries); None if unreachable."""
        now = time.monotonic()
        if self._view is not None and now - self._view[0] < self.poll_interval:
            return self._view[1], self._view[2]
        asked = time.time()
        try:
            tasks = await self.client.jobs()
        except SlurmUnavailable:
            return None
        by_comment: dict[str, list[SlurmTask]] = {}
        for task in tasks:
            by_comment.setdefault(task.comment, []).append(task)
        self._view = (now, asked, by_comment)
        return asked, by_comment

    async def _refresh(self, ids: set[str] | None) -> None:
        """Finish interrupted submissions, then read the states of unfinished jobs."""
        async with self._refreshing:
            entries = [
                e for e in self.store.list(self.owner, unsettled=True) if ids is None or e.id in ids
            ]
            waiting = sorted(
                (e for e in entries if e.slurm_id is None and not e.cancelled),
                key=lambda e: (e.record.submitted, e.id),
            )
            for entry in waiting:
                if not await self._submit_later(entry.id, lookup=True):
                    break
            if not entries:
                return
            view = await self._slurm_view()
            if view is None:
                return
            resubmit = [e.id for e in entries if self._judge(e.id, *view)]
            for job_id in resubmit:
                if not await self._submit_later(job_id):
                    break  # the next look (or the background task) goes on

    async def _submit_later(self, job_id: str, *, lookup: bool = False) -> bool:
        """A submission outside ``submit``: one attempt (the background task tries again),
        and a refusal fails the job instead of raising. False: Slurm could not be reached."""
        try:
            return await self._submit_entry(job_id, lookup=lookup, patience=0)
        except SlurmRefused as error:
            entry = self._entry(job_id)
            self._update(entry, state="failed", reason=str(error), finished=datetime.now(UTC))
            return True

    def _judge(self, job_id: str, asked: float, view: dict[str, list[SlurmTask]]) -> bool:
        """Update one job from Slurm's view and its markers; True: resubmit it (lost)."""
        entry = self._entry(job_id)
        if entry.slurm_id is None or entry.record.done:
            return False
        tasks = view.get(comment(job_id), [])
        markers = self._markers(job_id)
        spec = entry.record.spec
        indexes = range(spec.array or 1)
        if tasks:
            ids = {task.submitted_id for task in tasks}
            chosen = entry.slurm_id if entry.slurm_id in ids else min(ids, key=int)
            mine = [task for task in tasks if task.submitted_id == chosen]
            views = [task_view(i, _covering(mine, i), markers) for i in indexes]
            first_sight = entry.seen is None or asked - entry.seen > SEEN_REFRESH
            if first_sight:
                entry.seen = asked
            self._update(entry, force=first_sight, backendId=chosen, **summarize(spec, views))
            return False
        if entry.assigned is not None and entry.assigned >= asked:
            return False  # submitted after Slurm was asked: not in this view yet
        # Slurm no longer lists it. Purged (finished or cancelled at least MinJobAge ago) or
        # lost (slurmctld died before saving it)? Resubmit only a job that surely never
        # started: no marker, no start time seen, and seen queued too recently to be purged.
        recent = entry.seen is None or asked - entry.seen < PURGE_SAFE
        if markers.ran or entry.record.started is not None or not recent:
            views = [_lost_view(task_view(i, None, markers)) for i in indexes]
            self._update(entry, **summarize(spec, views))
            return False
        if entry.resubmits >= MAX_RESUBMITS:
            reason = f"{NEVER_STARTED} ({entry.resubmits} resubmissions)"
            self._update(entry, state="failed", reason=reason, finished=datetime.now(UTC))
            return False
        entry.resubmits += 1
        entry.assigned = None
        reason = "resubmitting: Slurm lost the job before it started (slurmctld restarted?)"
        self._update(entry, backendId=None, reason=reason)
        return True


def _covering(tasks: list[SlurmTask], index: int) -> SlurmTask | None:
    for task in tasks:
        if index in task.indexes:
            return task
    return None


def _lost_view(view: TaskView) -> TaskView:
    """A task Slurm no longer lists and that left no marker never started: it failed."""
    if view.state == "queued":
        return TaskView(view.index, "failed", NEVER_STARTED)
    return view
