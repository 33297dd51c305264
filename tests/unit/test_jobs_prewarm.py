"""Run after prewarm: a job with ``prewarm`` starts when its datasets' prewarm completed
(local backend, real local catalog datasets and real processes), ``releaseCache`` removes the
cached copy afterwards; the Argo Workflow gets a Fluid DataLoad step (validated against the
Argo and Fluid CRDs); Slurm refuses; the spec, SDK and CLI carry the fields."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from codespace.cli.job_commands import register, spec_from_args
from codespace.datasets.catalog import Catalog
from codespace.datasets.local import LocalBackend
from codespace.jobs.backend import JobError
from codespace.jobs.local import LocalJobBackend
from codespace.jobs.models import JobRecord, Submission
from codespace.jobs.prewarm import DatasetPrewarmGate
from codespace.jobs.runner import LocalJob, Task
from codespace.jobs.sdk import job_spec
from codespace.jobs.service import JobService, parse_submission
from codespace.jobs.slurm import refuse_prewarm
from tests.datasets_support import write_catalog
from tests.helpers.k8s_schema import assert_strictly_valid
from tests.unit.test_jobs_argo_workflow import CONTEXT, build, tasks, templates
from tests.unit.test_jobs_local import (  # noqa: F401 - fixtures
    environment,
    finished,
    make,
    submission,
    workspace,
)

PY = sys.executable
READ = "import os; print(open(os.path.join(os.environ['COPY'], 'a.txt')).read())"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "weather-src"
    (root / "2024").mkdir(parents=True)
    (root / "a.txt").write_text("sunny")
    (root / "2024" / "b.bin").write_bytes(b"x" * 4096)
    return root


@pytest.fixture
def datasets(tmp_path: Path, source: Path):
    """The local catalog backend: ``weather`` is copied into the cache (an fsspec URL of a
    directory), ``plain`` is the directory read in place."""
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        [
            {"name": "weather", "source": f"local://{source}"},
            {"name": "plain", "source": str(source)},
        ],
    )
    return LocalBackend(Catalog(catalog), cache_dir=tmp_path / "cache", workspace=tmp_path / "ws")


@pytest.fixture
def jobs(make, datasets) -> LocalJobBackend:  # noqa: F811
    backend = make()
    backend.prewarm_gate = DatasetPrewarmGate(datasets)
    return backend


async def reason_of(backend: LocalJobBackend, job_id: str, pattern: str, timeout: float = 10):
    deadline = time.monotonic() + timeout
    while not re.search(pattern, (record := await backend.get(job_id)).reason):
        assert time.monotonic() < deadline, (record.state, record.reason)
        await asyncio.sleep(0.05)
    return record


async def test_a_prewarm_job_waits_for_the_copy_runs_on_it_then_releases_it(
    jobs, datasets, tmp_path, monkeypatch
) -> None:
    go = threading.Event()
    copy = LocalBackend._copy

    def slow_copy(self, entry, op, targets):  # the copy waits until the test says go
        assert go.wait(20)
        copy(self, entry, op, targets)

    monkeypatch.setattr(LocalBackend, "_copy", slow_copy)
    cache = tmp_path / "cache" / "data" / "weather"
    spec = {
        "name": "reader",
        "command": [PY, "-c", READ],
        "datasets": ["weather"],
        "prewarm": True,
        "releaseCache": True,
        "env": {"COPY": str(cache)},
    }
    try:
        [record] = await jobs.submit(submission(spec))
        [op] = await datasets.prewarm_history("weather")  # started at submission
        assert op.phase == "Executing"
        waiting = await reason_of(jobs, record.id, r"^waiting for the prewarm of weather \(")
        assert re.fullmatch(r"waiting for the prewarm of weather \(\d+(\.\d)?%\)", waiting.reason)
        await asyncio.sleep(0.3)
        assert (await jobs.get(record.id)).state == "queued" and not cache.exists()
    finally:
        go.set()
    [done] = await finished(jobs, [record])
    assert done.state == "succeeded", done.reason
    assert (await jobs.logs(record.id)).startswith("sunny\n")  # it read the cached copy
    log = jobs.workspace / str(done.logPath)
    deadline = time.monotonic() + 10
    while "releaseCache" not in log.read_text():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert not cache.exists()  # released
    assert re.search(
        r"releaseCache: weather: released its cached copy \(.+ in 2 files\)", log.read_text()
    )
    assert await datasets.prewarm_history("weather") == []


async def test_a_failed_prewarm_fails_the_job_with_its_reason(jobs, monkeypatch) -> None:
    def full(self, entry, op, targets):
        raise OSError("No space left on device")

    monkeypatch.setattr(LocalBackend, "_copy", full)
    first = {"name": "first", "command": ["true"], "datasets": ["weather"], "prewarm": True}
    then = {"name": "then", "command": ["true"], "after": ["first"]}
    records = await jobs.submit(submission(first, then))
    failed, cancelled = await finished(jobs, records)
    assert failed.state == "failed" and failed.started is None
    assert failed.reason == "the prewarm of 'weather' failed: OSError: No space left on device"
    assert cancelled.state == "cancelled"


async def test_a_completed_prewarm_is_reused_and_a_directory_starts_at_once(
    jobs, datasets, source
) -> None:
    done = await datasets.prewarm("weather")
    while not done.finished:
        await asyncio.sleep(0.05)
    spec = {"command": ["true"], "prewarm": True, "releaseCache": True}
    records = await jobs.submit(
        submission(
            {**spec, "name": "cached", "datasets": ["weather"]},
            {**spec, "name": "inplace", "datasets": ["plain"]},
        )
    )
    assert [op.id for op in await datasets.prewarm_history("weather")] == [done.id]  # reused
    assert all(r.state == "succeeded" for r in await finished(jobs, records))
    assert source.is_dir() and (source / "a.txt").exists()  # a directory is never removed


async def test_prewarm_is_refused_before_anything_is_made(make, jobs) -> None:  # noqa: F811
    spec = {"name": "x", "command": ["true"], "datasets": ["nope"], "prewarm": True}
    with pytest.raises(JobError, match="no dataset named 'nope'"):
        await jobs.submit(submission(spec))
    assert await jobs.list() == []
    bare = make(owner="bob")  # no dataset backend given
    with pytest.raises(JobError, match="no dataset backend to prewarm with"):
        await bare.submit(submission({**spec, "datasets": ["weather"]}))


async def test_the_service_gives_its_gate_to_the_local_backend(make, datasets) -> None:  # noqa: F811
    gate = DatasetPrewarmGate(datasets)
    service = JobService({"local": make}, "local", prewarm_gate=gate)
    assert service.backend("local").prewarm_gate is gate
    [record] = await service.submit(
        {"name": "p", "command": ["true"], "datasets": ["plain"], "prewarm": True}
    )
    [done] = await finished(service.backend("local"), [record])  # type: ignore[arg-type]
    assert done.state == "succeeded" and done.spec.prewarm


def test_the_fields_need_datasets_and_survive_a_restart() -> None:
    for flag in ("prewarm", "releaseCache"):
        with pytest.raises(JobError, match=rf"jobs\[0\]: {flag} needs datasets"):
            parse_submission({"name": "x", "command": ["true"], flag: True})
    sub = parse_submission({"name": "x", "command": ["true"], "datasets": ["d"], "prewarm": True})
    assert sub.jobs[0].prewarm and not sub.jobs[0].releaseCache
    record = JobRecord(
        id="local-1", name="x", owner="a", backend="local", submission="s",
        submitted="2024-01-01T00:00:00Z", spec=sub.jobs[0],
    )  # fmt: skip
    job = LocalJob(record=record, tasks=[Task(index=0)], prewarmed=True)
    assert LocalJob.from_json(record, json.loads(json.dumps(job.to_json()))).prewarmed
    assert not LocalJob.from_json(record, {"tasks": []}).prewarmed  # older state


def test_slurm_refuses_prewarm_and_release() -> None:
    for flag in ("prewarm", "releaseCache"):
        job = {"name": "x", "command": ["true"], "datasets": ["d"], flag: True}
        with pytest.raises(JobError, match=f"{flag} is not supported by the Slurm backend: "):
            refuse_prewarm(Submission.model_validate({"jobs": [job]}))
    refuse_prewarm(Submission.model_validate({"jobs": [{"name": "x", "command": ["true"]}]}))


def test_argo_runs_a_dataload_first_and_waits_for_it() -> None:
    workflow = build(
        {"name": "train", "command": ["true"], "datasets": ["imagenet"], "prewarm": True},
        {"name": "eval", "command": ["true"], "datasets": ["imagenet"], "prewarm": True,
         "after": ["train"]},
        {"name": "prewarm-imagenet", "command": ["true"]},  # a job may have the task's name
    )  # fmt: skip
    dag = tasks(workflow)
    load = "prewarm-imagenet-load"
    assert "depends" not in dag[load]
    assert dag["train"]["depends"] == load
    assert dag["eval"]["depends"] == f"train && {load}"
    assert "depends" not in dag["prewarm-imagenet"]
    resource = templates(workflow)[load]["resource"]
    assert resource["action"] == "create" and resource["setOwnerReference"] is True
    assert resource["successCondition"] == "status.phase == Complete"
    assert resource["failureCondition"] == "status.phase == Failed"
    dataload = assert_strictly_valid(json.loads(resource["manifest"]))  # the Fluid CRD
    assert dataload["kind"] == "DataLoad"
    assert dataload["metadata"]["namespace"] == CONTEXT.namespace
    assert dataload["spec"]["dataset"] == {"name": "imagenet", "namespace": CONTEXT.namespace}
    assert dataload["spec"]["target"] == [{"path": "/", "replicas": 1}]
    assert dataload["metadata"]["name"].startswith("imagenet-load-")  # one per submission
    again = build({"name": "train", "command": ["true"], "datasets": ["imagenet"]})
    assert set(tasks(again)) == {"train"}  # no prewarm asked: no DataLoad


def test_argo_refuses_release_cache() -> None:
    with pytest.raises(JobError, match="releaseCache is not supported by the Argo backend"):
        build({"name": "t", "command": ["true"], "datasets": ["imagenet"], "releaseCache": True})


def test_the_sdk_and_the_cli_send_the_fields() -> None:
    spec = job_spec(["true"], datasets=["d"], prewarm=True, release_cache=True)
    assert spec["prewarm"] is True and spec["releaseCache"] is True
    assert "prewarm" not in job_spec(["true"]) and "releaseCache" not in job_spec(["true"])
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["jobs", "submit", "--dataset", "d", "--prewarm", "--release-cache", "--", "true"]
    )
    assert spec_from_args(args) | {"name": "x"} == {
        "name": "x",
        "command": ["true"],
        "datasets": ["d"],
        "prewarm": True,
        "releaseCache": True,
    }
