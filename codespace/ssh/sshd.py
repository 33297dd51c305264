"""A codespace's sshd: its configuration (pure builders) and how it is started.

One OpenSSH ``sshd`` per codespace, **running as the codespace's account, never root**, in
inetd mode (``sshd -i``): :mod:`codespace.ssh.listen` accepts connections on a unix socket
that only the codespace's Jupyter server reaches (jupyter-server-proxy's
``raw_socket_proxy``, at ``<server URL>/sshd/``) and starts one ``sshd -i`` per connection.
No TCP port is opened; ``ListenAddress 127.0.0.1`` is in the file for ``sshd -D -p PORT -f
FILE`` (a direct connection for tests and benchmarks).

What :func:`sshd_config` writes, and why (checked with Debian 12's OpenSSH 9.2):

- public keys only (no passwords, keyboard-interactive, host-based or GSSAPI), from one
  ``AuthorizedKeysFile`` the hub writes with exactly the owner's keys (``%`` in its path is
  doubled: sshd expands ``%u``/``%h`` tokens there); ``AllowUsers`` the account (a non-root
  sshd could only log that account in anyway: another name gets "Failed to set uids" after
  the key is accepted, so this refuses it before);
- ``UsePAM no`` (PAM needs root) and ``PidFile none`` (``/run`` is root's);
- ``StrictModes no``: the hub's files are root-owned and not writable by the account, but a
  data directory under ``/tmp`` (1777) or a Kubernetes volume made group-writable by
  ``fsGroup`` would make sshd refuse every key ("bad ownership or modes for directory");
- the host key is read by the account: root-owned and group-readable is accepted; a key file
  owned by the account itself must be 0600;
- ``PermitTTY``: sshd makes a pty belong to the ``tty`` group (``chown``), which a non-root
  sshd cannot do, and the session dies ("chown(/dev/pts/0...) failed"), unless the pty is
  already in that group (a host ``devpts`` mounted with ``gid=5``, as in Kubernetes pods) or
  no ``tty`` group is visible (the sandbox shows an ``/etc/group`` without it). Where
  neither holds, ptys are turned off and sessions still work without one;
- ``SetEnv``: the session environment of the repository (``PATH`` with its environment
  first, ``VIRTUAL_ENV``, ``CODESPACE_*``...), on **one** line (sshd keeps only the first
  ``SetEnv`` line); ``CODESPACE_SSH_PATH`` repeats ``PATH`` for login shells, whose
  ``/etc/profile`` resets it (:data:`BASH_PROFILE` puts it back). Secrets stay out of the
  file (it outlives the server's start): not the server's hub token, so the in-codespace SDK
  (:mod:`codespace.client`) has no credentials in an ssh session;
- ``Subsystem sftp internal-sftp`` (scp uses sftp since OpenSSH 9), TCP and unix-socket
  forwarding on (VS Code Remote-SSH forwards to its server), no X11, no tunnels, and
  loopback-only remote forwards (``GatewayPorts no``).

A non-root sshd needs no ``/run/sshd`` (only root's privilege separation does) and cannot
read ``/etc/shadow``, so the accounts' locked passwords (``!``, from ``useradd``) do not stop
key logins, as they would for a root sshd with ``UsePAM no``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

LISTEN = "127.0.0.1"
SFTP = "internal-sftp"
PROXY_NAME = "sshd"  # jupyter-server-proxy's entry: the websocket is <server URL>/sshd/
SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")

# file names in a codespace's ssh directory
CONFIG = "sshd_config"
HOST_KEY = "ssh_host_ed25519_key"
AUTHORIZED_KEYS = "authorized_keys"
GROUP = "group"  # /etc/group without the tty group, for the sandbox

PATH_COPY = "CODESPACE_SSH_PATH"
# Never in a session's environment: the hub's and the server's secrets and settings, what
# sshd sets itself, and what is only for the server's start.
_DROPPED_PREFIXES = ("JUPYTERHUB_", "JPY_", "JUPYTER_", "SSH_", "CODESPACE_SSH_", "CODESPACE_SSHD")
_DROPPED_NAMES = frozenset(
    {
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "MAIL",
        "TERM",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "CODESPACE_LAUNCH",
        "CODESPACE_SERVER_DIR",
        "CODESPACE_CODE_SERVER",
        "CODESPACE_VSIX_PATH",
    }
)
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

BASH_PROFILE = """\
# Written by Codespace Hub because there was no ~/.bash_profile; edit or replace it freely.
# A login shell (ssh, VS Code) reads /etc/profile first, which resets PATH: the codespace's
# sshd passes its PATH (the repository environment first) as CODESPACE_SSH_PATH.
if [ -n "${CODESPACE_SSH_PATH:-}" ]; then PATH="$CODESPACE_SSH_PATH"; export PATH; fi
if [ -f "$HOME/.profile" ]; then
  . "$HOME/.profile"
elif [ -n "${BASH_VERSION:-}" ] && [ -f "$HOME/.bashrc" ]; then
  case $- in *i*) . "$HOME/.bashrc" ;; esac
fi
# an interactive login (ssh into the codespace) starts in the repository's checkout
case $- in *i*) [ -d "${CODESPACE_WORKSPACE:-}" ] && cd "$CODESPACE_WORKSPACE" ;; esac
"""
LOGIN_FILES = (".bash_profile", ".bash_login")  # bash reads the first of these, then .profile


@dataclass(frozen=True)
class SshdSettings:
    """What one codespace's ``sshd_config`` says (see the module doc)."""

    user: str  # the account sshd runs as, the only one it lets in
    host_key: str
    authorized_keys: str
    env: Mapping[str, str] = field(default_factory=dict)  # already filtered: session_env()
    permit_tty: bool = True
    listen: str = LISTEN
    start_dir: str | None = None  # where sftp (and so scp) starts: the workspace


def quote(value: str) -> str:
    """``value`` as one argument of an sshd_config line (sshd's ``argv_split`` rules)."""
    if value and not re.search(r"[\s\"'\\#]", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def percent_escape(path: str) -> str:
    """A path for an option that expands ``%`` tokens (``AuthorizedKeysFile``)."""
    return path.replace("%", "%%")


def session_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of a server's environment an ssh session gets: everything but secrets
    (names with TOKEN, SECRET, PASSWORD...), Jupyter's and the hub's variables, what sshd
    sets per login, and values sshd_config cannot carry (new lines); plus
    ``CODESPACE_SSH_PATH`` (a copy of ``PATH``)."""
    kept = {}
    for name, value in environ.items():
        if not _NAME.match(name) or name in _DROPPED_NAMES:
            continue
        if name.startswith(_DROPPED_PREFIXES) or any(w in name.upper() for w in _SECRET_WORDS):
            continue
        if any(ch in value for ch in "\n\r\0"):
            continue
        kept[name] = value
    if "PATH" in kept:
        kept[PATH_COPY] = kept["PATH"]
    return dict(sorted(kept.items()))


def setenv_line(env: Mapping[str, str]) -> str | None:
    """The one ``SetEnv`` line (None for an empty environment)."""
    if not env:
        return None
    return "SetEnv " + " ".join(quote(f"{name}={value}") for name, value in env.items())


def sshd_config(settings: SshdSettings) -> str:
    """The text of a codespace's ``sshd_config`` (see the module doc)."""
    for what, value in (("user", settings.user), ("listen", settings.listen)):
        if not value or any(ch.isspace() or ch in "\"'#,*?!@" for ch in value):
            raise ValueError(f"sshd_config: {what} {value!r} cannot be written in sshd_config")
    lines = [
        "# Written by Codespace Hub for this codespace's sshd (codespace/ssh/sshd.py): it runs",
        "# as the codespace's account, one `sshd -i` per connection through the server's",
        "# proxy. Rewritten at each start: edits are lost.",
        f"ListenAddress {settings.listen}",
        f"HostKey {quote(settings.host_key)}",
        f"AuthorizedKeysFile {quote(percent_escape(settings.authorized_keys))}",
        "AuthorizedPrincipalsFile none",
        f"AllowUsers {settings.user}",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "HostbasedAuthentication no",
        "GSSAPIAuthentication no",
        "PermitEmptyPasswords no",
        "PermitRootLogin no",
        "PermitUserEnvironment no",
        "UsePAM no",
        "StrictModes no",
        "PidFile none",
        "AllowTcpForwarding yes",
        "AllowStreamLocalForwarding yes",
        "GatewayPorts no",
        "X11Forwarding no",
        "PermitTunnel no",
        f"PermitTTY {'yes' if settings.permit_tty else 'no'}",
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "ClientAliveInterval 30",
        "ClientAliveCountMax 4",
        f"Subsystem sftp {SFTP}" + _start_dir(settings.start_dir),
    ]
    env_line = setenv_line(settings.env)
    if env_line:
        lines.append(env_line)
    return "\n".join(lines) + "\n"


def _start_dir(path: str | None) -> str:
    """internal-sftp's ``-d``: sftp and scp start in ``path`` (a ``%`` is sshd's token)."""
    return f" -d {quote(percent_escape(path))}" if path else ""


def find_sshd(environ: Mapping[str, str] | None = None) -> str | None:
    """OpenSSH's sshd: ``$CODESPACE_SSHD``, else on ``PATH`` or in the sbin directories."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("CODESPACE_SSHD")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("sshd", path=environ.get("PATH", ""))
    if found:
        return found
    return next((path for path in SSHD_CANDIDATES if os.access(path, os.X_OK)), None)


def sshd_argv(sshd: str, config: str | os.PathLike[str]) -> list[str]:
    """One inetd-mode sshd (the connection on stdin/stdout, logs on stderr)."""
    return [sshd, "-i", "-e", "-f", str(config)]


def group_without_tty(text: str) -> str:
    """``/etc/group`` without the ``tty`` group (see ``PermitTTY`` in the module doc)."""
    lines = [line for line in text.splitlines() if line.split(":", 1)[0] != "tty"]
    return "\n".join(lines) + "\n"


def devpts_tty_gid(mountinfo: str, mount_point: str = "/dev/pts") -> int | None:
    """The ``gid=`` option of the devpts mounted at ``mount_point`` (the last mount there),
    from ``/proc/self/mountinfo`` text; None when it has none."""
    gid = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or fields[4] != mount_point or not tail or tail[0] != "devpts":
            continue
        options = (tail[2] if len(tail) > 2 else "").split(",")
        gid = next((int(o[4:]) for o in options if o.startswith("gid=") and o[4:].isdigit()), None)
    return gid


def ptys_work(tty_gid: int | None, *, sandboxed: bool, mountinfo: str | None = None) -> bool:
    """Whether a non-root sshd can hand out ptys here (see ``PermitTTY``): always in our
    sandbox (no tty group visible), else when the host's devpts gives new ptys that group."""
    if sandboxed or tty_gid is None:
        return True
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return False
    return devpts_tty_gid(mountinfo) == tty_gid
