"""``codespace ssh-config``: the marked block in ~/.ssh/config (idempotent, everything else
kept, dry-run diff, file modes), and the written entries used by real ssh, scp and sftp."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codespace.cli import main
from codespace.ssh import sshconfig
from codespace.ssh.client import Target
from codespace.ssh.hubs import HubStore
from tests.helpers.ssh_client import (
    CLI,
    JUPYTER_TOKEN,
    TOKEN,
    HubDouble,
    Sshd,
    config_home,
    hub,
    log_in,
    sshd,
)

__all__ = ["config_home", "hub", "sshd"]  # the shared fixtures

URL = "https://hub.example.org"
USER_CONFIG = """\
# my own settings
Host github.com
  User git
  IdentityFile ~/.ssh/github

Host codespace-box
  HostName 10.0.0.7
"""


def entries(*names: str, login: str | None = "cs-alice") -> list[sshconfig.HostEntry]:
    return [sshconfig.HostEntry(f"codespace-{n}", Target("alice", n), login) for n in names]


def block(*names: str, url: str = URL) -> str:
    return sshconfig.render_block(url, entries(*names), python="/venv/bin/python")


def test_the_block_is_appended_then_updated_in_place_and_removed() -> None:
    first = sshconfig.update_block(USER_CONFIG, URL, block("a"))
    assert first.startswith(USER_CONFIG + "\n# >>> codespace hub https://hub.example.org >>>\n")
    assert first.endswith("# <<< codespace hub https://hub.example.org <<<\n")
    assert sshconfig.update_block(first, URL, block("a")) == first  # idempotent

    edited = first + "\nHost after\n  User me\n"  # the user's lines after the block stay
    second = sshconfig.update_block(edited, URL, block("a", "b"))
    assert second.startswith(USER_CONFIG) and second.endswith("\nHost after\n  User me\n")
    assert "Host codespace-b\n" in second and second.count(">>> codespace hub") == 1

    other = sshconfig.update_block(second, "https://other.org", block("c", url="https://other.org"))
    assert other.count(">>> codespace hub") == 2  # one block per hub
    assert sshconfig.update_block(other, "https://other.org", None) == second
    assert sshconfig.update_block(first, URL, None) == USER_CONFIG
    assert sshconfig.update_block("", URL, block("a")) == block("a")
    assert sshconfig.update_block("Host x", URL, block("a")) == "Host x\n\n" + block("a")


def test_a_broken_block_is_not_guessed_at() -> None:
    broken = USER_CONFIG + sshconfig.start_marker(URL) + "\nHost codespace-a\n"
    with pytest.raises(ValueError, match="broken codespace block"):
        sshconfig.update_block(broken, URL, block("a"))


def test_the_entry_has_what_ssh_and_remote_ssh_need() -> None:
    text = sshconfig.render_block(
        URL,
        entries("box") + entries("new", login=None),
        python="/venv/bin/python",
        pin_host_key=True,
    )
    proxy = "/venv/bin/python -m codespace.cli ssh-proxy --hub https://hub.example.org alice/box"
    assert (
        "Host codespace-box\n"
        "  HostName codespace.hub.example.org.alice.box\n"
        "  User cs-alice\n"
        f"  ProxyCommand {proxy}\n"
        "  HostKeyAlias codespace.hub.example.org.alice.box\n"
        "  StrictHostKeyChecking accept-new\n"
        "  KnownHostsCommand /venv/bin/python -m codespace.cli ssh-known-hosts"
        " --hub https://hub.example.org alice/box %H %t %K\n"
        "  ServerAliveInterval 30\n"
    ) in text
    assert "Host codespace-new\n  HostName codespace.hub.example.org.alice.new\n  # User:" in text


def test_aliases_avoid_host_names_used_elsewhere() -> None:
    taken = sshconfig.other_host_names(USER_CONFIG, URL)
    assert taken == {"github.com", "codespace-box"}
    targets = [
        Target("alice", "box"),
        Target("alice", "lab"),
        Target("alice", ""),
        Target("bob", "x"),
    ]
    aliases = sshconfig.choose_aliases("http://h:8000", targets, "alice", taken)
    assert aliases == {
        Target("alice", "box"): "codespace-alice-box",
        Target("alice", "lab"): "codespace-lab",
        Target("alice", ""): "codespace-alice",
        Target("bob", "x"): "codespace-bob-x",
    }
    assert (
        sshconfig.host_key_alias("http://h:8000", Target("alice", "")) == "codespace.h-8000.alice"
    )


@pytest.fixture
def codespaces(hub: HubDouble, config_home: Path) -> HubDouble:
    hub.add("box", ready=True)
    hub.add("stopped", ready=False)
    hub.add("", ready=False)  # a default server that is not running is no codespace
    log_in(hub.url)
    return hub


def test_dry_run_prints_the_diff_and_changes_nothing(
    codespaces: HubDouble, tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "config"
    path.write_text(USER_CONFIG)
    assert main(["ssh-config", "--dry-run", "--config", str(path)]) == 0
    diff = capsys.readouterr().out
    assert diff.startswith(f"--- {path}\n+++ {path} (new)\n")
    assert f"+# >>> codespace hub {codespaces.url} >>>" in diff
    assert "+Host codespace-alice-box\n" in diff  # codespace-box is the user's own
    assert "+Host codespace-stopped\n" in diff  # stopped: listed (connecting starts it)
    assert path.read_text() == USER_CONFIG
    assert "codespace-alice\n" not in diff
    codespaces.codespaces[""]["ready"] = True
    assert main(["ssh-config", "--dry-run", "--config", str(path)]) == 0
    assert "+Host codespace-alice\n+  HostName codespace.127.0.0.1-" in capsys.readouterr().out


def test_the_file_keeps_its_mode_and_a_new_one_is_private(
    codespaces: HubDouble, tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "config"
    path.write_text(USER_CONFIG)
    os.chmod(path, 0o640)
    link = tmp_path / "link"
    link.symlink_to(path)  # a dotfiles manager's link stays a link
    assert main(["ssh-config", "--config", str(link)]) == 0
    assert link.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o640
    written = path.read_text()
    assert written.startswith(USER_CONFIG) and "Host codespace-stopped" in written
    assert main(["ssh-config", "--config", str(link)]) == 0
    assert path.read_text() == written and "up to date" in capsys.readouterr().err

    fresh = tmp_path / "new" / ".ssh" / "config"
    assert main(["ssh-config", "--config", str(fresh)]) == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert stat.S_IMODE(fresh.parent.stat().st_mode) == 0o700
    assert main(["ssh-config", "--remove", "--config", str(link)]) == 0
    assert path.read_text() == USER_CONFIG


def test_login_names_come_from_sessions_seen(codespaces: HubDouble, tmp_path: Path) -> None:
    path = tmp_path / "config"
    assert main(["ssh-config", "--config", str(path)]) == 0
    assert "User " not in path.read_text()  # no session said yet
    HubStore().remember_login(codespaces.url, "alice/box", "cs-alice")
    assert main(["ssh-config", "--config", str(path)]) == 0
    text = path.read_text()
    # the owner's account serves all their codespaces: the stopped one gets it too
    assert text.count("  User cs-alice\n") == 2


def test_real_ssh_scp_and_sftp_use_the_written_entry(
    hub: HubDouble, sshd: Sshd, config_home: Path, tmp_path: Path
) -> None:
    hub.tokens.add(JUPYTER_TOKEN)
    hub.add("box", ready=False, url=sshd.server.url)
    log_in(hub.url, JUPYTER_TOKEN)
    HubStore().remember_login(hub.url, "alice/box", sshd.login)
    config = tmp_path / "ssh_config"
    assert main(["ssh-config", "--config", str(config)]) == 0
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    options = ["-F", str(config), *sshd.client_options()[2:]]

    def run(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, **kwargs)
        assert done.returncode == 0, done.stderr
        return done

    assert run("ssh", *options, "codespace-box", "echo", "ok").stdout == "ok\n"
    local, remote = tmp_path / "up.bin", tmp_path / "remote.bin"
    local.write_bytes(os.urandom(200_000))
    run("scp", *options, str(local), f"codespace-box:{remote}")
    run("scp", *options, f"codespace-box:{remote}", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == local.read_bytes()
    listing = run("sftp", *options, "-b", "-", "codespace-box", input=f"ls {tmp_path}\n").stdout
    assert "down.bin" in listing and "remote.bin" in listing
    assert TOKEN not in config.read_text()  # the token stays in hubs.json
    assert CLI[0] in config.read_text()
