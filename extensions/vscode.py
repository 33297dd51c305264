"""VS Code in the browser: a jupyter-server-proxy entry that launches code-server.

``setup_code_server()`` returns the ``c.ServerProxy.servers["vscode"]`` entry (see
``config/singleuser/jupyter_server_config.py``): code-server listens on a unix socket that only
this server can reach, never on a network address, and opens the workspace. It is configured
from the environment the spawner sets (``CODESPACE_CODE_SERVER``, ``CODESPACE_WORKSPACE``,
``CODESPACE_SERVER_DIR``, ``CODESPACE_VSCODE_EXTENSIONS``, ``CODESPACE_VSCODE_SETTINGS``,
``CODESPACE_VSIX_PATH``); terminals
in VS Code inherit the server's environment, so the repository's environment comes first on
``PATH``.

``python -m extensions.vscode SOCKET`` is the launched command: it installs the requested
extensions that have a local VSIX (once; later starts find them installed), reports the
others as missing, installs our activity extension (``extensions/vscode_activity``: VS Code
use is codespace activity, see extensions/activity.py), then replaces itself with code-server.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from codespace.local.vscode import code_server_argv, install_argv, plan_extensions
from extensions import vscode_activity


def _paths() -> tuple[str, Path, Path]:
    code_server = os.environ.get("CODESPACE_CODE_SERVER", "")
    workspace = Path(os.environ.get("CODESPACE_WORKSPACE") or os.getcwd())
    server_dir = os.environ.get("CODESPACE_SERVER_DIR")
    state = Path(server_dir) / "vscode" if server_dir else Path.home() / ".codespace-vscode"
    return code_server, workspace, state


# The JupyterLab launcher section of the VS Code card (jupyter-server-proxy's default is
# "Notebook", which put it among the kernels); the section takes the card's icon.
LAUNCHER_CATEGORY = "VS Code"


def setup_code_server(icon_path: str | None = None) -> dict[str, Any] | None:
    """The server-proxy entry, or None when no code-server is configured."""
    code_server, _workspace, _state = _paths()
    if not code_server or not Path(code_server).exists():
        return None
    launcher: dict[str, Any] = {"title": "VS Code", "enabled": True, "category": LAUNCHER_CATEGORY}
    if icon_path:
        launcher["icon_path"] = icon_path
    return {
        "command": [sys.executable, "-m", "extensions.vscode", "{unix_socket}"],
        "unix_socket": True,
        "timeout": 60,
        "new_browser_tab": True,
        "launcher_entry": launcher,
    }


def install_extensions(code_server: str, state: Path) -> None:
    requested = os.environ.get("CODESPACE_VSCODE_EXTENSIONS", "").split()
    if not requested:
        return
    vsix_dirs = [Path(p) for p in os.environ.get("CODESPACE_VSIX_PATH", "").split(":") if p]
    plan = plan_extensions(requested, vsix_dirs)
    installed = state / "extensions"
    for extension_id, vsix in plan.install.items():
        if any(installed.glob(f"{extension_id.lower()}-*")):
            continue
        print(f"codespace: installing {extension_id} from {vsix}", file=sys.stderr, flush=True)
        subprocess.run(install_argv(code_server, vsix, state), check=False)
    if plan.missing:
        print(
            "codespace: no local VSIX for: " + ", ".join(plan.missing), file=sys.stderr, flush=True
        )


def install_activity_extension(code_server: str, state: Path) -> None:
    """Our activity extension, installed once per version (a failure is reported, and VS
    Code then runs without it: its use is not measured)."""
    wanted = f"{vscode_activity.EXTENSION_ID}-{vscode_activity.VERSION}"
    if (state / "extensions" / wanted).is_dir():
        return
    vsix = vscode_activity.pack_vsix(state / "vsix")
    done = subprocess.run(install_argv(code_server, vsix, state), check=False)
    if done.returncode:
        print("codespace: the activity extension was not installed", file=sys.stderr, flush=True)


def write_machine_settings(state: Path) -> None:
    """Machine-level settings (the user's own settings still win): the repo environment's
    interpreter, no telemetry or welcome page, then the repository's
    ``customizations.vscode.settings``."""
    settings: dict[str, Any] = {
        "telemetry.telemetryLevel": "off",
        "workbench.startupEditor": "none",
        "update.mode": "none",
    }
    env = os.environ.get("VIRTUAL_ENV")
    if env:
        settings["python.defaultInterpreterPath"] = str(Path(env) / "bin" / "python")
    with contextlib.suppress(ValueError):
        settings.update(json.loads(os.environ.get("CODESPACE_VSCODE_SETTINGS") or "{}"))
    machine = state / "user-data" / "Machine"
    machine.mkdir(parents=True, exist_ok=True)
    (machine / "settings.json").write_text(json.dumps(settings, indent=2) + "\n")


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m extensions.vscode SOCKET")
    code_server, workspace, state = _paths()
    state.mkdir(parents=True, exist_ok=True)
    write_machine_settings(state)
    install_extensions(code_server, state)
    install_activity_extension(code_server, state)
    command = code_server_argv(code_server, socket=argv[0], workspace=workspace, state_dir=state)
    os.execv(command[0], command)  # noqa: S606 - an argument list, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
