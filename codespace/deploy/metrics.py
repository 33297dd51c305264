"""The hub's deploy service's Prometheus metrics (the local deploy backend).

The deploy service is a process of its own (``hub/deploy/app.py``): it serves these, with
prometheus_client's default registry, at ``/services/codespace-deploy/metrics`` to a hub token
with the ``read:metrics`` scope (the scope of JupyterHub's own ``/hub/metrics``).

``codespace_deployments{state}``  deployments by state (``creating``, ``loading``, ``ready``,
    ``idle``: scaled to zero, ``failed``), counted from the store at each scrape
``codespace_deployment_requests_total{owner, name, status}``  requests to a deployment's
    endpoint that passed its token check, by HTTP status
``codespace_deployment_request_duration_seconds{owner, name}``  their latency, cold starts
    included
``codespace_deployment_cold_starts_total{owner, name}``  a request that found the model
    server stopped (scaled to zero) and started it
``codespace_deployment_cold_start_duration_seconds``  how long those starts took
``codespace_deployment_scale_to_zero_total{owner, name}``  model servers stopped after their
    ``idleTimeout`` without a request

Kernel side never imports this (prometheus_client is a platform package).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import get_args

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from codespace.deploy.models import DeploymentRecord, DeploymentState

STATES: tuple[str, ...] = get_args(DeploymentState)
# A model's answer (milliseconds) to a cold start that builds nothing (tens of seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "codespace_deployment_requests",
    "Requests to a deployment's endpoint (past its token check), by HTTP status",
    ["owner", "name", "status"],
)
REQUEST_SECONDS = Histogram(
    "codespace_deployment_request_duration_seconds",
    "Latency of requests to a deployment's endpoint, cold starts included",
    ["owner", "name"],
    buckets=LATENCY_BUCKETS,
)
COLD_STARTS = Counter(
    "codespace_deployment_cold_starts",
    "Requests that started a deployment's stopped (scaled to zero) model server",
    ["owner", "name"],
)
COLD_START_SECONDS = Histogram(
    "codespace_deployment_cold_start_duration_seconds",
    "Seconds a cold start took, until the model answered ready",
    buckets=(0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300),
)
SCALED_TO_ZERO = Counter(
    "codespace_deployment_scale_to_zero",
    "Model servers stopped after their idleTimeout without a request",
    ["owner", "name"],
)


def request_done(owner: str, name: str, status: int, seconds: float) -> None:
    REQUESTS.labels(owner, name, str(status)).inc()
    REQUEST_SECONDS.labels(owner, name).observe(seconds)


def cold_start(owner: str, name: str, seconds: float) -> None:
    COLD_STARTS.labels(owner, name).inc()
    COLD_START_SECONDS.observe(seconds)


def scaled_to_zero(owner: str, name: str) -> None:
    SCALED_TO_ZERO.labels(owner, name).inc()


class DeploymentStates(Collector):
    """``codespace_deployments{state}`` from ``records()`` (every deployment, live state),
    each state present (0 when none), at each scrape."""

    def __init__(self, records: Callable[[], Iterable[DeploymentRecord]]) -> None:
        self.records = records

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "codespace_deployments", "Deployments of the local backend, by state", labels=["state"]
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = dict.fromkeys(STATES, 0)
        for record in self.records():
            counts[record.state] = counts.get(record.state, 0) + 1
        family = self._family()
        for state, count in counts.items():
            family.add_metric([state], count)
        yield family
