"""GPUs on one machine: discover them and grant a codespace its share.

The embedded default has no device plugin or scheduler, so the grant is advisory: whole
GPUs are handed out by ``CUDA_VISIBLE_DEVICES`` and not given to two codespaces at once;
fractional and memory requests share a GPU, and the share is announced to the codespace
through environment variables (frameworks can read them, nothing enforces them). The same
``CODESPACE_GPU_*`` variables are set by the Kubernetes builders, so the lab shows one thing.

Discovery is the only I/O here (``nvidia-smi``); :func:`grant` is pure.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass, field

from codespace.spec.model import GpuRequest

_QUERY = "index,uuid,name,memory.total,memory.used"


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
            "CODESPACE_GPU_SHARING": "exclusive" if self.exclusive else "shared",
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


def grant(request: GpuRequest | None, gpus: list[Gpu], exclusive_in_use: set[str]) -> GpuGrant:
    """Grant ``request`` from ``gpus``; ``exclusive_in_use`` are uuids held whole elsewhere.

    Raises :class:`GpuUnavailable` unless the request is optional, in which case an empty
    grant with a note comes back.
    """
    if request is None:
        return GpuGrant()
    free = [gpu for gpu in gpus if gpu.uuid not in exclusive_in_use]
    try:
        if request.count:
            if len(free) < request.count:
                raise GpuUnavailable(
                    f"asked for {describe(request)}; this machine has {len(gpus)} GPU(s), "
                    f"{len(free)} not held by another codespace"
                )
            return GpuGrant(devices=[gpu.uuid for gpu in free[: request.count]])
        wanted_mib = _memory_mib(request.memory) if request.memory else None
        for gpu in free:
            need = wanted_mib or int(gpu.memory_mib * (request.fraction or 1))
            if gpu.memory_mib - gpu.used_mib >= need:
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
