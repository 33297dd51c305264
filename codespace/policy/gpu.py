"""How many GPUs a codespace's request counts for against a policy's ``gpus`` total."""

from __future__ import annotations

from codespace.kube.quantity import to_bytes
from codespace.spec.model import GpuRequest


def gpu_amount(request: GpuRequest | None, device_memory_mib: int | None = None) -> float:
    """Whole GPUs count as ``count``, a share as its ``fraction``; a memory-only request as
    its share of one device (at most 1) when ``device_memory_mib`` is known, else as 1.
    No request counts as 0."""
    if request is None:
        return 0.0
    if request.count is not None:
        return float(request.count)
    if request.fraction is not None:
        return float(request.fraction)
    if request.memory is not None and device_memory_mib:
        return min(1.0, to_bytes(request.memory) / (device_memory_mib * 2**20))
    return 1.0
