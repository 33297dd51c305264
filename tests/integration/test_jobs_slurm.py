"""The Slurm job backend against a real Slurm (Debian's 22.05) on 127.0.0.1.

One private Slurm for the session (:mod:`tests.helpers.slurm`): munged, slurmctld, slurmd,
and slurmrestd with JWT authentication. Jobs run as root (its token) unless a test makes
accounts; the notebook job finds the ``codespace`` kernelspec (this project's Python)
through a ``JUPYTER_PATH`` in the codespace's environment. Without Slurm the tests skip
locally and fail with ``CI=true``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codespace.jobs.backend import JobError, JobNotFound, JobSettings
from codespace.jobs.models import JobRecord, Submission
from codespace.jobs.slurm import SlurmBackend
from tests.helpers.slurm import Slurm, slurm_session

pytestmark = pytest.mark.integration

PYTHON = str(Path(sys.executable))
VENV = str(Path(sys.prefix))
Make = Callable[..., SlurmBackend]


@pytest.fixture(scope="session")
def slurm() -> Iterator[Slurm]:
    yield from slurm_session()


@pytest.fixture(scope="session")
def shared_dir() -> Iterator[Path]:
    """A 755 directory outside pytest's 700 basetemp: job accounts can reach what is in it."""
    path = Path(tempfile.mkdtemp(prefix="codespace-slurm-tests-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def jupyter_path(shared_dir: Path) -> str:
    """A ``codespace`` kernelspec running this project's Python (what papermill asks for)."""
    kernel = shared_dir / "jupyter" / "kernels" / "codespace"
    kernel.mkdir(parents=True)
    argv = [PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "codespace", "language": "python"}
    (kernel / "kernel.json").write_text(json.dumps(spec))
    return str(shared_dir / "jupyter")


def environment(jupyter_path: str, home: Path) -> dict[str, str]:
    """The codespace's environment as the launch plan gives it (PATH, VIRTUAL_ENV, ...)."""
    return {
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": VENV,
        "HOME": str(home),
        "JUPYTER_PATH": jupyter_path,
        "JUPYTER_RUNTIME_DIR": str(home / ".jupyter-runtime"),
        "LANG": "C.UTF-8",
    }


@pytest.fixture
async def make(slurm: Slurm, jupyter_path: str, tmp_path: Path) -> AsyncIterator[Make]:
    """Backends on the session's Slurm: ``make(owner=..., workspace=..., **options)``."""
    made: list[SlurmBackend] = []
    token = slurm.token("root")

    def build(
        owner: str = "alice",
        workspace: Path | None = None,
        state_dir: Path | None = None,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> SlurmBackend:
        workspace = workspace or tmp_path / "ws"
        workspace.mkdir(parents=True, exist_ok=True)
        if not options.get("mode"):
            options = {"url": slurm.rest_url, "token": token, "user_name": "root", **options}
        settings = JobSettings(
            workspace=workspace,
            state_dir=state_dir or tmp_path / "state",
            owner=owner,
            environment=env or environment(jupyter_path, tmp_path),
            options={"submit_timeout": 60, "poll_interval": 0.2, **options},
        )
        backend = SlurmBackend.from_settings(settings)
        made.append(backend)
        return backend

    yield build
    for backend in made:
        await backend.close()


def submission(*jobs: dict[str, Any], key: str | None = None) -> Submission:
    return Submission.model_validate({"jobs": list(jobs), "idempotencyKey": key})


async def settle(backend: SlurmBackend, ids: list[str], timeout: float = 90) -> list[JobRecord]:
    """The records once every job finished."""
    deadline = time.monotonic() + timeout
    while True:
        records = [await backend.get(job_id) for job_id in ids]
        if all(record.done for record in records):
            return records
        if time.monotonic() > deadline:
            states = [(r.name, r.state, r.reason) for r in records]
            raise AssertionError(f"jobs not finished after {timeout}s: {states}")
        await asyncio.sleep(0.25)


async def running(backend: SlurmBackend, job_id: str, timeout: float = 30) -> JobRecord:
    deadline = time.monotonic() + timeout
    while (record := await backend.get(job_id)).state != "running":
        assert not record.done and time.monotonic() < deadline, (record.state, record.reason)
        await asyncio.sleep(0.2)
    return record


def slurm_jobs(slurm: Slurm) -> list[dict[str, Any]]:
    return json.loads(slurm.run("squeue", "--json", "--states=all").stdout)["jobs"]


SCRIPT = """\
import os, sys
print("args", sys.argv[1:])
print("python", sys.executable)
print("cwd", os.getcwd())
print("id", os.environ["CODESPACE_JOB_ID"], "greeting", os.environ["GREETING"])
"""

NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "x = 1\nlabel = 'none'",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "import os\nprint('answer', x * 2, label, os.getcwd())",
            "outputs": [],
            "execution_count": None,
        },
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


async def test_a_script_runs_in_the_workspace_with_the_codespace_environment(
    make: Make, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "train.py").write_text(SCRIPT)
    backend = make()
    job = {"name": "train", "script": "src/train.py", "args": ["two words", "$HOME", ";ls"]}
    job["env"] = {"GREETING": 'it\'s "quoted"'}
    (record,) = await backend.submit(submission(job))
    assert record.backendId and record.backendId.isdigit()
    (record,) = await settle(backend, [record.id])
    assert (record.state, record.exitCode, record.reason) == ("succeeded", 0, "")
    assert record.started and record.finished and record.logPath
    log = await backend.logs(record.id)
    assert "args ['two words', '$HOME', ';ls']" in log
    assert f"python {VENV}/bin/python" in log
    assert f"cwd {workspace}" in log
    assert f'id {record.id} greeting it\'s "quoted"' in log
    assert (workspace / record.logPath).read_text() == log
    assert await backend.logs(record.id, tail=1) == log.splitlines(keepends=True)[-1]


async def test_a_notebook_runs_with_papermill_and_its_output_is_kept_by_the_logs(
    make: Make, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    (workspace / "notebooks").mkdir(parents=True)
    (workspace / "notebooks" / "report.ipynb").write_text(json.dumps(NOTEBOOK))
    backend = make(python=PYTHON)
    job = {"name": "report", "notebook": "notebooks/report.ipynb"}
    job["parameters"] = {"x": 21, "label": "it's"}
    (record,) = await backend.submit(submission(job))
    (record,) = await settle(backend, [record.id], timeout=120)
    log = await backend.logs(record.id)
    assert record.state == "succeeded", (record.reason, log)
    assert record.outputNotebook == f"codespace-jobs/{record.id}/report.ipynb"
    executed = json.loads((workspace / record.outputNotebook).read_text())
    text = json.dumps(executed["cells"])
    assert "injected-parameters" in text
    assert f"answer 42 it's {workspace / 'notebooks'}" in text


async def test_an_array_runs_after_its_dependency_and_before_its_dependent(
    make: Make, slurm: Slurm, tmp_path: Path
) -> None:
    backend = make()
    stamp = 'echo "$CODESPACE_JOB_NAME ${CODESPACE_JOB_INDEX:--} $CODESPACE_JOB_COUNT" >> order.txt'
    prep = {"name": "prep", "command": ["bash", "-c", f"sleep 1; {stamp}"]}
    train = {"name": "train", "command": ["bash", "-c", stamp], "array": 3, "after": ["prep"]}
    report = {"name": "report", "command": ["bash", "-c", stamp], "after": ["train"]}
    records = await backend.submit(submission(report, train, prep))
    assert [r.name for r in records] == ["prep", "train", "report"]  # topological order
    prep_id, train_id, report_id = (r.backendId for r in records)
    dependencies = {str(j["job_id"]): j["dependency"] for j in slurm_jobs(slurm)}
    assert dependencies[train_id].startswith(f"afterok:{prep_id}")
    assert dependencies[report_id].startswith(f"afterok:{train_id}")
    records = await settle(backend, [r.id for r in records])
    assert [r.state for r in records] == ["succeeded"] * 3, [r.reason for r in records]
    lines = (tmp_path / "ws" / "order.txt").read_text().splitlines()
    assert lines[0] == "prep - " and lines[-1] == "report - "
    assert sorted(lines[1:4]) == ["train 0 3", "train 1 3", "train 2 3"]
    train_record = records[1]
    assert train_record.logPath == f"codespace-jobs/{train_record.id}"
    log = await backend.logs(train_record.id)
    assert "==> task 0 <==\ntrain 0 3" not in log  # the output went to order.txt
    assert log.count("==> task") == 3


async def test_a_failed_dependency_cancels_its_dependents(make: Make) -> None:
    backend = make()
    first = {"name": "first", "command": ["false"]}
    second = {"name": "second", "command": ["true"], "after": ["first"]}
    records = await settle(backend, [r.id for r in await backend.submit(submission(first, second))])
    assert [(r.state, r.exitCode) for r in records] == [("failed", 1), ("cancelled", None)]
    assert records[0].reason == "exit code 1"
    assert records[1].reason == "a job it runs after did not succeed"


async def test_retries_run_again_in_the_same_allocation(make: Make, tmp_path: Path) -> None:
    backend = make()
    flaky = 'n=$(cat tries 2>/dev/null || echo 0); echo $((n+1)) > tries; [ "$n" -ge 2 ]'
    job = {"name": "flaky", "command": ["bash", "-c", flaky], "retries": 3, "backoff": 0.1}
    (record,) = await settle(backend, [(await backend.submit(submission(job)))[0].id])
    assert record.state == "succeeded", record.reason
    assert (tmp_path / "ws" / "tries").read_text().strip() == "3"
    assert "attempt 2 of 4 failed (exit code 1)" in await backend.logs(record.id)


async def test_a_missing_command_fails_with_that_reason(make: Make) -> None:
    backend = make()
    jobs = [
        {"name": "nothing", "command": ["no-such-command-x", "--flag"]},
        {"name": "missing-script", "script": "missing.py"},
    ]
    records = await settle(backend, [r.id for r in await backend.submit(submission(*jobs))])
    assert [(r.state, r.exitCode) for r in records] == [("failed", 127)] * 2
    assert records[0].reason == "command 'no-such-command-x' not found on the job's PATH"
    assert records[1].reason == "script 'missing.py' not found in the workspace"
    assert "not found" in await backend.logs(records[0].id)


async def test_the_time_limit_ends_a_job(make: Make) -> None:
    backend = make()
    job = {"name": "slow", "command": ["sleep", "60"], "resources": {"timeLimit": "2s"}}
    started = time.monotonic()
    (record,) = await settle(backend, [(await backend.submit(submission(job)))[0].id])
    assert (record.state, record.reason, record.exitCode) == (
        "failed",
        "time limit 2s reached",
        124,
    )
    assert time.monotonic() - started < 20


async def test_cancel_stops_a_running_job(make: Make, slurm: Slurm) -> None:
    backend = make()
    (record,) = await backend.submit(submission({"name": "long", "command": ["sleep", "300"]}))
    await running(backend, record.id)
    cancelled = await backend.cancel(record.id)
    assert (cancelled.state, cancelled.reason) == ("cancelled", "cancelled")
    assert (await backend.get(record.id)).state == "cancelled"
    assert await backend.cancel(record.id) == await backend.get(record.id)
    deadline = time.monotonic() + 20
    while True:
        state = {str(j["job_id"]): j["job_state"] for j in slurm_jobs(slurm)}[record.backendId]
        if state == "CANCELLED" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert state == "CANCELLED"


async def test_an_idempotency_key_returns_the_same_jobs(
    make: Make, slurm: Slurm, tmp_path: Path
) -> None:
    first = make()
    key = "retry-after-timeout-1"
    made = await first.submit(submission({"name": "once", "command": ["true"]}, key=key))
    again = await first.submit(submission({"name": "once", "command": ["true"]}, key=key))
    assert [r.id for r in again] == [r.id for r in made]
    restarted = make()  # a restarted server: same state_dir
    later = await restarted.submit(submission({"name": "once", "command": ["true"]}, key=key))
    assert [r.id for r in later] == [r.id for r in made]
    other_owner = make(owner="bob")  # keys are per owner
    theirs = await other_owner.submit(submission({"name": "once", "command": ["true"]}, key=key))
    assert theirs[0].id != made[0].id
    comments = [j["comment"] for j in slurm_jobs(slurm)]
    assert comments.count(f"codespace:{made[0].id}") == 1


async def test_a_gpu_the_cluster_lacks_is_refused_and_nothing_is_kept(make: Make) -> None:
    backend = make()
    job = {"name": "gpu", "command": ["nvidia-smi"], "resources": {"gpu": 1}}
    with pytest.raises(JobError, match="Requested node configuration is not available"):
        await backend.submit(submission(job, key="gpu-refused-1"))
    assert await backend.list() == []


async def test_the_cli_path_submits_with_sbatch(make: Make, slurm: Slurm) -> None:
    backend = make(mode="cli", slurm_conf=str(slurm.conf))
    job = {"name": "via-cli", "command": ["bash", "-c", "echo via $CODESPACE_JOB_NAME; exit 3"]}
    (record,) = await backend.submit(submission(job))
    assert record.backendId and record.backendId.isdigit()
    (record,) = await settle(backend, [record.id])
    assert (record.state, record.exitCode, record.reason) == ("failed", 3, "exit code 3")
    assert await backend.logs(record.id) == "via via-cli\n"
    (long,) = await backend.submit(submission({"name": "long", "command": ["sleep", "300"]}))
    await running(backend, long.id)
    assert (await backend.cancel(long.id)).state == "cancelled"


async def test_each_user_sees_and_cancels_only_their_own_jobs(
    make: Make, slurm: Slurm, shared_dir: Path, jupyter_path: str, tmp_path: Path
) -> None:
    from tests.helpers.confinement import making_accounts

    with making_accounts(shared_dir / "home") as accounts:
        users = [accounts.make(), accounts.make()]
        backends = []
        for account in users:
            workspace = account.home / "ws"
            workspace.mkdir()
            os.chown(workspace, account.uid, account.gid)
            env = environment(jupyter_path, account.home)
            token = slurm.token(account.name)
            backends.append(
                make(
                    owner=account.name,
                    workspace=workspace,
                    state_dir=tmp_path / "shared-state",
                    env=env,
                    url=slurm.rest_url,
                    token=token,
                    user_name=account.name,
                )
            )
        alice, bob = backends
        (mine,) = await alice.submit(submission({"name": "who", "command": ["sleep", "300"]}))
        (short,) = await alice.submit(submission({"name": "whoami", "command": ["id", "-un"]}))
        (short,) = await settle(alice, [short.id])
        assert await alice.logs(short.id) == f"{users[0].name}\n"
        for call in (bob.get, bob.cancel, bob.logs):
            with pytest.raises(JobNotFound):
                await call(mine.id)
        assert [r.id for r in await bob.list()] == []
        assert {r.id for r in await alice.list()} == {mine.id, short.id}
        # Slurm itself refuses bob's token on alice's job
        headers = {
            "X-SLURM-USER-NAME": users[1].name,
            "X-SLURM-USER-TOKEN": slurm.token(users[1].name),
        }
        url = f"{slurm.rest_url}/slurm/v0.0.38/job/{mine.backendId}"
        answer = httpx.delete(url, headers=headers, timeout=30)
        assert answer.status_code != 200 or answer.json()["errors"], answer.text
        assert (await alice.get(mine.id)).state in ("queued", "running")
        assert (await alice.cancel(mine.id)).state == "cancelled"


async def test_a_submission_slurm_cannot_take_waits_and_is_made_later(
    make: Make, slurm: Slurm
) -> None:
    backend = make(submit_timeout=0.5)
    slurm.kill_controller(signal.SIGTERM)
    try:
        (record,) = await backend.submit(submission({"name": "later", "command": ["true"]}))
    finally:
        slurm.start_controller()
    assert (record.state, record.backendId) == ("queued", None)
    assert record.reason.startswith("waiting for Slurm to accept the job")
    (record,) = await settle(backend, [record.id])
    assert record.state == "succeeded" and record.backendId
    comments = [j["comment"] for j in slurm_jobs(slurm)]
    assert comments.count(f"codespace:{record.id}") == 1


async def test_earlier_jobs_can_be_waited_for(make: Make) -> None:
    backend = make()
    (first,) = await backend.submit(submission({"name": "first", "command": ["sleep", "1"]}))
    then = {"name": "then", "command": ["true"], "afterJobs": [first.id]}
    (second,) = await backend.submit(submission(then))
    records = await settle(backend, [first.id, second.id])
    assert [r.state for r in records] == ["succeeded", "succeeded"]
    assert records[1].started >= records[0].finished
    with pytest.raises(JobError, match="afterJobs names no job"):
        await backend.submit(submission({**then, "afterJobs": ["slurm-nope"]}))


async def test_killing_slurmctld_mid_burst_loses_nothing_and_runs_nothing_twice(
    make: Make, slurm: Slurm, tmp_path: Path
) -> None:
    backend = make(submit_timeout=90)
    workspace = tmp_path / "ws"
    count, kill_after = 40, 8
    submitted = threading.Event()

    def outage() -> None:
        submitted.wait(60)
        slurm.kill_controller(signal.SIGKILL)  # no state saved on the way out
        time.sleep(2)
        slurm.start_controller()

    killer = threading.Thread(target=outage)
    killer.start()
    run = 'echo "$CODESPACE_JOB_ID" >> ran.txt'

    async def stream(offset: int) -> list[JobRecord]:
        records = []
        for n in range(offset, count, 2):
            job = {"name": f"burst-{n}", "command": ["bash", "-c", run]}
            records += await backend.submit(submission(job, key=f"burst-key-{n}"))
            if len(records) * 2 >= kill_after and not submitted.is_set():
                await backend.list()  # seen queued in Slurm's list, then lost: resubmitted too
                submitted.set()
            await asyncio.sleep(0.02)
        return records

    try:
        made = [r for part in await asyncio.gather(stream(0), stream(1)) for r in part]
    finally:
        submitted.set()
        await asyncio.to_thread(killer.join, 60)
    assert len({r.id for r in made}) == count
    records = await settle(backend, [r.id for r in made], timeout=120)
    assert [r.state for r in records] == ["succeeded"] * count, [
        (r.name, r.state, r.reason) for r in records if r.state != "succeeded"
    ]
    ran = collections.Counter((workspace / "ran.txt").read_text().split())
    assert ran == {r.id: 1 for r in records}  # every job ran, once
    comments = collections.Counter(j["comment"] for j in slurm_jobs(slurm))
    assert all(comments[f"codespace:{r.id}"] <= 1 for r in records)
    again = await backend.submit(
        submission({"name": "burst-0", "command": ["true"]}, key="burst-key-0")
    )
    assert again[0].id == next(r.id for r in records if r.name == "burst-0")
    resubmitted = sum(entry.resubmits for entry in backend.store.list(backend.owner))
    print(f"slurmctld restart: {count} jobs, {resubmitted} resubmitted after Slurm lost them")
