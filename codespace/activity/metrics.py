"""The Prometheus gauge of activity: ``codespace_activity_age_seconds{source}``.

Seconds since each source was last active, in the process that sets it:

- the hub (``/hub/metrics``): over its running codespaces, the most recent activity of each
  source (the youngest age), refreshed whenever a server reports and whenever the culler or
  the home page reads the records (about once a culler round);
- a codespace's server (its ``/metrics``): that codespace's own sources, at each sample.

A source with no activity to measure has no sample (the label value is removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from prometheus_client import Gauge

from codespace.activity.sources import utc

ACTIVITY_AGE = Gauge(
    "codespace_activity_age_seconds",
    "Seconds since each activity source was last active (kernel, terminal, vscode, ssh, "
    "jobs, deployments, files): the youngest over the running codespaces at the hub, this "
    "codespace's own in a server",
    ["source"],
)


def youngest_ages(
    sources: Iterable[Mapping[str, datetime | None]], now: datetime
) -> dict[str, float]:
    """Per source, the seconds since its newest time over ``sources`` (never negative)."""
    now = utc(now)  # type: ignore[assignment]
    ages: dict[str, float] = {}
    for times in sources:
        for name, time in times.items():
            if time is None:
                continue
            age = max((now - utc(time)).total_seconds(), 0.0)  # type: ignore[operator]
            ages[name] = min(age, ages.get(name, age))
    return ages


def set_activity_ages(
    sources: Iterable[Mapping[str, datetime | None]], now: datetime, gauge: Gauge = ACTIVITY_AGE
) -> dict[str, float]:
    """Set the gauge from ``sources`` (one mapping per codespace); sources that no longer
    have a time lose their sample. Returns the ages set."""
    ages = youngest_ages(sources, now)
    present = {s.labels["source"] for metric in gauge.collect() for s in metric.samples}
    for name in present - set(ages):
        gauge.remove(name)
    for name, age in ages.items():
        gauge.labels(source=name).set(age)
    return ages
