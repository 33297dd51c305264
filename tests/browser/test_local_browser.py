"""Browser test: log in, spawn from the form, watch progress, use JupyterLab and VS Code.

Runs ``local_codespace.mjs`` (playwright-core + Debian Chromium) against a real hub.
Screenshots go to ``artifacts/browser/`` (kept by CI as artifacts).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.conftest import REPO_ROOT, TOOLS, require_executable
from tests.helpers.hub import running_hub
from tests.helpers.repos import fixture_repo

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCRIPT = Path(__file__).with_name("local_codespace.mjs")
ARTIFACTS = REPO_ROOT / "artifacts" / "browser"


def _environ(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        return {}


def test_login_spawn_lab_and_vscode(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    node = require_executable("node")
    chromium = require_executable("chromium", "/usr/bin/chromium")
    playwright = TOOLS / "node" / "node_modules" / "playwright-core"
    require_executable("playwright-core", playwright / "package.json")
    require_executable(
        "code-server", TOOLS / "code-server" / "node_modules" / ".bin" / "code-server"
    )
    repo = fixture_repo(tmp_path, codespace_yaml="python:\n  requirements: [requirements.txt]\n")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # the session's shared uv cache
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    with running_hub(tmp_path / "hub", extra_config=config) as hub:
        password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
        env = {
            **os.environ,
            "HUB_URL": hub.url,
            "HUB_USER": "browser-user",
            "HUB_PASSWORD": password,
            "REPO": str(repo),
            "SERVER": "demo",
            "ARTIFACTS": str(ARTIFACTS),
            "CHROMIUM": chromium,
            "PLAYWRIGHT_CORE_DIR": str(playwright),
        }
        result = subprocess.run(
            [node, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600
        )
    left = [
        process.pid
        for process in psutil.process_iter()
        if _environ(process).get("CODESPACE_WORKSPACE", "").startswith(str(tmp_path))
    ]
    assert left == [], "processes of the stopped codespace are still running"
    steps = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            steps[event["step"]] = event
    assert result.returncode == 0, result.stdout + result.stderr
    assert steps["progress"]["environment"]  # the progress page showed the steps
    cards = steps["lab"]["cards"]
    assert any("VS Code" in card for card in cards)
    assert any("(demo)" in card for card in cards)  # the repo environment's kernel
    assert not any("ipykernel" in card for card in cards)  # not the platform's
    assert "vscode" in steps
    for name in ("01-spawn-form", "03-jupyterlab", "04-vscode"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0
