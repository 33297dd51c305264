"""What a codespace server skips at start: work for building JupyterLab, which it never does.

Twenty codespaces starting at once on two cores wait for each other's CPU, so every
CPU-second a start spends on something no user sees is paid twenty times
(``benchmarks/bench_storm.py``). Two such costs come from Node.js processes that the server
starts only to look things up for ``jupyter lab build`` and for Node.js language servers:

- JupyterLab's ``labapp`` asks yarn for the npm registry when it is imported
  (``jupyterlab.commands._yarn_config``, a ``node yarn.js config`` process, ~0.4 CPU-s); only
  building the lab uses it, and ``jupyter lab build`` in a terminal is a process of its own,
  which still asks.
- jupyter-lsp asks ``npm prefix -g`` and JupyterLab's staging directory where Node.js
  modules live (``LanguageServerManager.node_roots``, ~0.6 CPU-s): :func:`node_roots` names
  the usual places instead.

Both are applied by ``config/singleuser/jupyter_server_config.py``, before the extensions load.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def _no_yarn_config(logger: Any) -> dict[str, dict[str, Any]]:
    """JupyterLab's own answer when Node.js is absent: no user configuration."""
    return {"yarn config": {}, "npm config": {}}


def skip_yarn_config() -> bool:
    """Make JupyterLab skip the yarn configuration in this server (True when it applied).

    A JupyterLab without the private function (a later version that changed it) is left
    as it is: the server only starts slower."""
    try:
        from jupyterlab import commands
    except ImportError:  # a server without JupyterLab
        return False
    if not callable(getattr(commands, "_yarn_config", None)):
        return False
    commands._yarn_config = _no_yarn_config  # type: ignore[attr-defined]
    return True


def node_roots(workspace: Path | None = None) -> list[str]:
    """Where jupyter-lsp looks for ``node_modules``: the workspace, this Python's prefix (a
    conda-style ``lib/``), and the global prefixes of Debian's and nodejs.org's npm."""
    roots = [workspace or Path.cwd(), Path(sys.prefix) / "lib", Path(sys.prefix)]
    roots += [Path("/usr/local/lib"), Path("/usr/lib")]
    return [str(root) for root in roots]
