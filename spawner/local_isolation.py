"""Per-user accounts, limits and the sandbox for :class:`~spawner.local.LocalCodespaceSpawner`.

When the hub runs as root (and ``LocalCodespaceSpawner.isolate_users`` is on, the default),
every hub user's codespaces run as a system account of their own
(:mod:`codespace.local.accounts`), each codespace in a cgroup with its limits
(:mod:`codespace.local.limits`) and, where bubblewrap works, in a sandbox that hides the rest
of the machine (:mod:`codespace.local.sandbox`). This module lays out the data directory for
that and turns the spawner's settings into one :class:`~codespace.local.isolation.Isolation`
per start. The layout (``<data>`` is 0711 root):

- ``workspaces/<user>/`` the account's, 0700: its checkouts (cloned as the account);
- ``servers/<user>/<server>/`` root's, 0711: the hub's files for the server (config, kernel
  spec, logs) and, owned by the account, ``env/`` (its pip layer), ``vscode/``, ``state/``;
- ``homes/<account>/`` the account's home, 0700;
- ``build-cache/<account>/`` uv's cache for the account's builds; ``build-cache`` is 0700
  root, so only a build's sandbox (which binds it) reaches it, never a codespace (without the
  sandbox it is 0711: the builds, run as the account, must enter it; see
  :func:`build_cache_dir`);
- ``env-cache/envs/<key>/`` built by the account in a sandbox, then root's and read-only.
"""

from __future__ import annotations

import functools
import glob
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codespace.local.accounts import (
    Account,
    AccountError,
    chown_tree,
    ensure_account,
    harden_data_dir,
    own_dir,
    traversal_problems,
    user_dirs,
)
from codespace.local.envbuild.uv import BuildAs
from codespace.local.isolation import Isolation
from codespace.local.limits import Cgroup, CgroupError, CgroupLimits, CgroupSupport, probe
from codespace.local.sandbox import (
    ALWAYS_HIDDEN,
    SandboxSupport,
    bwrap_argv,
    check,
    env_python_dirs,
    platform_dirs,
)

ACCOUNT_DIRS = ("env", "vscode", "state")  # in a server directory: the account's


@functools.cache
def host_cgroups() -> CgroupSupport:
    return probe()


@functools.cache
def host_sandbox() -> SandboxSupport:
    return check()


@functools.cache
def codespaces_parent(cpu_weight: int) -> Cgroup | None:
    """The hub's parent group of all codespaces (they share ``cpu_weight`` against the hub)."""
    support = host_cgroups()
    if not support.enforced:
        return None
    return support.parent(limits=CgroupLimits(cpu_weight=cpu_weight))


@dataclass(frozen=True)
class Settings:
    """The spawner's isolation settings (its traits), for one start."""

    data_dir: Path
    sandbox: bool
    defaults: CgroupLimits
    maximum: CgroupLimits
    cpu_weight: int
    extra_ro: tuple[Path, ...] = ()


def prepare_account(settings: Settings, hub_user: str, workspace: Path, server_dir: Path):
    """The account for ``hub_user`` and the directories of one server (blocking; see doc).

    Without the sandbox the account must reach the platform and the data directory on the
    real file system: when it cannot (a Python under ``/root``), the start is refused with
    the directory to fix, before anything is made."""
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    sandboxed = settings.sandbox and host_sandbox().ok
    problems = [] if sandboxed else traversal_problems(*platform_dirs(), data)
    if problems:
        why = host_sandbox().reason if settings.sandbox else "--no-sandbox"
        raise AccountError(
            f"codespaces cannot run as their own account without the sandbox ({why}): "
            + "; ".join(problems)
        )
    account = ensure_account(hub_user, home_root=data / "homes")
    for name in ("workspaces", "servers"):
        own_dir(data / name, None, mode=0o711)
    harden_data_dir(data, traverse=("workspaces", "homes"))
    user_dirs(account, workspace.parent)
    if workspace.exists() and workspace.stat().st_uid != account.uid:
        chown_tree(workspace, account)  # made before accounts (an older hub, or not root)
    own_dir(server_dir.parent, None, mode=0o711)
    own_dir(server_dir, None, mode=0o711)
    for name in ACCOUNT_DIRS:
        own_dir(server_dir / name, account, mode=0o700)
    build_cache_dir(data, account, sandboxed=sandboxed)
    return account


def build_cache_dir(data_dir: Path, account: Account, *, sandboxed: bool) -> Path:
    """``build-cache/<account>``, the account's own (0700): uv's cache for its builds.

    In the sandbox a build reaches it through a bind made as root, so ``build-cache`` is 0700
    root and no codespace can reach any cache. Without the sandbox the build runs as the
    account on the real file system and must traverse ``build-cache``: it is 0711 (enter, not
    list), so an account reaches its own cache only; its codespaces then reach it too (the
    README's trust model says what that means for shared environments).
    """
    own_dir(data_dir / "build-cache", None, mode=0o700 if sandboxed else 0o711)
    cache = data_dir / "build-cache" / account.name
    own_dir(cache, account, mode=0o700)
    return cache


def codespace_cgroup(settings: Settings, key: str, limits: CgroupLimits) -> Cgroup | None:
    """The cgroup ``key`` of one codespace with ``limits`` (None where cgroups are not
    usable): the spec's request, else the hub's defaults, capped by its maximum."""
    parent = codespaces_parent(settings.cpu_weight)
    if parent is None:
        return None
    return parent.child(key, limits)


def sandbox_prefix(
    settings: Settings,
    account: Account,
    *,
    workspace: Path,
    server_dir: Path,
    env: Path,
    devices: Sequence[str] = (),
    extra_rw: Sequence[Path] = (),
    files: dict[str, Path] | None = None,
) -> list[str] | None:
    """The bwrap prefix of a codespace's processes (None when the sandbox is off)."""
    if not settings.sandbox or not host_sandbox().ok:
        return None
    return bwrap_argv(
        workspace=workspace,
        server_dir=server_dir,
        home=account.home,
        env_dirs=[env, *env_python_dirs(env)],
        platform_dirs=platform_dirs(),
        extra_ro=[p for p in settings.extra_ro if p.exists()],
        extra_rw=extra_rw,
        hide=(*ALWAYS_HIDDEN, str(settings.data_dir)),
        devices=devices,
        files=files,
    )


def gpu_devices(gpu_env: dict[str, str]) -> list[str]:
    """The NVIDIA device nodes a codespace with a GPU grant needs inside the sandbox."""
    if not gpu_env.get("CUDA_VISIBLE_DEVICES"):
        return []
    return sorted(glob.glob("/dev/nvidia*"))


def build_as(settings: Settings, iso: Isolation, workspace: Path, env: dict[str, str]) -> BuildAs:
    """Environment builds by the codespace's account, in a sandbox of their own; ``env`` is
    uv's environment for the account (:meth:`UvEnvBuilder.account_env`), its cache moved to
    ``build-cache/<account>``, which only builds see."""
    account = iso.account
    assert account is not None
    cache = settings.data_dir / "build-cache" / account.name

    def wrap(path: Path) -> Callable[[list[str]], list[str]]:
        sandbox = None
        if settings.sandbox and host_sandbox().ok:
            sandbox = bwrap_argv(
                workspace=workspace,
                server_dir=path,
                home=account.home,
                platform_dirs=platform_dirs(),
                extra_ro=[p for p in settings.extra_ro if p.exists()],
                extra_rw=[cache],
                hide=(*ALWAYS_HIDDEN, str(settings.data_dir)),
            )
        confined = Isolation(account, iso.cgroup, sandbox)
        return confined.confined

    return BuildAs(
        wrap=wrap,
        env={**env, "UV_CACHE_DIR": str(cache)},
        start=lambda path: own_dir(path, account, mode=0o700),
        publish=publish_env,
    )


def publish_env(path: Path) -> None:
    """Give a built environment to root and make it read-only for everybody."""
    root = Account("root", 0, 0, Path("/root"))
    chown_tree(path, root)
    for directory, _dirs, files, fd in os.fwalk(path, follow_symlinks=False):
        for name in files:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(name, stat.S_IMODE(st.st_mode) & ~0o222, dir_fd=fd)
        os.chmod(directory, 0o555)  # noqa: S103 -- every codespace reads (never writes) it


def account_limits(spec_cpu: object, spec_memory: str | None) -> CgroupLimits:
    """The spec's ``resources.cpu`` / ``memory`` as cgroup limits (errors name the value)."""
    try:
        return CgroupLimits.parse(cpu=spec_cpu, memory=spec_memory)  # type: ignore[arg-type]
    except (ValueError, CgroupError) as error:
        raise ValueError(f"resources: {error}") from None


__all__ = [
    "Settings",
    "account_limits",
    "build_as",
    "codespace_cgroup",
    "gpu_devices",
    "host_cgroups",
    "host_sandbox",
    "prepare_account",
    "publish_env",
    "sandbox_prefix",
]
