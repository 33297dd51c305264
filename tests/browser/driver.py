"""Run a browser driver (``*.mjs``: playwright-core + Debian Chromium) against a real hub.

The drivers share ``hub_browser.mjs`` (launch, login, spawn form) and print one JSON line per
milestone; :meth:`BrowserTools.run` returns the process and those milestones by step name.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT, TOOLS, require_executable

ARTIFACTS = REPO_ROOT / "artifacts" / "browser"


@dataclass(frozen=True)
class BrowserTools:
    node: str
    chromium: str
    playwright: Path

    def run(
        self,
        script: Path,
        hub_url: str,
        *,
        user: str,
        password: str,
        repo: Path,
        server: str,
        **extra: str,
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, dict]]:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "HUB_URL": hub_url,
            "HUB_USER": user,
            "HUB_PASSWORD": password,
            "REPO": str(repo),
            "SERVER": server,
            "ARTIFACTS": str(ARTIFACTS),
            "CHROMIUM": self.chromium,
            "PLAYWRIGHT_CORE_DIR": str(self.playwright),
            **extra,
        }
        result = subprocess.run(
            [self.node, str(script)], env=env, capture_output=True, text=True, timeout=600
        )
        steps = {}
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                steps[event["step"]] = event
        return result, steps


def browser_tools() -> BrowserTools:
    """node, Debian Chromium and playwright-core, or skip (locally) / fail (CI=true)."""
    node = require_executable("node")
    chromium = require_executable("chromium", "/usr/bin/chromium")
    playwright = TOOLS / "node" / "node_modules" / "playwright-core"
    require_executable("playwright-core", playwright / "package.json")
    return BrowserTools(node, chromium, playwright)
