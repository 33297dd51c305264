"""A codespace's sshd: the sshd_config builder (codespace.ssh.sshd), its files
(codespace.ssh.files), the unix-socket inetd (codespace.ssh.listen), the server side's
status and pod setup (codespace.ssh.runtime) and the jupyter-server-proxy entry."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codespace.ssh import runtime
from codespace.ssh.files import SshDir, write_login_profile
from codespace.ssh.keys import authorized_keys_text, read_authorized_keys
from codespace.ssh.listen import bind, is_probe
from codespace.ssh.sshd import (
    BASH_PROFILE,
    PATH_COPY,
    SshdSettings,
    devpts_tty_gid,
    find_sshd,
    group_without_tty,
    percent_escape,
    ptys_work,
    quote,
    session_env,
    setenv_line,
    sshd_argv,
    sshd_config,
)
from tests.conftest import missing
from tests.helpers.ssh_keys import KEYS, line

SERVER_ENV = {
    "PATH": "/ws/.env/bin:/usr/local/bin:/usr/bin:/bin",
    "VIRTUAL_ENV": "/ws/.env",
    "CODESPACE_REPO": "https://example.com/org/proj.git",
    "CODESPACE_WORKSPACE": "/ws/proj",
    "LANG": "C.UTF-8",
    "CUDA_VISIBLE_DEVICES": "0",
    "JUPYTERHUB_API_TOKEN": "hub-secret",
    "JPY_API_TOKEN": "hub-secret",
    "JUPYTER_CONFIG_PATH": "/x",
    "CODESPACE_SERVER_TOKEN": "secret",
    "MY_PASSWORD": "secret",
    "CODESPACE_LAUNCH": '{"big": "json"}',
    "CODESPACE_SSH_AUTHORIZED_KEYS": "ssh-ed25519 AAAA",
    "CODESPACE_SSHD_CONFIG": "/srv/ssh/sshd_config",
    "HOME": "/home/x",
    "SHELL": "/bin/sh",
    "MULTI": "line\nvalue",
    "bad-name": "x",
}


def settings(**changes: object) -> SshdSettings:
    values: dict[str, object] = {
        "user": "cs-alice",
        "host_key": "/data/servers/alice/proj/ssh/ssh_host_ed25519_key",
        "authorized_keys": "/data/servers/alice/proj/ssh/authorized_keys",
        "env": session_env(SERVER_ENV),
    }
    values.update(changes)
    return SshdSettings(**values)  # type: ignore[arg-type]


def options(text: str) -> dict[str, str]:
    found = {}
    for raw in text.splitlines():
        if raw and not raw.startswith("#"):
            key, _, value = raw.partition(" ")
            assert key not in found, f"{key} twice"
            found[key] = value
    return found


def test_the_config_allows_keys_only_for_the_account() -> None:
    found = options(sshd_config(settings()))
    assert found["ListenAddress"] == "127.0.0.1"
    assert found["AllowUsers"] == "cs-alice"
    assert found["AuthenticationMethods"] == "publickey"
    for option in (
        "PasswordAuthentication",
        "KbdInteractiveAuthentication",
        "HostbasedAuthentication",
        "GSSAPIAuthentication",
        "PermitRootLogin",
        "UsePAM",
        "StrictModes",
        "X11Forwarding",
        "PermitTunnel",
        "GatewayPorts",
        "PermitUserEnvironment",
    ):
        assert found[option] == "no", option
    assert found["HostKey"].endswith("/ssh/ssh_host_ed25519_key")
    assert found["AuthorizedKeysFile"] == "/data/servers/alice/proj/ssh/authorized_keys"
    assert found["AuthorizedPrincipalsFile"] == "none"
    assert found["PidFile"] == "none"
    assert found["Subsystem"] == "sftp internal-sftp"
    assert found["AllowTcpForwarding"] == "yes"
    assert found["AllowStreamLocalForwarding"] == "yes"
    assert found["PermitTTY"] == "yes"
    assert options(sshd_config(settings(permit_tty=False)))["PermitTTY"] == "no"
    assert "Port" not in found  # given by -p when run as a daemon; unused in inetd mode


def test_session_environment_is_the_repository_one_without_secrets() -> None:
    env = session_env(SERVER_ENV)
    assert env == {
        "CODESPACE_REPO": "https://example.com/org/proj.git",
        "CODESPACE_WORKSPACE": "/ws/proj",
        PATH_COPY: SERVER_ENV["PATH"],
        "CUDA_VISIBLE_DEVICES": "0",
        "LANG": "C.UTF-8",
        "PATH": SERVER_ENV["PATH"],
        "VIRTUAL_ENV": "/ws/.env",
    }
    text = sshd_config(settings())
    assert "secret" not in text
    setenv = [raw for raw in text.splitlines() if raw.startswith("SetEnv")]
    assert len(setenv) == 1  # sshd keeps only the first SetEnv line
    assert f"PATH={SERVER_ENV['PATH']}" in setenv[0]
    assert "SetEnv" not in sshd_config(settings(env={}))
    assert setenv_line({}) is None


def test_values_are_quoted_as_sshd_splits_them() -> None:
    assert quote("/plain/path") == "/plain/path"
    assert quote("/a b") == '"/a b"'
    assert quote('x"y') == '"x\\"y"'
    assert quote("back\\slash") == '"back\\\\slash"'
    assert quote("#not-a-comment") == '"#not-a-comment"'
    assert quote("") == '""'
    assert percent_escape("/data/servers/al%40ice/x") == "/data/servers/al%%40ice/x"
    found = options(sshd_config(settings(authorized_keys="/d/al%40ice/my keys")))
    assert found["AuthorizedKeysFile"] == '"/d/al%%40ice/my keys"'


@pytest.mark.parametrize("user", ["", "two words", "a@b", "*", "x,y"])
def test_user_names_sshd_would_misread_are_refused(user: str) -> None:
    with pytest.raises(ValueError, match="user"):
        sshd_config(settings(user=user))


def test_sshd_runs_in_inetd_mode() -> None:
    assert sshd_argv("/usr/sbin/sshd", Path("/x/sshd_config")) == [
        "/usr/sbin/sshd",
        "-i",
        "-e",
        "-f",
        "/x/sshd_config",
    ]


def test_find_sshd(tmp_path: Path) -> None:
    fake = tmp_path / "sshd"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_sshd({"CODESPACE_SSHD": str(fake)}) == str(fake)
    assert find_sshd({"CODESPACE_SSHD": str(tmp_path / "none")}) is None
    assert find_sshd({"PATH": str(tmp_path)}) == str(fake)


MOUNTINFO = """\
25 30 0:23 / /dev rw,nosuid - tmpfs tmpfs rw,mode=755
26 25 0:24 / /dev/pts rw,nosuid,noexec - devpts devpts rw,gid=5,mode=620,ptmxmode=000
"""


def test_ptys_work_where_devpts_gives_the_tty_group() -> None:
    assert devpts_tty_gid(MOUNTINFO) == 5
    plain = MOUNTINFO.replace("gid=5,", "")
    assert devpts_tty_gid(plain) is None
    assert ptys_work(5, sandboxed=False, mountinfo=MOUNTINFO)
    assert not ptys_work(5, sandboxed=False, mountinfo=plain)
    assert ptys_work(5, sandboxed=True, mountinfo=plain)  # the sandbox shows no tty group
    assert ptys_work(None, sandboxed=False, mountinfo=plain)


def test_group_without_tty() -> None:
    text = "root:x:0:\ntty:x:5:\nttyusers:x:7:\nusers:x:100:\n"
    assert group_without_tty(text) == "root:x:0:\nttyusers:x:7:\nusers:x:100:\n"


# -- files ----------------------------------------------------------------------------------


def test_ssh_dir_of_the_account_itself_is_private(tmp_path: Path) -> None:
    ssh = SshDir(tmp_path / "ssh")
    ssh.make()
    first = ssh.ensure_host_key(require_keygen())
    assert first.type == "ssh-ed25519"
    assert stat.S_IMODE(ssh.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(ssh.host_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(ssh.host_key_pub.stat().st_mode) == 0o644
    # kept: same fingerprint at the next start
    assert ssh.ensure_host_key().fingerprint == first.fingerprint
    assert ssh.host_key_public() == first
    ssh.write(ssh.authorized_keys, authorized_keys_text([line("ED25519")]))
    assert [k.fingerprint for k in ssh.keys()] == [KEYS["ED25519"][2]]
    assert not list(ssh.path.glob(".*"))  # no temporary files left


def test_host_key_is_made_again_only_when_lost(tmp_path: Path) -> None:
    ssh = SshDir(tmp_path / "ssh")
    ssh.make()
    first = ssh.ensure_host_key(require_keygen())
    ssh.host_key.unlink()
    assert ssh.ensure_host_key().fingerprint != first.fingerprint


@pytest.mark.skipif(os.geteuid() != 0, reason="writing files for another group needs root")
def test_ssh_dir_written_by_root_is_readable_by_the_account_group(tmp_path: Path) -> None:
    ssh = SshDir(tmp_path / "ssh", group=65534)
    ssh.make()
    ssh.ensure_host_key(require_keygen())
    ssh.write(ssh.config, "x\n")
    for path, mode in ((ssh.path, 0o750), (ssh.host_key, 0o640), (ssh.config, 0o640)):
        st = path.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 65534, mode), path


def test_ssh_dir_is_never_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "ssh").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Exception, match="not a directory"):
        SshDir(tmp_path / "ssh").make()


def test_login_profile_only_where_there_is_none(tmp_path: Path) -> None:
    assert write_login_profile(tmp_path)
    assert (tmp_path / ".bash_profile").read_text() == BASH_PROFILE
    assert not write_login_profile(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / ".bash_login").write_text("mine\n")
    assert not write_login_profile(other)
    written: list[tuple[Path, str]] = []
    assert write_login_profile(tmp_path / "new", write=lambda p, t: written.append((p, t)))
    assert written == [(tmp_path / "new" / ".bash_profile", BASH_PROFILE)]


def test_login_profile_restores_the_codespace_path(tmp_path: Path) -> None:
    (tmp_path / ".profile").write_text('PATH="$HOME/bin:$PATH"\n')
    write_login_profile(tmp_path)
    done = subprocess.run(
        ["bash", "-c", f'. "{tmp_path}/.bash_profile"; echo "$PATH"'],
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", PATH_COPY: "/ws/.env/bin:/usr/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f"{tmp_path}/bin:/ws/.env/bin:/usr/bin"


# -- the unix-socket inetd --------------------------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cs-ssh-"))  # AF_UNIX paths must be short
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_listener_socket_is_private_and_replaces_a_stale_one(short_dir: Path) -> None:
    path = short_dir / "s"
    path.write_text("stale")
    listener = bind(str(path))
    try:
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        listener.close()


def test_a_connection_closed_without_data_is_a_probe() -> None:
    left, right = socket.socketpair()
    right.close()
    assert is_probe(left, wait=1.0)
    left.close()
    left, right = socket.socketpair()
    right.sendall(b"SSH-2.0-x\r\n")
    assert not is_probe(left, wait=1.0)
    right.close()
    left.close()
    left, right = socket.socketpair()
    assert not is_probe(left, wait=0.05)  # silent: not a probe (a client that waits)
    left.close()
    right.close()


def test_each_connection_gets_its_own_command(short_dir: Path) -> None:
    path, count = short_dir / "s", short_dir / "count"
    script = f"echo started >> {count}; cat"
    argv = [sys.executable, "-m", "codespace.ssh.listen", str(path), "--", "sh", "-c", script]
    server = subprocess.Popen(argv, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if path.exists():
                break
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as probe:  # jupyter-server-proxy's readiness check
            probe.connect(str(path))
        for word in (b"one", b"two"):
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(path))
                client.sendall(word)
                client.shutdown(socket.SHUT_WR)
                assert client.makefile("rb").read() == word
        assert count.read_text().splitlines() == ["started", "started"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert not path.exists()  # removed on SIGTERM


def test_listener_usage() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "codespace.ssh.listen", "/tmp/x"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "usage" in done.stderr


# -- the server side --------------------------------------------------------------------------


@pytest.fixture
def as_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the server-side code as a non-root account, whoever runs the tests."""
    monkeypatch.setattr(runtime, "current_uid", lambda: 4242)
    monkeypatch.setenv("USER", "cs-tester")


def pod_env(tmp_path: Path, keys: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        **{name: value for name, value in SERVER_ENV.items() if name != runtime.CONFIG_ENV},
        "HOME": str(home),
        "JUPYTERHUB_USER": "alice",
        runtime.DIR_ENV: str(tmp_path / "workspaces" / ".codespace" / "ssh"),
        runtime.KEYS_ENV: keys,
        "CODESPACE_SSHD": require_sshd(),
    }


@pytest.mark.usefixtures("as_account")
def test_a_pod_writes_its_files_and_keeps_its_host_key(tmp_path: Path) -> None:
    require_keygen()
    env = pod_env(tmp_path, authorized_keys_text([line("ED25519")], owner="alice"))
    config = runtime.prepare_in_pod(env)
    assert config is not None and config.is_file()
    found = options(config.read_text())
    assert found["AllowUsers"] == "cs-tester"
    assert "hub-secret" not in config.read_text()
    assert (tmp_path / "home" / ".bash_profile").read_text() == BASH_PROFILE
    status = runtime.ssh_status(env, "/user/alice/proj/")
    assert status["available"], status["reason"]
    assert status["user"] == "cs-tester"
    assert status["path"] == "/user/alice/proj/sshd/"
    assert status["hostKeyFingerprint"].startswith("SHA256:")
    runtime.prepare_in_pod(env)  # the next start: same host key
    assert runtime.ssh_status(env)["hostKeyFingerprint"] == status["hostKeyFingerprint"]


@pytest.mark.usefixtures("as_account")
def test_status_says_why_ssh_cannot_work(tmp_path: Path) -> None:
    require_keygen()
    env = pod_env(tmp_path, authorized_keys_text([]))
    runtime.prepare_in_pod(env)
    status = runtime.ssh_status(env)
    assert not status["available"]
    assert "no SSH keys when this codespace started" in status["reason"]
    assert "/hub/ssh-keys" in status["reason"]
    local = {**env, runtime.CONFIG_ENV: str(Path(env[runtime.DIR_ENV]) / "sshd_config")}
    assert runtime.ssh_status(local)["reason"] == "you have no SSH keys: add one at /hub/ssh-keys"
    none = runtime.ssh_status({"CODESPACE_SSHD": require_sshd()})
    assert "started without SSH" in none["reason"]
    assert none["hostKeyFingerprint"] is None
    gone = runtime.ssh_status({"CODESPACE_SSHD": str(tmp_path / "no-sshd")})
    assert "not installed" in gone["reason"]


def test_status_as_root_offers_no_ssh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "current_uid", lambda: 0)
    assert "runs as root" in runtime.ssh_status({})["reason"]
    assert runtime.prepare_in_pod({runtime.KEYS_ENV: "", runtime.DIR_ENV: "/x"}) is None


@pytest.mark.usefixtures("as_account")
def test_the_server_proxy_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_server_proxy.config import ServerProcess, make_handlers
    from jupyter_server_proxy.rawsocket import SuperviseAndRawSocketHandler

    from extensions.sshd import setup_sshd

    config = tmp_path / "sshd_config"
    config.write_text("")
    monkeypatch.setenv(runtime.CONFIG_ENV, str(config))
    monkeypatch.setenv("CODESPACE_SSHD", require_sshd())
    entry = setup_sshd()
    assert entry is not None
    assert entry["raw_socket_proxy"] is True and entry["unix_socket"] is True
    assert entry["launcher_entry"] == {"enabled": False}
    assert entry["command"][1:5] == ["-m", "codespace.ssh.listen", "{unix_socket}", "--"]
    assert entry["command"][5:] == sshd_argv(require_sshd(), config)
    process = ServerProcess(name="sshd", **entry)
    handler, _ = process.get_proxy_base_class()
    assert issubclass(handler, SuperviseAndRawSocketHandler)
    patterns = [pattern for pattern, *_ in make_handlers("/user/alice/proj/", [process])]
    assert patterns[0] == "/user/alice/proj/sshd/(.*)"
    monkeypatch.delenv(runtime.CONFIG_ENV)
    assert setup_sshd() is None  # no SSH settings from the spawner


# -- sshd itself reads the file as written ----------------------------------------------------


def require_sshd() -> str:
    found = find_sshd()
    if found is None:
        missing("OpenSSH's sshd is not installed (apt-get install openssh-server)")
    return str(found)


def require_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        missing("ssh-keygen is not installed (apt-get install openssh-client)")
    return str(found)


def test_sshd_reads_the_config_as_written(short_dir: Path) -> None:
    """``sshd -T`` (as a plain account: a root sshd wants /run/sshd) prints what it parsed."""
    sshd = require_sshd()
    short_dir.chmod(0o755)
    root = os.geteuid() == 0
    ssh = SshDir(short_dir / "ssh dir%40x", group=65534 if root else None)
    ssh.make()
    ssh.ensure_host_key(require_keygen())
    ssh.write(ssh.authorized_keys, authorized_keys_text([line("ED25519")]))
    env = {"PATH": "/a b/bin:/usr/bin", "ODD": "q\"u\\o#te's and  spaces", "LANG": "C.UTF-8"}
    ssh.write(ssh.config, sshd_config(settings(
        user="nobody" if root else runtime.account_name(),
        host_key=str(ssh.host_key),
        authorized_keys=str(ssh.authorized_keys),
        env=session_env(env),
        permit_tty=False,
    )))  # fmt: skip
    argv = [sshd, "-T", "-f", str(ssh.config)]
    if root:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    parsed = done.stdout.splitlines()
    assert f"authorizedkeysfile {percent_escape(str(ssh.authorized_keys))}" in parsed
    assert f"hostkey {ssh.host_key}" in parsed
    for name, value in session_env(env).items():
        assert f"setenv {name}={value}" in parsed
    for expected in (
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "pubkeyauthentication yes",
        "authenticationmethods publickey",
        "usepam no",
        "permittty no",
        "allowtcpforwarding yes",
        "subsystem sftp internal-sftp",
    ):
        assert expected in parsed, expected


# -- the spawners' part ------------------------------------------------------------------------


def test_the_sandbox_can_show_another_etc_group() -> None:
    from codespace.local.sandbox import bwrap_argv

    argv = bwrap_argv(
        workspace="/d/ws", server_dir="/d/srv", files={"/etc/group": "/d/srv/ssh/group"}
    )
    at = argv.index("/d/srv/ssh/group")
    assert argv[at - 1 : at + 2] == ["--ro-bind", "/d/srv/ssh/group", "/etc/group"]
    assert at > argv.index("/d/srv")  # after the directory binds


def test_kube_pods_get_the_owners_keys(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from codespace.ssh.store import KeyStore
    from spawner.ssh import KEYS_SETTING, kube_ssh_env, owner_keys_text

    store = KeyStore(tmp_path / "keys.sqlite")
    store.add("alice", line("ED25519"))
    store.add("bob", line("ECDSA_256"))
    alice = SimpleNamespace(name="alice", settings={KEYS_SETTING: str(store.path)})
    env = kube_ssh_env(alice, "/workspaces")
    assert env[runtime.DIR_ENV] == "/workspaces/.codespace/ssh"
    assert [k.fingerprint for k in read_keys(env[runtime.KEYS_ENV])] == [KEYS["ED25519"][2]]
    assert kube_ssh_env(SimpleNamespace(name="alice", settings={}), "/workspaces") == {}
    assert owner_keys_text(SimpleNamespace(name="x", settings=object())) is None


def test_a_running_local_codespace_gets_new_keys(tmp_path: Path) -> None:
    from codespace.local.prepare import LocalPaths
    from spawner.ssh import LocalSshMixin

    class Spawner(LocalSshMixin):
        def local_paths(self) -> LocalPaths:
            return LocalPaths(workspace=tmp_path / "ws", server_dir=tmp_path / "srv")

    spawner = Spawner()
    assert not spawner.refresh_ssh_keys("x")  # never started: nothing to rewrite
    ssh = SshDir(tmp_path / "srv" / "ssh")
    (tmp_path / "srv").mkdir()
    ssh.make()
    ssh.write(ssh.authorized_keys, authorized_keys_text([]))
    assert spawner.refresh_ssh_keys(authorized_keys_text([line("ED25519")]))
    assert [k.fingerprint for k in ssh.keys()] == [KEYS["ED25519"][2]]


def read_keys(text: str) -> list:
    return read_authorized_keys(text)
