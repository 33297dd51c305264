"""The spawners' Prometheus metrics, served by JupyterHub itself on ``/hub/metrics``.

JupyterHub serves prometheus_client's default registry (its handler needs a token with the
``read:metrics`` scope unless ``JupyterHub.authenticate_prometheus = False``); the metrics
made here are in that registry once a spawner module imports this one, i.e. in the hub
process. ``mode`` is ``local`` or ``kubernetes``.

``codespace_spawns_total{mode, result}``                  starts that ended: ``success``,
    ``failure`` or ``cancelled`` (stopped while pending)
``codespace_spawn_phase_duration_seconds{mode, phase}``   seconds of each phase of a start
    that succeeded (phases: :data:`spawner.progress.PHASES`, marked in the spawn's progress
    log; in a cluster ``server`` is the pod's scheduling, image pull and server start)
``codespace_environment_cache_lookups_total{mode, result}``  ``hit``: the environment was
    built before (a uv environment in the cache, an image in the registry); ``miss``: built now
``codespace_image_builds_total{result}``                  the cluster's image build Jobs:
    ``success`` or ``failure``
``codespace_recovery_starts_total{mode}``                 starts that went on as a recovery
    codespace (a spec error, a failed build)
``codespace_gpu_grants_total{mode, sharing}``             GPU requests granted at a start
``codespace_gpus_granted{sharing}``                       GPUs held now by local codespaces,
    read from the GPU registry file at each scrape (:mod:`codespace.local.gpu_grants`); in a cluster
    the scheduler holds that count (kube-state-metrics' pod resource requests)
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from codespace.gpu import EXCLUSIVE, SHARED, GpuGrant
from codespace.local.gpu_grants import GpuRegistry
from codespace.spec.model import GpuRequest

if TYPE_CHECKING:
    from codespace.gpu import Gpu
    from codespace.kube.plan import KubePlan
    from codespace.local.prepare import Prepared

# From a warm start (a second or two) to a first image build (half an hour at most).
PHASE_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800)

SPAWNS = Counter(
    "codespace_spawns",
    "Codespace starts that ended, by result (success, failure, cancelled)",
    ["mode", "result"],
)
SPAWN_PHASE_SECONDS = Histogram(
    "codespace_spawn_phase_duration_seconds",
    "Seconds spent in each phase of a codespace start that succeeded",
    ["mode", "phase"],
    buckets=PHASE_BUCKETS,
)
ENVIRONMENT_CACHE = Counter(
    "codespace_environment_cache_lookups",
    "Environment lookups at a start: hit (built before) or miss (built now)",
    ["mode", "result"],
)
IMAGE_BUILDS = Counter(
    "codespace_image_builds",
    "Image build Jobs of codespace environments, by result (success, failure)",
    ["result"],
)
RECOVERY_STARTS = Counter(
    "codespace_recovery_starts",
    "Starts that went on as a recovery codespace (spec error, failed build)",
    ["mode"],
)
GPU_GRANTS = Counter(
    "codespace_gpu_grants",
    "GPU requests granted at a codespace start, by sharing mode",
    ["mode", "sharing"],
)

Start = TypeVar("Start", bound=Callable[..., Awaitable[Any]])
RESULTS = ("success", "failure", "cancelled")


def declare(mode: str) -> None:
    """Make ``mode``'s series at 0 before anything happens (as JupyterHub does for its
    statuses): a series born at 1 hides its first increment from ``increase()``."""
    for result in RESULTS:
        SPAWNS.labels(mode, result)
    for hit in ("hit", "miss"):
        ENVIRONMENT_CACHE.labels(mode, hit)
    RECOVERY_STARTS.labels(mode)
    if mode == "kubernetes":
        for result in ("success", "failure"):
            IMAGE_BUILDS.labels(result)


def finish_spawn(spawner: Any, mode: str, result: str) -> None:
    """Count a start that ended; a successful one's phases from its progress log."""
    SPAWNS.labels(mode, result).inc()
    log = getattr(spawner, "_progress", None)
    if result != "success" or log is None:
        return
    for phase, seconds in log.phase_durations(time.monotonic()).items():
        SPAWN_PHASE_SECONDS.labels(mode, phase).observe(seconds)


def metered_start(mode: str) -> Callable[[Start], Start]:
    """Decorate a spawner's ``async def start``: count how it ended (:func:`finish_spawn`)."""
    declare(mode)

    def decorator(start: Start) -> Start:
        @functools.wraps(start)
        async def metered(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                started = await start(self, *args, **kwargs)
            except asyncio.CancelledError:
                finish_spawn(self, mode, "cancelled")
                raise
            except Exception:
                finish_spawn(self, mode, "failure")
                raise
            finish_spawn(self, mode, "success")
            return started

        return metered  # type: ignore[return-value]

    return decorator


def watch_start(spawner: Any, future: asyncio.Future[Any], mode: str) -> asyncio.Future[Any]:
    """The same for a ``start`` that returns a future (KubeSpawner's); returns ``future``."""
    declare(mode)  # (at the first start: Kubernetes' series appear then)

    def done(finished: asyncio.Future[Any]) -> None:
        if finished.cancelled():
            finish_spawn(spawner, mode, "cancelled")
        else:
            finish_spawn(spawner, mode, "failure" if finished.exception() else "success")

    future.add_done_callback(done)
    return future


def environment_lookup(mode: str, hit: bool) -> None:
    ENVIRONMENT_CACHE.labels(mode, "hit" if hit else "miss").inc()


def image_build(succeeded: bool) -> None:
    IMAGE_BUILDS.labels("success" if succeeded else "failure").inc()


def count_prepared(prepared: Prepared) -> None:
    """What a local start's pipeline decided: its environment lookup, a recovery."""
    environment_lookup("local", prepared.env.cache_hit)
    if prepared.recovery:
        RECOVERY_STARTS.labels("local").inc()


def count_plan(plan: KubePlan) -> None:
    """What a cluster start decided (its image was looked up by then): a recovery, a GPU."""
    if plan.launch.recovery:
        RECOVERY_STARTS.labels("kubernetes").inc()
    gpu = plan.gpu.env
    if gpu.get("CODESPACE_GPU_COUNT", "0") != "0" or "CODESPACE_GPU_FRACTION" in gpu:
        GPU_GRANTS.labels("kubernetes", gpu.get("CODESPACE_GPU_SHARING", EXCLUSIVE)).inc()


# -- local GPUs ------------------------------------------------------------------------------


class GpuGrants(Collector):
    """``codespace_gpus_granted{sharing}``: the GPUs the local registries record as held."""

    def __init__(self) -> None:
        self.registries: dict[Path, GpuRegistry] = {}

    def watch(self, data_dir: Path) -> None:
        path = Path(data_dir).resolve()
        self.registries.setdefault(path, GpuRegistry(path))

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "codespace_gpus_granted",
            "GPUs held by running local codespaces (a shared GPU counts once)",
            labels=["sharing"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        held: dict[str, set[str]] = {EXCLUSIVE: set(), SHARED: set()}
        for registry in list(self.registries.values()):
            try:
                entries = registry.snapshot()
            except OSError:  # unreadable: those GPUs go uncounted, the page still answers
                continue
            for entry in entries.values():
                sharing = EXCLUSIVE if entry.get("exclusive", True) else SHARED
                held[sharing].update(str(device) for device in entry.get("devices", []))
        family = self._family()
        for sharing, devices in held.items():
            family.add_metric([sharing], len(devices))
        yield family


GPUS_GRANTED = GpuGrants()
REGISTRY.register(GPUS_GRANTED)


def watch_gpus(data_dir: str | Path) -> None:
    """Report the GPUs held in ``data_dir``'s registry (the local hub's config calls it, so
    a restarted hub counts the running codespaces' GPUs before any start)."""
    GPUS_GRANTED.watch(Path(data_dir))


class MeteredGpuRegistry(GpuRegistry):
    """The local spawner's :class:`GpuRegistry`: counts grants, reported by the gauge."""

    def __init__(self, data_dir: Path, **kwargs: Any) -> None:
        super().__init__(data_dir, **kwargs)
        watch_gpus(data_dir)

    def claim(
        self, key: str, request: GpuRequest | None, discover: Callable[[], list[Gpu]]
    ) -> GpuGrant:
        granted = super().claim(key, request, discover)
        if granted.devices:
            GPU_GRANTS.labels("local", EXCLUSIVE if granted.exclusive else SHARED).inc()
        return granted
