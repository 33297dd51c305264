"""``~/.ssh/config`` entries for codespaces: pure builders, and the one write at the edge.

Each hub owns one marked block; ``codespace ssh-config`` rewrites that block in place and
leaves every other line alone (a new block goes at the end, after the user's own entries)::

    # >>> codespace hub https://hub.example.org >>>
    Host codespace-analysis
      HostName codespace.hub.example.org.alice.analysis
      User alice
      ProxyCommand /usr/bin/python3 -m codespace.cli ssh-proxy --hub https://... alice/analysis
      HostKeyAlias codespace.hub.example.org.alice.analysis
      ...
    # <<< codespace hub https://hub.example.org <<<

``HostName`` is a placeholder (the ProxyCommand reaches the codespace through the hub);
``HostKeyAlias`` names the codespace in ``known_hosts``, so each codespace has its own host key
entry whatever alias reaches it. Where the local OpenSSH has ``KnownHostsCommand`` (8.5+), the
host key is checked against the fingerprint the codespace's session reports.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codespace.ssh.client import Target

KNOWN_HOSTS_COMMAND_SINCE = (8, 5)
_VERSION = re.compile(r"OpenSSH_(?:for_Windows_)?(\d+)\.(\d+)")


def start_marker(hub_url: str) -> str:
    return f"# >>> codespace hub {hub_url} >>>"


def end_marker(hub_url: str) -> str:
    return f"# <<< codespace hub {hub_url} <<<"


def hub_host(hub_url: str) -> str:
    """The hub's host name, with ``-port`` when the URL names a port."""
    parts = urllib.parse.urlsplit(hub_url)
    host = (parts.hostname or "hub").strip("[]").replace(":", "-")
    return f"{host}-{parts.port}" if parts.port else host


def host_key_alias(hub_url: str, target: Target) -> str:
    """``codespace.<hub host>.<user>.<server>`` (no ``.<server>`` for the default server)."""
    alias = f"codespace.{hub_host(hub_url)}.{target.user}"
    return f"{alias}.{target.server}" if target.server else alias


def cli_argv(python: str | None = None) -> list[str]:
    """How a ProxyCommand runs this CLI: the same Python, ``-m codespace.cli``."""
    return [python or sys.executable, "-m", "codespace.cli"]


def command_line(argv: Sequence[str], *, windows: bool | None = None) -> str:
    """A command line for ssh_config (run by the shell; ``%`` doubled for ssh's tokens)."""
    windows = os.name == "nt" if windows is None else windows
    text = subprocess.list2cmdline(list(argv)) if windows else shlex.join(argv)
    return text.replace("%", "%%")


def proxy_argv(hub_url: str, target: Target, python: str | None = None) -> list[str]:
    return [*cli_argv(python), "ssh-proxy", "--hub", hub_url, str(target)]


def known_hosts_command(hub_url: str, target: Target, python: str | None = None) -> str:
    """``KnownHostsCommand``'s value: ssh fills in the name looked up, key type and key."""
    argv = [*cli_argv(python), "ssh-known-hosts", "--hub", hub_url, str(target)]
    return command_line(argv) + " %H %t %K"


def ssh_version(ssh: str) -> tuple[int, int] | None:
    """The local OpenSSH's version (major, minor), or None when ``ssh -V`` does not say."""
    try:
        done = subprocess.run([ssh, "-V"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = _VERSION.search(done.stderr + done.stdout)
    return (int(found.group(1)), int(found.group(2))) if found else None


def connect_options(
    hub_url: str, target: Target, *, python: str | None = None, pin_host_key: bool = False
) -> list[tuple[str, str]]:
    """The ssh options that reach ``target`` through the hub (login name not included)."""
    options = [
        ("ProxyCommand", command_line(proxy_argv(hub_url, target, python))),
        ("HostKeyAlias", host_key_alias(hub_url, target)),
        ("StrictHostKeyChecking", "accept-new"),
    ]
    if pin_host_key:
        options.append(("KnownHostsCommand", known_hosts_command(hub_url, target, python)))
    return options


@dataclass(frozen=True)
class HostEntry:
    """One ``Host`` entry: the alias a user types, the codespace, its SSH login name."""

    alias: str
    target: Target
    login: str | None


def alias_candidates(hub_url: str, target: Target, me: str) -> list[str]:
    """Aliases for ``target``, the shortest first (``codespace-<server>`` for one's own)."""
    server = target.server or "default"
    names = [
        f"codespace-{target.user}-{server}",
        f"codespace-{hub_host(hub_url)}-{target.user}-{server}",
    ]
    if target.user == me:
        names.insert(0, f"codespace-{target.server or target.user}")
    return names


def choose_aliases(
    hub_url: str, targets: Iterable[Target], me: str, taken: Iterable[str] = ()
) -> dict[Target, str]:
    """A distinct alias per target, avoiding the ``Host`` names ``taken`` elsewhere."""
    used = {name.lower() for name in taken}
    chosen: dict[Target, str] = {}
    for target in sorted(targets, key=lambda t: (t.user != me, t.user, t.server)):
        candidates = alias_candidates(hub_url, target, me)
        alias = next((name for name in candidates if name.lower() not in used), None)
        if alias is None:
            alias, n = candidates[-1], 2
            while f"{alias}-{n}".lower() in used:
                n += 1
            alias = f"{alias}-{n}"
        used.add(alias.lower())
        chosen[target] = alias
    return chosen


def render_entry(
    hub_url: str, entry: HostEntry, *, python: str | None = None, pin_host_key: bool = False
) -> list[str]:
    lines = [f"Host {entry.alias}", f"  HostName {host_key_alias(hub_url, entry.target)}"]
    if entry.login:
        lines.append(f"  User {entry.login}")
    else:
        lines.append("  # User: not known yet (the codespace has not run); rerun ssh-config")
    for key, value in connect_options(
        hub_url, entry.target, python=python, pin_host_key=pin_host_key
    ):
        lines.append(f"  {key} {value}")
    lines.append("  ServerAliveInterval 30")
    return lines


def render_block(
    hub_url: str,
    entries: Sequence[HostEntry],
    *,
    python: str | None = None,
    pin_host_key: bool = False,
) -> str:
    """The marked block for ``hub_url`` (newline-terminated)."""
    lines = [
        start_marker(hub_url),
        "# Written by `codespace ssh-config`; run it again to update. Edits here are replaced.",
    ]
    if not entries:
        lines.append("# (no codespaces yet)")
    for entry in entries:
        lines.extend(["", *render_entry(hub_url, entry, python=python, pin_host_key=pin_host_key)])
    lines.append(end_marker(hub_url))
    return "\n".join(lines) + "\n"


def _block_span(lines: list[str], hub_url: str) -> tuple[int, int] | None:
    start_line, end_line = start_marker(hub_url), end_marker(hub_url)
    starts = [i for i, line in enumerate(lines) if line.strip() == start_line]
    ends = [i for i, line in enumerate(lines) if line.strip() == end_line]
    if not starts and not ends:
        return None
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(
            f"the ssh config has a broken codespace block for {hub_url} (markers missing or "
            "repeated); fix or remove it by hand, then run this again"
        )
    return starts[0], ends[0]


def other_host_names(text: str, hub_url: str) -> set[str]:
    """The ``Host`` names of the config outside ``hub_url``'s block."""
    lines = text.splitlines()
    span = _block_span(lines, hub_url)
    if span:
        lines = lines[: span[0]] + lines[span[1] + 1 :]
    names: set[str] = set()
    for line in lines:
        words = line.replace("=", " ", 1).split()
        if len(words) > 1 and words[0].lower() == "host":
            names.update(words[1:])
    return names


def update_block(text: str, hub_url: str, block: str | None) -> str:
    """``text`` with ``hub_url``'s block replaced by ``block`` (appended when there was
    none; removed when ``block`` is None). Lines outside the block are kept as they are."""
    lines = text.splitlines(keepends=True)
    span = _block_span([line.rstrip("\r\n") for line in lines], hub_url)
    if span is None:
        if block is None:
            return text
        head = "".join(lines)
        if head and not head.endswith("\n"):
            head += "\n"
        if head.strip() and not head.endswith("\n\n"):
            head += "\n"
        return head + block
    start, end = span
    before, after = lines[:start], lines[end + 1 :]
    if block is not None:
        return "".join([*before, block, *after])
    if before and not before[-1].strip() and (not after or not after[0].strip()):
        before = before[:-1]
    return "".join([*before, *after])


def unified_diff(old: str, new: str, path: Path) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=str(path),
            tofile=f"{path} (new)",
        )
    )


def default_config_path() -> Path:
    return Path.home() / ".ssh" / "config"


def read_config(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def write_config(path: Path, text: str) -> None:
    """Write ``text`` atomically, through a symlink to its target, keeping the file's mode
    (a new file: 0600, in a directory created 0700)."""
    real = Path(os.path.realpath(path))
    try:
        mode = stat.S_IMODE(real.stat().st_mode)
    except FileNotFoundError:
        mode = 0o600
        if not real.parent.exists():
            real.parent.mkdir(parents=True)
            os.chmod(real.parent, 0o700)
    fd, temp = tempfile.mkstemp(prefix=f".{real.name}.", dir=real.parent)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(temp, mode)
        os.replace(temp, real)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
