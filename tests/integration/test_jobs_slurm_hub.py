"""A local hub given a Slurm: a codespace submits a job to Slurm and it runs as its account.

The hub mints a JWT for the codespace's account (``scontrol token``) and hands the server the
Slurm job backend with it; the job goes through the codespace's own REST API to slurmrestd and
runs on the cluster as that account, not as the hub (root).
"""

from __future__ import annotations

import pwd
import time
from collections.abc import Iterator

import pytest

from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import fixture_repo
from tests.helpers.slurm import Slurm, slurm_session

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slurm() -> Iterator[Slurm]:
    yield from slurm_session()


@pytest.fixture(scope="module")
def hub(slurm: Slurm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    config = "\n".join(
        [
            uv_cache_config(tmp_path_factory),
            f"c.LocalCodespaceSpawner.slurm_url = {slurm.rest_url!r}",
            f"c.LocalCodespaceSpawner.slurm_conf = {str(slurm.conf)!r}",
        ]
    )
    with running_hub(tmp_path_factory.mktemp("slurm-hub") / "hub", extra_config=config) as hub:
        yield hub


def test_a_codespace_job_runs_on_slurm_as_the_codespaces_account(hub, tmp_path) -> None:
    repo = fixture_repo(tmp_path)
    events = hub.spawn("sally", "hpc", {"repo": str(repo)})
    text = "\n".join(str(e.get("message", "")) for e in events)
    assert events[-1].get("ready"), text
    assert "jobs: Slurm at" in text
    listed = hub.server_request("sally", "hpc", "codespace/api/jobs").json()
    assert {b["name"] for b in listed["backends"]} == {"local", "slurm"}
    job = {"name": "whoami", "command": ["id", "-un"], "backend": "slurm"}
    made = hub.server_request("sally", "hpc", "codespace/api/jobs", "POST", json=job)
    assert made.status_code == 201, made.text
    record = made.json()["jobs"][0]
    deadline = time.monotonic() + 120
    while record["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(1)
        record = hub.server_request("sally", "hpc", f"codespace/api/jobs/{record['id']}").json()
    assert record["state"] == "succeeded", record
    assert record["backendId"]  # a Slurm job id
    logs = hub.server_request("sally", "hpc", f"codespace/api/jobs/{record['id']}/logs").json()
    account = logs["text"].strip().splitlines()[-1]
    assert account.startswith("cs-") and pwd.getpwnam(account).pw_uid != 0, logs["text"]
    hub.stop("sally", "hpc")
