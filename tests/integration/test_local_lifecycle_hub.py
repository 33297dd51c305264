"""Lifecycle commands through a real hub: never-ending commands neither block nor trap a user.

Issue 9 item 6, end to end: a command after ``waitFor`` runs in the background and dies with
the server; a pending spawn whose waited-for command never ends can be cancelled from the
hub (the API answers, the command's processes end, the server starts again afterwards); and
a waited-for command past the hub's ``lifecycle_timeout`` is stopped and named on the spawn
page and in CODESPACE_ERRORS.md. One hub, with a short timeout, serves the module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from tests.helpers.hub import RunningHub, running_hub
from tests.helpers.repos import fixture_repo

pytestmark = pytest.mark.integration

TIMEOUT = 6  # the hub's lifecycle_timeout, seconds
FOREVER = "sleep 100000"
BACKGROUND = f"postCreateCommand: {FOREVER}\n"  # default waitFor: updateContentCommand
WAITED = f"waitFor: postCreateCommand\npostCreateCommand: {FOREVER}\n"
T = TypeVar("T")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("lifecycle-hub")
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # shared by this session's hubs
    config = (
        f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}\n"
        f"c.LocalCodespaceSpawner.lifecycle_timeout = {TIMEOUT}\n"
    )
    with running_hub(data / "hub", extra_config=config) as running:
        yield running


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def workspace(hub: RunningHub, user: str, server: str) -> Path:
    return hub.data_dir / "workspaces" / user / server


def server_model(hub: RunningHub, user: str, server: str) -> dict:
    """The hub's model of the server ({} when the hub has none)."""
    return hub.api("GET", f"/users/{user}").json()["servers"].get(server, {})


def command_state(ws: Path, name: str = "postCreateCommand") -> dict:
    path = ws / ".codespace-logs" / "lifecycle-status.json"
    try:
        return json.loads(path.read_text())["commands"].get(name, {})
    except (OSError, ValueError):
        return {}


def wait_until(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def in_workspace(ws: Path) -> list[psutil.Process]:
    """Live processes whose working directory is the workspace (server, commands, ...)."""
    found = []
    for process in psutil.process_iter(["cwd", "status"]):
        if process.info["cwd"] == str(ws) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def sleeps(ws: Path) -> list[psutil.Process]:
    """The never-ending command's processes."""
    found = []
    for process in in_workspace(ws):
        try:
            if process.cmdline()[-2:] == FOREVER.split():
                found.append(process)
        except psutil.NoSuchProcess:
            pass
    return found


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    living = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                living.append(process)
        except psutil.NoSuchProcess:
            pass
    return living


def end(processes: list[psutil.Process]) -> None:
    for process in alive(processes):
        process.kill()


def test_background_command_does_not_block_and_dies_with_the_server(
    hub: RunningHub, tmp_path: Path
) -> None:
    repo = fixture_repo(tmp_path, codespace_yaml=BACKGROUND)
    events = hub.spawn("carl", "bg", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    assert "postCreateCommand will run in the background" in messages(events)
    ws = workspace(hub, "carl", "bg")
    running = wait_until(lambda: command_state(ws).get("state") == "running", 30, "running")
    assert running
    forever = wait_until(lambda: sleeps(ws), 30, f"a process running {FOREVER!r}")
    assert server_model(hub, "carl", "bg")["ready"]

    try:
        hub.stop("carl", "bg")
        wait_until(lambda: not alive(forever), 10, f"{FOREVER!r} ended after the stop")
        wait_until(lambda: not in_workspace(ws), 10, "no process left in the workspace")
    finally:
        end(forever)  # what the stop left behind, so that no test leaves a process


def test_pending_spawn_can_be_cancelled_and_started_again(hub: RunningHub, tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path, codespace_yaml=WAITED)
    hub.ensure_user("dina")
    started = hub.api("POST", "/users/dina/servers/wait", json={"repo": str(repo)})
    assert started.status_code == 202, started.text
    hub.started_servers.add(("dina", "wait"))
    ws = workspace(hub, "dina", "wait")
    wait_until(lambda: command_state(ws).get("state") == "running", 300, "command running")
    forever = wait_until(lambda: sleeps(ws), 5, f"a process running {FOREVER!r}")
    model = server_model(hub, "dina", "wait")
    assert model["pending"] == "spawn" and not model["ready"]

    cancelled = hub.api("DELETE", "/users/dina/servers/wait")
    assert cancelled.status_code in (202, 204), f"{cancelled.status_code}: {cancelled.text}"
    # before the lifecycle timeout could have stopped it: the cancel did
    wait_until(lambda: not alive(forever), 2, f"{FOREVER!r} ended after the cancel")
    assert command_state(ws).get("state") == "stopped", command_state(ws)
    wait_until(lambda: not server_model(hub, "dina", "wait").get("pending"), 30, "not pending")
    wait_until(lambda: not in_workspace(ws), 10, "no process left in the workspace")

    # the user fixes the command in the workspace and starts the server again
    (ws / ".codespace" / "codespace.yaml").write_text(
        "waitFor: postCreateCommand\npostCreateCommand: echo quick\n"
    )
    events = hub.spawn("dina", "wait", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    assert command_state(ws)["state"] == "done"


def test_waited_command_past_the_timeout_is_stopped_and_named(
    hub: RunningHub, tmp_path: Path
) -> None:
    repo = fixture_repo(tmp_path, codespace_yaml=WAITED)
    events = hub.spawn("erik", "slow", {"repo": str(repo)})
    text = messages(events)
    assert events[-1].get("ready"), text
    expected = f"did not finish within {TIMEOUT} s"
    assert "postCreateCommand" in text and expected in text
    ws = workspace(hub, "erik", "slow")
    errors = (ws / "CODESPACE_ERRORS.md").read_text()
    assert "postCreateCommand" in errors and expected in errors
    entry = command_state(ws)
    assert entry["state"] == "timed out", entry
    assert TIMEOUT <= entry["finished"] - entry["started"] < TIMEOUT + 5, entry
    assert not sleeps(ws), f"{FOREVER!r} outlived its timeout"
