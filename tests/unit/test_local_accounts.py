"""codespace.local.accounts: names, creating accounts as root, running as them, file modes."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from codespace.local.accounts import (
    MAX_NAME,
    Account,
    AccountError,
    account_comment,
    account_name,
    chown_tree,
    delete_account,
    ensure_account,
    harden_data_dir,
    own_dir,
    running_as_root,
    traversal_problems,
    user_dirs,
)
from tests.helpers.confinement import TestAccounts, making_accounts, new_hub_user


@pytest.fixture
def test_accounts(tmp_path: Path) -> Iterator[TestAccounts]:
    with making_accounts(tmp_path / "homes") as made:
        yield made


# -- names (no root needed) -------------------------------------------------------------------


def test_safe_names_are_used_as_they_are() -> None:
    assert account_name("alice") == "cs-alice"
    assert account_name("bob-2") == "cs-bob-2"


@pytest.mark.parametrize(
    "hub_user",
    ["Alice", "al.ice", "al_ice", "ålice", "a" * 40, "-rf", "--help", "a b", "x:y", "名字", "_"],
)
def test_other_names_get_a_hash_and_stay_valid(hub_user: str) -> None:
    name = account_name(hub_user)
    assert name.startswith("cs-") and len(name) <= MAX_NAME
    assert "_" in name and name.rsplit("_", 1)[1].isalnum()
    assert all(c.islower() or c.isdigit() or c in "-_" for c in name[3:])


def test_names_never_collide() -> None:
    hub_users = ["alice", "Alice", "al.ice", "al-ice", "al_ice", "ALICE", "a" * 29, "a" * 30]
    hub_users += ["a" * 31, "x" * 100, "x" * 101, f"alice_{account_name('Alice')[-10:]}"]
    names = [account_name(user) for user in hub_users]
    assert len(set(names)) == len(names), dict(zip(hub_users, names, strict=True))


def test_a_safe_name_cannot_mimic_a_hashed_one() -> None:
    hashed = account_name("Alice")  # cs-alice_<hash>
    assert account_name(hashed[3:]) != hashed  # "alice_<hash>" has "_": hashed again


def test_long_names_are_cut_to_useradds_limit() -> None:
    assert account_name("a" * 29) == "cs-" + "a" * 29
    assert len(account_name("a" * 30)) == MAX_NAME


def test_empty_name_is_refused() -> None:
    with pytest.raises(ValueError):
        account_name("")


def test_comment_has_no_passwd_separators() -> None:
    comment = account_comment("a:b,c\nd")
    assert not set(":\n,") & set(comment)


def test_demote_argv_puts_the_command_after_double_dash() -> None:
    account = Account("cs-x", 990, 991, Path("/h"), (991,))
    argv = account.demote_argv(["--not-an-option", "x"])
    assert argv[0] == "setpriv" and "--reuid=990" in argv and "--regid=991" in argv
    assert argv[argv.index("--") + 1 :] == ["--not-an-option", "x"]
    assert {"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"} <= set(argv)
    assert account.env()["HOME"] == "/h" and account.env()["USER"] == "cs-x"
    assert account.popen_kwargs() == {"user": 990, "group": 991, "extra_groups": [991]}


def test_running_as_root_matches_euid() -> None:
    assert running_as_root() == (os.geteuid() == 0)


# -- as root: real accounts --------------------------------------------------------------------


def test_ensure_account_creates_once_with_our_marker(
    test_accounts: TestAccounts,
) -> None:
    hub_user = new_hub_user()
    account = test_accounts.make(hub_user)
    entry = pwd.getpwnam(account.name)
    assert account.name == account_name(hub_user)
    assert (entry.pw_uid, entry.pw_gid) == (account.uid, account.gid)
    assert account.uid != 0 and entry.pw_gecos == account_comment(hub_user)
    assert entry.pw_shell == "/bin/bash" and Path(entry.pw_dir) == account.home
    home = os.stat(account.home)
    assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (account.uid, 0o700)
    again = test_accounts.make(hub_user)
    assert again == account


def test_racing_spawns_create_one_account(test_accounts: TestAccounts) -> None:
    hub_user = new_hub_user()
    test_accounts.hub_users.append(hub_user)
    results: list[Account | BaseException] = []

    def spawn() -> None:
        try:
            results.append(ensure_account(hub_user, home_root=test_accounts.home_root))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            results.append(error)

    threads = [threading.Thread(target=spawn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, Account) for r in results), results
    assert len({r.uid for r in results if isinstance(r, Account)}) == 1


def test_a_foreign_account_of_that_name_is_refused(
    test_accounts: TestAccounts,
) -> None:
    hub_user = new_hub_user()
    name = account_name(hub_user)
    subprocess.run(["useradd", "--system", "--comment", "someone else", "--", name], check=True)
    try:
        with pytest.raises(AccountError, match="not created by codespace-hub"):
            ensure_account(hub_user, home_root=test_accounts.home_root)
        with pytest.raises(AccountError, match="not created by codespace-hub"):
            delete_account(hub_user)
    finally:
        subprocess.run(["userdel", "--", name], check=True)


def test_a_foreign_group_of_that_name_is_refused(test_accounts: TestAccounts) -> None:
    hub_user = new_hub_user()
    name = account_name(hub_user)
    subprocess.run(["groupadd", "--system", "--", name], check=True)
    try:
        with pytest.raises(AccountError, match="group"):
            ensure_account(hub_user, home_root=test_accounts.home_root)
    finally:
        subprocess.run(["groupdel", "--", name], check=True)


def test_delete_account_removes_it(test_accounts: TestAccounts) -> None:
    hub_user = new_hub_user()
    account = ensure_account(hub_user, home_root=test_accounts.home_root)
    assert delete_account(hub_user) is True
    with pytest.raises(KeyError):
        pwd.getpwnam(account.name)
    assert delete_account(hub_user) is False


def _whoami(**kwargs) -> list[str]:
    code = "import os; print(os.getuid(), os.getgid(), sorted(os.getgroups()))"
    done = subprocess.run(
        ["/usr/bin/python3", "-c", code], capture_output=True, text=True, cwd="/", **kwargs
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(maxsplit=2)


def test_three_ways_to_run_as_the_account(test_accounts: TestAccounts) -> None:
    account = test_accounts.make()
    expected = [str(account.uid), str(account.gid), str(sorted(account.groups))]
    argv = account.demote_argv(["/usr/bin/python3", "-c", "pass"])
    assert subprocess.run(argv, cwd="/", check=False).returncode == 0
    setpriv = account.demote_argv(["/usr/bin/python3", "-c", "import os; print(os.getuid())"])
    assert subprocess.run(setpriv, capture_output=True, text=True).stdout.strip() == expected[0]
    assert _whoami(preexec_fn=account.preexec()) == expected
    assert _whoami(**account.popen_kwargs()) == expected


STATUS = ["/bin/grep", "-E", "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)", "/proc/self/status"]


def _status(argv: list[str], **kwargs) -> dict[str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, cwd="/", **kwargs)
    return dict(line.split(":\t") for line in done.stdout.splitlines())


def test_setpriv_drops_every_capability(test_accounts: TestAccounts) -> None:
    account = test_accounts.make()
    fields = _status(account.demote_argv(STATUS))
    assert fields["NoNewPrivs"] == "1"
    assert {fields[f"Cap{k}"] for k in ("Inh", "Prm", "Eff", "Bnd", "Amb")} == {"0" * 16}
    fields = _status(STATUS, preexec_fn=account.preexec())
    assert fields["NoNewPrivs"] == "1"
    assert {fields[f"Cap{k}"] for k in ("Inh", "Prm", "Eff", "Amb")} == {"0" * 16}


def test_traversal_problems_name_the_blocking_directory() -> None:
    top = Path(tempfile.mkdtemp(prefix="cstest-", dir="/var/tmp"))  # not under pytest's 0700
    try:
        closed = top / "closed"
        (closed / "venv").mkdir(parents=True)
        os.chmod(top, 0o755)
        os.chmod(closed, 0o700)
        problems = traversal_problems(closed / "venv", Path("/usr/bin"))
        assert len(problems) == 1 and f"{closed} is mode 0700" in problems[0]
        os.chmod(closed, 0o711)
        assert traversal_problems(closed / "venv") == []
    finally:
        shutil.rmtree(top)


# -- as root: files ----------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_harden_data_dir_sets_the_modes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for sub in ("secrets", "workspaces/alice/s", "servers/alice/s", "env-cache/envs"):
        (data / sub).mkdir(parents=True)
    for name in ("jupyterhub.sqlite", "jupyterhub.sqlite-journal", "gpu-grants.json"):
        (data / name).write_text("x")
    (data / "secrets" / "admin-password").write_text("x")
    (data / "datasets.yaml").write_text("datasets: {}")
    os.chmod(data / "secrets" / "admin-password", 0o644)
    changed = harden_data_dir(data)
    assert data in changed
    assert _mode(data) == _mode(data / "workspaces") == _mode(data / "servers") == 0o711
    assert _mode(data / "workspaces" / "alice") == _mode(data / "servers" / "alice") == 0o700
    assert _mode(data / "secrets") == 0o700
    assert _mode(data / "secrets" / "admin-password") == 0o600
    assert _mode(data / "jupyterhub.sqlite") == _mode(data / "jupyterhub.sqlite-journal") == 0o600
    assert _mode(data / "gpu-grants.json") == 0o600
    assert _mode(data / "datasets.yaml") == 0o644  # the servers read the catalog
    assert _mode(data / "env-cache") == 0o755
    assert harden_data_dir(data) == []


def test_user_dirs_and_chown_tree_never_follow_symlinks(
    test_accounts: TestAccounts,
    tmp_path: Path,
) -> None:
    account = test_accounts.make()
    victim = tmp_path / "root-only"
    victim.write_text("root's")
    workspace = tmp_path / "data" / "workspaces" / "u" / "s"
    user_dirs(account, workspace.parent, workspace)
    assert os.stat(workspace.parent).st_uid == account.uid and _mode(workspace) == 0o700
    assert os.stat(workspace.parent.parent).st_uid == 0  # parents made root 0711
    assert _mode(workspace.parent.parent) == 0o711
    (workspace / "sub").mkdir()
    (workspace / "sub" / "file").write_text("x")
    (workspace / "link").symlink_to(victim)
    (workspace / "dirlink").symlink_to(tmp_path)
    assert chown_tree(workspace, account) == 4
    assert os.stat(workspace / "sub" / "file").st_uid == account.uid
    assert os.lstat(workspace / "link").st_uid == account.uid
    assert os.stat(victim).st_uid == 0 and os.stat(tmp_path).st_uid == 0
    with pytest.raises(AccountError, match="symlink"):
        own_dir(workspace / "link", account)
