"""Prometheus metrics: every dashboard query names a metric we or JupyterHub export, and our
metrics move when the instrumented code runs (read back through prometheus_client's parser).

No hub is started here (tests/integration/test_metrics_hub.py does that): the spawners run with
their pipelines replaced by small fakes. The services' metrics (datasets, jobs, deployments) are
in test_metrics_services.py."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import codespace.activity.metrics as activity_metrics  # the activity sources' gauge
import codespace.datasets.metrics as dataset_metrics
import codespace.deploy.metrics as deploy_metrics
import codespace.jobs.metrics as job_metrics
import spawner.metrics as spawner_metrics
from spawner.progress import PHASES, ProgressLog
from tests.helpers.metrics import Moves

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "config" / "grafana" / "codespace-hub.json"
HELM_VALUES = REPO / "config" / "helm" / "values.yaml"

# JupyterHub 6.1.1's metrics (jupyterhub/metrics.py, default prefix), by type: the dashboard
# may query these; test_the_jupyterhub_names_are_jupyterhubs checks them against JupyterHub.
JUPYTERHUB_METRICS = {
    "jupyterhub_request_duration_seconds": "histogram",
    "jupyterhub_server_spawn_duration_seconds": "histogram",
    "jupyterhub_running_servers": "gauge",
    "jupyterhub_total_users": "gauge",
    "jupyterhub_active_users": "gauge",
    "jupyterhub_check_routes_duration_seconds": "histogram",
    "jupyterhub_hub_startup_duration_seconds": "histogram",
    "jupyterhub_init_spawners_duration_seconds": "histogram",
    "jupyterhub_proxy_poll_duration_seconds": "histogram",
    "jupyterhub_login_duration_seconds": "histogram",
    "jupyterhub_logout_duration_seconds": "histogram",
    "jupyterhub_csp_reports": "counter",
    "jupyterhub_proxy_add_duration_seconds": "histogram",
    "jupyterhub_server_poll_duration_seconds": "histogram",
    "jupyterhub_server_stop_seconds": "histogram",
    "jupyterhub_proxy_delete_duration_seconds": "histogram",
    "jupyterhub_event_loop_interval_seconds": "histogram",
}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def sample_names(name: str, kind: str) -> set[str]:
    """The sample names a metric family shows in the text format (``_created`` aside)."""
    return {name + suffix for suffix in SUFFIXES[kind]}


def our_metrics() -> dict[str, str]:
    """Name -> type of every metric our modules define (collectors by their description)."""
    found: dict[str, str] = {}
    modules = (spawner_metrics, deploy_metrics, job_metrics, dataset_metrics, activity_metrics)
    for module in modules:
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                found[value._name] = value._type
    collectors = (spawner_metrics.GpuGrants(), deploy_metrics.DeploymentStates(list))
    for collector in collectors:
        for family in collector.describe():
            found[family.name] = family.type
    return found


def exported_samples() -> set[str]:
    names = {**our_metrics(), **JUPYTERHUB_METRICS}
    return {sample for name, kind in names.items() for sample in sample_names(name, kind)}


def queried_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: no strings, label matchers, ranges,
    grouping labels, functions or keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    expr = re.sub(r"\boffset\s+\S+", "", expr)
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", expr):
        rest = expr[match.end() :].lstrip()
        if rest.startswith("(") or match.group() in PROMQL_WORDS:
            continue
        names.add(match.group())
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


# -- the dashboard -------------------------------------------------------------------------


def test_every_dashboard_query_names_an_exported_metric() -> None:
    exported = exported_samples()
    queries = dashboard_queries()
    assert len(queries) > 20
    for title, expr in queries:
        names = queried_metrics(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= exported, f"{title}: {sorted(names - exported)} is exported by no one"


def test_the_dashboard_shows_each_of_our_metrics() -> None:
    queried = set().union(*(queried_metrics(expr) for _, expr in dashboard_queries()))
    for name, kind in our_metrics().items():
        assert sample_names(name, kind) & queried, f"no panel shows {name}"
    assert "jupyterhub_running_servers" in queried


def test_the_query_parser_reads_promql() -> None:
    expr = (
        "histogram_quantile(0.9, sum by (le, phase) "
        '(rate(a_bucket{mode="local"}[$__rate_interval])))'
        " / on (phase) group_left b_total offset 5m * 1e3"
    )
    assert queried_metrics(expr) == {"a_bucket", "b_total"}


def test_the_jupyterhub_names_are_jupyterhubs() -> None:
    import jupyterhub.metrics

    theirs = {
        value._name: value._type
        for value in vars(jupyterhub.metrics).values()
        if isinstance(value, MetricWrapperBase)
    }
    assert theirs == JUPYTERHUB_METRICS


def test_names_are_prefixed_and_every_phase_is_a_name() -> None:
    assert all(name.startswith("codespace_") for name in our_metrics())
    assert PHASES == ("fetch", "resolve", "environment", "datasets", "lifecycle", "server")


def test_the_helm_values_examples_are_yaml() -> None:
    text = HELM_VALUES.read_text()
    block = re.search(r"  # services:\n(?:  # (?:loadRoles:|  ).*\n)+", text)
    assert block is not None
    lines = block.group().splitlines()
    hub = yaml.safe_load("\n".join(line.replace("# ", "", 1) for line in lines))
    assert hub["loadRoles"]["prometheus"]["scopes"] == ["read:metrics"]
    assert hub["loadRoles"]["prometheus"]["services"] == ["prometheus"]
    assert "/hub/api/codespace/metrics/targets" in text


# -- the spawners ----------------------------------------------------------------------------


def local_spawner(tmp_path: Path, name: str = "m") -> Any:
    from spawner.local import LocalCodespaceSpawner

    spawner = LocalCodespaceSpawner(
        data_dir=str(tmp_path),
        user=SimpleNamespace(name="alice"),
        orm_spawner=SimpleNamespace(name=name, server=None),
    )
    spawner.user_options = {"repo": "https://example.org/a.git"}
    return spawner


async def test_a_local_start_counts_its_result_and_phases(tmp_path: Path, monkeypatch) -> None:
    from spawner.local import LocalCodespaceSpawner

    async def pipeline(self, options, log: ProgressLog) -> tuple[str, int]:
        for progress, message in (
            (5, "fetch: cloning"),
            (25, "resolve: reading"),
            (28, "error: not a phase"),
            (35, "environment: looking up the cache"),
            (96, "server: starting JupyterLab"),
        ):
            log.step(progress, message)
            await asyncio.sleep(0.01)
        return "127.0.0.1", 8888

    monkeypatch.setattr(LocalCodespaceSpawner, "_start", pipeline)
    moves = Moves()
    assert await local_spawner(tmp_path).start() == ("127.0.0.1", 8888)
    assert moves("codespace_spawns_total", mode="local", result="success") == 1
    count = "codespace_spawn_phase_duration_seconds_count"
    for phase in ("fetch", "resolve", "environment", "server"):
        assert moves(count, mode="local", phase=phase) == 1
    assert moves(count, mode="local", phase="lifecycle") == 0
    spent = moves("codespace_spawn_phase_duration_seconds_sum", mode="local", phase="resolve")
    assert spent >= 0.015  # two steps slept in it


@pytest.mark.parametrize(("error", "result"), [(RuntimeError, "failure"), (None, "cancelled")])
async def test_a_local_start_that_fails_or_is_stopped(tmp_path, monkeypatch, error, result):
    from spawner.local import LocalCodespaceSpawner

    async def pipeline(self, options, log: ProgressLog) -> tuple[str, int]:
        log.step(5, "fetch: cloning")
        raise (error or asyncio.CancelledError)("stopped")

    monkeypatch.setattr(LocalCodespaceSpawner, "_start", pipeline)
    moves = Moves()
    with pytest.raises(error or asyncio.CancelledError):
        await local_spawner(tmp_path).start()
    assert moves("codespace_spawns_total", mode="local", result=result) == 1
    # only starts that succeeded are timed
    assert moves("codespace_spawn_phase_duration_seconds_count", mode="local", phase="fetch") == 0


def test_a_local_pipeline_result_counts_cache_and_recovery() -> None:
    moves = Moves()
    spawner_metrics.count_prepared(SimpleNamespace(env=SimpleNamespace(cache_hit=True), recovery=0))
    built = SimpleNamespace(env=SimpleNamespace(cache_hit=False), recovery=True)
    spawner_metrics.count_prepared(built)
    lookups = "codespace_environment_cache_lookups_total"
    assert moves(lookups, mode="local", result="hit") == 1
    assert moves(lookups, mode="local", result="miss") == 1
    assert moves("codespace_recovery_starts_total", mode="local") == 1


def test_local_gpu_grants_are_counted_and_held_gpus_read_from_the_registry(
    tmp_path: Path, monkeypatch
) -> None:
    from codespace import gpu
    from codespace.spec.model import Codespace

    # GPUs of their own: the gauge counts a GPU once over every registry the hub watches
    first, second = (f"GPU-{uuid.uuid4()}" for _ in range(2))
    smi = f"0, {first}, NVIDIA H100, 81559, 0\n1, {second}, NVIDIA H100, 81559, 0\n"
    monkeypatch.setattr(gpu, "discover", lambda: gpu.parse_nvidia_smi(smi))
    moves = Moves()
    whole, half = local_spawner(tmp_path, "a"), local_spawner(tmp_path, "b")
    whole._claim_gpu(Codespace(resources={"gpu": 1}), ProgressLog())
    half._claim_gpu(Codespace(resources={"gpu": {"fraction": 0.5}}), ProgressLog())
    assert moves("codespace_gpu_grants_total", mode="local", sharing="exclusive") == 1
    assert moves("codespace_gpu_grants_total", mode="local", sharing="shared") == 1
    assert moves("codespace_gpus_granted", sharing="exclusive") == 1
    assert moves("codespace_gpus_granted", sharing="shared") == 1
    whole._release_gpu()
    assert moves("codespace_gpus_granted", sharing="exclusive") == 0


def kube_spawner(monkeypatch) -> Any:
    from spawner.kubernetes import KubeCodespaceSpawner

    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kw: None)
    monkeypatch.setattr("kubespawner.spawner.shared_client", lambda name: None)
    monkeypatch.setattr("spawner.kubernetes.shared_client", lambda name: None)
    spawner = KubeCodespaceSpawner(_mock=True)
    spawner.codespace_config = {"profiles": [{"name": "a"}]}
    return spawner


@pytest.mark.parametrize("fails", [False, True])
async def test_a_cluster_start_counts_its_result_and_phases(monkeypatch, fails: bool) -> None:
    from kubespawner import KubeSpawner

    async def kubespawner_start(self) -> str:
        self._progress = log = ProgressLog()  # what load_user_options does
        log.step(2, "Reading the codespace spec", phase="resolve")
        log.step(15, "Building image", phase="environment")
        log.step(60, "Creating the pod", phase="server")
        log.close()
        if fails:
            raise RuntimeError("The codespace cannot start: ImagePullBackOff")
        return "http://10.0.0.1:8888"

    monkeypatch.setattr(KubeSpawner, "_start", kubespawner_start)
    moves = Moves()
    spawner = kube_spawner(monkeypatch)
    if fails:
        with pytest.raises(RuntimeError):
            await spawner.start()
    else:
        assert await spawner.start() == "http://10.0.0.1:8888"
    result = "failure" if fails else "success"
    assert moves("codespace_spawns_total", mode="kubernetes", result=result) == 1
    count = "codespace_spawn_phase_duration_seconds_count"
    for phase in ("resolve", "environment", "server"):
        assert moves(count, mode="kubernetes", phase=phase) == (0 if fails else 1)


async def test_cluster_images_count_cache_lookups_and_builds(monkeypatch) -> None:
    import spawner.kubernetes as kube
    from spawner.kube.build import BuildFailed

    spawner = kube_spawner(monkeypatch)
    monkeypatch.setattr(type(spawner), "api", None, raising=False)
    in_registry = {"reg/env:1": True}
    build_fails = {"reg/env:3": True}

    async def image_exists(image, credentials, insecure=False) -> bool:
        return in_registry.get(image, False)

    async def run_build_job(batch, core, job, on_line) -> None:
        if build_fails.get(job["image"]):
            raise BuildFailed("the build failed")

    monkeypatch.setattr(kube, "image_exists", image_exists)
    monkeypatch.setattr(kube, "run_build_job", run_build_job)

    def plan(image: str) -> Any:
        return SimpleNamespace(image=SimpleNamespace(image=image), build_job={"image": image})

    moves = Moves()
    log = ProgressLog()
    await spawner._ensure_image(plan("reg/env:1"), log)  # in the registry
    await spawner._ensure_image(plan("reg/env:2"), log)  # built now
    with pytest.raises(BuildFailed):
        await spawner._ensure_image(plan("reg/env:3"), log)
    lookups = "codespace_environment_cache_lookups_total"
    assert moves(lookups, mode="kubernetes", result="hit") == 1
    assert moves(lookups, mode="kubernetes", result="miss") == 2
    assert moves("codespace_image_builds_total", result="success") == 1
    assert moves("codespace_image_builds_total", result="failure") == 1
    assert [name for name, _ in log.phases] == ["environment"]


def test_a_cluster_plan_counts_recovery_and_gpus() -> None:
    moves = Moves()
    gpu = {"CODESPACE_GPU_COUNT": "1", "CODESPACE_GPU_SHARING": "time-slicing"}
    spawner_metrics.count_plan(
        SimpleNamespace(launch=SimpleNamespace(recovery=True), gpu=SimpleNamespace(env=gpu))
    )
    no_gpu = SimpleNamespace(env={"CODESPACE_GPU_COUNT": "0"})
    spawner_metrics.count_plan(SimpleNamespace(launch=SimpleNamespace(recovery=False), gpu=no_gpu))
    assert moves("codespace_recovery_starts_total", mode="kubernetes") == 1
    grants = "codespace_gpu_grants_total"
    assert moves(grants, mode="kubernetes", sharing="time-slicing") == 1


def test_phases_add_up_when_a_phase_comes_back() -> None:
    log = ProgressLog()
    log.step(3, "recorded datasets", phase="datasets")
    log.step(5, "resolve: reading")
    log.step(6, "resolve: still reading")  # the same phase: not a new mark
    log.step(10, "checking datasets", phase="datasets")
    assert [name for name, _ in log.phases] == ["datasets", "resolve", "datasets"]
    start = log.phases[0][1]
    spent = log.phase_durations(start + 10)
    assert list(spent) == ["datasets", "resolve"]
    assert spent["datasets"] + spent["resolve"] == pytest.approx(10)
