"""JobPanel: submit from a notebook, watch the table, read the log, cancel (a real server)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from codespace.widgets import JobPanel
from codespace.widgets.jobs import spec_from_form
from tests.unit import test_jobs_sdk as sdk_tests

pytest_plugins = ["pytest_jupyter.jupyter_server"]
# the SDK tests' server: the extension with a fast local backend, the codespace kernelspec
jp_server_config, server = sdk_tests.jp_server_config, sdk_tests.server


def test_the_form_reads_a_notebook_a_script_or_a_command() -> None:
    assert spec_from_form("report.ipynb", "local", "30m")["notebook"] == "report.ipynb"
    assert spec_from_form("train.py", None, "")["script"] == "train.py"
    command = spec_from_form("python -c 'print(1)'", "local", "")
    assert command["command"] == ["python", "-c", "print(1)"]
    assert "resources" not in command  # no time limit given: the site's defaults apply
    assert spec_from_form("a.ipynb", "local", "30m")["resources"] == {"timeLimit": "30m"}
    with pytest.raises(ValueError, match="give a notebook"):
        spec_from_form("  ", "local", "")


def wait_until(run, panel: JobPanel, done, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run(panel.refresh)
        if done(panel.jobs):
            return
        run(time.sleep, 0.3)
    raise AssertionError(f"jobs never got there: {panel.jobs}")


def test_the_panel_submits_shows_logs_and_cancels(
    server,
    in_thread,
    jp_root_dir: Path,
) -> None:
    (jp_root_dir / "hello.py").write_text("print('hello from a job')\n")
    panel = in_thread(JobPanel)
    assert panel.backend.options == ("local",) and panel.backend.value == "local"
    panel.what.value = "hello.py"
    made = in_thread(panel.submit)
    assert made and made[0]["state"] in ("queued", "running", "succeeded")
    wait_until(in_thread, panel, lambda jobs: jobs[0]["state"] == "succeeded")
    assert "<td>hello</td>" in panel.table.value and "succeeded" in panel.table.value
    in_thread(panel.show, made[0]["id"])
    assert "hello from a job" in panel.detail.value

    panel.what.value = "sleep 60"
    slow = in_thread(panel.submit)
    wait_until(in_thread, panel, lambda jobs: jobs[0]["state"] == "running")
    panel.choice.value = slow[0]["id"]
    in_thread(panel.cancel)
    wait_until(in_thread, panel, lambda jobs: jobs[0]["state"] == "cancelled")

    panel.what.value = "nothing.ipynb x"  # neither a notebook nor a command that exists
    bad = in_thread(panel.submit)
    wait_until(in_thread, panel, lambda jobs: jobs[0]["state"] == "failed")
    assert bad and "not found" in panel.jobs[0]["reason"]
