"""The ``codespace-hub`` command: starts hub + proxy, prints how to log in, keeps secrets 0600."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import node_tool
from tests.helpers.hub import free_port

pytestmark = pytest.mark.integration


def wait_for(url: str, headers: dict[str, str], process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(url, headers=headers, timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    raise TimeoutError(log.read_text())


def test_codespace_hub_starts_with_a_password_and_an_admin_token(tmp_path: Path) -> None:
    node_tool("configurable-http-proxy")
    port = free_port()
    token = secrets.token_hex(20)
    data = tmp_path / "data"
    log = tmp_path / "hub.log"
    env = {**os.environ, "CODESPACE_HUB_ADMIN_TOKEN": token}
    command = [
        str(Path(sys.executable).parent / "codespace-hub"),
        "--port",
        str(port),
        "--data-dir",
        str(data),
        "--admin-user",
        "root-admin",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        headers = {"Authorization": f"token {token}"}
        wait_for(f"http://127.0.0.1:{port}/hub/api/users", headers, process, log)
        output = log.read_text()
        password = (data / "secrets" / "user-password").read_text().strip()
        assert f"http://127.0.0.1:{port}/" in output
        assert f"password: {password}" in output
        assert (data / "secrets" / "user-password").stat().st_mode & 0o777 == 0o600
        assert (data / "secrets" / "admin-password").stat().st_mode & 0o777 == 0o600
        assert (data / "jupyterhub.sqlite").exists()

        users = requests.get(f"http://127.0.0.1:{port}/hub/api/users", headers=headers).json()
        assert "root-admin" in [user["name"] for user in users]
        created = requests.post(f"http://127.0.0.1:{port}/hub/api/users/zoe", headers=headers)
        assert created.status_code == 201

        login = f"http://127.0.0.1:{port}/hub/login"
        session = requests.Session()
        page = session.get(login)
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        form = {"username": "zoe", "password": "wrong-password"}
        if xsrf:
            form["_xsrf"] = xsrf.group(1)
        refused = session.post(login, data=form, allow_redirects=False)
        assert refused.status_code == 403
        form["password"] = password
        accepted = session.post(login, data=form, allow_redirects=False)
        assert accepted.status_code == 302

        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout
        bound = [line.split()[3] for line in listening.splitlines()[1:] if line.split()]
        assert f"127.0.0.1:{port}" in bound
        assert f"0.0.0.0:{port}" not in bound and f"*:{port}" not in bound
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
