"""The bubblewrap command line that hides the rest of the machine from a codespace.

:func:`bwrap_argv` (pure) mounts the whole file system read-only, lays an empty ``tmpfs``
over each hidden directory (the hub's data directory, ``/root``, ``/home``...), then binds
back what the codespace may see: its workspace, server directory and home read-write, its
environment and the platform (the hub's venv, its base Python, ``.tools``) read-only. ``/tmp``
and ``/dev/shm`` are private (mode 1777), ``/dev`` is minimal (GPU device nodes must be passed
in ``devices``), ``/proc`` belongs to a new PID namespace. The network is shared on purpose:
the server listens on 127.0.0.1 and the proxy connects to it.

**Run bwrap as root and demote inside it** (``bwrap ... -- setpriv --reuid ... -- cmd``, see
:func:`codespace.local.confine.confine_argv`): root can bind directories the account cannot
traverse (a Python under ``/root/.pyenv``) and no user namespace is needed. Run as the hub's
own user (a laptop, no root) it works the same through an unprivileged user namespace.

Quirks handled here (bubblewrap 0.8):

- a directory bwrap creates implicitly (the parents of a bind inside a ``tmpfs``) is mode
  0700 when bwrap runs as root, so an account cannot traverse it: every such parent is made
  explicitly with ``--perms 0755 --dir``;
- a ``tmpfs`` made by root is 0755 root: ``/tmp`` and ``/dev/shm`` get ``--perms 1777``;
- bwrap does not forward signals: SIGTERM to the bwrap pid kills bwrap and leaves the
  sandbox running (or, with ``--die-with-parent``, SIGKILLs it). Stop a sandboxed server by
  signalling its process group (``os.killpg``; bwrap keeps the group unless
  ``new_session``) or its cgroup: the server gets SIGTERM and shuts its kernels down, and when
  it exits the namespace's init (bwrap) exits and the kernel kills whatever is left in it.
  ``--die-with-parent`` is off by default because servers outlive a hub restart.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

ALWAYS_HIDDEN = ("/root", "/home")
REPO_ROOT = Path(__file__).resolve().parents[2]


class SandboxError(ValueError):
    """The sandbox cannot be described as asked (a relative path, a bind over ``/``...)."""


def _abs(path: str | os.PathLike[str], what: str) -> PurePosixPath:
    pure = PurePosixPath(os.fspath(path))
    if not pure.is_absolute() or ".." in pure.parts:
        raise SandboxError(f"{what} must be an absolute path without '..': {path!s}")
    if pure == PurePosixPath("/"):
        raise SandboxError(f"{what} cannot be '/'")
    return pure


def _within(path: PurePosixPath, top: PurePosixPath) -> bool:
    return path == top or top in path.parents


def bwrap_argv(
    *,
    workspace: str | os.PathLike[str],
    server_dir: str | os.PathLike[str],
    home: str | os.PathLike[str] | None = None,
    env_dirs: Iterable[str | os.PathLike[str]] = (),
    platform_dirs: Iterable[str | os.PathLike[str]] = (),
    extra_ro: Iterable[str | os.PathLike[str]] = (),
    extra_rw: Iterable[str | os.PathLike[str]] = (),
    hide: Iterable[str | os.PathLike[str]] = ALWAYS_HIDDEN,
    devices: Iterable[str | os.PathLike[str]] = (),
    files: Mapping[str, str | os.PathLike[str]] | None = None,
    die_with_parent: bool = False,
    new_session: bool = False,
    share_network: bool = True,
    bwrap: str = "bwrap",
    command: Sequence[str] = (),
) -> list[str]:
    """The ``bwrap`` argument vector, ending with ``--`` and then ``command``.

    Paths must be absolute and already resolved (no symlinks: a bind follows its source,
    but its mount point is made at the path as written). A ``hide`` directory becomes empty;
    the binds inside it are visible again, with the parents they need. Read-only binds
    outside every hidden directory are left out (``/`` already shows them read-only), so a
    hidden directory inside one (the data directory inside the repository checkout) stays
    hidden. ``share_network=False`` gives the command a network namespace of its own (only
    its own loopback): a server in it is reached through a unix socket in a bound directory.
    ``files`` maps a file the sandbox shows (it must exist outside the hidden directories,
    e.g. ``/etc/group``) to the file shown there instead, read-only.
    """
    argv = [bwrap, "--ro-bind", "/", "/"]
    argv += ["--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--proc", "/proc"]
    for device in devices:
        node = _abs(device, "device")
        argv += ["--dev-bind", str(node), str(node)]
    ops: dict[PurePosixPath, str] = {}

    def add(paths: Iterable[str | os.PathLike[str]], kind: str, what: str) -> None:
        for raw in paths:
            path = _abs(raw, what)
            if ops.setdefault(path, kind) != kind:
                raise SandboxError(f"{path} is asked to be both {ops[path]} and {kind}")

    add(hide, "tmpfs", "hidden directory")
    if not any(_within(PurePosixPath("/tmp"), p) for p, k in ops.items() if k == "tmpfs"):
        ops[PurePosixPath("/tmp")] = "tmp"
    add(platform_dirs, "ro", "platform directory")
    add(env_dirs, "ro", "environment directory")
    add(extra_ro, "ro", "read-only directory")
    add([workspace, server_dir], "rw", "workspace/server directory")
    add([home] if home is not None else [], "rw", "home")
    add(extra_rw, "rw", "read-write directory")
    argv += _mount_args(ops)
    for target, source in (files or {}).items():
        argv += ["--ro-bind", str(_abs(source, "file")), str(_abs(target, "file"))]
    argv += ["--unshare-pid", "--unshare-ipc"]
    if not share_network:
        argv.append("--unshare-net")
    if die_with_parent:
        argv.append("--die-with-parent")
    if new_session:
        argv.append("--new-session")
    argv += ["--chdir", str(_abs(workspace, "workspace")), "--", *command]
    return argv


_MOUNT = {
    "tmpfs": ["--perms", "0755", "--tmpfs"],
    "tmp": ["--perms", "1777", "--tmpfs"],
    "ro": ["--ro-bind"],
    "rw": ["--bind"],
}


def _mount_args(ops: dict[PurePosixPath, str]) -> list[str]:
    """Mounts shallow before deep (a deep one is not covered by a later shallow one), each
    preceded by the 0755 parents it needs inside a ``tmpfs``."""
    argv: list[str] = []
    made: set[PurePosixPath] = set()
    done: list[tuple[PurePosixPath, str]] = []
    for path, kind in sorted(ops.items(), key=lambda op: (len(op[0].parts), str(op[0]))):
        enclosing = [(m, k) for m, k in done if m in path.parents]
        top, top_kind = max(enclosing, key=lambda m: len(m[0].parts), default=(None, "ro"))
        if kind == "ro" and top_kind == "ro":
            continue  # visible read-only already
        if top is not None and top_kind in ("tmpfs", "tmp"):
            for parent in reversed(path.parents):
                if top in parent.parents and parent not in made:
                    made.add(parent)
                    argv += ["--perms", "0755", "--dir", str(parent)]
        argv += _MOUNT[kind] + ([str(path)] if kind in ("tmpfs", "tmp") else [str(path)] * 2)
        done.append((path, kind))
    return argv


def platform_dirs(*extra: str | os.PathLike[str]) -> tuple[Path, ...]:
    """What a server needs from the hub's own installation: this Python's prefix and base
    prefix (resolved: a venv's Python may live under ``/root``), the repository checkout
    (the editable ``codespace`` package, ``config/singleuser``) and ``extra``."""
    found = [Path(sys.prefix), Path(sys.base_prefix), REPO_ROOT, *map(Path, extra)]
    resolved: list[Path] = []
    for path in found:
        real = path.resolve()
        if real not in resolved:
            resolved.append(real)
    return tuple(resolved)


def env_python_dirs(env: str | os.PathLike[str]) -> tuple[Path, ...]:
    """The installation a virtual environment's Python comes from (``home`` in its
    ``pyvenv.cfg``, resolved): bind it read-only too, since an environment built for
    ``python.version`` may use another Python than the hub's (``/root/.pyenv/versions/3.12.1``)."""
    try:
        text = (Path(env) / "pyvenv.cfg").read_text()
    except OSError:
        return ()
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            home = Path(value.strip()).resolve()
            return (home.parent if home.name == "bin" else home,)
    return ()


@dataclass(frozen=True)
class SandboxSupport:
    """Whether bubblewrap works here, as this process would run it."""

    ok: bool
    bwrap: str | None
    reason: str = ""

    def sentence(self) -> str:
        if self.ok:
            return f"sandbox: bubblewrap ({self.bwrap}) hides the machine from codespaces"
        return f"sandbox off: {self.reason}"


def check(bwrap: str = "bwrap", *, timeout: float = 15.0) -> SandboxSupport:
    """Run ``bwrap --ro-bind / / ... --unshare-pid true`` once, as this process's user."""
    exe = shutil.which(bwrap)
    if exe is None:
        return SandboxSupport(False, None, "bubblewrap (bwrap) is not installed")
    argv = [exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid"]
    try:
        done = subprocess.run(
            [*argv, "--", "true"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return SandboxSupport(False, exe, f"bwrap does not run: {error}")
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return SandboxSupport(False, exe, f"bwrap does not work here: {said[0]}")
    return SandboxSupport(True, exe)


@functools.cache
def available(bwrap: str = "bwrap") -> bool:
    """Whether :func:`check` passes (asked once per process)."""
    return check(bwrap).ok
