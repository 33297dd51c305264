"""The hub's activity records: per server, its last report and why it was last stopped.

One SQLite file beside the hub's other files (mode 0600). The hub's activity API writes it
(:mod:`hub.activity`): a server's report replaces the previous one; the culler's stop record
says why and when it stopped a server, and stays until a run of the server that started after
the stop reports.
The home page and the culler read it. Each call opens its own connection (well under a
millisecond a statement, from the hub's event loop).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from codespace.activity.cull import Verdict
from codespace.activity.report import ActivityReport, ReportError
from codespace.activity.sources import iso, parse_time, utc
from codespace.private_db import private_db

SCHEMA = """
CREATE TABLE IF NOT EXISTS server_activity (
    user TEXT NOT NULL,
    server TEXT NOT NULL,
    report TEXT,
    stopped TEXT,
    PRIMARY KEY (user, server)
)
"""


@dataclass(frozen=True)
class StopRecord:
    """A stop by the culler: when, why (``idle`` / ``max-age``) and the sentence shown."""

    at: datetime
    reason: str
    message: str
    source: str | None = None
    last_activity: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": iso(self.at),
            "reason": self.reason,
            "message": self.message,
            "source": self.source,
            "lastActivity": iso(self.last_activity),
        }

    @classmethod
    def from_json(cls, data: Any) -> StopRecord:
        """From the JSON the culler posts; ValueError names what is missing."""
        if not isinstance(data, dict):
            raise ValueError("the stop record must be a JSON object")
        at = parse_time(data.get("at"))
        reason, message = data.get("reason"), data.get("message")
        if at is None or not isinstance(reason, str) or not isinstance(message, str):
            raise ValueError("a stop record needs at (ISO 8601), reason and message")
        source = data.get("source")
        return cls(
            at=at,
            reason=reason[:40],
            message=message[:300],
            source=source[:40] if isinstance(source, str) else None,
            last_activity=parse_time(data.get("lastActivity")),
        )

    @classmethod
    def from_verdict(cls, verdict: Verdict, at: datetime) -> StopRecord:
        return cls(
            utc(at), verdict.reason, verdict.message(), verdict.source, verdict.last_activity
        )  # type: ignore[arg-type]


@dataclass(frozen=True)
class ServerActivity:
    """What the hub knows of one server's activity."""

    user: str
    server: str
    report: ActivityReport | None = None
    stopped: StopRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "server": self.server,
            "report": self.report.to_json() if self.report else None,
            "stopped": self.stopped.to_json() if self.stopped else None,
        }


def _report(text: str | None) -> ActivityReport | None:
    if not text:
        return None
    try:
        return ActivityReport.from_json(json.loads(text))
    except (ValueError, ReportError):
        return None


def _stop(text: str | None) -> StopRecord | None:
    if not text:
        return None
    try:
        return StopRecord.from_json(json.loads(text))
    except ValueError:
        return None


class ActivityStore:
    """Per-server activity records (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return private_db(self.path, SCHEMA)

    def report(self, user: str, server: str, report: ActivityReport) -> None:
        """Keep ``report``; the stop record goes once a run started after the stop reports
        (a late report of the run that was stopped leaves it)."""
        text = json.dumps(report.to_json())
        with self._db() as db:
            row = db.execute(
                "SELECT stopped FROM server_activity WHERE user = ? AND server = ?",
                (user, server),
            ).fetchone()
            stopped = _stop(row[0]) if row else None
            run = report.started or report.reported
            keep = stopped is not None and (run is None or stopped.at >= run)
            db.execute(
                "INSERT OR REPLACE INTO server_activity VALUES (?, ?, ?, ?)",
                (user, server, text, row[0] if keep and row else None),
            )

    def stopped(self, user: str, server: str, record: StopRecord) -> None:
        """Keep why ``user``'s ``server`` was stopped (until it reports again)."""
        text = json.dumps(record.to_json())
        with self._db() as db:
            db.execute(
                "INSERT INTO server_activity (user, server, stopped) VALUES (?, ?, ?) "
                "ON CONFLICT (user, server) DO UPDATE SET stopped = excluded.stopped",
                (user, server, text),
            )

    def get(self, user: str, server: str) -> ServerActivity | None:
        with self._db() as db:
            row = db.execute(
                "SELECT report, stopped FROM server_activity WHERE user = ? AND server = ?",
                (user, server),
            ).fetchone()
        return ServerActivity(user, server, _report(row[0]), _stop(row[1])) if row else None

    def list(self, user: str | None = None) -> list[ServerActivity]:
        """Every record (or ``user``'s), by user and server."""
        query = "SELECT user, server, report, stopped FROM server_activity"
        args: tuple[str, ...] = ()
        if user is not None:
            query, args = query + " WHERE user = ?", (user,)
        with self._db() as db:
            rows = db.execute(query + " ORDER BY user, server", args).fetchall()
        return [ServerActivity(u, s, _report(r), _stop(t)) for u, s, r, t in rows]

    def forget(self, user: str, server: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM server_activity WHERE user = ? AND server = ?", (user, server))
