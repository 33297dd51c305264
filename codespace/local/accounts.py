"""One system account per hub user, running a process as it, and who may read what.

When the hub runs as root, a hub user's codespaces (servers, lifecycle commands, terminals,
builds) run as a system account made for that user on the first spawn.

**Names** (:func:`account_name`). A hub name that is already a safe system name
(``[a-z0-9][a-z0-9-]*``) and fits useradd's 32 characters with the ``cs-`` prefix is used as
it is: ``alice`` -> ``cs-alice``. Any other name (upper case, dots, ``_``, non-ASCII, too
long) becomes ``cs-`` + a stem (lower case, runs of other characters as one ``-``, at most 18
characters) + ``_`` + the first 10 hex digits of the SHA-256 of the hub name: ``Alice`` ->
``cs-alice_3bc51062f3``, ``al.ice`` -> ``cs-al-ice_...``. A name used as it is never contains
``_`` and a hashed one always does, so two hub names never map to the same account unless
SHA-256 prefixes collide, and even then :func:`ensure_account` refuses (the comment below
names the hub user).

**Ours only.** The account's comment (GECOS) is ``codespace-hub <hub name, %-encoded>``. An
account or group of that name without this comment (a system user, an admin's account, a
collision) is never used: :class:`AccountError` says why.

**Running as the account**, three ways, not interchangeable:

- :meth:`Account.demote_argv`: ``setpriv --reuid --regid --init-groups --inh-caps=-all
  --bounding-set=-all --no-new-privs -- argv``, an argument prefix usable anywhere (asyncio,
  JupyterHub's Popen, inside bubblewrap). setpriv keeps root's capabilities until its own
  ``execve``: the first program is found and opened with root's access (a Python under
  ``/root`` starts, then cannot read its own standard library or start a kernel).
- :meth:`Account.demote` as a ``preexec_fn`` (JupyterHub's ``make_preexec_fn`` shape): sets
  the groups, gid and uid in the child before ``exec``. No ``no_new_privs``.
- :meth:`Account.popen_kwargs` (``user``/``group``/``extra_groups``): done by Popen in C
  (thread-safe), but a ``preexec_fn`` then runs *after* the switch, as the account, so it can
  no longer join a cgroup; join with :meth:`codespace.local.limits.Cgroup.join_argv` instead.

:func:`ensure_account` blocks (``useradd`` takes ~30 ms): call it through
``asyncio.to_thread`` from the hub's event loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import grp
import hashlib
import os
import pwd
import re
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import quote

PREFIX = "cs-"
MAX_NAME = 32  # useradd's limit on this system
HASH_DIGITS = 10
COMMENT_PREFIX = "codespace-hub "
SHELL = "/bin/bash"
LOCK_FILE = ".accounts.lock"

_AS_IS = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_OTHER = re.compile(r"[^a-z0-9-]+")

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class AccountError(RuntimeError):
    """An account cannot be made or used; the message says which and why."""


def running_as_root() -> bool:
    return os.geteuid() == 0


def account_name(hub_user: str) -> str:
    """The system account for ``hub_user`` (see the module doc for the rule)."""
    if not hub_user:
        raise ValueError("a hub user name cannot be empty")
    if _AS_IS.match(hub_user) and len(PREFIX) + len(hub_user) <= MAX_NAME:
        return PREFIX + hub_user
    digest = hashlib.sha256(hub_user.encode("utf-8")).hexdigest()[:HASH_DIGITS]
    room = MAX_NAME - len(PREFIX) - 1 - HASH_DIGITS
    stem = _OTHER.sub("-", hub_user.lower()).strip("-")[:room].rstrip("-")
    return f"{PREFIX}{stem}_{digest}"


def account_comment(hub_user: str) -> str:
    """The GECOS comment that marks an account as this hub's account for ``hub_user``."""
    return COMMENT_PREFIX + quote(hub_user, safe="")


@dataclass(frozen=True)
class Account:
    """A system account that runs one hub user's codespaces."""

    name: str
    uid: int
    gid: int
    home: Path
    groups: tuple[int, ...] = ()  # supplementary groups (from /etc/group, read once)

    @classmethod
    def from_passwd(cls, entry: pwd.struct_passwd) -> Account:
        groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir), groups)

    def demote_argv(self, argv: Sequence[str] = (), *, setpriv: str = "setpriv") -> list[str]:
        """``argv`` run as this account, without capabilities, with ``no_new_privs``."""
        return [
            setpriv,
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--init-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
            *argv,
        ]

    def demote(self) -> None:
        """Become this account and set ``no_new_privs`` (in a ``preexec_fn``: no lookups)."""
        os.setgroups(list(self.groups) or [self.gid])
        os.setresgid(self.gid, self.gid, self.gid)
        os.setresuid(self.uid, self.uid, self.uid)
        _no_new_privs()

    def preexec(self) -> Callable[[], None]:
        """A ``preexec_fn`` that demotes the child (JupyterHub's ``make_preexec_fn`` shape)."""
        _libc()  # loaded here, not in the forked child
        return self.demote

    def popen_kwargs(self) -> dict[str, object]:
        """``subprocess``/``asyncio`` keyword arguments that start the child as this account."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def env(self) -> dict[str, str]:
        """HOME, USER, LOGNAME and SHELL for a process of this account."""
        home = str(self.home)
        return {"HOME": home, "USER": self.name, "LOGNAME": self.name, "SHELL": SHELL}


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _no_new_privs() -> None:
    """``prctl(PR_SET_NO_NEW_PRIVS)``: setuid programs cannot give privileges back."""
    if _libc().prctl(38, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)


def _lookup(name: str) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` (between threads, spawns and hubs on this machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _checked(entry: pwd.struct_passwd, hub_user: str) -> pwd.struct_passwd:
    if entry.pw_gecos != account_comment(hub_user):
        raise AccountError(
            f"system account {entry.pw_name!r} (uid {entry.pw_uid}) exists but was not created "
            f"by codespace-hub for hub user {hub_user!r} (its comment is {entry.pw_gecos!r}); "
            "refusing to run codespaces as it"
        )
    return entry


def _useradd(name: str, hub_user: str, home: Path, run: Runner) -> None:
    if _group_exists(name):
        raise AccountError(
            f"a group {name!r} exists without a codespace-hub account of that name; "
            f"refusing to create the account for hub user {hub_user!r}"
        )
    argv = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--shell",
        SHELL,
        "--home-dir",
        str(home),
        "--comment",
        account_comment(hub_user),
        "--",
        name,
    ]
    for attempt in range(6):
        done = run(argv)
        if done.returncode == 0 or _lookup(name) is not None:
            return
        if "lock" not in (done.stderr or "").lower():
            break
        time.sleep(0.05 * 2**attempt)  # /etc/passwd locked by another tool
    raise AccountError(f"useradd {name} failed: {(done.stderr or '').strip() or done.returncode}")


def ensure_account(
    hub_user: str,
    *,
    home_root: Path,
    lock_path: Path | None = None,
    run: Runner = _run,
) -> Account:
    """The account for ``hub_user``, created on first use, with its home ``home_root/<name>``.

    Idempotent; spawns that race (threads, processes, two hubs) take a lock file
    (``home_root/.accounts.lock`` unless ``lock_path``), so exactly one runs ``useradd``.
    Raises :class:`AccountError` for an account or group of that name that is not ours.
    """
    name = account_name(hub_user)
    home_root = Path(home_root)
    home = home_root / name
    if not home_root.exists():  # racing spawns may both get here: exist_ok
        home_root.mkdir(parents=True, mode=0o711, exist_ok=True)
    with _locked(Path(lock_path) if lock_path else home_root / LOCK_FILE):
        entry = _lookup(name)
        if entry is None:
            _useradd(name, hub_user, home, run)
            entry = _lookup(name)
            if entry is None:
                raise AccountError(f"useradd {name} succeeded but the account is not visible")
        _checked(entry, hub_user)
        if entry.pw_dir != str(home):
            done = run(["usermod", "--home", str(home), "--", name])
            if done.returncode != 0:
                raise AccountError(f"usermod --home {home} {name} failed: {done.stderr.strip()}")
            entry = pwd.getpwnam(name)
        account = Account.from_passwd(entry)
        own_dir(home, account, mode=0o700)
    return account


def delete_account(hub_user: str, *, run: Runner = _run) -> bool:
    """Remove ``hub_user``'s account (only one this hub made); False if there is none.

    Its files stay (workspaces are deleted by their own rules); running processes of the
    account make ``userdel`` fail, so stop its codespaces first.
    """
    name = account_name(hub_user)
    entry = _lookup(name)
    if entry is None:
        return False
    _checked(entry, hub_user)
    done = run(["userdel", "--", name])
    if done.returncode != 0:
        raise AccountError(f"userdel {name} failed: {done.stderr.strip() or done.returncode}")
    return True


# -- files: ownership and modes ---------------------------------------------------------------


def own_dir(path: Path, account: Account | None, *, mode: int = 0o700) -> None:
    """Make ``path`` a directory owned by ``account`` (root when None) with ``mode``.

    The parent must exist. A symlink at ``path`` is refused: ownership and mode are set
    through a descriptor opened with ``O_NOFOLLOW``, never through a path a user can swap.
    """
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        raise AccountError(f"{path} is not a directory (or is a symlink): {error}") from None
    try:
        uid, gid = (account.uid, account.gid) if account else (0, 0)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def chown_tree(path: Path, account: Account) -> int:
    """Give everything under ``path`` to ``account``; return how many entries changed.

    For workspaces and server directories written as root (an older hub, or files the hub
    writes for the server). Walks by directory descriptors (``os.fwalk``) and never follows
    a symlink, so a link planted by a user cannot turn this into a chown of ``/etc/shadow``.
    """
    changed = 0
    own_dir(path, account, mode=os.stat(path, follow_symlinks=False).st_mode & 0o7777)
    for _, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        for name in (*dirs, *files):
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (st.st_uid, st.st_gid) != (account.uid, account.gid):
                os.chown(name, account.uid, account.gid, dir_fd=dir_fd, follow_symlinks=False)
                changed += 1
    return changed


TRAVERSE_DIRS = ("workspaces", "servers", "homes")  # 0711; each entry in them 0700
PRIVATE_DIRS = ("secrets",)  # 0700 root, files 0600
PRIVATE_FILES = (
    "jupyterhub.sqlite*",
    "jupyterhub_cookie_secret",
    "jupyterhub-proxy.pid",
    "gpu-grants.*",
    "*.lock",
)


def _chmod(path: Path, mode: int, changed: list[Path]) -> None:
    st = os.lstat(path)
    if not os.path.islink(path) and st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed.append(path)


def harden_data_dir(
    data_dir: Path,
    *,
    traverse: Iterable[str] = TRAVERSE_DIRS,
    private_dirs: Iterable[str] = PRIVATE_DIRS,
    private_files: Iterable[str] = PRIVATE_FILES,
) -> list[Path]:
    """Set the data directory's modes so an account reaches only what is its own.

    ``data_dir`` and ``workspaces/``, ``servers/``, ``homes/`` become 0711 (enter, not list);
    each per-user entry in those 0700 (owner kept: :func:`own_dir` gives it to the account);
    ``secrets/`` 0700 and its files 0600; the database, cookie secret, pid, GPU registry and
    lock files 0600. Everything else (``env-cache/``, ``datasets.yaml``, ``vsix/``) is left
    readable as it is. Returns the paths whose mode changed. Idempotent; run it at hub start.
    """
    data_dir = Path(data_dir)
    changed: list[Path] = []
    _chmod(data_dir, 0o711, changed)
    for name in traverse:
        sub = data_dir / name
        if sub.is_dir() and not sub.is_symlink():
            _chmod(sub, 0o711, changed)
            for entry in sub.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    _chmod(entry, 0o700, changed)
    for name in private_dirs:
        sub = data_dir / name
        if sub.is_dir() and not sub.is_symlink():
            _chmod(sub, 0o700, changed)
            for entry in sub.iterdir():
                _chmod(entry, 0o700 if entry.is_dir() else 0o600, changed)
    patterns = tuple(private_files)
    for entry in data_dir.iterdir():
        if entry.is_file() and any(fnmatch(entry.name, pattern) for pattern in patterns):
            _chmod(entry, 0o600, changed)
    return changed


def user_dirs(account: Account, *dirs: Path) -> None:
    """Create each of ``dirs`` (root-owned 0711 parents as needed) as the account's, 0700."""
    for path in dirs:
        path = Path(path)
        for parent in reversed(path.parents):
            if not parent.exists():
                own_dir(parent, None, mode=0o711)
        own_dir(path, account, mode=0o700)


def traversal_problems(*paths: Path) -> list[str]:
    """Why an account (not root, in no group of the owners) cannot reach each of ``paths``:
    an ancestor without ``o+x`` (``/root`` is 0700: a Python or data directory under it is
    out of reach unless the sandbox binds it). One sentence per blocked path; [] when fine.

    For the hub's start banner: the platform (venv, its base Python), the environment cache
    and the data directory must be reachable when codespaces run as accounts unsandboxed.
    """
    problems = []
    for path in paths:
        real = Path(os.path.realpath(path))
        for ancestor in [*reversed(real.parents), real]:
            try:
                mode = os.stat(ancestor).st_mode
            except OSError as error:
                problems.append(f"{path}: {ancestor} cannot be read ({error.strerror})")
                break
            if ancestor != real and not mode & stat.S_IXOTH:
                problems.append(
                    f"{path}: {ancestor} is mode {stat.S_IMODE(mode):04o}, so codespace "
                    "accounts cannot reach it (chmod o+x it, move it, or use the sandbox)"
                )
                break
    return problems
