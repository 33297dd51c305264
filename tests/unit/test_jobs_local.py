"""The local job backend with real processes: scripts, papermill notebooks, arrays, a DAG,
retries, time limits, cancel, restarts, idempotency and owners."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codespace.jobs import processes
from codespace.jobs.backend import JobError, JobNotFound, JobSettings
from codespace.jobs.local import LOST, LocalJobBackend
from codespace.jobs.models import JobRecord, JobSpec, Submission
from codespace.jobs.runner import (
    LocalJob,
    ProgramError,
    Task,
    dependency_verdict,
    exit_reason,
    program,
    summarize,
)
from codespace.local.envbuild.kernel import env_vars, write_kernelspec

VENV = Path(sys.prefix)
FAST = {"poll_interval": 0.05, "kill_grace": 0.5}


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    """The launch plan's variables: the repository env first on PATH, its kernelspec found
    through JUPYTER_PATH (here the platform venv plays the repository environment)."""
    path = f"{VENV / 'bin'}:{os.environ['PATH']}"
    data = tmp_path / "jupyter"
    variables = {**env_vars(VENV, path), "KERNEL_MARK": "codespace kernel"}
    write_kernelspec(VENV, data, "Python (codespace)", base_path=path, variables=variables)
    return {**os.environ, "VIRTUAL_ENV": str(VENV), "PATH": path, "JUPYTER_PATH": str(data)}


@pytest.fixture
def make(workspace: Path, environment: dict[str, str], tmp_path: Path):
    built: list[LocalJobBackend] = []

    def make(owner: str = "alice", **options) -> LocalJobBackend:
        settings = JobSettings(
            workspace=workspace,
            state_dir=tmp_path / "state",
            owner=owner,
            environment=environment,
            options={**FAST, **options},
        )
        backend = LocalJobBackend.from_settings(settings)
        built.append(backend)
        return backend

    yield make
    for backend in built:
        for job in (backend._active or {}).values():  # leave no process behind
            for task in job.tasks:
                if task.pid is not None:
                    processes.kill_group(task.pid, signal.SIGKILL)


def submission(*jobs: dict, key: str | None = None) -> Submission:
    return Submission.model_validate({"jobs": list(jobs), "idempotencyKey": key})


async def finished(backend: LocalJobBackend, records: list[JobRecord], timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        fresh = [await backend.get(record.id) for record in records]
        if all(record.done for record in fresh):
            return fresh
        assert time.monotonic() < deadline, [(r.name, r.state, r.reason) for r in fresh]
        await asyncio.sleep(0.05)


async def until(backend: LocalJobBackend, job_id: str, state: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while (record := await backend.get(job_id)).state != state:
        assert time.monotonic() < deadline, (record.state, record.reason)
        await asyncio.sleep(0.05)
    return record


async def test_a_script_and_a_command_run_in_the_workspace_with_the_env(make, workspace) -> None:
    (workspace / "train.py").write_text(
        "import os, sys\n"
        "print('python', sys.prefix)\n"
        "print('job', os.environ['CODESPACE_JOB_ID'], os.environ['GREETING'], sys.argv[1:])\n"
        "print('index' in os.environ.get('CODESPACE_JOB_INDEX', 'index'))\n"
        "open('made-by-job.txt', 'w').write('ok')\n"
    )
    backend = make()
    made = await backend.submit(
        submission(
            {
                "name": "train",
                "script": "train.py",
                "args": ["--epochs", "3"],
                "env": {"GREETING": "hi"},
            },
            {"name": "where", "command": ["pwd"]},
        )
    )
    train, where = await finished(backend, made)
    assert (train.state, train.exitCode, where.state) == ("succeeded", 0, "succeeded")
    log = await backend.logs(train.id)
    assert f"python {VENV}" in log  # the environment's python ($VIRTUAL_ENV/bin/python)
    assert f"job {train.id} hi ['--epochs', '3']" in log
    assert (await backend.logs(where.id)).strip() == str(workspace)
    assert (workspace / "made-by-job.txt").read_text() == "ok"
    assert train.logPath == f"codespace-jobs/{train.id}/output.log"
    assert (workspace / train.logPath).is_file()
    assert train.started and train.finished and train.started <= train.finished
    exclude = (workspace / ".git" / "info" / "exclude").read_text()
    assert "/codespace-jobs/" in exclude.splitlines()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=workspace, capture_output=True, text=True
    )
    assert "codespace-jobs" not in status.stdout
    assert await backend.logs(train.id, tail=1) == "True\n"
    listed = await backend.list()
    assert {r.id for r in listed} == {train.id, where.id}
    await backend.close()


NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "alpha = 1\nlabel = 'default'",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "import os, sys\n"
            "print('result', alpha * 2, label, sys.prefix, os.environ['KERNEL_MARK'])",
            "outputs": [],
            "execution_count": None,
        },
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


async def test_a_notebook_runs_with_papermill_and_its_output_is_kept(make, workspace) -> None:
    (workspace / "reports").mkdir()
    (workspace / "reports" / "weekly.ipynb").write_text(json.dumps(NOTEBOOK))
    backend = make()
    [job] = await backend.submit(
        submission(
            {
                "name": "weekly",
                "notebook": "reports/weekly.ipynb",
                "parameters": {"alpha": 21, "label": "from job"},
            }
        )
    )
    assert job.outputNotebook == f"codespace-jobs/{job.id}/weekly.ipynb"
    [done] = await finished(backend, [job], timeout=120)
    assert done.state == "succeeded", (done.reason, await backend.logs(job.id))
    executed = json.loads((workspace / done.outputNotebook).read_text())
    injected = [
        c for c in executed["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
    ]
    assert injected and "alpha = 21" in "".join(injected[0]["source"])
    outputs = "".join(
        "".join(out.get("text", ""))
        for cell in executed["cells"]
        for out in cell.get("outputs", [])
    )
    assert f"result 42 from job {VENV} codespace kernel" in outputs  # the `codespace` kernel
    assert "result 42" in await backend.logs(job.id)  # --log-output
    await backend.close()


async def test_an_array_runs_n_processes_with_their_index(make, workspace) -> None:
    backend = make()
    command = [sys.executable, "-c", "import os; print('task', os.environ['CODESPACE_JOB_INDEX'])"]
    [job] = await backend.submit(submission({"name": "sweep", "command": command, "array": 3}))
    [done] = await finished(backend, [job])
    assert done.state == "succeeded" and done.logPath == f"codespace-jobs/{job.id}"
    logs = await backend.logs(job.id)
    for index in range(3):
        assert f"==> task {index} <==\ntask {index}\n" in logs
        assert (workspace / done.logPath / f"output-{index}.log").read_text() == f"task {index}\n"
    assert len(done.backendId.split(",")) == 3
    await backend.close()


async def test_after_runs_a_dag_and_a_failed_dependency_cancels_its_dependents(make) -> None:
    backend = make()
    made = await backend.submit(
        submission(
            {"name": "train", "command": ["echo", "trained"], "after": ["prep"]},
            {"name": "prep", "command": ["sleep", "0.3"]},
            {"name": "broken", "command": ["false"]},
            {"name": "report", "command": ["echo", "never"], "after": ["broken"]},
            {"name": "publish", "command": ["echo", "never"], "after": ["report", "train"]},
        )
    )
    by_name = {r.name: r for r in await finished(backend, made)}
    assert by_name["prep"].state == by_name["train"].state == "succeeded"
    assert by_name["train"].started >= by_name["prep"].finished
    assert by_name["broken"].state == "failed" and by_name["broken"].exitCode == 1
    report, publish = by_name["report"], by_name["publish"]
    assert report.state == "cancelled" and report.started is None
    assert report.reason == f"dependency 'broken' ({by_name['broken'].id}) failed"
    assert publish.state == "cancelled" and "dependency 'report'" in publish.reason
    assert await backend.logs(report.id) == ""
    await backend.close()


async def test_a_later_submission_waits_for_earlier_jobs(make) -> None:
    backend = make()
    [first] = await backend.submit(submission({"name": "first", "command": ["sleep", "0.3"]}))
    [second] = await backend.submit(
        submission({"name": "second", "command": ["true"], "afterJobs": [first.id]})
    )
    first, second = await finished(backend, [first, second])
    assert second.state == "succeeded" and second.started >= first.finished
    with pytest.raises(JobError, match="afterJobs names no job 'local-nope'"):
        await backend.submit(
            submission({"name": "third", "command": ["true"], "afterJobs": ["local-nope"]})
        )
    await backend.close()


async def test_failures_are_retried_with_a_doubling_backoff(make, workspace) -> None:
    (workspace / "flaky.py").write_text(
        "import pathlib, sys\n"
        "count = pathlib.Path('attempts')\n"
        "n = int(count.read_text()) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        "print('attempt', n)\n"
        "sys.exit(0 if n == 3 else 2)\n"
    )
    backend = make()
    started = time.monotonic()
    [job] = await backend.submit(
        submission({"name": "flaky", "script": "flaky.py", "retries": 3, "backoff": 0.2})
    )
    await until(backend, job.id, "running")
    [done] = await finished(backend, [job])
    assert done.state == "succeeded" and (workspace / "attempts").read_text() == "3"
    assert time.monotonic() - started >= 0.2 + 0.4  # 0.2 s, then 0.4 s
    log = await backend.logs(job.id)
    assert "attempt 1\n--- codespace: attempt 2 of 4\nattempt 2\n" in log

    [fails] = await backend.submit(
        submission({"name": "fails", "command": ["false"], "retries": 1, "backoff": 0.05})
    )
    [fails] = await finished(backend, [fails])
    assert fails.state == "failed" and fails.reason == "exit code 1 (attempt 2 of 2)"
    await backend.close()


async def test_the_time_limit_kills_the_process_group(make) -> None:
    backend = make()
    started = time.monotonic()
    [job] = await backend.submit(
        submission({"name": "slow", "command": ["sleep", "30"], "resources": {"timeLimit": "1s"}})
    )
    [done] = await finished(backend, [job])
    assert done.state == "failed" and done.reason == "time limit 1s reached"
    assert done.exitCode == 128 + signal.SIGTERM
    assert time.monotonic() - started < 10
    await backend.close()


async def test_cancel_kills_the_whole_process_group(make, workspace) -> None:
    (workspace / "spawner.py").write_text(
        "import subprocess, time\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "open('child.pid', 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    backend = make()
    [job] = await backend.submit(submission({"name": "long", "script": "spawner.py"}))
    [queued] = await backend.submit(
        submission({"name": "later", "command": ["true"], "afterJobs": [job.id]})
    )
    await until(backend, job.id, "running")
    deadline = time.monotonic() + 20
    while not (workspace / "child.pid").exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    child = int((workspace / "child.pid").read_text())
    cancelled = await backend.cancel(job.id)
    assert cancelled.state == "cancelled" and cancelled.reason == "cancelled"
    assert cancelled.finished is not None
    deadline = time.monotonic() + 10
    while processes.start_ticks(child) is not None:  # the grandchild went with the group
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    [later] = await finished(backend, [queued])
    assert later.state == "cancelled" and "dependency 'long'" in later.reason
    assert (await backend.cancel(job.id)).state == "cancelled"  # again: as it is
    await backend.close()


async def test_a_command_that_does_not_exist_fails_with_that_reason(make, workspace) -> None:
    (workspace / "notes.txt").write_text("not a program")
    backend = make()
    made = await backend.submit(
        submission(
            {"name": "typo", "command": ["pyhton", "train.py"], "retries": 3},
            {"name": "missing", "script": "nope.py"},
            {"name": "plain", "script": "notes.txt"},
        )
    )
    typo, missing, plain = await finished(backend, made)
    assert typo.state == "failed" and typo.reason == "command 'pyhton' not found on the job's PATH"
    assert missing.reason == "script 'nope.py' not found in the workspace"
    assert "not executable" in plain.reason
    await backend.close()


async def test_an_idempotency_key_makes_the_jobs_once(make) -> None:
    backend = make()
    first = await backend.submit(submission({"name": "once", "command": ["true"]}, key="k" * 16))
    again = await backend.submit(submission({"name": "once", "command": ["true"]}, key="k" * 16))
    assert [r.id for r in again] == [r.id for r in first]
    assert len(await backend.list()) == 1
    other = make(owner="bob")  # keys are per owner
    assert [
        r.id
        for r in await other.submit(submission({"name": "once", "command": ["true"]}, key="k" * 16))
    ] != [first[0].id]
    await backend.close()


async def test_a_restart_reattaches_running_jobs_and_marks_lost_ones_failed(make, tmp_path) -> None:
    before = make()
    made = await before.submit(
        submission(
            {
                "name": "survivor",
                "command": [sys.executable, "-c", "import time, sys; time.sleep(1.5); sys.exit(7)"],
            },
            {"name": "lost", "command": ["sleep", "30"]},
            {"name": "queued", "command": ["echo", "ran after the restart"], "after": ["survivor"]},
        )
    )
    survivor, lost, queued = made
    await until(before, survivor.id, "running")
    lost = await until(before, lost.id, "running")
    await before.close()  # the server stops; its jobs' processes do not
    processes.kill_group(int(lost.backendId), signal.SIGKILL)  # gone while the server was away

    after = make()  # the restarted server: same state directory
    assert (await after.get(survivor.id)).state == "running"
    survivor, lost, queued = await finished(after, [survivor, lost, queued])
    assert survivor.state == "failed" and survivor.exitCode == 7  # from the exit file
    assert survivor.reason == "exit code 7"
    assert lost.state == "failed" and lost.reason == LOST
    assert queued.state == "cancelled"  # its dependency failed
    await after.close()


async def test_another_owners_jobs_are_not_found(make) -> None:
    alice = make()
    [job] = await alice.submit(submission({"name": "mine", "command": ["true"]}))
    bob = make(owner="bob")
    for call in (bob.get, bob.logs, bob.cancel):
        with pytest.raises(JobNotFound):
            await call(job.id)
    assert await bob.list() == []
    await finished(alice, [job])
    await alice.close()


async def test_the_concurrency_limit_queues_what_does_not_fit(make) -> None:
    backend = make(concurrency=1)
    made = await backend.submit(
        submission(
            {"name": "one", "command": ["sleep", "0.4"]},
            {"name": "two", "command": ["sleep", "0.1"]},
        )
    )
    await until(backend, made[0].id, "running")
    waiting = await backend.get(made[1].id)
    assert waiting.state == "queued" and waiting.reason == "waiting for a free slot (1 running)"
    one, two = await finished(backend, made)
    assert two.started >= one.finished
    await backend.close()


def test_options_are_checked(tmp_path: Path) -> None:
    settings = JobSettings(
        workspace=tmp_path, state_dir=tmp_path / "s", owner="a", options={"concurency": 2}
    )
    with pytest.raises(JobError, match="unknown option 'concurency'"):
        LocalJobBackend.from_settings(settings)
    bad = JobSettings(
        workspace=tmp_path, state_dir=tmp_path / "s", owner="a", options={"concurrency": 0}
    )
    with pytest.raises(JobError, match="must be positive"):
        LocalJobBackend.from_settings(bad)


# --- the pure part ----------------------------------------------------------------------------


def test_program_resolves_what_runs(tmp_path: Path) -> None:
    spec = JobSpec(name="x", command=["echo", "hi"])
    which = {"echo": "/bin/echo"}.get
    argv = program(
        spec,
        workspace=tmp_path,
        env={"PATH": "/bin"},
        platform_python="/p",
        job_id="j",
        which=lambda name, path: which(name),
    )
    assert argv == ["/bin/echo", "hi"]
    with pytest.raises(ProgramError, match="'nope' not found"):
        program(
            JobSpec(name="x", command=["nope"]),
            workspace=tmp_path,
            env={},
            platform_python="/p",
            job_id="j",
            which=lambda name, path: None,
        )
    notebook = JobSpec(name="nb", notebook="a/b.ipynb", parameters={"n": [1, 2]})
    argv = program(
        notebook,
        workspace=tmp_path,
        env={},
        platform_python="/p",
        job_id="j",
        exists=lambda path: True,
    )
    assert argv[:4] == ["/p", "-I", "-m", "papermill"]
    assert argv[4:6] == [str(tmp_path / "a/b.ipynb"), str(tmp_path / "codespace-jobs/j/b.ipynb")]
    assert argv[argv.index("-k") + 1] == "codespace" and argv[-2:] == ["-y", '{"n": [1, 2]}']


def test_dependencies_and_states_are_plain_functions() -> None:
    spec = JobSpec(name="x", command=["true"], array=2)
    record = JobRecord(
        id="j",
        name="x",
        owner="a",
        backend="local",
        submission="s",
        submitted="2024-01-01T00:00:00Z",
        spec=spec,
    )
    job = LocalJob(record=record, tasks=[Task(0), Task(1)], after=["a", "b"])
    assert dependency_verdict(job, {"a": ("a", "succeeded"), "b": ("b", "running")}) == (
        "wait",
        "waiting for 'b'",
    )
    assert dependency_verdict(job, {"a": ("a", "succeeded"), "b": None})[0] == "cancel"
    assert dependency_verdict(job, {"a": ("a", "succeeded"), "b": ("b", "succeeded")})[0] == "run"
    job.tasks = [
        Task(0, state="succeeded", exit_code=0, first_started=1, finished=2),
        Task(1, state="failed", exit_code=3, reason="exit code 3", first_started=1, finished=3),
    ]
    summary = summarize(job)
    assert summary["state"] == "failed" and summary["exitCode"] == 3
    assert summary["reason"] == "task 1: exit code 3 (1 of 2 tasks failed)"
    assert (
        exit_reason(137) == "killed by SIGKILL (exit code 137)" and exit_reason(2) == "exit code 2"
    )
