"""GPU requests on Kubernetes: the profile's sharing mode turns an amount into resources.

The user asks for an amount (``resources.gpu`` in the spec, or devcontainer
``hostRequirements.gpu``): whole GPUs (``count``), a share (``fraction``), GPU memory, or
both. The admin's profile decides how that is expressed:

========== =========================================================================
exclusive  ``nvidia.com/gpu: N``
time-slicing ``nvidia.com/gpu: 1`` (or the renamed ``nvidia.com/gpu.shared``)
mig        ``nvidia.com/mig-<g>g.<mem>gb: 1``, the smallest offered profile that fits
hami       ``nvidia.com/gpu`` + ``nvidia.com/gpumem`` (MiB) or ``gpumem-percentage``
           + ``nvidia.com/gpucores`` (percent of the SMs)
vgpu       Volcano: ``volcano.sh/vgpu-number`` + ``vgpu-memory`` (MiB) + ``vgpu-cores``,
           ``schedulerName: volcano``
========== =========================================================================

The grant is announced inside the codespace with the ``CODESPACE_GPU_*`` variables that
:mod:`codespace.gpu` sets on one machine, so the lab shows the same thing in both modes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from codespace.gpu import describe
from codespace.kube.config import MIG_PROFILE, GpuConfig, Profile
from codespace.kube.quantity import to_mib
from codespace.spec.model import GpuRequest

NVIDIA_GPU = "nvidia.com/gpu"


class GpuUnsatisfiable(ValueError):
    """No profile can give what was asked; the message names the request and the profiles."""


@dataclass
class GpuPlan:
    """Resources, scheduling and environment for one granted GPU share."""

    limits: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    scheduler_name: str | None = None
    runtime_class_name: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @property
    def granted(self) -> bool:
        return bool(self.limits)


def _announce(mode: str, resource: str, count: int, fraction: float | None, mib: int | None):
    env = {
        "CODESPACE_GPU_COUNT": str(count),
        "CODESPACE_GPU_SHARING": mode,
        "CODESPACE_GPU_RESOURCE": resource,
    }
    if fraction is not None:
        env["CODESPACE_GPU_FRACTION"] = f"{fraction:g}"
    if mib is not None:
        env["CODESPACE_GPU_MEMORY_MIB"] = str(mib)
    return env


def _gpu_mib(config: GpuConfig) -> int | None:
    return to_mib(config.memory) if config.memory else None


def _whole(request: GpuRequest, config: GpuConfig) -> tuple[dict[str, str], dict[str, str]]:
    count = request.count or 1
    if count > config.maxCount:
        raise GpuUnsatisfiable(f"at most {config.maxCount} GPU(s) per codespace")
    gpu_mib = _gpu_mib(config)
    if request.memory and gpu_mib is not None and to_mib(request.memory) > gpu_mib:
        raise GpuUnsatisfiable(f"its GPUs have {config.memory} of memory")
    resource = config.resource or NVIDIA_GPU
    mib = gpu_mib * count if gpu_mib is not None else None
    return {resource: str(count)}, _announce("exclusive", resource, count, None, mib)


def _time_slicing(request: GpuRequest, config: GpuConfig):
    if request.count and request.count > 1:
        raise GpuUnsatisfiable("time-slicing shares one GPU; several whole GPUs need another mode")
    gpu_mib = _gpu_mib(config)
    if request.memory and gpu_mib is not None and to_mib(request.memory) > gpu_mib:
        raise GpuUnsatisfiable(f"its shared GPUs have {config.memory} of memory")
    resource = config.resource or NVIDIA_GPU
    fraction = 1 / config.replicas if config.replicas else None
    return {resource: "1"}, _announce("time-slicing", resource, 1, fraction, None)


def mig_profiles(config: GpuConfig) -> list[tuple[int, int, str]]:
    """Offered MIG profiles as ``(slices, GB, name)``, smallest first."""
    parsed = []
    for name in config.migProfiles:
        match = MIG_PROFILE.match(name)
        if match:
            parsed.append((int(match[1]), int(match[2]), name))
    return sorted(parsed)


def _mig(request: GpuRequest, config: GpuConfig):
    offered = mig_profiles(config)
    slices_total = max(slices for slices, _, _ in offered)
    gb_total = max(gb for _, gb, _ in offered)
    if request.count:
        if request.count > 1:
            raise GpuUnsatisfiable("MIG gives one instance per codespace")
        need_slices, need_gb = slices_total, gb_total
    else:
        fraction = request.fraction or 0
        need_slices = math.ceil(fraction * slices_total - 1e-9) if fraction else 1
        need_gb = fraction * gb_total
        if request.memory:
            # MIG names use decimal GB of the card's memory; compare in GiB-ish GB.
            need_gb = max(need_gb, to_mib(request.memory) / 1024)
    for slices, gb, name in offered:
        if slices >= need_slices and gb + 1e-9 >= need_gb:
            resource = f"nvidia.com/mig-{name}"
            share = round(slices / slices_total, 3)
            return {resource: "1"}, _announce("mig", resource, 1, share, gb * 1024)
    raise GpuUnsatisfiable(f"its largest MIG profile is {offered[-1][2]}")


def _fraction_and_memory(request: GpuRequest, config: GpuConfig) -> tuple[float | None, int | None]:
    """The share as (fraction, MiB); either may be unknown."""
    gpu_mib = _gpu_mib(config)
    mib = to_mib(request.memory) if request.memory else None
    fraction = request.fraction
    if mib is not None and gpu_mib is not None:
        if mib > gpu_mib:
            raise GpuUnsatisfiable(f"its GPUs have {config.memory} of memory")
        fraction = fraction or round(mib / gpu_mib, 3)
    elif fraction is not None and gpu_mib is not None:
        mib = int(gpu_mib * fraction)
    return fraction, mib


def _hami(request: GpuRequest, config: GpuConfig):
    resource = config.resource or NVIDIA_GPU
    if request.count:
        if request.count > config.maxCount:
            raise GpuUnsatisfiable(f"at most {config.maxCount} GPU(s) per codespace")
        limits = {resource: str(request.count)}
        return limits, _announce("hami", resource, request.count, None, _gpu_mib(config))
    fraction, mib = _fraction_and_memory(request, config)
    limits = {resource: "1"}
    if mib is not None and request.memory:
        limits["nvidia.com/gpumem"] = str(mib)
    elif fraction is not None:
        limits["nvidia.com/gpumem-percentage"] = str(max(1, round(fraction * 100)))
    if fraction is not None:
        limits["nvidia.com/gpucores"] = str(max(1, round(fraction * 100)))
    return limits, _announce("hami", resource, 1, fraction, mib)


def _vgpu(request: GpuRequest, config: GpuConfig):
    resource = config.resource or "volcano.sh/vgpu-number"
    if request.count:
        if request.count > config.maxCount:
            raise GpuUnsatisfiable(f"at most {config.maxCount} vGPU(s) per codespace")
        return {resource: str(request.count)}, _announce(
            "vgpu", resource, request.count, None, _gpu_mib(config)
        )
    fraction, mib = _fraction_and_memory(request, config)
    if mib is None:
        raise GpuUnsatisfiable("Volcano vGPU needs a memory amount (set the profile's gpu.memory)")
    limits = {resource: "1", "volcano.sh/vgpu-memory": str(mib)}
    if fraction is not None:
        limits["volcano.sh/vgpu-cores"] = str(max(1, round(fraction * 100)))
    return limits, _announce("vgpu", resource, 1, fraction, mib)


_MODES = {
    "exclusive": _whole,
    "time-slicing": _time_slicing,
    "mig": _mig,
    "hami": _hami,
    "vgpu": _vgpu,
}


def no_gpu(note: str = "") -> GpuPlan:
    """A pod without a GPU (``CODESPACE_GPU_COUNT=0``); ``note``: why, when it asked for one."""
    return GpuPlan(env={"CODESPACE_GPU_COUNT": "0"}, note=note)


def plan_gpu_for(request: GpuRequest | None, profile: Profile) -> GpuPlan:
    """The GPU part of the pod for ``request`` under ``profile``; raise GpuUnsatisfiable."""
    if request is None:
        return no_gpu()
    config = profile.gpu
    if config is None:
        raise GpuUnsatisfiable(f"profile {profile.name!r} has no GPUs")
    if request.sharing and request.sharing != config.mode and request.sharing != "exclusive":
        # A preferred technology is a preference; an exclusive wish is honoured by any
        # mode that can give whole GPUs, others must match the profile.
        raise GpuUnsatisfiable(f"profile {profile.name!r} shares GPUs by {config.mode}")
    try:
        limits, env = _MODES[config.mode](request, config)
    except GpuUnsatisfiable as error:
        raise GpuUnsatisfiable(f"profile {profile.name!r} ({config.mode}): {error}") from None
    scheduler = config.schedulerName or ("volcano" if config.mode == "vgpu" else None)
    return GpuPlan(
        limits=limits,
        env=env,
        scheduler_name=scheduler,
        runtime_class_name=config.runtimeClassName,
        node_selector=dict(config.nodeSelector),
        tolerations=[dict(t) for t in config.tolerations],
    )


def choose_profile(
    request: GpuRequest | None, profiles: list[Profile], wanted: str | None = None
) -> tuple[Profile, GpuPlan]:
    """Pick the named profile, or the default, or the first one that can give ``request``.

    An optional request that nothing can give falls back to the chosen profile without a GPU.
    """
    by_name = {profile.name: profile for profile in profiles}
    if wanted is not None and wanted not in by_name:
        raise GpuUnsatisfiable(f"no profile named {wanted!r}; profiles: {', '.join(by_name)}")
    default = by_name[wanted] if wanted else next((p for p in profiles if p.default), profiles[0])
    candidates = [default] if wanted else [default, *(p for p in profiles if p is not default)]
    if request is not None and request.sharing and not wanted:
        # Prefer a profile whose mode is the one asked for.
        candidates.sort(key=lambda p: not (p.gpu and p.gpu.mode == request.sharing))
    reasons = []
    for profile in candidates:
        try:
            return profile, plan_gpu_for(request, profile)
        except GpuUnsatisfiable as error:
            reasons.append(str(error))
    assert request is not None  # a None request always plans
    if request.optional:
        note = f"starting without a GPU: no profile can give {describe(request)}"
        return default, no_gpu(note)
    raise GpuUnsatisfiable(
        f"GPU request ({describe(request)}) cannot be met: " + "; ".join(reasons)
    )


def plan_workload_gpu(
    request: GpuRequest | None, profiles: Sequence[Profile], wanted: str | None, site: str
) -> tuple[GpuPlan, Profile | None]:
    """The GPUs of a workload the user submits (a job, a model server): under the site's
    profiles, or whole NVIDIA GPUs (up to 16) when ``site`` (the engine) has no profiles."""
    if profiles:
        profile, plan = choose_profile(request, list(profiles), wanted)
        return plan, profile
    whole = Profile(name=site, gpu=GpuConfig(mode="exclusive", maxCount=16))
    return plan_gpu_for(request, whole), None
