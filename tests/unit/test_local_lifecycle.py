"""codespace.lifecycle: devcontainer order, once per workspace, waitFor, timeouts, failures."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from codespace.launch import lifecycle_steps
from codespace.lifecycle import LifecycleError, Step, due_steps, run_steps, split_for_wait
from codespace.lifecycle_runner import job_text, parse_result, runner_argv
from codespace.lifecycle_status import StatusFile, describe
from codespace.spec.model import Codespace


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def spec(**commands) -> Codespace:
    return Codespace(**commands)


async def run_due(codespace: Codespace, workspace: Path, **kwargs) -> None:
    await run_steps(
        due_steps(lifecycle_steps(codespace), workspace), workspace, env=os.environ, **kwargs
    )


def status(workspace: Path) -> dict[str, str]:
    return {
        name: str(entry["state"])
        for name, entry in StatusFile(workspace / ".codespace-logs").read().items()
    }


async def test_create_commands_run_once_start_commands_every_time(workspace: Path) -> None:
    codespace = spec(
        onCreateCommand="echo onCreate >> order",
        updateContentCommand=["sh", "-c", "echo updateContent >> order"],
        postCreateCommand="echo postCreate >> order",
        postStartCommand="echo postStart >> order",
    )
    lines: list[str] = []
    await run_due(codespace, workspace, on_line=lines.append)
    await run_due(codespace, workspace)
    assert (workspace / "order").read_text().split() == [
        "onCreate",
        "updateContent",
        "postCreate",
        "postStart",
        "postStart",
    ]
    assert "--- postCreateCommand" in lines
    log = (workspace / ".codespace-logs" / "lifecycle.log").read_text()
    assert log.count("=== ") == 2


async def test_named_commands_run_in_parallel_with_prefixed_output(workspace: Path) -> None:
    codespace = spec(postStartCommand={"a": "echo from-a", "b": ["echo", "from-b"]})
    lines: list[str] = []
    await run_due(codespace, workspace, on_line=lines.append)
    assert "[a] from-a" in lines and "[b] from-b" in lines


async def test_failure_stops_later_commands_and_retries_create_next_start(
    workspace: Path,
) -> None:
    codespace = spec(
        onCreateCommand="echo failing; exit 7",
        postCreateCommand="touch post-create-ran",
        postStartCommand="touch post-start-ran",
    )
    with pytest.raises(LifecycleError) as failed:
        await run_due(codespace, workspace)
    assert failed.value.name == "onCreateCommand" and failed.value.returncode == 7
    assert "failing" in failed.value.tail
    assert not (workspace / "post-create-ran").exists()
    assert not (workspace / "post-start-ran").exists()
    assert status(workspace) == {
        "onCreateCommand": "failed",
        "postCreateCommand": "skipped",
        "postStartCommand": "skipped",
    }
    with pytest.raises(LifecycleError):  # not marked created: runs again
        await run_due(codespace, workspace)


async def test_a_failed_post_create_runs_again_but_a_successful_on_create_does_not(
    workspace: Path,
) -> None:
    """onCreate succeeded, postCreate failed: the next start runs postCreate again."""
    codespace = spec(
        onCreateCommand="echo onCreate >> order",
        postCreateCommand="echo postCreate >> order; test -e fixed",
    )
    with pytest.raises(LifecycleError):
        await run_due(codespace, workspace)
    (workspace / "fixed").touch()
    assert [step.name for step in due_steps(lifecycle_steps(codespace), workspace)] == [
        "postCreateCommand"
    ]
    await run_due(codespace, workspace)
    assert (workspace / "order").read_text().split() == ["onCreate", "postCreate", "postCreate"]
    assert due_steps(lifecycle_steps(codespace), workspace) == []


async def test_commands_see_the_given_environment(workspace: Path) -> None:
    codespace = spec(postStartCommand='echo "$CODESPACE_TEST_VALUE" > seen')
    env = {**os.environ, "CODESPACE_TEST_VALUE": "from-env"}
    await run_steps(due_steps(lifecycle_steps(codespace), workspace), workspace, env=env)
    assert (workspace / "seen").read_text() == "from-env\n"


def test_wait_for_splits_the_due_commands() -> None:
    codespace = spec(
        onCreateCommand="a", updateContentCommand="b", postCreateCommand="c", postStartCommand="d"
    )
    steps = codespace.lifecycle()
    all_steps = [Step(name, command) for name, command in steps]
    waited, later = split_for_wait(all_steps, None)  # default: updateContentCommand
    assert [s.name for s in waited] == ["onCreateCommand", "updateContentCommand"]
    assert [s.name for s in later] == ["postCreateCommand", "postStartCommand"]
    waited, later = split_for_wait(all_steps, "postStartCommand")
    assert [s.name for s in waited] == [s.name for s in all_steps] and later == []
    waited, later = split_for_wait(all_steps, "onCreateCommand")
    assert [s.name for s in waited] == ["onCreateCommand"]


async def test_a_command_past_its_timeout_is_killed_with_its_children(workspace: Path) -> None:
    codespace = spec(postCreateCommand="sleep 1000 & echo $! > child; sleep 1000")
    started = time.monotonic()
    with pytest.raises(LifecycleError) as failed:
        await run_due(codespace, workspace, timeout=1)
    assert time.monotonic() - started < 10
    assert failed.value.timed_out and "did not finish within 1 s" in str(failed.value)
    child = int((workspace / "child").read_text())
    await asyncio.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in _proc_state(child)
    assert status(workspace)["postCreateCommand"] == "timed out"
    assert due_steps(lifecycle_steps(codespace), workspace)  # not marked done


async def test_a_cancelled_run_kills_the_command(workspace: Path) -> None:
    codespace = spec(postCreateCommand="echo $$ > pid; sleep 1000")
    task = asyncio.ensure_future(run_due(codespace, workspace))
    for _ in range(50):
        await asyncio.sleep(0.1)
        if (workspace / "pid").exists():
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pid = int((workspace / "pid").read_text())
    await asyncio.sleep(0.2)
    assert not Path(f"/proc/{pid}").exists() or "Z" in _proc_state(pid)
    assert status(workspace)["postCreateCommand"] == "stopped"


async def test_a_daemon_left_behind_does_not_hold_the_start(workspace: Path) -> None:
    codespace = spec(postStartCommand="sleep 1000 & echo $! > daemon; echo up")
    started = time.monotonic()
    await run_due(codespace, workspace)
    assert time.monotonic() - started < 5
    daemon = int((workspace / "daemon").read_text())
    assert Path(f"/proc/{daemon}").exists()  # a start command's daemon keeps running
    os.kill(daemon, 9)


def test_background_runner_runs_the_later_commands_and_reports_them(workspace: Path) -> None:
    codespace = spec(postCreateCommand="echo post > post", postStartCommand="exit 3")
    _, later = split_for_wait(due_steps(lifecycle_steps(codespace), workspace), None)
    job = job_text(workspace, dict(os.environ), later, background=True)
    finished = subprocess.run(runner_argv(), input=job, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 1
    assert (workspace / "post").read_text() == "post\n"
    assert status(workspace) == {"postCreateCommand": "done", "postStartCommand": "failed"}
    result = parse_result(finished.stdout.strip().splitlines()[-1])
    assert isinstance(result, LifecycleError) and result.name == "postStartCommand"
    # nobody waits for a background job: it reports where the user looks
    errors = (workspace / "CODESPACE_ERRORS.md").read_text()
    assert "`postStartCommand` failed (in the background" in errors and "status 3" in errors
    lines = describe(StatusFile(workspace / ".codespace-logs").read(), brief=True)
    assert any("postStartCommand: failed" in line for line in lines)
    shown = subprocess.run(
        [runner_argv()[0], "-m", "codespace.lifecycle_status", str(workspace), "--brief"],
        capture_output=True,
        text=True,
    )
    assert "postStartCommand: failed" in shown.stdout and "lifecycle.log" in shown.stdout


def test_waited_runner_prints_the_lines_and_the_result(workspace: Path) -> None:
    codespace = spec(onCreateCommand="echo hello-from-on-create")
    job = job_text(
        workspace, dict(os.environ), due_steps(lifecycle_steps(codespace), workspace), timeout=30
    )
    finished = subprocess.run(runner_argv(), input=job, capture_output=True, text=True, timeout=60)
    lines = finished.stdout.splitlines()
    assert "hello-from-on-create" in lines and "--- onCreateCommand" in lines
    assert parse_result(lines[-1]) is True and finished.returncode == 0
    assert not (workspace / "CODESPACE_ERRORS.md").exists()


def test_brief_status_is_silent_when_all_is_done(workspace: Path) -> None:
    StatusFile(workspace / ".codespace-logs").update("postCreateCommand", "done")
    assert describe(StatusFile(workspace / ".codespace-logs").read(), brief=True) == []
    raw = json.loads((workspace / ".codespace-logs" / "lifecycle-status.json").read_text())
    assert raw["commands"]["postCreateCommand"]["state"] == "done"


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "gone"
