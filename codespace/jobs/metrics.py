"""Jobs' Prometheus metrics, kept by the job service of one codespace server.

A codespace's jobs are submitted through its own server (the server extension's
:class:`~codespace.jobs.service.JobService`), so that is where they are counted; the server
serves them, with prometheus_client's default registry, at
``/user/<name>/<server>/codespace/api/metrics`` (``extensions/metrics_handlers.py``) to its
owner and to a hub token with the ``read:metrics`` scope, so one Prometheus token scrapes the
hub and every codespace (targets: README, Operations).

``codespace_job_submissions_total{backend}``  jobs submitted (a submission of three jobs
    counts three)
``codespace_jobs{backend, state}``  the jobs each backend holds for this codespace, by state
    (``queued``, ``running``, ``succeeded``, ``failed``, ``cancelled``), as of the last
    listing: the metrics endpoint lists them before it answers

Kernel side never imports this (prometheus_client is a platform package).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from typing import get_args

from prometheus_client import Counter, Gauge

from codespace.jobs.models import JobRecord, JobState

STATES: tuple[str, ...] = get_args(JobState)

SUBMISSIONS = Counter(
    "codespace_job_submissions", "Jobs submitted from this codespace, by backend", ["backend"]
)
JOBS = Gauge(
    "codespace_jobs",
    "Jobs of this codespace by backend and state, as of the last listing",
    ["backend", "state"],
)


def submitted(backend: str, count: int) -> None:
    SUBMISSIONS.labels(backend).inc(count)


def listed(backend: str, records: Iterable[JobRecord]) -> None:
    """Set ``backend``'s gauge from its listing: every state, 0 when it has no such job (a
    backend that did not answer keeps its last values)."""
    tally = Tally(record.state for record in records)
    for state in STATES:
        JOBS.labels(backend, state).set(tally[state])
