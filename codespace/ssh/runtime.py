"""Inside a codespace's server: its sshd's files, the proxy's command, and its SSH status.

The spawner tells the server, through its environment:

- ``CODESPACE_SSH_DIR``: the ssh directory (:class:`codespace.ssh.files.SshDir`);
- ``CODESPACE_SSHD_CONFIG``: locally, the ``sshd_config`` the hub wrote there at this start;
- ``CODESPACE_SSH_AUTHORIZED_KEYS``: in a pod, the owner's keys at this start (the pod
  writes its files itself: :func:`prepare_in_pod`, called when the server loads its config;
  a key added at the hub later applies at the next start).

:func:`ssh_status` is the ``ssh`` part of ``GET /codespace/api/session``: the account to log
in as, the host key's fingerprint, and whether a login can work now (with why not).
"""

from __future__ import annotations

import grp
import os
import pwd
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codespace.ssh.files import SshDir, SshFilesError, write_login_profile
from codespace.ssh.keys import authorized_keys_text, read_authorized_keys
from codespace.ssh.sshd import (
    PROXY_NAME,
    SshdSettings,
    find_sshd,
    ptys_work,
    session_env,
    sshd_argv,
    sshd_config,
)

DIR_ENV = "CODESPACE_SSH_DIR"
CONFIG_ENV = "CODESPACE_SSHD_CONFIG"
KEYS_ENV = "CODESPACE_SSH_AUTHORIZED_KEYS"
KEYS_PAGE = "/hub/ssh-keys"


def current_uid() -> int:
    """This process's uid (a function: tests replace it)."""
    return os.getuid()


def account_name() -> str:
    """The account this process runs as (the one ssh logs in as)."""
    try:
        return pwd.getpwuid(current_uid()).pw_name
    except KeyError:
        return os.environ.get("USER") or str(current_uid())


def tty_gid() -> int | None:
    try:
        return grp.getgrnam("tty").gr_gid
    except KeyError:
        return None


def prepare_in_pod(environ: Mapping[str, str]) -> Path | None:
    """Write the ssh directory from the pod's environment (host key once, the owner's keys,
    ``sshd_config``) and a login profile in ``$HOME`` if it has none; return the config's
    path (None when this server was given no keys to write, or running as root)."""
    if CONFIG_ENV in environ or KEYS_ENV not in environ or not environ.get(DIR_ENV):
        return None
    if current_uid() == 0:
        return None
    ssh = SshDir(Path(environ[DIR_ENV]))
    ssh.path.parent.mkdir(parents=True, exist_ok=True)
    ssh.make()
    ssh.ensure_host_key()
    keys = read_authorized_keys(environ[KEYS_ENV])
    ssh.write(
        ssh.authorized_keys, authorized_keys_text(keys, owner=environ.get("JUPYTERHUB_USER", ""))
    )
    settings = SshdSettings(
        user=account_name(),
        host_key=str(ssh.host_key),
        authorized_keys=str(ssh.authorized_keys),
        env=session_env(environ),
        permit_tty=ptys_work(tty_gid(), sandboxed=False),
        start_dir=environ.get("CODESPACE_WORKSPACE") or None,
    )
    ssh.write(ssh.config, sshd_config(settings))
    home = environ.get("HOME")
    if home and Path(home).is_dir():
        try:
            write_login_profile(Path(home))
        except OSError:
            pass  # a read-only home: login shells keep /etc/profile's PATH
    return ssh.config


def config_path(environ: Mapping[str, str]) -> Path | None:
    """This server's sshd_config: the hub's (local) or one written here (a pod)."""
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    try:
        return prepare_in_pod(environ)
    except (OSError, SshFilesError) as error:
        print(f"codespace: sshd is off: {error}", file=sys.stderr, flush=True)
        return None


def proxy_command(config: Path, environ: Mapping[str, str]) -> list[str] | None:
    """jupyter-server-proxy's command for the sshd entry (None without sshd)."""
    sshd = find_sshd(environ)
    if sshd is None:
        return None
    return [
        sys.executable,
        "-m",
        "codespace.ssh.listen",
        "{unix_socket}",
        "--",
        *sshd_argv(sshd, config),
    ]


def _unavailable(environ: Mapping[str, str]) -> str:
    """Why no ssh login can work now ('' when one can)."""
    if current_uid() == 0:
        return (
            "this codespace runs as root (the hub does not isolate users): SSH into it is "
            "not offered"
        )
    if find_sshd(environ) is None:
        return "OpenSSH's sshd is not installed where this codespace runs"
    config = environ.get(CONFIG_ENV) or ""
    directory = environ.get(DIR_ENV)
    if not directory or not (config or KEYS_ENV in environ):
        return "this codespace was started without SSH (restart it to get it)"
    ssh = SshDir(Path(directory))
    if not (Path(config) if config else ssh.config).is_file():
        return "the codespace's sshd configuration is missing (restart the codespace)"
    if not ssh.keys():
        if config:  # local: the hub rewrites the keys of running codespaces
            return f"you have no SSH keys: add one at {KEYS_PAGE}"
        return f"no SSH keys when this codespace started: add one at {KEYS_PAGE}, then restart it"
    return ""


def ssh_status(environ: Mapping[str, str], server_path: str = "") -> dict[str, Any]:
    """The ``ssh`` part of the session API (see the module doc); ``server_path`` is the
    server's base path (``/user/<name>/<server>/``), for the websocket's path."""
    directory = environ.get(DIR_ENV)
    host_key = SshDir(Path(directory)).host_key_public() if directory else None
    reason = _unavailable(environ)
    status: dict[str, Any] = {
        "user": account_name(),
        "hostKeyFingerprint": host_key.fingerprint if host_key else None,
        "available": not reason,
        "reason": reason,
    }
    if server_path:
        status["path"] = server_path.rstrip("/") + f"/{PROXY_NAME}/"
    return status
