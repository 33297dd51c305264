"""Run code in a codespace's default kernel through the hub's proxy, as a notebook does.

    stdout, error = run_in_kernel(hub, "alice", "demo", "import numpy; print(numpy.__file__)")
    assert error is None, error

:func:`run_in_kernel` starts a kernel with ``POST api/kernels`` (the server's default kernel,
the codespace's), connects to its channels websocket through the proxy with the hub's admin
token, sends one ``execute_request`` (Jupyter messaging protocol 5.3), collects what the
kernel prints on stdout and the error it raises, until it is idle again, and deletes the
kernel. ``error`` is ``"ModuleNotFoundError: No module named 'x'"`` and the traceback, or
None. Each call starts a new kernel, so it sees the environment and the files as they are now.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from websockets.sync.client import connect

from tests.helpers.hub import RunningHub

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def execute_request(code: str, session: str) -> dict[str, Any]:
    """An ``execute_request`` on the shell channel (the websocket's JSON form)."""
    return {
        "header": {
            "msg_id": uuid.uuid4().hex,
            "msg_type": "execute_request",
            "session": session,
            "username": "codespace-tests",
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "channel": "shell",
    }


def run_in_kernel(
    hub: RunningHub, user: str, server: str, code: str, *, timeout: float = 180
) -> tuple[str, str | None]:
    """``(stdout, error)`` of ``code`` run in a new default kernel of ``user``'s ``server``."""
    started = hub.server_request(user, server, "api/kernels", method="POST", json={})
    started.raise_for_status()
    kernel_id = started.json()["id"]
    try:
        return _execute(hub, f"user/{user}/{server}/api/kernels/{kernel_id}", code, timeout)
    finally:
        hub.server_request(user, server, f"api/kernels/{kernel_id}", method="DELETE")


def _execute(
    hub: RunningHub, kernel_path: str, code: str, timeout: float
) -> tuple[str, str | None]:
    url = f"ws://127.0.0.1:{hub.port}/{kernel_path}/channels"
    headers = {"Authorization": f"token {hub.token}"}
    request = execute_request(code, session=uuid.uuid4().hex)
    msg_id = request["header"]["msg_id"]
    stdout: list[str] = []
    error: str | None = None
    deadline = time.monotonic() + timeout
    with connect(url, additional_headers=headers, proxy=None, open_timeout=60) as socket:
        socket.send(json.dumps(request))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no idle status in {timeout} s; stdout so far: {stdout}")
            message = json.loads(socket.recv(timeout=remaining))
            if message.get("channel") != "iopub":
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream" and content.get("name") == "stdout":
                stdout.append(content["text"])
            elif kind == "error":
                trace = ANSI.sub("", "\n".join(content.get("traceback", [])))
                error = f"{content['ename']}: {content['evalue']}\n{trace}"
            elif kind == "status" and content.get("execution_state") == "idle":
                return "".join(stdout), error
