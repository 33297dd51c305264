"""GPU grants of :class:`~spawner.local.LocalCodespaceSpawner` (a mixin).

Right after the spec is read a codespace's ``resources.gpu`` is granted from this machine's
NVIDIA GPUs (:mod:`codespace.gpu`); whole GPUs are not given to two running servers
(:mod:`codespace.local.gpu_grants`, counted by :class:`spawner.metrics.MeteredGpuRegistry`). A
request that cannot be met ends the start unless it is optional. With no request the GPUs
are hidden (``CUDA_VISIBLE_DEVICES`` empty).
"""

from __future__ import annotations

from pathlib import Path

from codespace import gpu as local_gpu
from codespace.spec.model import Codespace
from spawner.local_process import DEFAULT_SERVER_DIR
from spawner.metrics import MeteredGpuRegistry
from spawner.progress import ProgressLog


class LocalGpuMixin:
    """Claim and release a codespace's GPU grant (needs ``data_dir``, ``user``, ``name``)."""

    _gpu_env: dict[str, str]

    def _gpu_registry(self) -> MeteredGpuRegistry:
        return MeteredGpuRegistry(Path(self.data_dir).resolve())

    def _gpu_key(self) -> str:
        return f"{self.user.name}/{self.name or DEFAULT_SERVER_DIR}"

    def _claim_gpu(self, spec: Codespace, log: ProgressLog) -> None:
        """Grant the spec's GPU request (or hide the GPUs when there is none); see module doc."""
        request = spec.resources.gpu
        try:
            granted = self._gpu_registry().claim(self._gpu_key(), request, local_gpu.discover)
        except local_gpu.GpuUnavailable as error:
            raise local_gpu.GpuUnavailable(f"GPU request not met: {error}") from None
        self._gpu_env = granted.env()
        if granted.note:
            log.line(f"warning: GPU: {granted.note}")
        elif granted.devices:
            how = "shared" if not granted.exclusive else "exclusive"
            log.step(
                32,
                f"GPU: {local_gpu.describe(request)} granted: {', '.join(granted.devices)} ({how})",
            )

    def _release_gpu(self) -> None:
        self._gpu_registry().release(self._gpu_key())
