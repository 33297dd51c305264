"""Metrics through a real hub: ``/hub/metrics`` (JupyterHub's and the spawner's), the deploy
service's ``/services/codespace-deploy/metrics``, a codespace's own
``/user/<name>/<server>/codespace/api/metrics`` and the hub's list of them for Prometheus, all
read with one token that has only the ``read:metrics`` scope (``CODESPACE_HUB_METRICS_TOKEN``:
the local configuration's ``codespace-metrics`` service)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import fixture_repo

pytestmark = pytest.mark.integration

TOKEN = secrets.token_hex(24)
USER, SERVER = "mia", "metrics"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    root = tmp_path_factory.mktemp("metrics-hub")
    env = {**os.environ, "CODESPACE_HUB_METRICS_TOKEN": TOKEN}
    config = uv_cache_config(tmp_path_factory)
    with running_hub(root / "hub", extra_config=config, env=env) as running:
        yield running


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_repo(tmp_path_factory.mktemp("repo"))


def scrape(url: str, token: str | None = TOKEN) -> dict[tuple[str, frozenset], float]:
    headers = {"Authorization": f"token {token}"} if token else {}
    reply = requests.get(url, headers=headers, timeout=60)
    reply.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def user_token(hub: RunningHub) -> str:
    """A token of the codespaces' owner: everything of theirs, no read:metrics."""
    hub.ensure_user(USER)
    made = hub.api("POST", f"/users/{USER}/tokens", json={"note": "no metrics"})
    assert made.status_code == 201, made.text
    return made.json()["token"]


def value(samples: dict, name: str, /, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_hubs_metrics_need_the_scope_and_move_with_spawns(hub: RunningHub, repo) -> None:
    url = hub.url + "hub/metrics"
    assert requests.get(url, timeout=60).status_code == 403
    headers = {"Authorization": f"token {user_token(hub)}"}  # a user's: no read:metrics
    assert requests.get(url, headers=headers, timeout=60).status_code == 403
    before = scrape(url)
    events = hub.spawn(USER, SERVER, {"repo": str(repo)})
    assert events[-1].get("ready"), events
    hub.stop(USER, SERVER)
    events = hub.spawn(USER, SERVER, {"repo": str(repo)})  # the same environment: a hit
    assert events[-1].get("ready"), events
    after = scrape(url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("codespace_spawns_total", mode="local", result="success") == 2
    count = "codespace_spawn_phase_duration_seconds_count"
    for phase in ("fetch", "resolve", "environment", "server"):
        assert moved(count, mode="local", phase=phase) == 2, phase
    lookups = "codespace_environment_cache_lookups_total"
    assert moved(lookups, mode="local", result="hit") >= 1
    assert value(after, "jupyterhub_running_servers") >= 1


def test_a_codespace_serves_its_metrics_and_the_hub_lists_it(hub: RunningHub, repo) -> None:
    events = hub.spawn(USER, "jobs", {"repo": str(repo)})
    assert events[-1].get("ready"), events
    job = {"name": "metered", "command": ["true"]}
    made = hub.server_request(USER, "jobs", "codespace/api/jobs", "POST", json=job)
    assert made.status_code == 201, made.text
    targets = requests.get(
        hub.url + "hub/api/codespace/metrics/targets",
        headers={"Authorization": f"token {TOKEN}"},
        timeout=60,
    ).json()
    [group] = [g for g in targets if g["labels"]["server"] == "jobs"]
    path = group["labels"]["__metrics_path__"]
    assert path == f"/user/{USER}/jobs/codespace/api/metrics"
    url = f"http://{group['targets'][0]}{path}"
    deadline = time.monotonic() + 60
    while True:  # the job ends on its own: succeeded once the server sees it
        samples = scrape(url)  # the metrics token: neither the owner nor an admin
        if value(samples, "codespace_jobs", backend="local", state="succeeded") >= 1:
            break
        assert time.monotonic() < deadline, samples
        time.sleep(0.5)
    assert value(samples, "codespace_job_submissions_total", backend="local") >= 1
    assert requests.get(url, timeout=60).status_code == 403


def test_the_deploy_service_serves_its_metrics(hub: RunningHub) -> None:
    url = hub.url + "services/codespace-deploy/metrics"
    samples = scrape(url)
    states = {value(samples, "codespace_deployments", state=s) for s in ("ready", "idle")}
    assert states == {0.0}  # no deployment in this hub; every state is reported
    headers = {"Authorization": f"token {user_token(hub)}"}
    assert requests.get(url, headers=headers, timeout=60).status_code == 403
