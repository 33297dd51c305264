"""``GET /codespace/api/session``: what the lab opens when the codespace opens.

The JupyterLab extension asks once per server start and opens, in order: the workspace's
``CODESPACE_ERRORS.md`` (rendered) when the start left one, the files the repository names
(``customizations.codespaces.openFiles``, passed by both spawners as ``CODESPACE_OPEN_FILES``)
that exist, else the repository's README. Paths are relative to the server's root.

``envHash`` is the hash of the environment the server runs (the operator's ``status.envHash``).
``ssh`` says what an SSH client needs (:func:`codespace.ssh.runtime.ssh_status`): ``user``
(the account the server runs as: the login name), ``hostKeyFingerprint`` (``SHA256:...``),
``available`` and ``reason`` (why not, for the user), and ``path``, the websocket of the
server's sshd (``/user/<name>/<server>/sshd/``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from codespace.lifecycle_status import ERRORS_FILE
from codespace.ssh.runtime import ssh_status

API = r"/codespace/api/session"
READMES = ("README.md", "README.ipynb", "README.rst", "README.txt", "README")
STARTED = time.time()  # this server's start: the lab opens the files once per start


def files_to_open(workspace: Path, root: Path, wanted: list[str]) -> list[str]:
    """The files to open, relative to ``root``: the errors file, then ``wanted`` (those
    that exist inside the workspace), else the README."""
    workspace = workspace.resolve()

    def inside(relative: str) -> str | None:
        path = (workspace / relative).resolve()
        if not path.is_file() or not path.is_relative_to(workspace):
            return None
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            return None

    found = [name for name in wanted if isinstance(name, str) and inside(name)]
    if not found:
        names = {entry.name.lower(): entry.name for entry in _entries(workspace)}
        found = [names[r.lower()] for r in READMES if r.lower() in names][:1]
    opened = [inside(name) for name in found]
    errors = inside(ERRORS_FILE)
    return [path for path in [errors, *opened] if path]


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as entries:
            return [entry for entry in entries if entry.is_file()]
    except OSError:
        return []


def _wanted() -> list[str]:
    try:
        value = json.loads(os.environ.get("CODESPACE_OPEN_FILES", "[]"))
    except ValueError:
        return []
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


class SessionHandler(APIHandler):
    auth_resource = "contents"

    def initialize(self, workspace: str) -> None:
        self.workspace = Path(workspace)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        root = Path(self.settings.get("server_root_dir") or self.workspace).expanduser()
        opened = files_to_open(self.workspace, root, _wanted())
        body: dict[str, Any] = {"started": STARTED, "openFiles": opened}
        body["errorsFile"] = ERRORS_FILE if opened and opened[0].endswith(ERRORS_FILE) else None
        body["ssh"] = ssh_status(os.environ, self.base_url)
        body["envHash"] = os.environ.get("CODESPACE_ENV_HASH", "")  # what the server runs
        self.finish(json.dumps(body))


def session_handlers(workspace: str) -> list[tuple[str, type, dict[str, Any]]]:
    return [(API, SessionHandler, {"workspace": workspace})]
