"""The kernel-side jobs SDK and the ``codespace jobs`` CLI against a running jupyter_server
with the codespace extension (pytest-jupyter), running real local jobs."""

from __future__ import annotations

import asyncio
import dataclasses
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from codespace.client import ApiError, CodespaceClient
from codespace.jobs import models, records
from codespace.local.envbuild.kernel import env_vars, write_kernelspec

pytest_plugins = ["pytest_jupyter.jupyter_server"]

PY = sys.executable
VENV = Path(sys.prefix)
FAST = {"poll_interval": 0.05, "kill_grace": 0.5}


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "state_dir": str(tmp_path / "state"),
            "job_backend_options": {"local": FAST},
        },
    }


@pytest.fixture
def server(jp_fetch, jp_serverapp, jp_http_port, jp_base_url, monkeypatch, tmp_path) -> dict:
    """What a kernel of this server sees: its URL and token; the codespace kernelspec on
    JUPYTER_PATH (the server's environment, which jobs inherit)."""
    path = f"{VENV / 'bin'}:{os.environ['PATH']}"
    data = tmp_path / "jupyter"
    write_kernelspec(
        VENV, data, "Python (codespace)", base_path=path, variables=env_vars(VENV, path)
    )
    env = {
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
        "JUPYTERHUB_API_TOKEN": jp_serverapp.identity_provider.token,
        "JUPYTER_PATH": str(data),
        "VIRTUAL_ENV": str(VENV),
        "PATH": path,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": "n = 1",
            "outputs": [],
            "execution_count": None,
        },
        {
            "cell_type": "code",
            "metadata": {},
            "source": "print('squared', n * n)",
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


def test_the_sdk_submits_waits_reads_logs_and_cancels(server, in_thread, jp_root_dir) -> None:
    from codespace import jobs

    job = in_thread(jobs.submit, [PY, "-c", "print('hello from a job')"], name="hello")
    assert job.id.startswith("local-") and job.name == "hello"
    final = in_thread(job.wait, timeout=30, poll=0.05)
    assert isinstance(final, records.JobRecord) and final.state == "succeeded"
    assert final.exitCode == 0 and final.elapsed is not None and final.done
    assert in_thread(job.logs) == "hello from a job\n"
    assert repr(job) == f"Job(id={job.id!r}, name='hello', state='succeeded')"

    (jp_root_dir / "square.ipynb").write_text(json.dumps(NOTEBOOK))
    notebook = in_thread(jobs.submit, notebook="square.ipynb", parameters={"n": 12})
    assert notebook.name == "square" and notebook.output_notebook.endswith("/square.ipynb")
    waiting = in_thread(jobs.submit, ["true"], name="after-notebook", after=[notebook])
    assert waiting.record.spec.afterJobs == (notebook.id,)
    assert in_thread(notebook.wait, timeout=120, poll=0.1).state == "succeeded"
    executed = (jp_root_dir / notebook.output_notebook).read_text()
    assert "squared 144" in executed
    assert in_thread(waiting.wait, timeout=30, poll=0.05).state == "succeeded"

    sleeper = in_thread(jobs.submit, ["sleep", "30"], resources={"time_limit": "1m"})
    assert sleeper.record.spec.resources.timeLimit == "1m"
    assert in_thread(sleeper.cancel).state == "cancelled"
    slow = in_thread(jobs.submit, ["sleep", "5"])
    with pytest.raises(TimeoutError, match="is still"):
        in_thread(slow.wait, timeout=0.2, poll=0.05)
    in_thread(slow.cancel)

    listed = in_thread(jobs.list)
    assert {j.id for j in listed} >= {job.id, notebook.id, sleeper.id}
    assert in_thread(jobs.get, job.id).record.state == "succeeded"
    again = in_thread(job.resubmit)
    assert again.id != job.id and again.record.spec == job.record.spec
    with pytest.raises(ApiError, match="404"):
        in_thread(jobs.get, "local-nope")
    with pytest.raises(ApiError, match=r"400: jobs\[0\]\.array: "):
        in_thread(jobs.submit, ["true"], array=0)
    with pytest.raises(TypeError, match="argument list"):
        jobs.submit("python train.py")


def test_the_cli(server, in_thread, capsys, jp_root_dir) -> None:
    from codespace.cli import main

    (jp_root_dir / "hello.py").write_text("import sys; print('args', sys.argv[1:])\n")
    code = in_thread(
        main, ["jobs", "submit", "--name", "train", "--", PY, "hello.py", "--epochs", "3"]
    )
    assert code == 0
    job_id = capsys.readouterr().out.split()[0]
    assert job_id.startswith("local-")
    argv = ["jobs", "submit", "--script", "hello.py", "--time-limit", "1m", "--wait", "--json"]
    assert in_thread(main, [*argv, "--", "-x"]) == 0
    [done] = json.loads(capsys.readouterr().out)
    assert done["state"] == "succeeded" and done["spec"]["args"] == ["-x"]
    assert done["spec"]["resources"]["timeLimit"] == "1m"
    assert in_thread(main, ["jobs", "logs", done["id"]]) == 0
    assert capsys.readouterr().out == "args ['-x']\n"

    assert in_thread(main, ["jobs", "submit", "--wait", "--", "false"]) == 1  # it failed
    assert "failed (exit code 1)" in capsys.readouterr().out
    assert in_thread(main, ["jobs", "list"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("ID") and job_id in table and "hello" in table
    assert in_thread(main, ["jobs", "show", job_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "train"
    assert in_thread(main, ["jobs", "submit", "--", "sleep", "30"]) == 0
    sleeper = capsys.readouterr().out.split()[0]
    assert in_thread(main, ["jobs", "cancel", sleeper]) == 0
    assert "cancelled" in capsys.readouterr().out

    assert in_thread(main, ["jobs", "submit", "--time-limit", "soon", "--", "true"]) == 1
    assert "jobs[0].resources.timeLimit: time limit 'soon'" in capsys.readouterr().err
    assert in_thread(main, ["jobs", "submit", "--backend", "slurm", "--", "true"]) == 1
    assert "configured: local" in capsys.readouterr().err
    assert in_thread(main, ["jobs", "show", "local-nope"]) == 1
    assert "404" in capsys.readouterr().err
    assert in_thread(main, ["jobs", "submit", "--notebook", "a.ipynb", "-p", "x"]) == 1
    assert "not KEY=VALUE" in capsys.readouterr().err


class DropFirstAnswer(http.server.BaseHTTPRequestHandler):
    """A proxy that forwards every request but answers the first POST too late (the client
    has given up): the job was made, the client never heard of it."""

    target = ""
    posts = 0

    def do_GET(self) -> None:
        self.forward(None)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        self.forward(body, late=type(self).posts == 1)

    def forward(self, body: bytes | None, late: bool = False) -> None:
        headers = {
            k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")
        }
        request = urllib.request.Request(self.target + self.path, data=body, headers=headers)
        with urllib.request.urlopen(request) as response:
            status, payload = response.status, response.read()
        if late:
            time.sleep(1.5)
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


def test_a_submission_retried_after_a_timeout_makes_one_job(
    server, in_thread, jp_http_port
) -> None:
    DropFirstAnswer.target = f"http://127.0.0.1:{jp_http_port}"
    DropFirstAnswer.posts = 0
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DropFirstAnswer)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        base = server["JUPYTERHUB_SERVICE_URL"].replace(
            f"127.0.0.1:{jp_http_port}", f"127.0.0.1:{proxy.server_port}"
        )
        flaky = CodespaceClient(base, server["JUPYTERHUB_API_TOKEN"], timeout=0.5)
        [made] = in_thread(flaky.submit_jobs, {"jobs": [{"name": "once", "command": ["true"]}]})
        assert DropFirstAnswer.posts == 2  # the request was sent twice ...
        direct = CodespaceClient(server["JUPYTERHUB_SERVICE_URL"], server["JUPYTERHUB_API_TOKEN"])
        listed = in_thread(direct.list_jobs)
        assert [job["id"] for job in listed] == [made["id"]]  # ... and made one job
    finally:
        proxy.shutdown()
        proxy.server_close()


# Runs in a fresh interpreter: block the server-only packages, then do what a notebook does.
KERNEL_SCRIPT = """
import json, sys

BLOCKED = {"pydantic", "pydantic_core", "yaml", "jupyter_server", "tornado", "papermill"}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError("%s is not in this repository environment" % name)

sys.meta_path.insert(0, Block())
from codespace import jobs

job = jobs.submit(["echo", "from the kernel"], name="kernel-job")
final = job.wait(timeout=30, poll=0.05)
print(json.dumps({
    "state": final.state,
    "logs": job.logs(),
    "listed": [j.id for j in jobs.list()] == [job.id],
    "record": repr(final)[:10],
    "loaded": sorted({m.partition(".")[0] for m in sys.modules} & BLOCKED),
}))
"""


def test_the_sdk_needs_no_pydantic(server, jp_asyncio_loop) -> None:
    command = [PY, "-c", KERNEL_SCRIPT]
    kernel = asyncio.to_thread(
        subprocess.run, command, env={**os.environ, **server}, capture_output=True, text=True
    )
    done = jp_asyncio_loop.run_until_complete(kernel)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen == {
        "state": "succeeded",
        "logs": "from the kernel\n",
        "listed": True,
        "record": "JobRecord(",
        "loaded": [],
    }


RECORDS = {
    records.JobRecord: models.JobRecord,
    records.JobSpec: models.JobSpec,
    records.JobResources: models.JobResources,
}


@pytest.mark.parametrize("record", list(RECORDS), ids=lambda record: record.__name__)
def test_records_have_the_server_models_fields(record: type) -> None:
    """A field added to a server model must reach notebooks too."""
    assert {field.name for field in dataclasses.fields(record)} == set(RECORDS[record].model_fields)


def test_records_read_the_json_the_server_writes() -> None:
    spec = models.JobSpec(
        name="nb",
        notebook="a.ipynb",
        parameters={"x": [1, 2]},
        resources={"gpu": 1, "timeLimit": "1h"},
        env={"A": "1"},
    )
    served = models.JobRecord(
        id="local-1",
        name="nb",
        owner="alice",
        backend="local",
        submission="s-1",
        submitted="2024-01-01T00:00:00Z",
        started="2024-01-01T00:00:01Z",
        finished="2024-01-01T00:01:01Z",
        state="succeeded",
        spec=spec,
    )
    data = served.model_dump(mode="json")
    record = records.JobRecord.from_json({**data, "addedLater": 1})
    assert record.spec.resources.gpu["count"] == 1 and record.spec.parameters == {"x": [1, 2]}
    assert record.elapsed == 60.0 and record.done
    assert record.to_json() == data
    assert hash(record) == hash(records.JobRecord.from_json(data))
