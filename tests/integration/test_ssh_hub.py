"""ssh, scp, sftp and port forwarding into a local codespace through a real hub, with real
OpenSSH on both ends: the user's key added at the hub, ``codespace login`` and
``codespace ssh-config`` once, then plain ``ssh``/``scp``/``sftp`` with the written config.

The path: OpenSSH client -> ``codespace ssh-proxy`` (ProxyCommand, a websocket with the hub
token) -> the hub's proxy -> the codespace's jupyter-server-proxy (``<server>/sshd/``) -> a
unix socket -> ``sshd -i`` as the codespace's account, in its sandbox.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_executable
from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import fixture_repo

pytestmark = pytest.mark.integration

USER, SERVER, ALIAS = "sasha", "dev", "codespace-dev"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    require_executable("ssh")
    require_executable("sshd", "/usr/sbin/sshd")
    data = tmp_path_factory.mktemp("ssh-hub") / "hub"
    with running_hub(data, extra_config=uv_cache_config(tmp_path_factory)) as running:
        yield running


class Client:
    """The user's machine: a home with a key, ``codespace`` CLI state and an ssh config."""

    def __init__(self, home: Path, hub: RunningHub, user: str) -> None:
        self.home, self.hub, self.user = home, hub, user
        home.mkdir(parents=True, exist_ok=True)
        self.key = home / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)], check=True
        )
        self.config = home / ".ssh" / "config"
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
        }

    def codespace(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "codespace.cli", *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def ssh_options(self) -> list[str]:
        return [
            "-F", str(self.config),
            "-i", str(self.key),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.home / 'known_hosts'}",
        ]  # fmt: skip

    def run(self, tool: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        argv = [tool, *self.ssh_options(), *args]
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


def user_token(hub: RunningHub, user: str) -> str:
    hub.ensure_user(user)
    made = hub.api("POST", f"/users/{user}/tokens", json={"note": "ssh test"})
    made.raise_for_status()
    return made.json()["token"]


@pytest.fixture(scope="module")
def client(hub: RunningHub, tmp_path_factory: pytest.TempPathFactory) -> Client:
    repo = fixture_repo(tmp_path_factory.mktemp("ssh-repo"))
    events = hub.spawn(USER, SERVER, {"repo": str(repo)})
    assert events[-1].get("ready"), events
    me = Client(tmp_path_factory.mktemp("laptop") / "home", hub, USER)
    token = user_token(hub, USER)
    hub_url = hub.url.rstrip("/")
    logged = me.codespace(
        "login", "--hub", hub_url, "--token-stdin", "--add-key", f"{me.key}.pub", stdin=token
    )
    assert logged.returncode == 0, logged.stderr
    written = me.codespace("ssh-config", "--config", str(me.config))
    assert written.returncode == 0, written.stderr
    assert f"Host {ALIAS}" in me.config.read_text(), me.config.read_text()
    return me


def test_a_command_runs_in_the_repository_environment_as_the_account(client) -> None:
    done = client.run("ssh", ALIAS, "--", "python", "-c", "'import cs_fixture_pkg, getpass; "
                      "print(cs_fixture_pkg.VALUE, getpass.getuser())'")  # fmt: skip
    assert done.returncode == 0, done.stderr
    value, user = done.stdout.split()
    assert value == "42"
    assert user == ("cs-sasha" if os.geteuid() == 0 else os.environ.get("USER", user))


def test_scp_both_ways_and_sftp(client, tmp_path: Path) -> None:
    payload = tmp_path / "up.bin"
    payload.write_bytes(os.urandom(3 << 20))
    up = client.run("scp", "-q", str(payload), f"{ALIAS}:up.bin")
    assert up.returncode == 0, up.stderr
    down = tmp_path / "down.bin"
    back = client.run("scp", "-q", f"{ALIAS}:up.bin", str(down))
    assert back.returncode == 0, back.stderr
    assert down.read_bytes() == payload.read_bytes()
    batch = tmp_path / "batch"
    batch.write_text("pwd\nls\nget README.md readme-copy\n")
    sftp = subprocess.run(
        ["sftp", *client.ssh_options(), "-b", str(batch), ALIAS],
        cwd=tmp_path,
        env=client.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert sftp.returncode == 0, sftp.stderr
    assert "up.bin" in sftp.stdout
    assert (tmp_path / "readme-copy").read_text().startswith("# fixture")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_local_forwarding_reaches_a_process_in_the_codespace(client) -> None:
    remote, local = _free_port(), _free_port()
    server = (
        "import http.server, socketserver; "
        f"socketserver.TCPServer(('127.0.0.1', {remote}), "
        "http.server.SimpleHTTPRequestHandler).handle_request()"
    )
    tunnel = subprocess.Popen(
        [
            "ssh", *client.ssh_options(), "-L", f"{local}:127.0.0.1:{remote}",
            ALIAS, "--", "python", "-c", f'"{server}"',
        ],
        env=client.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with socket.create_connection(("127.0.0.1", local), timeout=5) as conn:
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    answer = conn.recv(65536)
                if b"200" in answer.split(b"\r\n", 1)[0]:
                    break
            except OSError:
                pass
            assert tunnel.poll() is None, tunnel.stderr.read().decode()
            assert time.monotonic() < deadline, "no answer through the tunnel"
            time.sleep(0.5)
    finally:
        tunnel.kill()
        tunnel.wait(30)


def test_remote_ssh_needs_hold(client) -> None:
    """What desktop VS Code Remote-SSH relies on: an exec channel with a shell, a writable
    home, forwarding allowed (checked above), a pty when asked."""
    done = client.run(
        "ssh", "-tt", ALIAS, "--", "sh", "-c",
        "'test -w \"$HOME\" && touch \"$HOME/.vscode-probe\" && uname -s && tty'",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Linux" in done.stdout and "/dev/pts/" in done.stdout, done.stdout


def test_an_unknown_key_is_refused(client, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    options = client.ssh_options()
    options[options.index("-i") + 1] = str(stranger)
    done = subprocess.run(
        ["ssh", *options, ALIAS, "--", "true"],
        env=client.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 255
    assert "Permission denied (publickey)" in done.stderr, done.stderr


def test_another_users_hub_token_is_refused_at_the_proxy(client, hub, tmp_path: Path) -> None:
    mallory = Client(tmp_path / "mallory", hub, "mallory")
    logged = mallory.codespace("login", "--hub", hub.url.rstrip("/"), "--token-stdin",
                               stdin=user_token(hub, "mallory"))  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    proxied = mallory.codespace("ssh-proxy", f"{USER}/{SERVER}", stdin="SSH-2.0-test\r\n")
    assert proxied.returncode == 255 and proxied.stdout == "", proxied
    # and the websocket itself, asked directly with mallory's token
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = hub.url.replace("http://", "ws://") + f"user/{USER}/{SERVER}/sshd/"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Authorization": f"token {user_token(hub, 'mallory')}"})
    assert refused.value.response.status_code == 403


def test_connecting_to_a_stopped_codespace_starts_it(client, hub) -> None:
    hub.stop(USER, SERVER)
    started = time.monotonic()
    done = client.run("ssh", ALIAS, "--", "echo", "woke", timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "woke"
    assert "%]" in done.stderr or "start" in done.stderr.lower(), done.stderr  # progress
    assert hub.api("GET", f"/users/{USER}").json()["servers"][SERVER]["ready"]
    assert time.monotonic() - started < 600
