"""Run after prewarm through the REST API of a real jupyter_server: the server extension gives
the local job backend its dataset backend (the local catalog), so a ``prewarm`` job waits for
the copy of its dataset, runs on it, and ``releaseCache`` removes the copy afterwards."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

from tests.datasets_support import write_catalog
from tests.unit.test_jobs_rest import FAST, LOCAL, call, finished, post, refused

pytest_plugins = ["pytest_jupyter.jupyter_server"]

READ = "import os; print(open(os.path.join(os.environ['COPY'], 'a.txt')).read())"


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    source = tmp_path / "weather-src"
    source.mkdir()
    (source / "a.txt").write_text("sunny")
    catalog = write_catalog(
        tmp_path / "catalog.yaml", [{"name": "weather", "source": f"local://{source}"}]
    )
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "state_dir": str(tmp_path / "state"),
            "dataset_catalog": str(catalog),
            "dataset_cache_dir": str(tmp_path / "cache"),
            "job_backends": {"local": LOCAL},
            "job_backend_options": {"local": FAST},
        },
    }


def test_a_prewarm_job_through_the_api(jp_fetch, run, tmp_path, jp_root_dir) -> None:
    run(_prewarm_job(jp_fetch, tmp_path / "cache" / "data" / "weather", jp_root_dir))


async def _prewarm_job(jp_fetch, cache: Path, root: Path) -> None:
    spec = {
        "name": "reader",
        "command": [sys.executable, "-c", READ],
        "datasets": ["weather"],
        "prewarm": True,
        "releaseCache": True,
        "env": {"COPY": str(cache)},
    }
    code, made = await post(jp_fetch, body=spec)
    assert code == 201
    [job] = made["jobs"]
    assert job["spec"]["prewarm"] is True and job["spec"]["releaseCache"] is True
    done = await finished(jp_fetch, job["id"])
    assert done["state"] == "succeeded", done["reason"]
    _, logs = await call(jp_fetch, job["id"], "logs")
    assert logs["text"].startswith("sunny\n")  # it ran on the prewarmed copy
    deadline = time.monotonic() + 10
    while cache.exists() or "releaseCache" not in (root / done["logPath"]).read_text():
        assert time.monotonic() < deadline, "the cached copy was not released"
        await asyncio.sleep(0.05)
    response = await jp_fetch("codespace", "api", "datasets", "weather", "prewarm")
    assert json.loads(response.body) == {
        "operations": []
    }  # the released copy's history went with it

    bare = {"name": "x", "command": ["true"], "prewarm": True}
    message = await refused(jp_fetch, 400, method="POST", body=json.dumps(bare))
    assert message == "jobs[0]: prewarm needs datasets: name the datasets to prewarm"
    unknown = {**bare, "datasets": ["nope"]}
    message = await refused(jp_fetch, 400, method="POST", body=json.dumps(unknown))
    assert message == "datasets: no dataset named 'nope'"
