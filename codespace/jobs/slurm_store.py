"""The Slurm backend's records: one SQLite file under ``state_dir`` (stdlib ``sqlite3``).

Separate from the local backend's store (its own file, ``slurm-jobs.sqlite3``). A job's row
is written before Slurm is asked (so a job whose submission was interrupted is found and
finished by the next look), and again when Slurm answers: the record (with the Slurm id as
``backendId``), the platform ids it runs after, when the Slurm id was learnt, whether Slurm
last listed the job, whether the user cancelled it, and how often it was
resubmitted because Slurm lost it. Every query names the owner.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from codespace.jobs.backend import open_store
from codespace.jobs.models import JobRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    submission TEXT NOT NULL,
    seq INTEGER NOT NULL,
    submitted REAL NOT NULL,
    settled INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    after TEXT NOT NULL DEFAULT '[]',
    assigned REAL,
    seen REAL,
    cancelled INTEGER NOT NULL DEFAULT 0,
    resubmits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS slurm_jobs_owner ON jobs (owner, settled);
CREATE TABLE IF NOT EXISTS submissions (
    owner TEXT NOT NULL,
    key TEXT NOT NULL,
    submission TEXT NOT NULL,
    PRIMARY KEY (owner, key)
);
"""
_COLUMNS = "record, after, assigned, seen, cancelled, resubmits"


@dataclass
class Entry:
    """One job's row: the record the API shows plus what the backend needs."""

    record: JobRecord
    after: list[str] = field(default_factory=list)  # platform ids this job runs after
    assigned: float | None = None  # when the Slurm id was learnt (epoch seconds)
    seen: float | None = None  # when Slurm last listed the job under its comment
    cancelled: bool = False
    resubmits: int = 0

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def slurm_id(self) -> str | None:
        return self.record.backendId


class SlurmStore:
    """Every owner's Slurm jobs in one file; WAL, one short transaction per change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = open_store(path, SCHEMA)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _entry(row: tuple) -> Entry:
        record, after, assigned, seen, cancelled, resubmits = row
        return Entry(
            record=JobRecord.model_validate_json(record),
            after=json.loads(after),
            assigned=assigned,
            seen=seen,
            cancelled=bool(cancelled),
            resubmits=resubmits,
        )

    def add(self, entries: list[Entry], key: str | None) -> bool:
        """Store a new submission (and its key) at once; False if the key was just taken."""
        rows = [
            (
                e.id,
                e.record.owner,
                e.record.submission,
                seq,
                e.record.submitted.timestamp(),
                e.record.model_dump_json(),
                json.dumps(e.after),
            )
            for seq, e in enumerate(entries)
        ]
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                if key is not None:
                    owner, submission = entries[0].record.owner, entries[0].record.submission
                    self.db.execute(
                        "INSERT INTO submissions VALUES (?, ?, ?)", (owner, key, submission)
                    )
                self.db.executemany(
                    "INSERT INTO jobs (id, owner, submission, seq, submitted, record, after)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def save(self, entries: Iterable[Entry]) -> None:
        rows = [
            (
                int(e.record.done),
                e.record.model_dump_json(),
                e.assigned,
                e.seen,
                int(e.cancelled),
                e.resubmits,
                e.id,
            )
            for e in entries
        ]
        if rows:
            with self.db:
                self.db.executemany(
                    "UPDATE jobs SET settled = ?, record = ?, assigned = ?, seen = ?,"
                    " cancelled = ?, resubmits = ? WHERE id = ?",
                    rows,
                )

    def remove_submission(self, owner: str, submission: str) -> None:
        """Forget a submission Slurm refused before any of its jobs existed."""
        with self.db:
            self.db.execute(
                "DELETE FROM jobs WHERE owner = ? AND submission = ?", (owner, submission)
            )
            self.db.execute(
                "DELETE FROM submissions WHERE owner = ? AND submission = ?", (owner, submission)
            )

    def get(self, owner: str, job_id: str) -> Entry | None:
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? AND id = ?",  # noqa: S608 - constant
            (owner, job_id),
        ).fetchone()
        return None if row is None else self._entry(row)

    def list(self, owner: str, *, unsettled: bool = False) -> list[Entry]:
        """The owner's jobs, newest submission first (a submission's jobs in order)."""
        where = "owner = ? AND settled = 0" if unsettled else "owner = ?"
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE {where}"  # noqa: S608 - constants
            " ORDER BY submitted DESC, submission, seq",
            (owner,),
        )
        return [self._entry(row) for row in rows]

    def submission(self, owner: str, key: str) -> list[Entry] | None:
        """The jobs an idempotency key made (in submission order), or None."""
        row = self.db.execute(
            "SELECT submission FROM submissions WHERE owner = ? AND key = ?", (owner, key)
        ).fetchone()
        if row is None:
            return None
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE owner = ? AND submission = ?"  # noqa: S608
            " ORDER BY seq",
            (owner, row[0]),
        )
        return [self._entry(r) for r in rows]
