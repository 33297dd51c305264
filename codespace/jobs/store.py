"""The local backend's persistent state: one SQLite file (stdlib ``sqlite3``).

Two tables: ``jobs`` (each job's record and runner state as JSON, its owner and whether it
is settled) and ``submissions`` (owner + idempotency key -> the job ids it made). Every
change is written at once (WAL, one short transaction), so a restarted server finds every
job as it was last seen. Calls are synchronous and short; the backend makes them from the
event loop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from codespace.jobs.backend import open_store
from codespace.jobs.models import JobRecord
from codespace.jobs.runner import LocalJob

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    submitted REAL NOT NULL,
    seq INTEGER NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    runner TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, settled);
CREATE TABLE IF NOT EXISTS submissions (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    ids TEXT NOT NULL,
    PRIMARY KEY (owner, key)
);
"""


class JobStore:
    """Jobs of every owner in one file; each query names the owner."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = open_store(path, SCHEMA)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _job(row: tuple[str, str]) -> LocalJob:
        record, runner = row
        return LocalJob.from_json(JobRecord.model_validate_json(record), json.loads(runner))

    def _row(self, job: LocalJob, seq: int) -> tuple:
        return (
            job.id,
            job.record.owner,
            job.record.submitted.timestamp(),
            seq,
            int(job.settled),
            job.record.model_dump_json(),
            json.dumps(job.to_json()),
        )

    def add(self, jobs: list[LocalJob], key: str | None) -> None:
        """Store a new submission's jobs (and its idempotency key) in one transaction."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                [self._row(job, seq) for seq, job in enumerate(jobs)],
            )
            if key is not None:
                ids = json.dumps([job.id for job in jobs])
                owner = jobs[0].record.owner
                self.db.execute("INSERT INTO submissions VALUES (?, ?, ?)", (owner, key, ids))

    def save(self, jobs: Iterable[LocalJob]) -> None:
        rows = [
            (int(job.settled), job.record.model_dump_json(), json.dumps(job.to_json()), job.id)
            for job in jobs
        ]
        if rows:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany(
                    "UPDATE jobs SET settled = ?, record = ?, runner = ? WHERE id = ?", rows
                )

    def get(self, owner: str, job_id: str) -> LocalJob | None:
        row = self.db.execute(
            "SELECT record, runner FROM jobs WHERE owner = ? AND id = ?", (owner, job_id)
        ).fetchone()
        return None if row is None else self._job(row)

    def list(self, owner: str) -> list[LocalJob]:
        """The owner's jobs, newest submission first (a submission's jobs in order)."""
        rows = self.db.execute(
            "SELECT record, runner FROM jobs WHERE owner = ? ORDER BY submitted DESC, seq",
            (owner,),
        )
        return [self._job(row) for row in rows]

    def unsettled(self, owner: str) -> list[LocalJob]:
        """Jobs still queued or running, or with a process left: the ones to watch."""
        rows = self.db.execute(
            "SELECT record, runner FROM jobs WHERE owner = ? AND settled = 0 "
            "ORDER BY submitted, seq",
            (owner,),
        )
        return [self._job(row) for row in rows]

    def submission(self, owner: str, key: str) -> list[str] | None:
        """The job ids an idempotency key made, or None."""
        row = self.db.execute(
            "SELECT ids FROM submissions WHERE owner = ? AND key = ?", (owner, key)
        ).fetchone()
        return None if row is None else json.loads(row[0])
