"""Shared test helpers.

``require(...)`` guards tests that need a real component: locally a missing component
skips the test with the reason; with ``CI=true`` it fails, so CI never passes by skipping.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
TOOLS = REPO_ROOT / ".tools"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip (locally) or fail (in CI) because a component is missing."""
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def require_executable(name: str, path: str | os.PathLike[str] | None = None) -> str:
    """Return the path of an executable, or skip/fail if it is not installed."""
    found = str(path) if path and Path(path).exists() else shutil.which(name)
    if not found:
        missing(f"{name} is not installed (run `make test` as root to install it)")
    return str(found)


def node_tool(name: str) -> str:
    """Path of a tool installed by scripts/install-node.sh under .tools/node."""
    return require_executable(name, TOOLS / "node" / "node_modules" / ".bin" / name)


# -- for tests that load ``pytest_jupyter.jupyter_server`` ------------------------------------


@pytest.fixture
def run(jp_asyncio_loop):
    """Run a coroutine on the test server's loop."""
    return jp_asyncio_loop.run_until_complete


@pytest.fixture
def extension(jp_serverapp):
    """Our server extension app (``extensions``) in the test server."""
    [app] = jp_serverapp.extension_manager.extension_apps["extensions"]
    return app


@pytest.fixture
def in_thread(jp_asyncio_loop):
    """Run a blocking call (a stdlib client) while a jupyter_server test server answers on
    its loop (tests that load ``pytest_jupyter.jupyter_server``)."""

    def call(function, *args, **kwargs):
        work = asyncio.to_thread(functools.partial(function, *args, **kwargs))
        return jp_asyncio_loop.run_until_complete(work)

    return call
