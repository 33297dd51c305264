"""Which running codespaces the culler stops, and why (pure).

The culler (``hub/cull``) looks at every ready server each round and asks :func:`decide`:

- **idle**: nothing measured happened for the codespace's idle timeout. The last activity is
  the newest time of the server's own report (:class:`~codespace.activity.report.ActivityReport`)
  when it has reported since it started, else the hub's ``last_activity`` of the server, and
  never earlier than its start (the server process's, when it reported it: the environment
  build before it is not idle time). The timeout is the codespace's ``lifetime.idleTimeout``
  (reported by its server), else the hub's default, capped by the hub's maximum;
  ``idleTimeout: 0`` asks for none (then only the maximum, when set, applies);
- **max-age**: it has run for the hub's maximum age, busy or not.

A server that is starting or stopping is never culled. A verdict carries what the home page
says: "Stopped after 30 min idle" and the source that was active last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from codespace.activity.report import ActivityReport
from codespace.activity.sources import DESCRIPTIONS, utc

IDLE = "idle"
MAX_AGE = "max-age"
_DURATION = re.compile(r"\s*(\d+)\s*([smhd]?)\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int) -> int:
    """Seconds from ``3600``, ``"3600"``, ``"45m"``, ``"2h"``, ``"1d"`` (as the spec's
    ``lifetime.idleTimeout``); ValueError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = _DURATION.fullmatch(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 3600, 45m, 2h or 1d")
    return int(match[1]) * _UNITS[match[2] or "s"]


@dataclass(frozen=True)
class CullPolicy:
    """The hub's rules, in seconds (0: none)."""

    timeout: int = 3600  # a codespace's idle timeout when its spec sets none
    max_timeout: int = 0  # the longest idle timeout a codespace may ask for
    max_age: int = 0  # stop a codespace this long after its start, busy or not

    def timeout_for(self, requested: int | None) -> int:
        """The idle timeout of a codespace that asks for ``requested`` (None: nothing)."""
        timeout = self.timeout if requested is None else requested
        if self.max_timeout and (timeout == 0 or timeout > self.max_timeout):
            return self.max_timeout
        return max(timeout, 0)


@dataclass(frozen=True)
class ServerView:
    """One server as the culler sees it (JupyterHub's server model + its report)."""

    user: str
    name: str
    started: datetime | None
    last_activity: datetime | None  # the hub's
    ready: bool = True
    pending: str | None = None
    report: ActivityReport | None = None

    def current_report(self) -> ActivityReport | None:
        """The report when it is about this run of the server (sent after it started)."""
        report = self.report
        if report is None or report.reported is None:
            return None
        started = utc(self.started)
        if started is not None and utc(report.reported) < started:  # type: ignore[operator]
            return None
        return report

    def activity(self) -> tuple[str | None, datetime | None]:
        """The last activity's source (None: not measured, or nothing since the start) and
        time: the server's current report when there is one, else the hub's time; never
        earlier than the start (the server's own start when it reported one: a long build
        before it is not idle time)."""
        report = self.current_report()
        if report is not None:
            source, time = report.source, report.last_activity
        else:
            source, time = None, utc(self.last_activity)
        starts = [utc(self.started), utc(report.started) if report else None]
        started = max((start for start in starts if start is not None), default=None)
        if started is not None and (time is None or time < started):
            return None, started
        return source, time


@dataclass(frozen=True)
class Verdict:
    """Why a server is stopped."""

    reason: str  # IDLE or MAX_AGE
    timeout: int  # the idle timeout that applied (0: none)
    idle: float  # seconds since the last activity
    age: float  # seconds since the start
    source: str | None  # the source active last (None: not measured)
    last_activity: datetime | None
    max_age: int = 0

    def message(self) -> str:
        """What the home page says (with the time of the stop shown beside it)."""
        if self.reason == MAX_AGE:
            limit = duration(self.max_age)
            return f"Stopped after running {duration(self.age)} (the hub's limit is {limit})"
        text = f"Stopped after {duration(self.idle)} idle (idle timeout {duration(self.timeout)})"
        if self.source:
            text += f"; last activity: {DESCRIPTIONS.get(self.source, self.source)}"
        return text


def decide(server: ServerView, policy: CullPolicy, now: datetime) -> Verdict | None:
    """The verdict on ``server`` at ``now``, or None to leave it running."""
    if server.pending or not server.ready:
        return None
    now = utc(now)  # type: ignore[assignment]
    started = utc(server.started)
    age = (now - started).total_seconds() if started else 0.0
    source, last = server.activity()
    idle = (now - last).total_seconds() if last else age
    report = server.current_report()
    timeout = policy.timeout_for(report.idle_timeout if report else None)
    common = {"timeout": timeout, "idle": max(idle, 0.0), "age": age, "source": source}
    if policy.max_age and started is not None and age >= policy.max_age:
        return Verdict(MAX_AGE, last_activity=last, max_age=policy.max_age, **common)
    if timeout and last is not None and idle >= timeout:
        return Verdict(IDLE, last_activity=last, **common)
    return None


def duration(seconds: float) -> str:
    """``45 s``, ``30 min``, ``1 h 30 min``, ``2 d 3 h`` (rounded down to the minute past
    an hour)."""
    seconds = int(max(seconds, 0))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
