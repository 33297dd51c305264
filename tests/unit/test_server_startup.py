"""A codespace server starts no Node.js process (extensions/startup.py, applied by
config/singleuser/jupyter_server_config.py): each one cost about half a CPU-second of every
start, twenty times over when twenty users start at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, missing

SINGLEUSER_CONFIG = REPO_ROOT / "config" / "singleuser" / "jupyter_server_config.py"

# What the server does at start that may run a subprocess: load its config, import
# JupyterLab's server extension, let jupyter-lsp look for language servers. Every process
# started meanwhile is recorded.
PROBE = """
import json, subprocess, sys
started = []
_init = subprocess.Popen.__init__
def record(self, args, *rest, **kwargs):
    started.append([str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)])
    _init(self, args, *rest, **kwargs)
subprocess.Popen.__init__ = record
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader
config = Config()
if sys.argv[1] != "-":
    config = PyFileConfigLoader(sys.argv[1]).load_config()
import jupyterlab.labapp
from jupyter_lsp.manager import LanguageServerManager
LanguageServerManager(config=config).initialize()
print(json.dumps(started))
"""


def _processes_at_start(config_file: str, cwd: Path) -> list[list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, config_file],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_server_start_runs_no_node_process(tmp_path: Path) -> None:
    if not (shutil.which("node") and shutil.which("npm")):
        missing("Node.js and npm on PATH (the processes this guards against)")
    without = _processes_at_start("-", tmp_path)
    assert any("node" in Path(argv[0]).name for argv in without), without  # Jupyter's default
    assert any("npm" in Path(argv[0]).name for argv in without), without
    assert _processes_at_start(str(SINGLEUSER_CONFIG), tmp_path) == []


def test_language_servers_are_still_found_where_npm_installs_them(tmp_path: Path) -> None:
    from extensions.startup import node_roots

    roots = node_roots(tmp_path)
    assert roots[0] == str(tmp_path)  # node_modules of the workspace
    assert {"/usr/lib", "/usr/local/lib"} <= set(roots)  # npm -g: Debian's, nodejs.org's
    assert str(Path(sys.prefix) / "lib") in roots


def test_skip_yarn_config_answers_as_jupyterlab_does_without_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyterlab import commands

    from extensions.startup import skip_yarn_config

    monkeypatch.setattr(commands, "_yarn_config", commands._yarn_config)  # restored after
    assert skip_yarn_config() is True
    assert commands._yarn_config(None) == {"yarn config": {}, "npm config": {}}
    assert commands.AppOptions().registry == commands.YARN_DEFAULT_REGISTRY


def test_skip_yarn_config_leaves_a_jupyterlab_without_it_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyterlab import commands

    from extensions.startup import skip_yarn_config

    monkeypatch.delattr(commands, "_yarn_config")
    assert skip_yarn_config() is False
    assert not hasattr(commands, "_yarn_config")
