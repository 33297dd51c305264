"""codespace.local.sandbox and confine: the bwrap command line, and an untrusted process run
as root's way (cgroup -> bwrap -> setpriv) against a hub data directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codespace.local.accounts import Account, harden_data_dir, user_dirs
from codespace.local.confine import chain, confine_argv
from codespace.local.limits import Cgroup, CgroupLimits
from codespace.local.sandbox import (
    SandboxError,
    bwrap_argv,
    check,
    env_python_dirs,
    platform_dirs,
)
from tests.helpers.confinement import (
    TestAccounts,
    cgroup_parent,
    making_accounts,
    require_bwrap,
)

# -- pure -------------------------------------------------------------------------------------


def _pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_argv_hides_then_binds_back_with_traversable_parents() -> None:
    argv = bwrap_argv(
        workspace="/data/workspaces/alice/s",
        server_dir="/data/servers/alice/s",
        home="/data/homes/cs-alice",
        env_dirs=["/data/env-cache/envs/abc"],
        platform_dirs=["/root/.pyenv/versions/3.11.7", "/opt/hub/.venv"],
        hide=["/root", "/data"],
        command=["id", "-u"],
    )
    assert argv[:4] == ["bwrap", "--ro-bind", "/", "/"]
    assert argv[-3:] == ["--", "id", "-u"]
    assert _pairs(argv, "--tmpfs") == ["/dev/shm", "/data", "/root", "/tmp"]
    assert "/opt/hub/.venv" not in argv  # visible read-only through / already
    text = " ".join(argv)
    assert "--perms 0755 --dir /root/.pyenv --perms 0755 --dir /root/.pyenv/versions" in text
    assert "--perms 1777 --tmpfs /tmp" in text and "--perms 1777 --tmpfs /dev/shm" in text
    assert text.index("--tmpfs /data") < text.index("--dir /data/workspaces/alice")
    assert text.index("--dir /data/workspaces/alice") < text.index(
        "--bind /data/workspaces/alice/s /data/workspaces/alice/s"
    )
    assert "--ro-bind /data/env-cache/envs/abc /data/env-cache/envs/abc" in text
    assert _pairs(argv, "--chdir") == ["/data/workspaces/alice/s"]
    assert "--unshare-pid" in argv and "--unshare-net" not in argv
    assert "--die-with-parent" not in argv  # servers outlive a hub restart


def test_a_hidden_data_dir_inside_the_checkout_stays_hidden() -> None:
    argv = bwrap_argv(
        workspace="/repo/data/workspaces/a/s",
        server_dir="/repo/data/servers/a/s",
        platform_dirs=["/repo", "/repo/.venv"],
        hide=["/repo/data"],
    )
    assert "/repo" not in argv  # not re-bound over the tmpfs that hides /repo/data
    assert "/repo/data" in _pairs(argv, "--tmpfs")


def test_binds_inside_binds_come_after_them_and_tmp_may_be_hidden() -> None:
    argv = bwrap_argv(
        workspace="/tmp/x/ws",
        server_dir="/tmp/x/ws/.server",
        extra_ro=["/tmp/x/ws/ro"],
        hide=["/tmp"],
        devices=["/dev/nvidia0"],
        die_with_parent=True,
    )
    text = " ".join(argv)
    assert "--perms 0755 --tmpfs /tmp" in text and "1777 --tmpfs /tmp" not in text
    assert text.index("--bind /tmp/x/ws ") < text.index("--bind /tmp/x/ws/.server")
    assert text.index("--bind /tmp/x/ws ") < text.index("--ro-bind /tmp/x/ws/ro")
    assert "--dir /tmp/x/ws" not in text  # inside a bind: exists already
    assert "--dev-bind /dev/nvidia0 /dev/nvidia0" in text and "--die-with-parent" in argv


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workspace": "relative"},
        {"workspace": "/a/../etc"},
        {"hide": ["/"]},
        {"hide": ["/w"], "extra_rw": ["/w"]},
    ],
)
def test_bad_paths_are_refused(kwargs: dict) -> None:
    args = {"workspace": "/w/s", "server_dir": "/srv/s"} | kwargs
    with pytest.raises(SandboxError):
        bwrap_argv(**args)


def test_confine_order_is_cgroup_then_bwrap_then_account() -> None:
    account = Account("cs-x", 990, 990, Path("/h"))
    group = Cgroup(1, {"memory": Path("/cg/m/x")})
    sandbox = bwrap_argv(workspace="/w", server_dir="/s")
    argv = confine_argv(["python", "-c", "pass"], account=account, cgroup=group, sandbox=sandbox)
    assert argv[0] == "/bin/sh" and argv.index("bwrap") < argv.index("setpriv")
    assert argv[-3:] == ["python", "-c", "pass"]
    assert confine_argv(["x"]) == ["x"]
    with pytest.raises(ValueError):
        confine_argv(["x"], sandbox=["bwrap", "--ro-bind", "/", "/"])
    assert chain(None, None) is None


def test_platform_dirs_include_this_python() -> None:
    dirs = platform_dirs()
    assert Path(sys.prefix).resolve() in dirs and Path(sys.base_prefix).resolve() in dirs


def test_env_python_dirs_reads_pyvenv_cfg(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.11.2\n")
    assert env_python_dirs(tmp_path) == (Path("/usr"),)
    assert env_python_dirs(tmp_path / "missing") == ()


def test_check_reports_a_missing_bwrap() -> None:
    support = check("no-such-bwrap-here")
    assert not support.ok and "not installed" in support.sentence()


# -- as root: an untrusted process against a hub data directory ------------------------------

PROBE = r"""
import json, os, sys
data, other, env = sys.argv[1:4]
result = {"uid": os.getuid(), "cgroup": open("/proc/self/cgroup").read()}
def attempt(name, action):
    try:
        value = action()
        result[name] = "ok" if value is None else value
    except OSError as error:
        result[name] = type(error).__name__
attempt("read_secret", lambda: open(os.path.join(data, "secrets", "admin-password")).read())
attempt("read_db", lambda: open(os.path.join(data, "jupyterhub.sqlite")).read())
attempt("list_other", lambda: os.listdir(other))
attempt("read_other", lambda: open(os.path.join(other, "private.txt")).read())
attempt("write_other", lambda: open(os.path.join(other, "planted.txt"), "w").close())
attempt("write_env", lambda: open(os.path.join(env, "planted.py"), "w").close())
attempt("write_own", lambda: open("mine.txt", "w").write("mine") and None)
attempt("list_data", lambda: sorted(os.listdir(data)))
attempt("list_root", lambda: os.listdir("/root"))
print(json.dumps(result))
"""


@dataclass
class World:
    data: Path
    me: Account
    other: Account
    workspace: Path
    server_dir: Path
    other_workspace: Path
    env: Path
    group: Cgroup

    def sandbox(self, command: list[str] | tuple[str, ...] = ()) -> list[str]:
        return bwrap_argv(
            workspace=self.workspace,
            server_dir=self.server_dir,
            home=self.me.home,
            env_dirs=[self.env],
            platform_dirs=platform_dirs(),
            hide=["/root", "/home", self.data],
            command=command,
        )

    def probe(self, python: str, *, sandboxed: bool) -> dict:
        argv = [python, "-c", PROBE, str(self.data), str(self.other_workspace), str(self.env)]
        argv = confine_argv(
            argv,
            account=self.me,
            cgroup=self.group,
            sandbox=self.sandbox() if sandboxed else None,
        )
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.workspace)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[TestAccounts]:
    with making_accounts(tmp_path / "unused-homes") as made:
        yield made


@pytest.fixture
def world(accounts: TestAccounts) -> Iterator[World]:
    # under /var/tmp, not pytest's 0700 /tmp/pytest-of-root: the accounts must reach it
    data = Path(tempfile.mkdtemp(prefix="cstest-data-", dir="/var/tmp"))
    try:
        accounts.home_root = data / "homes"
        me, other = accounts.make(), accounts.make()
        secrets = data / "secrets"
        secrets.mkdir()
        (secrets / "admin-password").write_text("hunter2")
        (data / "jupyterhub.sqlite").write_text("tokens")
        workspace = data / "workspaces" / "me" / "s"
        other_workspace = data / "workspaces" / "other" / "s"
        user_dirs(me, workspace.parent, workspace, data / "servers" / "me", data / "servers/me/s")
        user_dirs(other, other_workspace.parent, other_workspace)
        (other_workspace / "private.txt").write_text("other's work")
        os.chmod(other_workspace / "private.txt", 0o644)  # even a careless mode stays private
        env = data / "env-cache" / "envs" / "k"
        env.mkdir(parents=True)
        os.chmod(data / "env-cache", 0o755)
        harden_data_dir(data)
        with cgroup_parent() as parent:
            group = parent.child("sandboxed", CgroupLimits(memory_bytes=512 << 20, pids=256))
            yield World(
                data, me, other, workspace, data / "servers/me/s", other_workspace, env, group
            )
    finally:
        shutil.rmtree(data, ignore_errors=True)


DENIED = "PermissionError"


def test_modes_alone_keep_an_account_out(world: World) -> None:
    """No sandbox: file modes and ownership only (the system Python: the venv's base Python
    lives under /root, which the account cannot traverse)."""
    result = world.probe("/usr/bin/python3", sandboxed=False)
    assert result["uid"] == world.me.uid != 0
    assert f"codespace-hub-test-{os.getpid()}/sandboxed" in result["cgroup"]
    for key in ("read_secret", "read_db", "list_other", "read_other", "write_other"):
        assert result[key] == DENIED, key
    assert result["write_env"] == DENIED and result["write_own"] == "ok"
    assert result["list_data"] == DENIED and result["list_root"] == DENIED
    assert (world.workspace / "mine.txt").stat().st_uid == world.me.uid


def test_the_sandbox_hides_the_machine(world: World) -> None:
    require_bwrap()
    result = world.probe(sys.executable, sandboxed=True)  # the venv's Python, via /root
    assert result["uid"] == world.me.uid != 0
    assert f"codespace-hub-test-{os.getpid()}/sandboxed" in result["cgroup"]
    for key in ("read_secret", "read_db", "list_other", "read_other", "write_other"):
        assert result[key] in ("FileNotFoundError", DENIED), key
    assert result["write_env"] in ("OSError", DENIED)  # read-only file system (EROFS)
    assert result["write_own"] == "ok"
    assert result["list_data"] == ["env-cache", "homes", "servers", "workspaces"]
    assert result["list_root"] == [".pyenv"]
    assert not (world.env / "planted.py").exists()
    assert not (world.other_workspace / "planted.txt").exists()


# -- as root: a Jupyter server, a kernel and a terminal in the sandbox -------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(port: int, path: str, method: str = "GET") -> dict | list:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method, headers={"Authorization": "token t"}
    )
    with urllib.request.urlopen(request, data=b"{}" if method == "POST" else None) as response:
        return json.loads(response.read() or b"null")


async def _execute(port: int, kernel: str, code: str) -> str:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels"
    connection = await websocket_connect(
        HTTPRequest(url, headers={"Authorization": "token t"}, connect_timeout=30)
    )
    header = {"msg_id": "m1", "msg_type": "execute_request", "session": "s", "version": "5.3"}
    header |= {"username": "test"}
    content = {"code": code, "silent": False, "store_history": False}
    message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
    await connection.write_message(json.dumps(message | {"channel": "shell"}))
    output = ""
    while True:
        raw = await connection.read_message()
        assert raw is not None, "the kernel's channel closed"
        reply = json.loads(raw)
        if reply.get("parent_header", {}).get("msg_id") != "m1":
            continue
        if reply["msg_type"] == "stream":
            output += reply["content"]["text"]
        if reply["msg_type"] == "error":
            raise AssertionError(reply["content"])
        if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
            connection.close()
            return output


def _uid(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


async def test_jupyter_server_kernel_and_terminal_in_the_sandbox(world: World) -> None:
    require_bwrap()
    port = _free_port()
    server = [
        str(Path(sys.prefix) / "bin" / "jupyter-server"),
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.token=t",
        "--ServerApp.open_browser=False",
        f"--ServerApp.root_dir={world.workspace}",
    ]
    argv = confine_argv(server, account=world.me, cgroup=world.group, sandbox=world.sandbox())
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **world.me.env()}
    log = world.server_dir / "server.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            argv, env=env, stdout=handle, stderr=handle, start_new_session=True
        )
    try:
        for _ in range(300):
            try:
                status = _api(port, "/api/status")
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        assert "started" in status
        kernel = _api(port, "/api/kernels", "POST")["id"]
        output = await _execute(port, kernel, "import os; print(os.getuid(), os.listdir('/root'))")
        assert output.split(" ", 1) == [str(world.me.uid), "['.pyenv']\n"]
        _api(port, "/api/terminals", "POST")
        time.sleep(0.5)
        uids = {pid: _uid(pid) for pid in world.group.pids()}
        roots = [pid for pid, uid in uids.items() if uid == 0]
        assert len(roots) == 2  # bwrap outside and bwrap as init of the PID namespace
        assert all(Path(f"/proc/{pid}/comm").read_text().strip() == "bwrap" for pid in roots)
        assert (
            len([uid for uid in uids.values() if uid == world.me.uid]) >= 3
        )  # server, kernel, shell
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # bwrap does not forward signals: the group
        process.wait(30)
        deadline = time.monotonic() + 30
        while world.group.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert not world.group.pids()
    assert "Shutting down" in log.read_text()  # a clean stop, not a kill
