"""Browser test: the codespaces home page and a launch link, in a logged-in Chromium.

Runs ``home_codespaces.mjs`` (playwright-core + Debian Chromium) against a real hub holding
two codespaces of one user (one running, one stopped): the home page lists them with
repository, ref, state and environment; "Copy link" puts the absolute launch link on the
clipboard; the share box shows it and the README badge; a refused New-codespace form shows the
spawner's reason and creates nothing; a launch link for a third repository and ref creates a
codespace and lands on the linked notebook in JupyterLab.
Screenshots go to ``artifacts/browser/home-*.png`` and ``launch-*.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

from codespace.kernel_layer import KERNEL_NAME
from tests.browser.driver import ARTIFACTS, browser_tools
from tests.helpers.hub import running_hub
from tests.helpers.repos import commit_files, fixture_repo, share_with_accounts

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCRIPT = Path(__file__).with_name("home_codespaces.mjs")
NOTEBOOK = "notebooks/hello.ipynb"
CELL = "print('hello from a launch link')"


def notebook(source: str) -> str:
    cell = {"cell_type": "code", "metadata": {}, "source": [source], "outputs": []}
    cell["execution_count"] = None
    kernel = {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    body = {"cells": [cell], "metadata": {"kernelspec": kernel}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(body, indent=1) + "\n"


def test_home_page_and_launch_link(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tools = browser_tools()
    running_repo = fixture_repo(tmp_path / "analysis")
    stopped_repo = fixture_repo(tmp_path / "models", value=7)
    linked = fixture_repo(tmp_path / "tutorial", value=9)
    commit_files(linked, {NOTEBOOK: notebook(CELL)})
    share_with_accounts(linked)
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # the session's shared uv cache
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    user = "home-user"
    with running_hub(tmp_path / "hub", extra_config=config) as hub:
        assert hub.spawn(user, "analysis", {"repo": str(running_repo), "ref": "main"})[-1]["ready"]
        assert hub.spawn(user, "models", {"repo": f"file://{stopped_repo}"})[-1]["ready"]
        hub.stop(user, "models")
        password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
        query = urlencode({"repo": str(linked), "ref": "main", "open": NOTEBOOK})
        result, steps = tools.run(
            SCRIPT,
            hub.url,
            user=user,
            password=password,
            repo=linked,
            server="",
            LAUNCH=f"{hub.url}hub/codespaces/new?{query}",
            NOTEBOOK=NOTEBOOK,
        )
        servers = hub.api("GET", f"/users/{user}?include_stopped_servers").json()["servers"]
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["name"]: row for row in steps["home"]["rows"]}
    assert rows["analysis"]["state"] == "running" and rows["models"]["state"] == "stopped"
    assert rows["analysis"]["repo"] == str(running_repo) and rows["analysis"]["ref"] == "main"
    assert rows["models"]["repo"] == f"file://{stopped_repo}"
    assert rows["models"]["ref"] == "default branch"
    assert all(row["environment"].startswith("cached") for row in rows.values())
    assert {"JupyterLab", "VS Code", "Stop", "Copy launch link"} <= set(rows["analysis"]["buttons"])
    assert {"Start", "Delete", "Copy launch link"} <= set(rows["models"]["buttons"])
    share = steps["home"]["share"]
    assert steps["home"]["copied"] == share["link"]
    assert share["link"].startswith(f"{hub.url}hub/codespaces/new?repo=")
    assert share["badge"] == (
        f"[![Open in Codespace Hub]({hub.url}hub/codespaces/badge.svg)]({share['link']})"
    )
    assert share["badgeLoaded"]
    refused = steps["refused"]
    assert "relative/path" in refused["error"] and refused["kept"] == "relative/path"
    assert sorted(refused["rows"]) == ["analysis", "models"]
    assert "A new codespace" in steps["confirm"]["plan"]
    lab = steps["lab"]
    assert "/spawn-pending/" in lab["pending"]
    assert lab["url"].endswith(f"/lab/tree/{NOTEBOOK}") and lab["tab"] == "hello.ipynb"
    assert CELL in lab["cells"][0]
    assert sorted(name for name in servers if name) == ["analysis", "models", "repo"]
    names = ("home-01-codespaces", "home-02-share", "home-03-refused")
    for name in (*names, "launch-01-confirm", "launch-03-notebook"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 0
