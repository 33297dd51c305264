"""GPUs on one machine: discover them and grant a codespace its share.

The embedded default has no device plugin or scheduler, so the grant is advisory: whole
GPUs are handed out by ``CUDA_VISIBLE_DEVICES`` and not given to two codespaces at once;
fractional and memory requests share a GPU, and the share is announced to the codespace
through environment variables (frameworks can read them, nothing enforces them). The same
``CODESPACE_GPU_*`` variables are set by the Kubernetes builders, so the lab shows one thing:
``CODESPACE_GPU_SHARING`` is ``exclusive`` for whole GPUs (the word of Kubernetes' whole-GPU
mode) and ``shared`` for a local share (Kubernetes names its sharing technology instead).

Discovery is the only I/O here (``nvidia-smi``); :func:`grant` is pure. Which GPUs other
codespaces hold is tracked by :mod:`codespace.local.gpu_grants`.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from codespace.spec.model import GpuRequest

_QUERY = "index,uuid,name,memory.total,memory.used"
EXCLUSIVE = "exclusive"  # whole GPUs; codespace.kube.gpu uses the same word
SHARED = "shared"
LOCAL_RESOURCE = "local"  # Kubernetes names the extended resource (nvidia.com/gpu, ...)


class GpuUnavailable(Exception):
    """The request cannot be met on this machine; the message says why."""


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_mib: int
    used_mib: int = 0


@dataclass
class GpuGrant:
    """What a codespace gets: device uuids, its share, and the env that announces it."""

    devices: list[str] = field(default_factory=list)
    fraction: float | None = None
    memory_mib: int | None = None
    exclusive: bool = True
    note: str = ""

    def env(self) -> dict[str, str]:
        if not self.devices:
            return {"CUDA_VISIBLE_DEVICES": "", "CODESPACE_GPU_COUNT": "0"}
        env = {
            "CUDA_VISIBLE_DEVICES": ",".join(self.devices),
            "CODESPACE_GPU_COUNT": str(len(self.devices)),
            "CODESPACE_GPU_SHARING": EXCLUSIVE if self.exclusive else SHARED,
            "CODESPACE_GPU_RESOURCE": LOCAL_RESOURCE,
        }
        if self.fraction is not None:
            env["CODESPACE_GPU_FRACTION"] = f"{self.fraction:g}"
        if self.memory_mib is not None:
            env["CODESPACE_GPU_MEMORY_MIB"] = str(self.memory_mib)
        return env


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """Parse ``nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used`` CSV."""
    gpus = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) != 5:
            continue
        index, uuid, name, total, used = (cell.strip() for cell in row)
        try:
            gpus.append(Gpu(int(index), uuid, name, int(float(total)), int(float(used))))
        except ValueError:
            continue
    return gpus


def discover(nvidia_smi: str | None = None, timeout: float = 10.0) -> list[Gpu]:
    """The NVIDIA GPUs on this machine; an empty list when there are none or no driver."""
    executable = nvidia_smi or shutil.which("nvidia-smi")
    if not executable:
        return []
    try:
        result = subprocess.run(
            [executable, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(result.stdout) if result.returncode == 0 else []


def _memory_mib(quantity: str) -> int:
    units = {
        "Ki": 1 / 1024,
        "Mi": 1,
        "Gi": 1024,
        "Ti": 1024 * 1024,
        "K": 1 / 1000,
        "M": 1e6 / 2**20,
        "G": 1e9 / 2**20,
        "T": 1e12 / 2**20,
    }
    for suffix in sorted(units, key=len, reverse=True):
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * units[suffix])
    return int(int(quantity) / 2**20)


def describe(request: GpuRequest) -> str:
    if request.count:
        return f"{request.count} whole GPU{'s' if request.count > 1 else ''}"
    parts = []
    if request.fraction:
        parts.append(f"{request.fraction:g} of a GPU")
    if request.memory:
        parts.append(f"{request.memory} of GPU memory")
    return " with ".join(parts) or "a GPU"


def grant(
    request: GpuRequest | None,
    gpus: list[Gpu],
    exclusive_in_use: set[str],
    shared_mib: Mapping[str, int] | None = None,
) -> GpuGrant:
    """Grant ``request`` from ``gpus``; ``exclusive_in_use`` are uuids held whole elsewhere,
    ``shared_mib`` the GPU memory (MiB per uuid) promised to shares held elsewhere.

    A whole GPU is only granted when nobody holds it or a share of it; a share fits where
    the memory neither in use nor promised is enough. Raises :class:`GpuUnavailable` unless
    the request is optional, in which case an empty grant with a note comes back.
    """
    if request is None:
        return GpuGrant()
    shared_mib = shared_mib or {}
    free = [gpu for gpu in gpus if gpu.uuid not in exclusive_in_use]
    try:
        if request.count:
            whole = [gpu for gpu in free if not shared_mib.get(gpu.uuid)]
            if len(whole) < request.count:
                raise GpuUnavailable(
                    f"asked for {describe(request)}; this machine has {len(gpus)} GPU(s), "
                    f"{len(whole)} not held by another codespace"
                )
            chosen = whole[: request.count]
            return GpuGrant(
                devices=[gpu.uuid for gpu in chosen],
                memory_mib=sum(gpu.memory_mib for gpu in chosen),
            )
        wanted_mib = _memory_mib(request.memory) if request.memory else None
        for gpu in free:
            need = wanted_mib or int(gpu.memory_mib * (request.fraction or 1))
            taken = max(gpu.used_mib, shared_mib.get(gpu.uuid, 0))
            if gpu.memory_mib - taken >= need:
                return GpuGrant(
                    devices=[gpu.uuid],
                    fraction=request.fraction or round(need / gpu.memory_mib, 3),
                    memory_mib=need,
                    exclusive=False,
                )
        raise GpuUnavailable(
            f"asked for {describe(request)}; no GPU on this machine has that much free memory"
            if gpus
            else f"asked for {describe(request)}; this machine has no NVIDIA GPU"
        )
    except GpuUnavailable as error:
        if request.optional:
            return GpuGrant(note=f"starting without a GPU: {error}")
        raise
