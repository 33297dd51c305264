"""codespace.lifecycle: devcontainer order, once per workspace, parallel maps, failures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codespace.lifecycle import LifecycleError, run_lifecycle
from codespace.spec.model import Codespace


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    return tmp_path


def spec(**commands) -> Codespace:
    return Codespace(**commands)


async def test_create_commands_run_once_start_commands_every_time(workspace: Path) -> None:
    codespace = spec(
        onCreateCommand="echo onCreate >> order",
        updateContentCommand=["sh", "-c", "echo updateContent >> order"],
        postCreateCommand="echo postCreate >> order",
        postStartCommand="echo postStart >> order",
    )
    lines: list[str] = []
    await run_lifecycle(codespace, workspace, env=os.environ, on_line=lines.append)
    await run_lifecycle(codespace, workspace, env=os.environ)
    assert (workspace / "order").read_text().split() == [
        "onCreate",
        "updateContent",
        "postCreate",
        "postStart",
        "postStart",
    ]
    assert "--- postCreateCommand" in lines
    log = (workspace / ".codespace-logs" / "lifecycle.log").read_text()
    assert log.count("=== start") == 2


async def test_named_commands_run_in_parallel_with_prefixed_output(workspace: Path) -> None:
    codespace = spec(postStartCommand={"a": "echo from-a", "b": ["echo", "from-b"]})
    lines: list[str] = []
    await run_lifecycle(codespace, workspace, env=os.environ, on_line=lines.append)
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
        await run_lifecycle(codespace, workspace, env=os.environ)
    assert failed.value.name == "onCreateCommand" and failed.value.returncode == 7
    assert "failing" in failed.value.tail
    assert not (workspace / "post-create-ran").exists()
    assert not (workspace / "post-start-ran").exists()
    with pytest.raises(LifecycleError):  # not marked created: runs again
        await run_lifecycle(codespace, workspace, env=os.environ)


async def test_commands_see_the_given_environment(workspace: Path) -> None:
    codespace = spec(postStartCommand='echo "$CODESPACE_TEST_VALUE" > seen')
    env = {**os.environ, "CODESPACE_TEST_VALUE": "from-env"}
    await run_lifecycle(codespace, workspace, env=env)
    assert (workspace / "seen").read_text() == "from-env\n"
