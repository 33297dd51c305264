"""Dataset prewarm metrics (Prometheus) of the local dataset backend.

The local backend copies a remote dataset into the shared cache where it runs: in the hub
process while a local codespace starts (``prewarm: true``; JupyterHub serves these on
``/hub/metrics``) and in a codespace server when a user or a job prewarms (served at
``/user/<name>/<server>/codespace/api/metrics``). Prometheus sums them.

``codespace_dataset_prewarm_bytes_total{dataset}``  bytes copied into the cache (files that
    were already cached are not copied again and do not count)
``codespace_dataset_prewarms_total{dataset, result}``  prewarms that ended: ``Complete`` or
    ``Failed`` (Fluid's DataLoad phases)

On Kubernetes Fluid's DataLoads do the copying; its runtimes export their own metrics.
Kernel side never imports this (prometheus_client is a platform package).
"""

from __future__ import annotations

from prometheus_client import Counter

PREWARM_BYTES = Counter(
    "codespace_dataset_prewarm_bytes",
    "Bytes a prewarm copied into the local dataset cache",
    ["dataset"],
)
PREWARMS = Counter(
    "codespace_dataset_prewarms", "Prewarms that ended, by phase", ["dataset", "result"]
)


def copied(dataset: str, size: int) -> None:
    PREWARM_BYTES.labels(dataset).inc(size)


def prewarm_ended(dataset: str, phase: str) -> None:
    PREWARMS.labels(dataset, phase).inc()
