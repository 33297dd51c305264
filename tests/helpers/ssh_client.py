"""Test doubles for the SSH client's tests: the hub's REST API (user, servers, start with
progress, keys), a jupyter_server whose ``sshd`` entry is jupyter-server-proxy's raw socket
proxy (to a TCP echo server or a real sshd), and the fixtures the two test modules share."""

from __future__ import annotations

import getpass
import http.server
import json
import os
import select
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from codespace.ssh.hubs import HubLogin, HubStore
from tests.conftest import require_executable

TOKEN = "hub-token-alice"
JUPYTER_TOKEN = "jupyter-token"  # the single-user server accepts this one (and the hub's)
CLI = [sys.executable, "-m", "codespace.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# the hub's REST API, as a test double --------------------------------------------------------


class HubDouble:
    """``/hub/api/user``, ``users/{u}``, ``servers/{s}`` (+ ``/progress``) and the keys API.

    ``codespaces``: name -> {"ready", "pending", "url"}; a start goes through the progress
    ``steps`` to ready (or to ``fail_with``'s message)."""

    def __init__(self, user: str = "alice", tokens: tuple[str, ...] = (TOKEN,)) -> None:
        self.user, self.tokens = user, set(tokens)
        self.codespaces: dict[str, dict[str, Any]] = {}
        self.steps = [(20, "building the environment"), (60, "starting JupyterLab")]
        self.fail_with: str | None = None
        self.keys: dict[str, str] = {}
        self.requests: list[str] = []
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                double.handle(self, "GET")

            def do_POST(self) -> None:
                double.handle(self, "POST")

            def do_DELETE(self) -> None:
                double.handle(self, "DELETE")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, name: str, *, ready: bool, url: str = "") -> None:
        self.codespaces[name] = {"ready": ready, "pending": None, "url": url}

    def model(self, name: str) -> dict[str, Any]:
        state = self.codespaces[name]
        path = f"/user/{self.user}/{name}/" if name else f"/user/{self.user}/"
        return {
            "name": name,
            "ready": state["ready"],
            "pending": state["pending"],
            "stopped": not (state["ready"] or state["pending"]),
            "url": state["url"] or path,
            "progress_url": f"/hub/api/users/{self.user}/servers/{name}/progress",
        }

    def send(self, request: Any, status: int, body: Any = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    def handle(self, request: Any, method: str) -> None:
        url = urllib.parse.urlsplit(request.path)
        self.requests.append(f"{method} {request.path}")
        if request.headers.get("Authorization", "").removeprefix("token ") not in self.tokens:
            return self.send(request, 403, {"status": 403, "message": "Forbidden"})
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[3:]]  # after /hub/api/
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"null")
        if parts == ["user"]:
            return self.send(request, 200, {"kind": "user", "name": self.user, "token_id": "a7"})
        if parts[:1] == ["codespace"] and method == "POST":
            status = 409 if body["key"] in self.keys else 201
            self.keys[body["key"]] = body["title"]
            return self.send(request, status, {"key": body["key"]})
        if parts[:2] == ["users", self.user] and len(parts) == 2:
            every = "include_stopped_servers" in url.query
            names = [n for n, s in self.codespaces.items() if every or s["ready"] or s["pending"]]
            return self.send(request, 200, {"servers": {n: self.model(n) for n in names}})
        if parts[2:3] == ["tokens"] and method == "DELETE":
            return self.send(request, 204)
        if parts[2:3] == ["servers"] and len(parts) == 4 and method == "POST":
            state = self.codespaces.setdefault(parts[3], {"ready": False, "url": ""})
            if state["ready"]:
                return self.send(request, 400, {"message": "is already running"})
            state["pending"] = "spawn"
            return self.send(request, 202)
        if parts[2:3] == ["servers"] and parts[4:] == ["progress"]:
            return self.progress(request, parts[3])
        return self.send(request, 404, {"message": "Not Found"})

    def progress(self, request: Any, name: str) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/event-stream")
        request.end_headers()
        state = self.codespaces[name]
        events = [{"progress": p, "message": m} for p, m in self.steps]
        if self.fail_with:
            events.append({"progress": 100, "failed": True, "message": self.fail_with})
        else:
            events.append({"progress": 100, "ready": True, "message": "Server ready"})
        for event in events:
            time.sleep(0.05)
            request.wfile.write(b":\n\n" + f"data: {json.dumps(event)}\n\n".encode())
            request.wfile.flush()
        state["pending"] = None
        state["ready"] = not self.fail_with


@pytest.fixture
def hub() -> Any:
    double = HubDouble()
    yield double
    double.server.shutdown()


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def log_in(hub_url: str, token: str = TOKEN, user: str = "alice") -> HubLogin:
    login = HubLogin(hub_url, user, token)
    HubStore().save(login)
    return login


# the bridge through a real jupyter_server + jupyter-server-proxy -------------------------------

SESSION_EXTENSION = """
import json, os
from jupyter_server.base.handlers import APIHandler
from tornado import web

class Session(APIHandler):
    @web.authenticated
    def get(self):
        path = os.environ.get("FAKE_CODESPACE_SESSION")
        self.finish(open(path).read() if path else "{}")

def _jupyter_server_extension_points():
    return [{"module": "fake_session"}]

def _load_jupyter_server_extension(app):
    app.web_app.add_handlers(".*$", [(app.base_url + "codespace/api/session", Session)])
"""


class JupyterServer:
    """A jupyter_server whose ``sshd`` entry is a raw socket proxy (``c.ServerProxy.servers``),
    with a stand-in session endpoint (the session JSON from an environment variable)."""

    def __init__(self, directory: Path, sshd: dict[str, Any], session: Path | None = None) -> None:
        directory.mkdir(parents=True)
        (directory / "fake_session.py").write_text(SESSION_EXTENSION)
        config = directory / "jupyter_server_config.py"
        extensions = {
            "extensions": False,
            "jupyterlab": False,
            "jupyter_lsp": False,
            "notebook_shim": False,
            "jupyter_server_terminals": False,
            "jupyter_server_proxy": True,
            "fake_session": True,
        }
        config.write_text(
            f"c.ServerApp.jpserver_extensions = {extensions!r}\n"
            f"c.ServerProxy.servers = {{'sshd': { {**sshd, 'raw_socket_proxy': True}!r}}}\n"
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {
            **os.environ,
            "PYTHONPATH": str(directory),
            "HOME": str(directory),
            "JUPYTER_CONFIG_DIR": str(directory / "cfg"),
            "JUPYTER_DATA_DIR": str(directory / "data"),
            "JUPYTER_RUNTIME_DIR": str(directory / "run"),
            "FAKE_CODESPACE_SESSION": str(session or ""),
        }
        self.log = open(directory / "server.log", "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--config={config}",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                f"--IdentityProvider.token={JUPYTER_TOKEN}",
                "--ServerApp.open_browser=False",
                "--ServerApp.allow_root=True",
                f"--ServerApp.root_dir={directory}",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        self.wait_ready(directory / "server.log")

    def wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + 60
        request = urllib.request.Request(
            self.url + "api/status", headers={"Authorization": f"token {JUPYTER_TOKEN}"}
        )
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter_server exited:\n{log.read_text()}")
            try:
                urllib.request.urlopen(request, timeout=2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"jupyter_server did not start:\n{log.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        class Echo(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                while data := self.request.recv(65536):
                    self.request.sendall(data)

        super().__init__(("127.0.0.1", 0), Echo)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def echo_jupyter(tmp_path_factory: pytest.TempPathFactory) -> Any:
    echo = EchoServer()
    server = JupyterServer(
        tmp_path_factory.mktemp("echo") / "jp", {"port": echo.server_address[1]}, {}
    )
    yield server
    server.stop()
    echo.shutdown()


def run_proxy(hub_url: str, target: str, config_home: Path) -> subprocess.Popen:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    return subprocess.Popen(
        [*CLI, "ssh-proxy", "--hub", hub_url, target],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def read_exactly(stream: Any, size: int, timeout: float = 30) -> bytes:
    data, deadline = b"", time.monotonic() + timeout
    while len(data) < size:
        ready, _, _ = select.select([stream], [], [], max(0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError(f"read {len(data)} of {size} bytes")
        chunk = os.read(stream.fileno(), size - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {size} bytes")
        data += chunk
    return data


# real ssh to a real sshd, through the same bridge ----------------------------------------------


class Sshd:
    """An sshd (run as this account) behind a jupyter_server, a client key pair, and the
    session that names the login and the host key's fingerprint (a file tests may rewrite)."""

    def __init__(self, directory: Path) -> None:
        sshd = require_executable("sshd", "/usr/sbin/sshd")
        keygen = require_executable("ssh-keygen")
        require_executable("ssh")
        directory.mkdir(parents=True)
        self.directory = directory
        for name in ("host_key", "id_ed25519"):
            subprocess.run(
                [keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(directory / name)], check=True
            )
        shutil.copy(directory / "id_ed25519.pub", directory / "authorized_keys")
        listed = subprocess.run(
            [keygen, "-lf", str(directory / "host_key.pub")],
            capture_output=True,
            text=True,
            check=True,
        )
        self.fingerprint = listed.stdout.split()[1]
        self.login = getpass.getuser()
        config = directory / "sshd_config"
        config.write_text(
            f"HostKey {directory / 'host_key'}\n"
            f"AuthorizedKeysFile {directory / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"StrictModes no\nPidFile {directory / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
            "AllowTcpForwarding yes\n"
        )
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.session_file = directory / "session.json"
        self.set_session(self.fingerprint)
        command = [sshd, "-D", "-e", "-f", str(config), "-o", "ListenAddress=127.0.0.1:{port}"]
        self.server = JupyterServer(
            directory / "jp", {"command": command, "timeout": 20}, self.session_file
        )

    def set_session(self, fingerprint: str) -> None:
        ssh = {
            "user": self.login,
            "hostKeyFingerprint": fingerprint,
            "available": True,
            "reason": "",
        }
        self.session_file.write_text(json.dumps({"ssh": ssh}))

    def client_options(self) -> list[str]:
        """ssh options that keep the test away from the account's own ~/.ssh."""
        return [
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={self.directory / 'known_hosts'}",
            "-o",
            f"IdentityFile={self.directory / 'id_ed25519'}",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
        ]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = Sshd(tmp_path_factory.mktemp("sshd") / "s")
    yield server
    server.server.stop()
