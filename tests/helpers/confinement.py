"""Helpers for the tests of codespace.local (accounts, cgroups, bubblewrap) that run as root.

Test accounts are made for hub users named ``cstest-<pid>-<n>`` (accounts
``cs-cstest-...``) and deleted when the test ends; :func:`sweep_test_accounts` also removes
those a crashed run left behind (recognised by the codespace-hub comment of a ``cstest-``
hub user, never any other account).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from codespace.local.accounts import COMMENT_PREFIX, Account, delete_account, ensure_account
from codespace.local.limits import Cgroup, CgroupSupport, probe
from codespace.local.sandbox import SandboxSupport, check
from tests.conftest import missing

TEST_USER_PREFIX = "cstest-"
_counter = itertools.count()


def require_root() -> None:
    if os.geteuid() != 0:
        missing("needs root (system accounts, cgroups): run the tests as root")


def require_cgroups() -> CgroupSupport:
    require_root()
    support = probe()
    if not support.enforced:
        missing(support.sentence())
    return support


def require_bwrap() -> SandboxSupport:
    support = check()
    if not support.ok:
        missing(support.sentence() + " (apt-get install bubblewrap; make install-system)")
    return support


def new_hub_user() -> str:
    return f"{TEST_USER_PREFIX}{os.getpid()}-{next(_counter)}"


def sweep_test_accounts() -> None:
    """userdel the accounts of ``cstest-`` hub users (left by an interrupted run)."""
    marker = COMMENT_PREFIX + TEST_USER_PREFIX
    for entry in pwd.getpwall():
        if entry.pw_gecos.startswith(marker):
            subprocess.run(["userdel", "--", entry.pw_name], capture_output=True, check=False)


class TestAccounts:
    """Makes accounts for ``cstest-`` hub users; :meth:`cleanup` deletes them."""

    __test__ = False

    def __init__(self, home_root: Path) -> None:
        self.home_root = home_root
        self.hub_users: list[str] = []

    def make(self, hub_user: str | None = None) -> Account:
        hub_user = hub_user or new_hub_user()
        self.hub_users.append(hub_user)
        return ensure_account(hub_user, home_root=self.home_root)

    def cleanup(self) -> None:
        for hub_user in self.hub_users:
            for _ in range(50):  # a process of the account may still be exiting
                try:
                    delete_account(hub_user)
                    break
                except Exception:  # noqa: BLE001 - retried, then left to sweep_test_accounts
                    time.sleep(0.1)


@contextlib.contextmanager
def making_accounts(home_root: Path) -> Iterator[TestAccounts]:
    """Test accounts (root required), deleted when the block ends."""
    require_root()
    sweep_test_accounts()
    made = TestAccounts(home_root)
    try:
        yield made
    finally:
        made.cleanup()


@contextlib.contextmanager
def cgroup_parent() -> Iterator[Cgroup]:
    """A parent group for a test (``codespace-hub-test-<pid>``), removed with its children."""
    support = require_cgroups()
    parent = support.parent(f"codespace-hub-test-{os.getpid()}")
    try:
        yield parent
    finally:
        for directory in parent.directories:
            for child in directory.iterdir() if directory.exists() else ():
                if child.is_dir():
                    Cgroup(parent.version, {"memory": child}).remove()
        parent.remove()
