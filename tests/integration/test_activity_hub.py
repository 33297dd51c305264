"""Idle culling end to end: a real hub with its culler (hub.cull), local codespaces whose
``.codespace`` sets ``lifetime.idleTimeout: 60s`` (the hub's default is an hour, so the
spec's timeout is what applies), and what keeps them alive measured in their servers
(extensions/activity.py).

- a kernel executing a ``time.sleep`` loop past the timeout is not culled; a codespace whose
  kernel is idle, with a tab (its channels websocket) left open, is;
- an SSH session carrying input, and a running local job, each keep a codespace alive past the
  timeout; once they end, it is culled;
- a culled codespace is stopped, not deleted: it starts again with its workspace;
- the home page says why and when it stopped.

Servers report every 2 s here (``--CodespaceExtension.activity_interval=2``) and the culler
runs every 3 s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import requests
from websockets.sync.client import ClientConnection, connect

from tests.conftest import require_executable
from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.kernel import execute_request
from tests.helpers.repos import fixture_repo

pytestmark = pytest.mark.integration

USER = "casey"
TIMEOUT = 60  # the repository's lifetime.idleTimeout, in seconds
MANIFEST = "python:\n  requirements: [requirements.txt]\nlifetime:\n  idleTimeout: 60s\n"
CULLER = """
from hub.cull import configure_culler
configure_culler(c, timeout=3600, every=3)
c.Spawner.args = ["--CodespaceExtension.activity_interval=2"]
"""
SLEEP_LOOP = "import time\nwhile True:\n    time.sleep(0.5)\n"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    data = tmp_path_factory.mktemp("activity-hub") / "hub"
    config = uv_cache_config(tmp_path_factory) + "\n" + CULLER
    with running_hub(data, extra_config=config) as running:
        yield running


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_repo(tmp_path_factory.mktemp("activity-repo"), codespace_yaml=MANIFEST)


# -- helpers ------------------------------------------------------------------------------------


def running(hub: RunningHub, user: str) -> dict[str, Any]:
    response = hub.api("GET", f"/users/{user}")
    response.raise_for_status()
    return response.json().get("servers", {})


def activity(hub: RunningHub, user: str, server: str) -> dict[str, Any]:
    response = hub.api("GET", f"/codespace/activity/{user}/{server}")
    response.raise_for_status()
    return response.json()


def wait_for(check: Callable[[], bool], timeout: float, what: str, step: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise AssertionError(f"not within {timeout} s: {what}")


def start(hub: RunningHub, server: str, repo: Path) -> None:
    events = hub.spawn(USER, server, {"repo": str(repo)})
    assert events[-1].get("ready"), events


class KernelTab:
    """A kernel of a codespace with its channels websocket open, as a notebook tab holds it."""

    def __init__(self, hub: RunningHub, server: str) -> None:
        self.hub, self.server = hub, server
        made = hub.server_request(USER, server, "api/kernels", method="POST", json={})
        made.raise_for_status()
        self.kernel_id = made.json()["id"]
        url = f"ws://127.0.0.1:{hub.port}/user/{USER}/{server}/api/kernels/{self.kernel_id}"
        headers = {"Authorization": f"token {hub.token}"}
        self.socket: ClientConnection = connect(
            f"{url}/channels", additional_headers=headers, proxy=None, open_timeout=60
        )

    def execute(self, code: str) -> None:
        """Send ``code``; do not wait for it (a long cell keeps running)."""
        self.socket.send(json.dumps(execute_request(code, session=uuid.uuid4().hex)))

    def state(self) -> str:
        path = f"api/kernels/{self.kernel_id}"
        return self.hub.server_request(USER, self.server, path).json()["execution_state"]

    def close(self) -> None:
        self.socket.close()


class SshInput:
    """``ssh <alias> -- cat > /dev/null``, fed 4 KiB every 5 s in a thread: a session with
    input (typing, a transfer) for as long as it runs."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self) -> None:
        assert self.process.stdin is not None
        while not self.stopped.wait(5):
            self.process.stdin.write(os.urandom(4096))
            self.process.stdin.flush()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


def ssh_client(hub: RunningHub, home: Path) -> tuple[list[str], dict[str, str]]:
    """A laptop: a key added at the hub, ``codespace login`` and ``ssh-config`` done; returns
    the ssh options and the environment to run ``ssh`` with."""
    home.mkdir(parents=True, exist_ok=True)
    key = home / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    made = hub.api("POST", f"/users/{USER}/tokens", json={"note": "activity test"})
    made.raise_for_status()
    cli = [sys.executable, "-m", "codespace.cli"]
    hub_url = hub.url.rstrip("/")
    login = [*cli, "login", "--hub", hub_url, "--token-stdin", "--add-key", f"{key}.pub"]
    done = subprocess.run(
        login, input=made.json()["token"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    config = home / ".ssh" / "config"
    done = subprocess.run(
        [*cli, "ssh-config", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    options = [
        "-F", str(config), "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={home / 'known_hosts'}",
    ]  # fmt: skip
    return options, env


def login(hub: RunningHub, user: str) -> requests.Session:
    """A browser-like session logged in through the hub's form (the shared password)."""
    session = requests.Session()
    page = session.get(f"{hub.url}hub/login", timeout=60)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
    assert xsrf, page.text[-2000:]
    password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
    data = {"username": user, "password": password, "_xsrf": unescape(xsrf.group(1))}
    done = session.post(f"{hub.url}hub/login", data=data, timeout=60)
    assert done.ok and "/hub/login" not in done.url, done.text[-2000:]
    return session


# -- kernels: busy is kept, idle (with an open tab) is culled -----------------------------------


@pytest.fixture(scope="module")
def culled(hub: RunningHub, repo: Path) -> Iterator[dict[str, Any]]:
    """Two codespaces: "busy" runs a sleep loop in a kernel, "idle" has an idle kernel with
    its tab open and a file in its workspace; waits until the culler stopped "idle"."""
    start(hub, "busy", repo)
    start(hub, "idle", repo)
    body = {"type": "file", "format": "text", "content": "kept\n"}
    saved = hub.server_request(USER, "idle", "api/contents/kept.txt", method="PUT", json=body)
    saved.raise_for_status()
    busy, idle = KernelTab(hub, "busy"), KernelTab(hub, "idle")
    try:
        busy.execute(SLEEP_LOOP)
        wait_for(lambda: busy.state() == "busy", 60, "the sleep loop runs")
        began = time.monotonic()
        wait_for(lambda: "idle" not in running(hub, USER), TIMEOUT + 90, "idle is culled")
        yield {"busy": busy, "culled_after": time.monotonic() - began}
    finally:
        busy.close()
        idle.close()


def test_a_kernel_with_an_open_idle_tab_is_culled_after_the_spec_timeout(
    hub: RunningHub, culled: dict[str, Any]
) -> None:
    record = activity(hub, USER, "idle")
    stopped = record["stopped"]
    assert stopped["reason"] == "idle", record
    assert stopped["message"].startswith("Stopped after"), stopped
    assert "idle timeout 1 min" in stopped["message"]  # the spec's, not the hub's hour
    assert culled["culled_after"] < TIMEOUT + 60
    model = hub.api("GET", f"/users/{USER}?include_stopped_servers").json()
    assert "idle" in model["servers"]  # stopped, not deleted


def test_a_kernel_busy_past_the_timeout_is_not_culled(
    hub: RunningHub, culled: dict[str, Any]
) -> None:
    time.sleep(10)  # more rounds of the culler, well past the timeout since the loop began
    assert "busy" in running(hub, USER)
    assert culled["busy"].state() == "busy"
    report = activity(hub, USER, "busy")["report"]
    assert report["source"] == "kernel" and report["idleTimeout"] == TIMEOUT, report


def test_the_home_page_says_why_and_when(hub: RunningHub, culled: dict[str, Any]) -> None:
    page = login(hub, USER).get(f"{hub.url}hub/home", timeout=60)
    page.raise_for_status()
    row = page.text.split('data-server="idle"', 1)[1].split("</tr>", 1)[0]
    assert "codespace-stopped" in row and "Stopped after" in row, row
    assert "idle timeout 1 min" in row and "stopped at" in row
    busy_row = page.text.split('data-server="busy"', 1)[1].split("</tr>", 1)[0]
    assert "codespace-stopped" not in busy_row


def test_a_culled_codespace_starts_again_with_its_workspace(
    hub: RunningHub, repo: Path, culled: dict[str, Any]
) -> None:
    start(hub, "idle", repo)
    kept = hub.server_request(USER, "idle", "api/contents/kept.txt")
    kept.raise_for_status()
    assert kept.json()["content"] == "kept\n"
    # the new run reports: the reason goes
    wait_for(lambda: activity(hub, USER, "idle")["stopped"] is None, 30, "the reason is gone")
    hub.stop(USER, "idle")


# -- SSH input and a running job ----------------------------------------------------------------


def test_ssh_input_and_a_running_job_keep_a_codespace_alive(
    hub: RunningHub, repo: Path, tmp_path: Path
) -> None:
    require_executable("ssh")
    require_executable("sshd", "/usr/sbin/sshd")
    start(hub, "sshy", repo)
    start(hub, "jobby", repo)
    options, env = ssh_client(hub, tmp_path / "laptop")
    session = SshInput(["ssh", *options, "codespace-sshy", "--", "cat > /dev/null"], env)
    job = {"name": "long", "command": ["sleep", "600"]}
    made = hub.server_request(USER, "jobby", "codespace/api/jobs", method="POST", json=job)
    assert made.status_code == 201, made.text
    job_id = made.json()["jobs"][0]["id"]
    try:
        time.sleep(TIMEOUT + 30)
        alive = running(hub, USER)
        assert "sshy" in alive and "jobby" in alive, alive
        assert activity(hub, USER, "sshy")["report"]["source"] == "ssh"
        assert activity(hub, USER, "jobby")["report"]["source"] == "jobs"
    finally:
        session.stop()
        path = f"codespace/api/jobs/{job_id}/cancel"
        cancelled = hub.server_request(USER, "jobby", path, method="POST", json={})
        assert cancelled.status_code == 200, cancelled.text
    # nothing keeps them any more: both are culled
    wait_for(
        lambda: not {"sshy", "jobby"} & set(running(hub, USER)),
        TIMEOUT + 90,
        "sshy and jobby are culled once idle",
    )
    for server in ("sshy", "jobby"):
        assert activity(hub, USER, server)["stopped"]["reason"] == "idle"


def test_only_who_may_stop_a_server_may_say_why(hub: RunningHub) -> None:
    """Another user's token cannot read a codespace's activity or record a stop reason for
    it; without a token, nothing."""
    hub.ensure_user("mallory")
    made = hub.api("POST", "/users/mallory/tokens", json={"note": "activity test"})
    made.raise_for_status()
    token = made.json()["token"]
    record = {"at": "2024-05-01T14:02:00Z", "reason": "idle", "message": "Stopped after 1 s"}
    forged = hub.api("POST", f"/codespace/activity/{USER}/idle/stopped", json=record, token=token)
    assert forged.status_code == 403, forged.text
    peek = hub.api("GET", f"/codespace/activity/{USER}/idle", token=token)
    assert peek.status_code == 403, peek.text
    listed = hub.api("GET", "/codespace/activity", token=token)
    assert listed.status_code == 200, listed.text
    assert all(r["user"] == "mallory" for r in listed.json()["servers"])
    anonymous = requests.get(f"{hub.url}hub/api/codespace/activity", timeout=30)
    assert anonymous.status_code in (401, 403)
