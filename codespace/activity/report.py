"""What a codespace's server tells the hub about its activity (pure).

``POST /hub/api/codespace/activity/<user>/<server>`` carries :meth:`ActivityReport.to_json`::

    {"sources": {"kernel": "2024-05-01T14:02:03Z", "ssh": null, ...},
     "lastActivity": "2024-05-01T14:02:03Z", "source": "kernel",
     "idleTimeout": 1800, "started": "2024-05-01T13:00:00Z"}

``sources`` holds each measured source's last time (null: measured, never active);
``idleTimeout`` is the codespace's own ``lifetime.idleTimeout`` in seconds (null: the hub's
default); ``started`` is when the server started. The hub stamps when it received the report
(``reported``): a report is about the run of the server that sent it, so one older than the
server's start at the hub is about an earlier run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from codespace.activity.sources import iso, latest, parse_time, utc

MAX_SOURCES = 32
SOURCE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class ReportError(ValueError):
    """A report the hub refuses (the message says what is wrong)."""


@dataclass(frozen=True)
class ActivityReport:
    """One server's activity, per source."""

    sources: Mapping[str, datetime | None] = field(default_factory=dict)
    idle_timeout: int | None = None
    reported: datetime | None = None
    started: datetime | None = None  # the server's start (its run)

    @property
    def last(self) -> tuple[str, datetime] | None:
        """The newest source and its time (None when nothing was ever active)."""
        return latest(self.sources)

    @property
    def last_activity(self) -> datetime | None:
        last = self.last
        return last[1] if last else None

    @property
    def source(self) -> str | None:
        last = self.last
        return last[0] if last else None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "sources": {name: iso(time) for name, time in self.sources.items()},
            "lastActivity": iso(self.last_activity),
            "source": self.source,
            "idleTimeout": self.idle_timeout,
        }
        if self.reported is not None:
            data["reported"] = iso(self.reported)
        if self.started is not None:
            data["started"] = iso(self.started)
        return data

    @classmethod
    def from_json(cls, data: Any, reported: datetime | None = None) -> ActivityReport:
        """A report from its JSON (``reported`` given: the receiver's clock wins over the
        sender's); :class:`ReportError` names what is wrong."""
        if not isinstance(data, Mapping):
            raise ReportError("the report must be a JSON object")
        raw = data.get("sources") or {}
        if not isinstance(raw, Mapping) or len(raw) > MAX_SOURCES:
            raise ReportError(f"sources must be an object of at most {MAX_SOURCES} names")
        sources: dict[str, datetime | None] = {}
        for name, value in raw.items():
            if not isinstance(name, str) or not SOURCE_NAME.match(name):
                raise ReportError(f"{name!r} is not a source name (a-z, 0-9, -)")
            time = parse_time(value)
            if value is not None and time is None:
                raise ReportError(f"sources.{name}: {value!r} is not an ISO 8601 time")
            sources[name] = time
        timeout = data.get("idleTimeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0
        ):
            raise ReportError("idleTimeout must be a number of seconds (or null)")
        when = utc(reported) if reported is not None else parse_time(data.get("reported"))
        started = parse_time(data.get("started"))
        return cls(sources, idle_timeout=timeout, reported=when, started=started)

    def clamped(self, now: datetime) -> ActivityReport:
        """The report with no time after ``now`` (a server's clock running ahead of the
        hub's must not make it look busy for ever)."""
        now = utc(now)  # type: ignore[assignment]
        sources = {
            name: (min(time, now) if time is not None else None)  # type: ignore[type-var]
            for name, time in ((n, utc(t)) for n, t in self.sources.items())
        }
        started = min(utc(self.started), now) if self.started else None  # type: ignore[type-var]
        return ActivityReport(sources, self.idle_timeout, self.reported, started)
