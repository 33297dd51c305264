"""Metrics of the services: the local dataset backend's prewarms, a codespace's jobs and its
``/codespace/api/metrics`` (a real jupyter_server, pytest-jupyter), the deploy manager and the
deploy service's app (tornado, with a fake HubAuth), and the hub's target list. The dashboard
and the spawners are in test_metrics.py."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

import codespace.deploy.metrics as deploy_metrics
from codespace.deploy.manager import DeployManager
from codespace.deploy.models import DeploymentRecord, DeploymentSpec
from codespace.jobs.models import JobRecord
from codespace.jobs.service import JobService
from tests.helpers.metrics import METRICS_TOKEN, FakeHubAuth, Moves, value, values

pytest_plugins = ["pytest_jupyter.jupyter_server"]


# -- datasets ----------------------------------------------------------------------------------


async def test_prewarm_bytes_are_counted_once(tmp_path: Path) -> None:
    import fsspec

    from codespace.datasets.catalog import Catalog
    from codespace.datasets.local import LocalBackend
    from tests.datasets_support import write_catalog

    memory = fsspec.filesystem("memory")
    memory.pipe({"/metrics-prewarm/a.bin": b"x" * 1000, "/metrics-prewarm/b/c.bin": b"y" * 24})
    catalog = write_catalog(
        tmp_path / "catalog.yaml", [{"name": "shards", "source": "memory://metrics-prewarm"}]
    )
    backend = LocalBackend(Catalog(catalog), cache_dir=tmp_path / "cache", workspace=tmp_path)
    moves = Moves()
    for _ in range(2):  # the second finds everything cached: nothing copied
        await backend.prewarm("shards")
        for _ in range(200):
            history = await backend.prewarm_history("shards")
            if history[0].finished:
                break
            await asyncio.sleep(0.02)
    assert moves("codespace_dataset_prewarm_bytes_total", dataset="shards") == 1024
    assert moves("codespace_dataset_prewarms_total", dataset="shards", result="Complete") == 2
    await backend.close()


# -- jobs --------------------------------------------------------------------------------------


class FakeJobs:
    """A job backend holding records in memory."""

    def __init__(self) -> None:
        self.records: list[JobRecord] = []

    async def submit(self, submission) -> list[JobRecord]:
        made = [
            JobRecord(
                id=f"job{len(self.records) + index}",
                name=job.name or "job",
                owner="alice",
                backend=job.backend,
                submission="s1",
                submitted=datetime.now(UTC),
                spec=job,
            )
            for index, job in enumerate(submission.jobs)
        ]
        self.records += made
        return made

    async def list(self) -> list[JobRecord]:
        return list(self.records)

    async def get(self, key: str) -> JobRecord:
        return next(record for record in self.records if record.id == key)

    async def close(self) -> None:
        return None


async def test_jobs_by_backend_and_state() -> None:
    backend = FakeJobs()
    service = JobService({"fake": lambda: backend, "never-built": FakeJobs}, "fake")
    moves = Moves()
    await service.submit(
        {"jobs": [{"name": "a", "command": ["true"]}, {"name": "b", "command": ["false"]}]}
    )
    assert moves("codespace_job_submissions_total", backend="fake") == 2
    backend.records[1] = backend.records[1].model_copy(update={"state": "failed"})
    await service.refresh_metrics()
    assert value("codespace_jobs", backend="fake", state="queued") == 1
    assert value("codespace_jobs", backend="fake", state="failed") == 1
    assert value("codespace_jobs", backend="fake", state="running") == 0
    assert "never-built" not in service._built  # a scrape builds no backend
    assert ("codespace_jobs", frozenset({("backend", "never-built"), ("state", "queued")})) not in (
        values()
    )


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "state_dir": str(tmp_path / "state"),
            "job_backends": {"local": "codespace.jobs.local.LocalJobBackend"},
            "job_backend_options": {"local": {"poll_interval": 0.05, "kill_grace": 0.5}},
        },
    }


def test_the_codespace_server_serves_its_metrics(jp_fetch, jp_serverapp, jp_asyncio_loop) -> None:
    run = jp_asyncio_loop.run_until_complete  # the server's loop
    [extension] = jp_serverapp.extension_manager.extension_apps["extensions"]
    run(extension.jobs.submit({"name": "a", "command": ["true"]}))  # as the API does
    settings = jp_serverapp.web_app.settings
    settings["api_last_activity"] = before = datetime(2020, 1, 1, tzinfo=UTC)
    reply = run(jp_fetch("codespace", "api", "metrics"))  # as the owner
    assert reply.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(reply.body.decode())}
    local = [s.value for s in families["codespace_jobs"].samples if s.labels["backend"] == "local"]
    assert sum(local) >= 1  # the job, in whatever state it is now
    assert settings["api_last_activity"] == before  # a scrape is not activity

    jp_serverapp.identity_provider.hub_auth = FakeHubAuth(
        {"metrics": METRICS_TOKEN, "plain": {"kind": "user", "name": "bob", "scopes": ["self"]}}
    )
    for token, status in (("metrics", 200), ("plain", 403), ("", 403)):
        headers = {"Authorization": f"token {token}" if token else ""}  # not the owner's
        try:
            reply = run(jp_fetch("codespace", "api", "metrics", headers=headers))
            code = reply.code
        except HTTPClientError as error:
            code = error.code
        assert code == status, token


# -- deployments ---------------------------------------------------------------------------------


def record(name: str, state: str = "ready", idle: int = 60) -> DeploymentRecord:
    spec = DeploymentSpec(name=name, artifact="model.joblib", minReplicas=0, idleTimeout=idle)
    return DeploymentRecord(
        name=name, owner="alice", backend="local", state=state, format="sklearn",
        created=datetime.now(UTC), spec=spec,
    )  # fmt: skip


class FakeServer:
    alive = True
    process = None
    cgroup = None

    async def close(self) -> None:
        self.alive = False


async def test_cold_starts_scale_to_zero_and_states(tmp_path: Path, monkeypatch) -> None:
    import codespace.deploy.servers as servers

    async def nothing(*args) -> None:
        return None

    monkeypatch.setattr(servers, "terminate", nothing)
    monkeypatch.setattr(servers, "release", nothing)
    manager = DeployManager(tmp_path / "d", tmp_path / "env", SimpleNamespace(), "http://h/")

    async def start(owner: str, name: str) -> FakeServer:
        await asyncio.sleep(0.05)
        return FakeServer()

    monkeypatch.setattr(manager, "_start", start)
    for name, state in (("iris", "ready"), ("wine", "failed"), ("new", "creating")):
        manager.store.put(record(name, state))
    moves = Moves()
    await asyncio.gather(*(manager.server_for("alice", "iris") for _ in range(3)))  # one start
    await manager.server_for("alice", "iris")  # running: no cold start
    assert moves("codespace_deployment_cold_starts_total", owner="alice", name="iris") == 1
    assert moves("codespace_deployment_cold_start_duration_seconds_count") == 1
    assert await manager.reap(now=time.monotonic() + 61) == ["alice/iris"]
    assert moves("codespace_deployment_scale_to_zero_total", owner="alice", name="iris") == 1

    collector = deploy_metrics.DeploymentStates(manager.everyone)
    REGISTRY.register(collector)
    try:
        states = {
            state: value("codespace_deployments", state=state) for state in deploy_metrics.STATES
        }
    finally:
        REGISTRY.unregister(collector)
    assert states == {"creating": 1, "loading": 0, "ready": 0, "idle": 1, "failed": 1}


async def test_the_deploy_service_meters_requests_and_guards_its_metrics(monkeypatch) -> None:
    import hub.deploy.app as deploy_app

    async def forward(server, request, path: str):
        await asyncio.sleep(0.01)
        return (200 if path.endswith("/infer") else 404), [], b"{}"

    monkeypatch.setattr(deploy_app, "forward", forward)

    async def server_for(owner: str, name: str) -> FakeServer:
        return FakeServer()

    manager = SimpleNamespace(
        store=SimpleNamespace(
            token_grants=lambda token, owner, name: token == "shared",
            get=lambda owner, name: record(name) if name == "iris" else None,
        ),
        server_for=server_for,
        touch=lambda owner, name: None,
    )
    auth = FakeHubAuth(
        {
            "alice": {"kind": "user", "name": "alice", "scopes": list(FakeHubAuth.access_scopes)},
            "bob": {"kind": "user", "name": "bob", "scopes": list(FakeHubAuth.access_scopes)},
            "metrics": METRICS_TOKEN,
        }
    )
    app = deploy_app.make_app(manager, "/services/codespace-deploy/", auth)
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    base = f"http://127.0.0.1:{port}/services/codespace-deploy/"
    client = AsyncHTTPClient()

    async def call(path: str, token: str, method: str = "GET") -> int:
        body = b"{}" if method == "POST" else None
        headers = {"Authorization": f"token {token}"}
        reply = await client.fetch(
            base + path, method=method, body=body, headers=headers, raise_error=False
        )
        return reply.code

    try:
        moves = Moves()
        infer = "endpoints/alice/iris/v2/models/iris/infer"
        assert await call(infer, "alice", "POST") == 200
        assert await call(infer, "shared", "POST") == 200
        assert await call("endpoints/alice/iris/v2/nothing", "alice") == 404
        assert await call(infer, "bob", "POST") == 403  # refused: names no deployment
        assert await call("endpoints/alice/nope/v2/models/nope/infer", "alice", "POST") == 200
        requests = "codespace_deployment_requests_total"
        assert moves(requests, owner="alice", name="iris", status="200") == 2
        assert moves(requests, owner="alice", name="iris", status="404") == 1
        assert moves(requests, owner="alice", name="iris", status="403") == 0
        assert moves(requests, owner="alice", name="nope", status="200") == 0  # no such one
        latency = "codespace_deployment_request_duration_seconds"
        assert moves(f"{latency}_count", owner="alice", name="iris") == 3
        assert moves(f"{latency}_sum", owner="alice", name="iris") >= 0.03

        assert await call("metrics", "alice") == 403
        reply = await client.fetch(base + "metrics", headers={"Authorization": "token metrics"})
        names = {f.name for f in text_string_to_metric_families(reply.body.decode())}
        assert {"codespace_deployment_requests", "codespace_deployment_cold_starts"} <= names
    finally:
        server.stop()


async def test_the_deploy_services_root_sends_people_to_the_hub_home() -> None:
    # JupyterHub checks a managed service is up at its root; a 404 there logged a warning
    # at every start
    import hub.deploy.app as deploy_app

    app = deploy_app.make_app(None, "/services/codespace-deploy/", None, hub_home="/jh/hub/home")
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        reply = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}/services/codespace-deploy/",
            follow_redirects=False,
            raise_error=False,
        )
    finally:
        server.stop()
    assert reply.code == 302 and reply.headers["Location"] == "/jh/hub/home"


# -- discovery of the codespaces' metrics ----------------------------------------------------------


def test_metrics_targets_are_http_service_discovery_groups() -> None:
    from hub.metrics_targets import target_groups

    groups = target_groups("hub.example:8000", "https", [("alice", "", "/user/alice/")])
    assert groups == [
        {
            "targets": ["hub.example:8000"],
            "labels": {
                "__metrics_path__": "/user/alice/codespace/api/metrics",
                "__scheme__": "https",
                "user": "alice",
                "server": "",
            },
        }
    ]
