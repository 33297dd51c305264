"""Browser test: log in, spawn from the form, watch progress, use JupyterLab and VS Code.

Runs ``local_codespace.mjs`` (playwright-core + Debian Chromium) against a real hub.
Screenshots go to ``artifacts/browser/`` (kept by CI as artifacts).
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from tests.browser.driver import ARTIFACTS, browser_tools
from tests.conftest import TOOLS, require_executable
from tests.helpers.hub import running_hub
from tests.helpers.repos import fixture_repo

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCRIPT = Path(__file__).with_name("local_codespace.mjs")


def _environ(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        return {}


def test_login_spawn_lab_and_vscode(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tools = browser_tools()
    require_executable(
        "code-server", TOOLS / "code-server" / "node_modules" / ".bin" / "code-server"
    )
    repo = fixture_repo(tmp_path, codespace_yaml="python:\n  requirements: [requirements.txt]\n")
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # the session's shared uv cache
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    with running_hub(tmp_path / "hub", extra_config=config) as hub:
        password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
        result, steps = tools.run(
            SCRIPT, hub.url, user="browser-user", password=password, repo=repo, server="demo"
        )
    left = [
        process.pid
        for process in psutil.process_iter()
        if _environ(process).get("CODESPACE_WORKSPACE", "").startswith(str(tmp_path))
    ]
    assert left == [], "processes of the stopped codespace are still running"
    assert result.returncode == 0, result.stdout + result.stderr
    assert steps["progress"]["environment"]  # the progress page showed the steps
    cards = steps["lab"]["cards"]
    assert any("VS Code" in card for card in cards)
    assert any("repo (Python" in card for card in cards)  # the kernel, named after the repo
    assert not any("ipykernel" in card for card in cards)  # not the platform's
    opened = steps["opened"]  # the lab opens on the repository
    assert opened["fileBrowser"] and "README.md" in opened["files"], opened
    assert opened["current"] == "README.md", opened
    sections = {section["title"]: section for section in steps["lab"]["sections"]}
    vscode = sections.get("VS Code")  # its own launcher section, with its icon
    assert vscode and len(vscode["cards"]) == 1 and vscode["icon"], sections
    assert vscode["cardIcon"], vscode
    assert not any("VS Code" in card for card in sections["Notebook"]["cards"])
    assert "vscode" in steps
    for name in ("01-spawn-form", "03-jupyterlab", "03-launcher", "04-vscode"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0
