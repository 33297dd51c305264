"""The SSH client: login store, target and ssh command line, start-and-wait, and the
websocket bridge end to end through a real jupyter_server + jupyter-server-proxy
(``raw_socket_proxy``) to a TCP echo server and to a real sshd, with real ``ssh``.

The hub is a test double of its REST API (user, servers, start, progress, keys): the bridge
and the start logic only need those answers; the lead's integration tests run a real hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codespace.cli import ssh_commands
from codespace.ssh import sshconfig
from codespace.ssh.client import HubClient, HubError, Target, ensure_running, parse_target
from codespace.ssh.hubs import HubLogin, HubStore, LoginError, normalize_hub_url
from tests.helpers.ssh_client import (
    CLI,
    JUPYTER_TOKEN,
    TOKEN,
    HubDouble,
    JupyterServer,
    Sshd,
    config_home,
    echo_jupyter,
    free_port,
    hub,
    log_in,
    read_exactly,
    run_proxy,
    sshd,
)

__all__ = ["config_home", "echo_jupyter", "hub", "sshd"]  # fixtures

# the login store ------------------------------------------------------------------------------


def test_hub_urls_are_normalized() -> None:
    assert normalize_hub_url("https://Hub.Example.org/hub/home") == "https://hub.example.org"
    assert normalize_hub_url("http://h:8000/base/user/alice/lab?x=1") == "http://h:8000/base"
    assert normalize_hub_url("https://h.org/") == "https://h.org"
    for bad in ("h.org", "ftp://h.org", "https://u:p@h.org"):
        with pytest.raises(LoginError):
            normalize_hub_url(bad)


def test_login_stores_the_token_0600_and_logout_forgets_it(
    hub: HubDouble, config_home: Path
) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    done = subprocess.run(
        [*CLI, "login", "--hub", hub.url + "/hub/home", "--token-stdin"],
        input=TOKEN + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    path = config_home / "codespace" / "hubs.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["default"] == hub.url
    assert data["hubs"][hub.url] == {
        "url": hub.url,
        "user": "alice",
        "token": TOKEN,
        "tokenId": "a7",
    }

    other = HubLogin("https://other.example.org", "al", "t2")
    HubStore().save(other)  # several hubs; the last is the default
    assert HubStore().get().url == other.url and HubStore().get(hub.url).token == TOKEN

    done = subprocess.run(
        [*CLI, "logout", "--hub", hub.url, "--revoke"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "DELETE /hub/api/users/alice/tokens/a7" in hub.requests
    assert [h.url for h in HubStore().all()] == [other.url]


def test_login_refuses_a_bad_token(hub: HubDouble, config_home: Path, capsys: Any) -> None:
    code = ssh_commands_main(["login", "--hub", hub.url, "--token", "nope"])
    assert code == 1
    assert "refused the token" in capsys.readouterr().err
    assert not (config_home / "codespace" / "hubs.json").exists()


def test_login_adds_a_public_key_and_never_a_private_one(
    hub: HubDouble, config_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    key = (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE0n4F1Zk5cQ6h8dKkq2WmQe2U8QyJ9z8zq3p9Kk7s0a me@laptop"
    )
    (tmp_path / ".ssh" / "id_ecdsa.pub").write_text(key + "\n")
    assert ssh_commands_main(["login", "--hub", hub.url, "--token", TOKEN, "--add-key"]) == 0
    assert hub.keys == {key: "me@laptop"}
    assert "added the key" in capsys.readouterr().out
    assert ssh_commands_main(["login", "--hub", hub.url, "--token", TOKEN, "--add-key"]) == 0
    assert "already has" in capsys.readouterr().out  # 409: fine

    private = tmp_path / ".ssh" / "id_ed25519"
    private.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    assert (
        ssh_commands_main(["login", "--hub", hub.url, "--token", TOKEN, "--add-key", str(private)])
        == 1
    )
    assert "not an OpenSSH public key" in capsys.readouterr().err
    assert len(hub.keys) == 1


def ssh_commands_main(argv: list[str]) -> int:
    from codespace.cli import main

    return main(argv)


# targets and the ssh command line --------------------------------------------------------------


def test_targets() -> None:
    assert parse_target("box", "alice") == Target("alice", "box")
    assert parse_target("bob/box", "alice") == Target("bob", "box")
    assert parse_target("bob/", "alice") == Target("bob", "")
    assert parse_target("a.b@example.org/x-1", "alice") == Target("a.b@example.org", "x-1")
    for bad in (
        "-oProxyCommand=x",
        "bob/-x",
        "a/b/c",
        "bo b",
        "x;id",
        "$(id)",
        "%h",
        ".x",
        "bob/x\n",
    ):
        with pytest.raises(ValueError):
            parse_target(bad, "alice")


def test_ssh_argv_keeps_hub_data_out_of_options() -> None:
    argv = ssh_commands.ssh_argv(
        "/usr/bin/ssh",
        "https://hub.example.org",
        Target("alice", "box"),
        "cs-alice",
        ["-L", "8888:localhost:8888", "-vt", "--", "ls", "-la"],
        python="/venv/bin/python",
    )
    cut = argv.index("--")
    assert argv[cut + 1 :] == ["codespace.hub.example.org.alice.box", "ls", "-la"]
    assert argv[:cut] == [
        "/usr/bin/ssh",
        "-o",
        "ProxyCommand=/venv/bin/python -m codespace.cli ssh-proxy"
        " --hub https://hub.example.org alice/box",
        "-o",
        "HostKeyAlias=codespace.hub.example.org.alice.box",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-o",
        "User=cs-alice",
        "-L",
        "8888:localhost:8888",
        "-vt",
    ]
    with pytest.raises(ValueError, match="login name"):
        ssh_commands.ssh_argv("ssh", "https://h", Target("a", "b"), "-oProxyCommand=x", [])


def test_ssh_arguments_before_dash_dash_must_be_options() -> None:
    split = ssh_commands.split_ssh_args
    assert split(["-p", "22", "-A", "-L8080:x:80", "--", "a", "--", "b"]) == (
        ["-p", "22", "-A", "-L8080:x:80"],
        ["a", "--", "b"],
    )
    assert split(["-o", "ForwardAgent=yes"]) == (["-o", "ForwardAgent=yes"], [])
    with pytest.raises(ValueError, match="after --"):
        split(["ls"])
    with pytest.raises(ValueError, match="needs a value"):
        split(["-L"])
    assert ssh_commands.target_and_rest(["--", "box", "--", "id"]) == ("box", ["--", "id"])


def test_proxy_command_quoting() -> None:
    argv = [
        "/opt/my env/python",
        "-m",
        "codespace.cli",
        "ssh-proxy",
        "--hub",
        "https://h/50%",
        "a/b",
    ]
    line = sshconfig.command_line(argv, windows=False)
    assert line == "'/opt/my env/python' -m codespace.cli ssh-proxy --hub https://h/50%% a/b"
    assert sshconfig.command_line(["C:\\Py 3\\python.exe", "-m", "x"], windows=True) == (
        '"C:\\Py 3\\python.exe" -m x'
    )


# start and wait -----------------------------------------------------------------------------


def test_a_stopped_codespace_is_started_and_waited_for(hub: HubDouble) -> None:
    hub.add("box", ready=False)
    lines: list[str] = []
    client = HubClient(HubLogin(hub.url, "alice", TOKEN))
    url = ensure_running(client, Target("alice", "box"), timeout=30, report=lines.append)
    assert url == f"{hub.url}/user/alice/box/"
    assert "POST /hub/api/users/alice/servers/box" in hub.requests
    assert lines == [
        "starting codespace alice/box ...",
        "[ 20%] building the environment",
        "[ 60%] starting JupyterLab",
        "[100%] Server ready",
        "codespace alice/box is ready",
    ]
    lines.clear()  # running now: no start, no output
    assert ensure_running(client, Target("alice", "box"), report=lines.append) == url
    assert lines == [] and hub.requests.count("POST /hub/api/users/alice/servers/box") == 1


def test_a_failed_start_and_an_unknown_codespace_are_errors(hub: HubDouble) -> None:
    hub.add("box", ready=False)
    hub.fail_with = "Spawn failed: the image build failed (exit 1)"
    client = HubClient(HubLogin(hub.url, "alice", TOKEN))
    with pytest.raises(HubError, match="failed to start: Spawn failed: the image build failed"):
        ensure_running(client, Target("alice", "box"), timeout=30)
    with pytest.raises(HubError, match=r"no codespace 'nope' \(codespaces: box\)"):
        ensure_running(client, Target("alice", "nope"), timeout=30)
    with pytest.raises(HubError, match="refused the token") as refused:
        ensure_running(HubClient(HubLogin(hub.url, "alice", "bad")), Target("alice", "box"))
    assert refused.value.status == 403


def test_bytes_flow_both_ways_through_the_websocket(
    hub: HubDouble, echo_jupyter: JupyterServer, config_home: Path
) -> None:
    hub.tokens.add(JUPYTER_TOKEN)
    hub.add("box", ready=False, url=echo_jupyter.url)  # started on connect
    log_in(hub.url, JUPYTER_TOKEN)
    proxy = run_proxy(hub.url, "box", config_home)
    try:
        for size in (1, 5000, 1 << 20):
            payload = os.urandom(size)
            proxy.stdin.write(payload)
            proxy.stdin.flush()
            assert read_exactly(proxy.stdout, size) == payload
        proxy.stdin.close()
        assert proxy.wait(timeout=30) == 0
    finally:
        proxy.kill()
    err = proxy.stderr.read().decode()
    assert "starting codespace alice/box" in err and "[ 20%] building the environment" in err
    assert proxy.stdout.read() == b""  # progress went to stderr only


@pytest.mark.parametrize(
    ("hub_accepts", "message"),
    [
        (True, "the hub refused the token (403) at ws://"),  # refused at the codespace's socket
        (False, "the hub refused the token (403: Forbidden)"),  # refused by the hub's API
    ],
)
def test_a_wrong_token_is_refused_with_exit_255(
    hub: HubDouble,
    echo_jupyter: JupyterServer,
    config_home: Path,
    hub_accepts: bool,
    message: str,
) -> None:
    if hub_accepts:
        hub.tokens.add("wrong")  # the hub's API lets it by; the codespace's proxy does not
    hub.add("box", ready=True, url=echo_jupyter.url)
    log_in(hub.url, "wrong")
    proxy = run_proxy(hub.url, "box", config_home)
    out, err = proxy.communicate(timeout=60)
    assert proxy.returncode == 255
    assert message in err.decode() and out == b""


def test_an_unreachable_hub_and_a_failed_start_exit_255(hub: HubDouble, config_home: Path) -> None:
    gone = f"http://127.0.0.1:{free_port()}"
    log_in(gone)
    done = subprocess.run(
        [*CLI, "ssh-proxy", "--hub", gone, "box"],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(config_home)},
        timeout=60,
    )
    assert done.returncode == 255 and "cannot reach" in done.stderr
    hub.add("box", ready=False)
    hub.fail_with = "Spawn failed: no GPU left"
    log_in(hub.url)
    done = subprocess.run(
        [*CLI, "ssh-proxy", "box"],
        capture_output=True,
        text=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(config_home)},
        timeout=60,
    )
    assert done.returncode == 255 and "failed to start: Spawn failed: no GPU left" in done.stderr


def codespace_ssh(
    hub: HubDouble, sshd: Sshd, config_home: Path, *command: str
) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    return subprocess.run(
        [*CLI, "ssh", "box", *sshd.client_options(), "--", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_real_ssh_runs_a_command_through_the_bridge(
    hub: HubDouble, sshd: Sshd, config_home: Path
) -> None:
    hub.tokens.add(JUPYTER_TOKEN)
    hub.add("box", ready=False, url=sshd.server.url)
    log_in(hub.url, JUPYTER_TOKEN)
    done = codespace_ssh(hub, sshd, config_home, "echo", "hello from", "$((6*7))")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello from 42\n"
    assert "starting codespace alice/box" in done.stderr
    pinned = (
        sshconfig.ssh_version(shutil.which("ssh") or "ssh") >= sshconfig.KNOWN_HOSTS_COMMAND_SINCE
    )
    known = sshd.directory / "known_hosts"
    # the host key was checked against the session's fingerprint, so nothing is trusted on first use
    assert not known.exists() if pinned else "codespace.127.0.0.1" in known.read_text()
    assert HubStore().get().logins == {"alice/box": sshd.login}  # remembered for ssh-config

    payload = os.urandom(300_000)
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    done = subprocess.run(
        [*CLI, "ssh", "box", *sshd.client_options(), "--", "sha256sum"],
        input=payload,
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()


def test_a_host_key_that_is_not_the_sessions_is_refused(
    hub: HubDouble, sshd: Sshd, config_home: Path
) -> None:
    if sshconfig.ssh_version(shutil.which("ssh") or "ssh") < sshconfig.KNOWN_HOSTS_COMMAND_SINCE:
        pytest.skip("this OpenSSH has no KnownHostsCommand")
    hub.tokens.add(JUPYTER_TOKEN)
    hub.add("box", ready=True, url=sshd.server.url)
    log_in(hub.url, JUPYTER_TOKEN)
    sshd.set_session("SHA256:" + "A" * 43)
    try:
        done = codespace_ssh(hub, sshd, config_home, "true")
    finally:
        sshd.set_session(sshd.fingerprint)
    assert done.returncode == 255
    assert "is not the one its session reports" in done.stderr and "revoked" in done.stderr
