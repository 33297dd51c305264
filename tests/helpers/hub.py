"""A real JupyterHub + configurable-http-proxy for tests, on free 127.0.0.1 ports.

Reusable by every integration test that needs a hub::

    from tests.helpers.hub import running_hub

    def test_something(tmp_path):
        with running_hub(tmp_path / "hub", extra_config='''
    c.LocalCodespaceSpawner.vsix_dirs = []
    ''') as hub:
            hub.api("POST", "/users/alice")
            events = hub.spawn("alice", "demo", {"repo": "/path/to/repo"})
            assert events[-1]["ready"]
            response = hub.server_request("alice", "demo", "api/kernelspecs")

``running_hub(data_dir, extra_config="", base_config=LOCAL_CONFIG, env=None)`` writes a
config file that loads ``base_config`` (the embedded local configuration, whose spawner is
``LocalCodespaceSpawner``) and then ``extra_config`` (Python; ``c`` is the config object: set
``c.JupyterHub.spawner_class`` there to test another spawner; ``base_config=None`` starts
from a minimal hub: shared-password login, named servers, JupyterHub's default spawner). The
hub gets an admin service
token (``hub.token``, scopes to manage users and servers and to access them), listens on three
free ports, logs to ``data_dir/hub.log`` (shown when the hub fails to start), and on exit stops
every server through the API before stopping the hub and its proxy, so no process is left
behind. ``hub.restart()`` stops only the hub (servers keep running) and starts it again.
The proxy comes from ``.tools/node`` (``scripts/install-node.sh``); without it the test skips
locally and fails in CI.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.conftest import REPO_ROOT, node_tool
from tests.helpers.repos import share_with_accounts

LOCAL_CONFIG = REPO_ROOT / "config" / "jupyterhub_config_local.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningHub:
    """Handle on a started hub: URLs, the admin token and helpers for its REST API."""

    data_dir: Path
    config_file: Path
    port: int
    token: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_servers: set[tuple[str, str]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "hub.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # -- REST API ------------------------------------------------------------------------

    def api(
        self, method: str, path: str, *, json: Any = None, token: str | None = None, **kw: Any
    ) -> requests.Response:
        """Call ``/hub/api{path}`` with the admin token (or ``token``)."""
        headers = {"Authorization": f"token {token or self.token}"}
        kw.setdefault("timeout", 60)
        return requests.request(
            method, f"{self.url}hub/api{path}", json=json, headers=headers, **kw
        )

    def ensure_user(self, user: str) -> None:
        response = self.api("GET", f"/users/{user}")
        if response.status_code == 404:
            self.api("POST", f"/users/{user}").raise_for_status()

    def spawn(
        self, user: str, server: str, options: Mapping[str, Any], *, timeout: float = 600
    ) -> list[dict[str, Any]]:
        """Start a named server and follow its progress; return the events (last: ready/failed).

        A request the hub refuses at once raises ``requests.HTTPError`` with its message.
        """
        self.ensure_user(user)
        response = self.api("POST", f"/users/{user}/servers/{server}", json=dict(options))
        if response.status_code >= 400:
            raise requests.HTTPError(f"{response.status_code}: {response.text}", response=response)
        self.started_servers.add((user, server))
        if response.status_code == 201:
            return [{"ready": True, "message": "started", "progress": 100}]
        return self.follow_progress(user, server, timeout=timeout)

    def follow_progress(self, user: str, server: str, *, timeout: float) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        with self.api(
            "GET", f"/users/{user}/servers/{server}/progress", stream=True, timeout=timeout
        ) as response:
            response.raise_for_status()
            for raw in response.iter_lines(decode_unicode=True):
                if raw and raw.startswith("data:"):
                    event = json.loads(raw[5:])
                    events.append(event)
                    if event.get("ready") or event.get("failed"):
                        break
        return events

    def stop(self, user: str, server: str, *, remove: bool = False) -> None:
        body = {"remove": True} if remove else None
        response = self.api("DELETE", f"/users/{user}/servers/{server}", json=body)
        if response.status_code not in (202, 204, 404):
            response.raise_for_status()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}").json()
            state = model.get("servers", {}).get(server)
            if not state or not state.get("pending"):
                return
            time.sleep(0.3)

    def server_request(
        self, user: str, server: str, path: str, method: str = "GET", **kw: Any
    ) -> requests.Response:
        """A request to ``/user/<user>/<server>/<path>`` through the proxy, as the admin."""
        headers = {"Authorization": f"token {self.token}"}
        kw.setdefault("timeout", 60)
        return requests.request(
            method, f"{self.url}user/{user}/{server}/{path}", headers=headers, **kw
        )

    # -- process -------------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "jupyterhub", "-f", str(self.config_file)],
                cwd=self.data_dir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited at start:\n{self.log_text()[-4000:]}")
            with contextlib.suppress(requests.ConnectionError):
                if self.api("GET", "/").status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the hub did not answer in {timeout} s:\n{self.log_text()[-4000:]}")

    def stop_hub(self) -> None:
        """Stop the hub and its proxy (servers keep running when cleanup_servers is off)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def restart(self) -> None:
        self.stop_hub()
        self.start()

    def shutdown(self) -> None:
        """Stop every server this hub knows about, then the hub."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(requests.RequestException):
                for user in self.api("GET", "/users").json():
                    for name in user.get("servers", {}):
                        self.stop(user["name"], name)
        self.stop_hub()


@contextlib.contextmanager
def running_hub(
    data_dir: Path,
    *,
    extra_config: str = "",
    base_config: Path | None = LOCAL_CONFIG,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Iterator[RunningHub]:
    """Start a hub for the duration of the ``with`` block (see the module docstring);
    ``port``: the proxy's (public) port, when a test must know it first (an OAuth callback)."""
    chp = node_tool("configurable-http-proxy")
    data_dir.mkdir(parents=True, exist_ok=True)
    share_with_accounts(data_dir.parent)  # per-user accounts reach their directories
    port, api_port, hub_port = port or free_port(), free_port(), free_port()
    token = secrets.token_hex(24)
    config_file = data_dir / "test_jupyterhub_config.py"
    lines = ["c = get_config()  # noqa: F821"]
    if base_config is not None:
        lines.append(f"load_subconfig({str(base_config)!r})  # noqa: F821")
    else:  # a minimal hub: any user name with a random shared password, named servers on
        lines += [
            "c.JupyterHub.authenticator_class = 'shared-password'",
            f"c.SharedPasswordAuthenticator.user_password = {secrets.token_hex(8)!r}",
            "c.Authenticator.allow_all = True",
            "c.JupyterHub.allow_named_servers = True",
        ]
    lines += [
        f"c.JupyterHub.ip = '127.0.0.1'; c.JupyterHub.port = {port}",
        f"c.JupyterHub.hub_ip = '127.0.0.1'; c.JupyterHub.hub_port = {hub_port}",
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{api_port}'",
        f"c.ConfigurableHTTPProxy.command = [{chp!r}]",
        f"c.JupyterHub.db_url = 'sqlite:///{data_dir / 'jupyterhub.sqlite'}'",
        f"c.JupyterHub.cookie_secret_file = {str(data_dir / 'cookie_secret')!r}",
        "c.JupyterHub.pid_file = ''",
        f"c.JupyterHub.services.append({{'name': 'test-admin', 'api_token': {token!r}}})",
        # tests clone repositories they made under the temporary directory
        f"c.LocalCodespaceSpawner.allowed_repo_roots = [{tempfile.gettempdir()!r}]",
        "c.JupyterHub.load_roles.append({'name': 'test-admin', 'services': ['test-admin'],"
        " 'scopes': ['admin:users', 'admin:servers', 'access:servers', 'read:hub', 'tokens']})",
        extra_config,
    ]
    config_file.write_text("\n".join(lines) + "\n")
    hub_env = dict(os.environ if env is None else env)
    hub_env.update(
        {
            "CODESPACE_HUB_DATA_DIR": str(data_dir),
            "CODESPACE_HUB_PORT": str(port),
            "CODESPACE_HUB_DEPLOY_PORT": str(free_port()),
            "PATH": f"{Path(sys.executable).parent}:{hub_env.get('PATH', '/usr/bin:/bin')}",
        }
    )
    hub_env.pop("CODESPACE_HUB_ADMIN_TOKEN", None)
    hub = RunningHub(data_dir, config_file, port, token, hub_env)
    hub.start()
    try:
        yield hub
    finally:
        hub.shutdown()


def uv_cache_config(factory: Any) -> str:
    """Hub config that shares this test session's uv cache (``pytest.TempPathFactory``):
    after the first build, the next hubs' builds are warm."""
    uv_cache = factory.getbasetemp() / "uv-cache"
    return f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
