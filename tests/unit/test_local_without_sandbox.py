"""A root hub without the sandbox (--no-sandbox, or no bubblewrap): what accounts reach.

spawner.local_isolation: each account's builds reach its own uv cache and nobody else's; a
platform the accounts cannot reach refuses the start with the directory to fix; the banner
says what running without the sandbox means.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from codespace.local.accounts import Account, AccountError
from codespace.local.limits import CgroupLimits
from spawner import local_isolation
from spawner.local_isolation import Settings, build_cache_dir, prepare_account
from tests.helpers.confinement import TestAccounts, making_accounts


@pytest.fixture
def data_dir() -> Iterator[Path]:
    top = Path(tempfile.mkdtemp(prefix="cstest-", dir="/var/tmp"))  # not under pytest's 0700
    os.chmod(top, 0o711)
    yield top
    shutil.rmtree(top)


@pytest.fixture
def test_accounts(data_dir: Path) -> Iterator[TestAccounts]:
    with making_accounts(data_dir / "homes") as made:
        yield made


def _as(account: Account, *argv: str) -> int:
    return subprocess.run(account.demote_argv(list(argv)), cwd="/", capture_output=True).returncode


def test_without_the_sandbox_a_build_writes_its_own_cache_only(
    data_dir: Path, test_accounts: TestAccounts
) -> None:
    alice, bob = test_accounts.make(), test_accounts.make()
    cache = build_cache_dir(data_dir, alice, sandboxed=False)
    build_cache_dir(data_dir, bob, sandboxed=False)
    assert _as(alice, "/usr/bin/touch", str(cache / "wheel")) == 0  # uv runs as the account
    assert (cache / "wheel").stat().st_uid == alice.uid
    assert _as(bob, "/bin/ls", str(cache)) != 0
    assert _as(bob, "/usr/bin/touch", str(cache / "planted")) != 0
    assert _as(bob, "/bin/ls", str(data_dir / "build-cache")) != 0  # 0711: no list of accounts


def test_in_the_sandbox_no_account_reaches_a_cache_outside_its_build(
    data_dir: Path, test_accounts: TestAccounts
) -> None:
    alice = test_accounts.make()
    build_cache_dir(data_dir, alice, sandboxed=False)  # a hub started with --no-sandbox before
    cache = build_cache_dir(data_dir, alice, sandboxed=True)
    assert _as(alice, "/usr/bin/touch", str(cache / "planted")) != 0  # only a build's bind
    assert not (cache / "planted").exists()


def test_the_banner_warns_when_builds_run_without_the_sandbox(data_dir: Path) -> None:
    from hub.app import describe_trust

    banner = describe_trust(data_dir, sandbox=False, roots=[])
    if os.geteuid() != 0:
        assert "the hub's own account" in banner
        return
    assert "sandbox off (--no-sandbox)" in banner
    assert "can reach the environments that user builds" in banner


def _settings(data_dir: Path) -> Settings:
    limits = CgroupLimits.parse(cpu=None, memory=None)
    return Settings(data_dir / "hub", False, limits, limits, cpu_weight=25)


def test_a_platform_the_accounts_cannot_reach_refuses_the_start_before_anything_is_made(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = data_dir / "root-only"
    (closed / "python").mkdir(parents=True)
    os.chmod(closed, 0o700)  # like /root holding a pyenv Python
    monkeypatch.setattr(local_isolation, "platform_dirs", lambda: (closed / "python",))
    hub_user = "cstest-unreachable"
    with pytest.raises(AccountError) as refused:
        prepare_account(_settings(data_dir), hub_user, data_dir / "w" / "x", data_dir / "s" / "x")
    message = str(refused.value)
    assert "without the sandbox (--no-sandbox)" in message
    assert f"{closed} is mode 0700" in message and "chmod o+x" in message
    assert list((data_dir / "hub").iterdir()) == []  # no account, no directories
    assert not (data_dir / "w").exists()


def test_a_reachable_platform_starts_as_the_account(
    data_dir: Path, test_accounts: TestAccounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_isolation, "platform_dirs", lambda: (Path("/usr"),))
    hub_user = test_accounts.make().name.removeprefix("cs-")
    account = prepare_account(
        _settings(data_dir), hub_user, data_dir / "hub/workspaces/u/x", data_dir / "hub/servers/u/x"
    )
    assert (data_dir / "hub/build-cache" / account.name).stat().st_uid == account.uid
