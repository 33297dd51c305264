"""The REST API under /codespace/api/jobs, served by a real jupyter_server (pytest-jupyter),
running real local jobs; and the pure parts of the job service."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from codespace.jobs.backend import JobError, JobSettings
from codespace.jobs.local import LocalJobBackend
from codespace.jobs.models import JobRecord, Submission
from codespace.jobs.service import parse_submission, with_defaults

pytest_plugins = ["pytest_jupyter.jupyter_server"]

LOCAL = "codespace.jobs.local.LocalJobBackend"
FAST = {"poll_interval": 0.05, "kill_grace": 0.5}


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "state_dir": str(tmp_path / "state"),
            "job_backends": {"local": LOCAL, "second": LOCAL},
            "job_backend_options": {"local": FAST, "second": FAST},
        },
    }


async def call(jp_fetch, *parts, **kwargs):
    response = await jp_fetch("codespace", "api", "jobs", *parts, **kwargs)
    return response.code, json.loads(response.body)


async def refused(jp_fetch, code: int, *parts, **kwargs) -> str:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("codespace", "api", "jobs", *parts, **kwargs)
    assert info.value.code == code, info.value.response.body
    return json.loads(info.value.response.body)["message"]


async def post(jp_fetch, *parts, body: object):
    return await call(jp_fetch, *parts, method="POST", body=json.dumps(body))


async def finished(jp_fetch, job_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, job = await call(jp_fetch, job_id)
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


PY = sys.executable
NOT_AT_START = (
    "papermill",
    "hera",
    "httpx",
    "codespace.resolve",
    "codespace.jobs.local",
    "codespace.jobs.slurm",
    "codespace.jobs.argo",
)


def test_submit_list_get_logs(jp_fetch, run, extension, jp_root_dir) -> None:
    assert extension.jobs._built == {}  # no backend built before the first request
    run(_submit_list_get_logs(jp_fetch, jp_root_dir))
    assert set(extension.jobs._built) == {"local", "second"}


async def _submit_list_get_logs(jp_fetch, root: Path) -> None:
    code, body = await call(jp_fetch)
    assert code == 200 and body == {
        "backends": [{"name": "local", "default": True}, {"name": "second", "default": False}],
        "jobs": [],
    }
    command = [PY, "-c", "print('one'); print('two'); print('three')"]
    code, made = await post(jp_fetch, body={"name": "count", "command": command})  # shorthand
    assert code == 201
    [job] = made["jobs"]
    assert set(job) == set(JobRecord.model_fields)  # the record's camelCase names
    assert job["backend"] == "local" and job["spec"]["backend"] == "local"
    done = await finished(jp_fetch, job["id"])
    assert done["state"] == "succeeded" and done["exitCode"] == 0
    assert done["logPath"] == f"codespace-jobs/{job['id']}/output.log"
    assert (root / done["logPath"]).read_text() == "one\ntwo\nthree\n"
    _, logs = await call(jp_fetch, job["id"], "logs")
    assert logs == {"text": "one\ntwo\nthree\n"}
    _, logs = await call(jp_fetch, job["id"], "logs", params={"tail": 2})
    assert logs == {"text": "two\nthree\n"}
    await refused(jp_fetch, 400, job["id"], "logs", params={"tail": "x"})

    code, made = await post(
        jp_fetch,
        body={
            "jobs": [
                {"name": "b", "command": ["true"], "after": ["a"], "backend": "second"},
                {"name": "a", "command": ["true"], "backend": "second"},
            ],
            "idempotencyKey": "dag-0001",
        },
    )
    assert [j["name"] for j in made["jobs"]] == ["a", "b"]  # dependencies first
    assert {j["backend"] for j in made["jobs"]} == {"second"}
    _, again = await post(
        jp_fetch,
        body={
            "jobs": [
                {"name": "b", "command": ["true"], "after": ["a"], "backend": "second"},
                {"name": "a", "command": ["true"], "backend": "second"},
            ],
            "idempotencyKey": "dag-0001",
        },
    )
    assert [j["id"] for j in again["jobs"]] == [j["id"] for j in made["jobs"]]
    for j in made["jobs"]:
        assert (await finished(jp_fetch, j["id"]))["state"] == "succeeded"
    _, body = await call(jp_fetch)
    assert len(body["jobs"]) == 3 and body["jobs"][-1]["name"] == "count"  # newest first


def test_bad_specs_are_refused_naming_the_field(jp_fetch, run, extension) -> None:
    run(_bad_specs(jp_fetch))
    assert run(extension.jobs.list())[0] == []  # nothing was created


async def _bad_specs(jp_fetch) -> None:
    limit = {"name": "x", "command": ["true"], "resources": {"timeLimit": "soon"}}
    message = await refused(jp_fetch, 400, method="POST", body=json.dumps(limit))
    assert message.startswith("jobs[0].resources.timeLimit: time limit 'soon' is not a duration")
    both = {"jobs": [{"name": "ok", "command": ["true"]}, {"name": "Bad_Name", "script": "x.py"}]}
    message = await refused(jp_fetch, 400, method="POST", body=json.dumps(both))
    assert message.startswith("jobs[1].name: job name 'Bad_Name' must be a DNS label")
    nothing = {"name": "x"}
    message = await refused(jp_fetch, 400, method="POST", body=json.dumps(nothing))
    assert message == "jobs[0]: give exactly one of command, script and notebook"
    cycle = {
        "jobs": [
            {"name": "a", "command": ["true"], "after": ["b"]},
            {"name": "b", "command": ["true"], "after": ["a"]},
        ]
    }
    assert "cycle" in await refused(jp_fetch, 400, method="POST", body=json.dumps(cycle))
    slurm = {"name": "x", "command": ["true"], "backend": "slurm"}
    message = await refused(jp_fetch, 400, method="POST", body=json.dumps(slurm))
    assert message == "backend 'slurm' is not configured here (configured: local, second)"
    waits = {"name": "x", "command": ["true"], "afterJobs": ["local-000000000000"]}
    message = await refused(jp_fetch, 400, method="POST", body=json.dumps(waits))
    assert "afterJobs names no job 'local-000000000000'" in message
    assert "not JSON" in await refused(jp_fetch, 400, method="POST", body="{nope")
    assert "JSON object" in await refused(jp_fetch, 400, method="POST", body="[1]")


def test_another_users_job_is_404(jp_fetch, run, tmp_path, jp_root_dir) -> None:
    """The same state directory holds another owner's job: this server never shows it."""
    other = LocalJobBackend.from_settings(
        JobSettings(
            workspace=jp_root_dir,
            state_dir=tmp_path / "state" / "jobs" / "local",
            owner="someone-else",
            options=FAST,
        )
    )
    theirs = Submission.model_validate({"jobs": [{"name": "theirs", "command": ["true"]}]})
    [job] = run(other.submit(theirs))
    run(_not_found(jp_fetch, job.id))
    run(other.close())


async def _not_found(jp_fetch, job_id: str) -> None:
    assert await refused(jp_fetch, 404, job_id) == f"no job {job_id!r}"
    await refused(jp_fetch, 404, job_id, "logs")
    await refused(jp_fetch, 404, job_id, "cancel", method="POST", body="{}")
    await refused(jp_fetch, 404, job_id, "resubmit", method="POST", body="{}")
    await refused(jp_fetch, 404, "local-unknown")
    _, body = await call(jp_fetch)
    assert job_id not in [j["id"] for j in body["jobs"]]


def test_cancel_and_resubmit(jp_fetch, run) -> None:
    run(_cancel_and_resubmit(jp_fetch))


async def _cancel_and_resubmit(jp_fetch) -> None:
    _, made = await post(jp_fetch, body={"name": "sleepy", "command": ["sleep", "30"]})
    [job] = made["jobs"]
    deadline = time.monotonic() + 20
    while (await call(jp_fetch, job["id"]))[1]["state"] != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    code, cancelled = await post(jp_fetch, job["id"], "cancel", body={})
    assert code == 200 and cancelled["state"] == "cancelled" and cancelled["reason"] == "cancelled"
    code, again = await post(jp_fetch, job["id"], "resubmit", body={})
    assert code == 201
    [new] = again["jobs"]
    assert new["id"] != job["id"] and new["spec"] == job["spec"] and new["state"] == "queued"
    await post(jp_fetch, new["id"], "cancel", body={})
    assert (await finished(jp_fetch, new["id"]))["state"] == "cancelled"


def test_the_codespace_jobs_key_gives_defaults(jp_fetch, run, jp_root_dir) -> None:
    (jp_root_dir / ".codespace").mkdir()
    (jp_root_dir / ".codespace" / "codespace.yaml").write_text(
        "jobs:\n"
        "  backend: second\n"
        "  resources: {timeLimit: 1s, cpu: 1}\n"
        "  env: {FROM_DEFAULTS: 'yes', OVERRIDDEN: 'no'}\n"
    )
    run(_defaults(jp_fetch))


async def _defaults(jp_fetch) -> None:
    script = "import os; print(os.environ['FROM_DEFAULTS'], os.environ['OVERRIDDEN'])"
    spec = {
        "name": "defaulted",
        "command": [PY, "-c", script],
        "resources": {"cpu": 2},
        "env": {"OVERRIDDEN": "by the job"},
    }
    _, made = await post(jp_fetch, body=spec)
    [job] = made["jobs"]
    assert job["backend"] == "second"
    assert job["spec"]["resources"]["timeLimit"] == "1s" and job["spec"]["resources"]["cpu"] == 2
    done = await finished(jp_fetch, job["id"])
    _, logs = await call(jp_fetch, job["id"], "logs")
    assert done["state"] == "succeeded" and logs["text"] == "yes by the job\n"
    _, slow = await post(jp_fetch, body={"name": "slow", "command": ["sleep", "30"]})
    done = await finished(jp_fetch, slow["jobs"][0]["id"])
    assert done["state"] == "failed" and done["reason"] == "time limit 1s reached"


def test_queued_jobs_resume_after_a_restart_without_a_request(jp_fetch, run, extension) -> None:
    """A job left queued by the previous server starts once the extension resumes its
    backends (a moment after the server started), with no request in between."""
    before = LocalJobBackend.from_settings(extension.job_settings("local"))
    queued = Submission.model_validate({"jobs": [{"name": "left", "command": ["true"]}]})

    async def submit_and_stop():
        [job] = await before.submit(queued)
        await before.close()  # stopped before its scheduler ever ran
        return job

    job = run(submit_and_stop())
    assert job.state == "queued"
    run(extension.resume_jobs())
    assert set(extension.jobs._built) == {"local"}  # "second" kept no state: not built

    async def started() -> None:
        backend = extension.jobs._built["local"]
        deadline = time.monotonic() + 20
        while not (await backend.get(job.id)).done:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    run(started())
    assert run(extension.jobs.get(job.id)).state == "succeeded"


def test_anonymous_requests_are_refused(jp_fetch, run) -> None:
    async def anonymous() -> None:
        for parts, method in (((), "GET"), ((), "POST"), (("x", "cancel"), "POST")):
            body = None if method == "GET" else "{}"
            await refused(
                jp_fetch, 403, *parts, method=method, body=body, headers={"Authorization": ""}
            )

    run(anonymous())


def test_a_server_start_imports_no_job_backend(tmp_path: Path) -> None:
    """Backends are built on first use: the extension's start loads no papermill, no Hera,
    no engine client and not even the local backend (benchmarks/bench_storm.py)."""
    code = (
        "import sys\n"
        "from traitlets.config import Config\n"
        "from extensions.app import CodespaceExtension\n"
        f"config = Config({{'CodespaceExtension': {{'workspace': {str(tmp_path)!r},"
        f" 'state_dir': {str(tmp_path / 'state')!r}}}}})\n"
        "app = CodespaceExtension(config=config)\n"
        "app.initialize_settings(); app.initialize_handlers()\n"
        f"print(sorted(m for m in {NOT_AT_START!r} if m in sys.modules))\n"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# --- the pure part of the service -----------------------------------------------------------


def test_defaults_fill_what_a_job_leaves_unset() -> None:
    defaults = {
        "backend": "slurm",
        "resources": {"timeLimit": "1h", "memory": "4Gi"},
        "env": {"A": "1", "B": "2"},
        "datasets": ["mnist"],
        "ignored": True,
    }
    job = {"name": "x", "command": ["true"], "resources": {"memory": "8Gi"}, "env": {"B": "3"}}
    assert with_defaults(job, defaults) == {
        "name": "x",
        "command": ["true"],
        "backend": "slurm",
        "resources": {"timeLimit": "1h", "memory": "8Gi"},
        "env": {"A": "1", "B": "3"},
        "datasets": ["mnist"],
    }
    own = {"name": "x", "command": ["true"], "backend": "local", "datasets": []}
    assert with_defaults(own, defaults)["backend"] == "local"
    assert with_defaults(own, defaults)["datasets"] == []  # set, even if empty


def test_a_single_spec_is_a_submission_and_errors_name_the_field() -> None:
    submission = parse_submission({"name": "x", "command": ["true"], "idempotencyKey": "k" * 8})
    assert submission.idempotencyKey == "k" * 8 and submission.jobs[0].name == "x"
    with pytest.raises(JobError, match=r"^jobs\[0\]\.resources\.cpu: "):
        parse_submission({"name": "x", "command": ["true"], "resources": {"cpu": -1}})
    with pytest.raises(JobError, match=r"^jobs\[0\]\.resources\.timeLimit: "):
        parse_submission({"name": "x", "command": ["true"]}, {"resources": {"timeLimit": "x"}})
    with pytest.raises(JobError, match=r"^idempotencyKey: "):
        parse_submission({"jobs": [{"name": "x", "command": ["true"]}], "idempotencyKey": "k"})
