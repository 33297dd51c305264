"""The activity sources' names, and how one sample of each is made from plain data (pure).

Times are timezone-aware UTC :class:`~datetime.datetime` values; a source with nothing to
say is None. "Busy" sources (a kernel executing, a job running) are active *now*: their time
is the sample's ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

KERNEL = "kernel"
TERMINAL = "terminal"
VSCODE = "vscode"
SSH = "ssh"
JOBS = "jobs"
DEPLOYMENTS = "deployments"
FILES = "files"
SOURCES: tuple[str, ...] = (KERNEL, TERMINAL, VSCODE, SSH, JOBS, DEPLOYMENTS, FILES)
DESCRIPTIONS = {
    KERNEL: "kernel",
    TERMINAL: "terminal input",
    VSCODE: "VS Code",
    SSH: "SSH",
    JOBS: "a job",
    DEPLOYMENTS: "deployment requests",
    FILES: "a file saved",
}


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC time (a naive one is taken to be UTC already)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_time(text: object) -> datetime | None:
    """An ISO 8601 time (``...Z`` too) as aware UTC; None for anything else."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def iso(value: datetime | None) -> str | None:
    """``2024-05-01T14:02:03.000123Z`` (None stays None)."""
    value = utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def newest(times: Iterable[datetime | None]) -> datetime | None:
    found = [utc(time) for time in times if time is not None]
    return max(found) if found else None  # type: ignore[type-var]


def kernel_activity(
    kernels: Iterable[tuple[str, datetime | None]], now: datetime
) -> datetime | None:
    """``(execution_state, last_activity)`` of each kernel -> the source's time: ``now`` when
    one is busy, else the newest ``last_activity`` (the kernel's last IOPub message: an idle
    kernel's open tab sends it nothing)."""
    kernels = list(kernels)
    if any(state == "busy" for state, _ in kernels):
        return utc(now)
    return newest(last for _, last in kernels)


def jobs_activity(jobs: Iterable[tuple[str, datetime | None]], now: datetime) -> datetime | None:
    """``(state, finished)`` of each local job -> ``now`` when one is running, else the newest
    end of a job."""
    jobs = list(jobs)
    if any(state == "running" for state, _ in jobs):
        return utc(now)
    return newest(finished for _, finished in jobs)


def latest(times: Mapping[str, datetime | None]) -> tuple[str, datetime] | None:
    """The source with the newest time and that time (a tie goes to the first in
    :data:`SOURCES`, then by name); None when no source has one."""

    def order(name: str) -> tuple[int, str]:
        return (SOURCES.index(name) if name in SOURCES else len(SOURCES), name)

    best: tuple[str, datetime] | None = None
    for name in sorted(times, key=order):
        time = utc(times[name])
        if time is not None and (best is None or time > best[1]):
            best = (name, time)
    return best
