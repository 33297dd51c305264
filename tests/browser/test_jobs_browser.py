"""Browser test: submit a notebook as a job from JupyterLab and open its executed output.

Runs ``jobs_codespace.mjs`` (playwright-core + Debian Chromium) against a real hub: a local
codespace of a repository with a small notebook (a cell tagged ``parameters`` and a cell that
prints a value computed with the repository's own package), right-clicked in the file browser
-> "Submit as job..." -> the local backend with parameters; the Jobs sidebar (at its default
width: no sideways scrolling, states and times not cut) shows it running then succeeded, with
its log; "Open output" opens the executed notebook, which shows the printed value - the
parameter injected, run in the codespace's environment.
Screenshots go to ``artifacts/browser/jobs-*.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.driver import ARTIFACTS, browser_tools
from tests.conftest import REPO_ROOT, missing, require_executable
from tests.helpers.hub import running_hub
from tests.helpers.repos import commit_files, fixture_repo, share_with_accounts

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCRIPT = Path(__file__).with_name("jobs_codespace.mjs")
LABEXTENSION = REPO_ROOT / "extensions" / "labextension" / "static" / "package.json"
# The server side of jobs: the REST API and the local backend.
JOBS_SERVER = (REPO_ROOT / "extensions" / "jobs_handlers.py", REPO_ROOT / "codespace/jobs/local.py")
NOTEBOOK = "report.ipynb"
PARAMETERS = {"greeting": "from-the-lab"}
EXPECT = "from-the-lab: value 84"  # cs_fixture_pkg.VALUE (42) * 2, with the injected greeting


def _cell(number: int, source: str, tags: list[str] | None = None) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": f"cell-{number}",
        "metadata": {"tags": tags} if tags else {},
        "outputs": [],
        "source": source,
    }


def report_notebook() -> str:
    """A notebook as the lab writes one: a ``parameters`` cell, a pause (the Jobs panel sees
    it running), and a cell printing a value from the repository's own package."""
    cells = [
        _cell(1, 'greeting = "hello"', tags=["parameters"]),
        _cell(2, "import time\n\ntime.sleep(8)"),
        _cell(3, 'import cs_fixture_pkg\n\nprint(f"{greeting}: value {cs_fixture_pkg.VALUE * 2}")'),
    ]
    notebook = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "codespace", "display_name": "repo", "language": "python"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1) + "\n"


def test_submit_a_notebook_as_a_job_and_open_its_output(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tools = browser_tools()
    require_executable("the built lab extension (make install-extension)", LABEXTENSION)
    absent = [str(path.relative_to(REPO_ROOT)) for path in JOBS_SERVER if not path.exists()]
    if absent:
        missing(f"the jobs REST API and local backend ({', '.join(absent)})")
    repo = fixture_repo(tmp_path, codespace_yaml="python:\n  requirements: [requirements.txt]\n")
    commit_files(repo, {NOTEBOOK: report_notebook()}, message="a report notebook")
    share_with_accounts(repo)
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # the session's shared uv cache
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    with running_hub(tmp_path / "hub", extra_config=config) as hub:
        password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
        result, steps = tools.run(
            SCRIPT,
            hub.url,
            user="jobs-user",
            password=password,
            repo=repo,
            server="jobs",
            NOTEBOOK=NOTEBOOK,
            PARAMETERS=json.dumps(PARAMETERS),
            EXPECT=EXPECT,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    submit = steps["submit"]
    assert submit["menu"] == ["Submit as Job…"], submit
    form = submit["form"]
    assert form["name"] == "report" and form["parameters"], form  # prefilled from the file
    assert "local" in form["backends"], form
    states = steps["states"]["states"]  # every state the job's row showed
    assert "running" in states and states[-1] == "succeeded", states
    assert states.index("running") < states.index("succeeded"), states
    panel = steps["panel"]
    facts = panel["detail"]["facts"]
    assert facts["State"] == "succeeded" and facts["Exit code"] == "0", facts
    assert facts["Runs"] == NOTEBOOK and json.loads(facts["Parameters"]) == PARAMETERS, facts
    assert facts["Resources"] == "10m limit", facts
    assert facts["Output"].endswith(".ipynb"), facts
    assert panel["detail"]["log"].strip(), panel["detail"]  # the log's tail is shown
    actions = {a["label"]: a["disabled"] for a in panel["detail"]["actions"]}
    assert actions["Open output"] is False and actions["Cancel"] is True, actions
    for when in ("running", "done"):
        check_panel_layout(when, panel["layout"][when])
    output = steps["output"]
    assert output["tab"] == facts["Output"].split("/")[-1], output
    assert any(EXPECT in text for text in output["outputs"]), output
    for shot in ("01-submit", "02-panel", "03-output"):
        assert (ARTIFACTS / f"jobs-{shot}.png").stat().st_size > 0


def check_panel_layout(when: str, seen: dict) -> None:
    """The Jobs sidebar at its default width (about 250px): it never scrolls sideways; the
    title, each job's state and elapsed / limit, the actions and the log stay inside it."""
    assert seen["width"] < 320, seen  # the default width, not a widened sidebar
    assert seen["scrollWidth"] <= seen["width"] and seen["scrollLeft"] == 0, (when, seen)
    assert seen["titleInside"], (when, seen)
    assert seen["cells"] and not [cell for cell in seen["cells"] if cell["cut"]], (when, seen)
    if when == "done":
        assert seen["actionsInside"] and all(seen["actionsInside"]), seen
        assert seen["logInside"], seen
