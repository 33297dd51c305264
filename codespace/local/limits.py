"""cgroup limits per codespace: memory, CPU, processes; OOM reporting; cleanup.

**Detection** (:func:`probe`), never assumed paths: ``/proc/self/mountinfo`` lists the cgroup
mounts and ``/proc/self/cgroup`` the hub's own group in each hierarchy. cgroup v2 is used when
a ``cgroup2`` mount offers the ``memory`` controller to the hub's own group
(``cgroup.controllers``); otherwise the v1 hierarchies that carry ``memory``, ``cpu`` and
``pids`` (each may be co-mounted, e.g. ``cpu,cpuacct``). A ``cgroup2`` mount without
controllers (a hybrid host: ``/sys/fs/cgroup/unified``) is skipped.

**Layout**: ``<the hub's own group>/<parent>/<codespace>`` in each hierarchy (parent
``codespace-hub`` by default). Nesting under the hub's own group keeps codespaces inside any
limit the hub itself runs under (a container, a service). The parent's CPU weight is shared by
all codespaces together, so a low parent weight keeps the hub (and its proxy) responsive when
every codespace wants the CPU: on v1 the hub's own tasks compete with the parent group as
siblings; on v2 the hub moves into the leaf ``<own>/hub`` (see below) beside it.

**Writes**: v1 ``memory.limit_in_bytes`` and, when swap accounting exists,
``memory.memsw.limit_in_bytes`` = the same (no swapping past the limit; memsw must stay >= the
memory limit at every moment, so it is written before and after), ``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``, ``cpu.shares`` (= weight * 1024 / 100), ``pids.max``. v2
``memory.max``, ``memory.swap.max`` (0), ``cpu.max``, ``cpu.weight``, ``pids.max``. A limit
left ``None`` is written as unlimited, so applying limits to an existing group is exact.

**v2 delegation**: a controller must be enabled in ``cgroup.subtree_control`` of each
ancestor, and a non-root group that holds processes cannot enable any ("no internal
processes"): :meth:`CgroupSupport.parent` moves the processes of the hub's own group into the
leaf ``<own>/hub`` first (``move_hub=False`` refuses instead).

**Joining before exec**: :meth:`Cgroup.preexec` (a ``preexec_fn``) or :meth:`Cgroup.join_argv`
(``/bin/sh`` writes its pid, then ``exec``\\s the command: no ``preexec_fn`` needed). Either
must run as root, before the uid switch (cgroup files are root's).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from codespace.kube.quantity import to_bytes, to_cores

CONTROLLERS = ("memory", "cpu", "pids")
DEFAULT_PARENT = "codespace-hub"
HUB_LEAF = "hub"
CPU_PERIOD_US = 100_000
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$")
_ESCAPE = re.compile(r"\\([0-7]{3})")
_JOIN_SCRIPT = (
    'while [ "$#" -gt 0 ] && [ "$1" != -- ]; do echo "$$" > "$1" || exit 125; shift; done; '
    'shift; exec "$@"'
)


class CgroupError(RuntimeError):
    """A cgroup cannot be made, limited or removed; the message says which and why."""


# -- limits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupLimits:
    """What one codespace may use; ``None`` is unlimited (``cpu_weight``: the default 100)."""

    cpu: float | None = None  # cores: a hard quota (cfs quota / cpu.max)
    memory_bytes: int | None = None
    pids: int | None = None
    cpu_weight: int | None = None  # 1..10000, v2 scale (default 100); shares among siblings

    def __post_init__(self) -> None:
        if self.cpu is not None and not self.cpu > 0:
            raise ValueError(f"cpu must be > 0, not {self.cpu}")
        if self.memory_bytes is not None and self.memory_bytes < 1 << 20:
            raise ValueError(f"memory must be at least 1Mi, not {self.memory_bytes} bytes")
        if self.pids is not None and self.pids < 1:
            raise ValueError(f"pids must be >= 1, not {self.pids}")
        if self.cpu_weight is not None and not 1 <= self.cpu_weight <= 10_000:
            raise ValueError(f"cpu_weight must be 1..10000, not {self.cpu_weight}")

    @classmethod
    def parse(
        cls,
        *,
        cpu: str | float | None = None,
        memory: str | int | None = None,
        pids: int | None = None,
        cpu_weight: int | None = None,
    ) -> CgroupLimits:
        """From spec-style quantities: ``cpu="500m"`` or ``2``, ``memory="8Gi"``."""
        return cls(
            cpu=to_cores(cpu) if cpu not in (None, "") else None,
            memory_bytes=to_bytes(memory) if memory not in (None, "") else None,
            pids=int(pids) if pids is not None else None,
            cpu_weight=int(cpu_weight) if cpu_weight is not None else None,
        )

    def or_defaults(self, defaults: CgroupLimits) -> CgroupLimits:
        """Each unset field from ``defaults`` (the hub-wide defaults)."""
        return CgroupLimits(
            cpu=self.cpu if self.cpu is not None else defaults.cpu,
            memory_bytes=self.memory_bytes
            if self.memory_bytes is not None
            else defaults.memory_bytes,
            pids=self.pids if self.pids is not None else defaults.pids,
            cpu_weight=self.cpu_weight if self.cpu_weight is not None else defaults.cpu_weight,
        )

    def within(self, maximum: CgroupLimits) -> CgroupLimits:
        """Each field at most ``maximum``'s (a hub-wide maximum; unset there is no cap)."""

        def cap(value, top):  # type: ignore[no-untyped-def]
            if top is None:
                return value
            return top if value is None else min(value, top)

        return CgroupLimits(
            cpu=cap(self.cpu, maximum.cpu),
            memory_bytes=cap(self.memory_bytes, maximum.memory_bytes),
            pids=cap(self.pids, maximum.pids),
            cpu_weight=cap(self.cpu_weight, maximum.cpu_weight),
        )

    def describe(self) -> str:
        parts = []
        if self.cpu is not None:
            parts.append(f"{self.cpu:g} CPU")
        if self.memory_bytes is not None:
            parts.append(f"{self.memory_bytes / 2**30:.3g} GiB memory")
        if self.pids is not None:
            parts.append(f"{self.pids} processes")
        if self.cpu_weight is not None:
            parts.append(f"CPU weight {self.cpu_weight}")
        return ", ".join(parts) or "no limits"


def weight_to_shares(weight: int) -> int:
    """v2 ``cpu.weight`` (1..10000, default 100) as v1 ``cpu.shares`` (default 1024)."""
    return max(2, round(weight * 1024 / 100))


@dataclass(frozen=True)
class Write:
    """One value for one control file; ``when``: ``always``, ``present`` (skip a file the
    kernel lacks), ``try`` (also ignore a refused value: a step of an ordered pair)."""

    controller: str
    file: str
    value: str
    when: str = "always"


def limit_writes(version: int, limits: CgroupLimits) -> list[Write]:
    """The control-file writes that apply ``limits`` (pure; see the module doc)."""
    memory = str(limits.memory_bytes) if limits.memory_bytes is not None else None
    quota = (
        max(1000, round(limits.cpu * CPU_PERIOD_US)) if limits.cpu is not None else None
    )  # the kernel's minimum quota is 1 ms
    weight = limits.cpu_weight if limits.cpu_weight is not None else 100
    pids = str(limits.pids) if limits.pids is not None else "max"
    if version == 1:
        mem = memory or "-1"
        return [
            Write("memory", "memory.memsw.limit_in_bytes", mem, "try"),
            Write("memory", "memory.limit_in_bytes", mem),
            Write("memory", "memory.memsw.limit_in_bytes", mem, "present"),
            Write("cpu", "cpu.cfs_period_us", str(CPU_PERIOD_US)),
            Write("cpu", "cpu.cfs_quota_us", str(quota) if quota else "-1"),
            Write("cpu", "cpu.shares", str(weight_to_shares(weight))),
            Write("pids", "pids.max", pids),
        ]
    return [
        Write("memory", "memory.max", memory or "max"),
        Write("memory", "memory.swap.max", "0" if memory else "max", "present"),
        Write("cpu", "cpu.max", f"{quota or 'max'} {CPU_PERIOD_US}"),
        Write("cpu", "cpu.weight", str(weight)),
        Write("pids", "pids.max", pids),
    ]


# -- detection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    root: str  # the hierarchy path mounted here ("/" unless a namespace or bind says else)
    point: Path
    fstype: str
    options: frozenset[str]  # super options: the v1 controllers


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda match: chr(int(match[1], 8)), text)


def parse_mountinfo(text: str) -> list[Mount]:
    """The ``cgroup``/``cgroup2`` mounts in ``/proc/self/mountinfo`` text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(tail[2].split(","))
        mounts.append(Mount(_unescape(fields[3]), Path(_unescape(fields[4])), tail[0], options))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as controller -> path; the v2 entry (``0::/x``) under ``""``."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            own.setdefault(controller, path)
    return own


def _under(mount: Mount, path: str | None) -> Path | None:
    """Where the group ``path`` of ``mount``'s hierarchy is in the file system, if visible."""
    if path is None:
        return None
    root = mount.root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None
    rest = path[len(root) :].strip("/")
    return mount.point / rest if rest else mount.point


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class CgroupSupport:
    """What this machine offers the hub: version, usable controllers, the hub's own groups."""

    version: int | None
    bases: dict[str, Path] = field(default_factory=dict)  # controller -> the hub's own group
    missing: tuple[str, ...] = ()
    writable: bool = False
    detail: str = ""

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(c for c in CONTROLLERS if c in self.bases)

    @property
    def enforced(self) -> bool:
        return self.version is not None and self.writable and "memory" in self.bases

    def sentence(self) -> str:
        """One line for the hub's start banner."""
        if self.enforced:
            line = f"cgroup v{self.version} {','.join(self.controllers)}: limits enforced"
            return line + (f" ({', '.join(self.missing)} not available)" if self.missing else "")
        if self.version is not None:
            return f"cgroups not writable ({self.detail}): limits are not enforced"
        return f"no usable cgroups ({self.detail}): limits are not enforced"

    def parent(
        self,
        name: str = DEFAULT_PARENT,
        limits: CgroupLimits | None = None,
        *,
        move_hub: bool = True,
    ) -> Cgroup:
        """The hub's parent group for all codespaces (created, or reused), with ``limits``
        (typically only a low ``cpu_weight``). Raises CgroupError when not enforced."""
        if not self.enforced or self.version is None:
            raise CgroupError(self.sentence())
        if self.version == 2:
            own = Cgroup(2, {c: self.bases[c] for c in self.controllers})
            _delegate_v2(own, self.controllers, move_hub=move_hub)
            return own.child(name, limits or CgroupLimits())
        own = Cgroup(1, dict(self.bases))
        return own.child(name, limits or CgroupLimits())


def probe(
    *,
    mountinfo: Path = Path("/proc/self/mountinfo"),
    proc_cgroup: Path = Path("/proc/self/cgroup"),
    want: Sequence[str] = CONTROLLERS,
) -> CgroupSupport:
    """Detect the cgroups this process can use (see the module doc)."""
    mounts = parse_mountinfo(_read(mountinfo))
    own = parse_proc_cgroup(_read(proc_cgroup))
    notes = []
    for mount in (m for m in mounts if m.fstype == "cgroup2"):
        base = _under(mount, own.get(""))
        offered = set(_read(base / "cgroup.controllers").split()) if base else set()
        usable = [c for c in want if c in offered]
        if "memory" in usable and base is not None:
            return _support(2, {c: base for c in usable}, want)
        notes.append(f"cgroup2 at {mount.point} offers no memory controller")
    bases: dict[str, Path] = {}
    for mount in (m for m in mounts if m.fstype == "cgroup"):
        for controller in want:
            if controller in mount.options and controller not in bases:
                base = _under(mount, own.get(controller))
                if base is not None and base.is_dir():
                    bases[controller] = base
    if "memory" in bases:
        return _support(1, bases, want)
    notes.append("no cgroup v1 memory hierarchy" if mounts else "no cgroup file systems mounted")
    return CgroupSupport(None, detail="; ".join(notes))


def own_oom_kills() -> int | None:
    """How many processes the kernel killed for memory in this process's own memory cgroup
    (a codespace's processes ask about their codespace); None without a memory cgroup."""
    support = probe(want=("memory",))
    base = support.bases.get("memory")
    if support.version is None or base is None:
        return None
    return Cgroup(support.version, {"memory": base}).oom_kills()


def _support(version: int, bases: dict[str, Path], want: Sequence[str]) -> CgroupSupport:
    missing = tuple(c for c in want if c not in bases)
    blocked = sorted({str(b) for b in bases.values() if not os.access(b, os.W_OK | os.X_OK)})
    detail = f"no write access to {', '.join(blocked)}" if blocked else ""
    return CgroupSupport(version, bases, missing, writable=not blocked, detail=detail)


def _write_file(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _delegate_v2(own: Cgroup, controllers: Iterable[str], *, move_hub: bool) -> None:
    """Enable ``controllers`` for the children of the hub's own v2 group."""
    base = own.path
    enabled = set(_read(base / "cgroup.subtree_control").split())
    wanted = [c for c in controllers if c not in enabled]
    if not wanted:
        return
    request = " ".join(f"+{c}" for c in wanted)
    try:
        _write_file(base / "cgroup.subtree_control", request)
        return
    except OSError as error:
        if error.errno != errno.EBUSY:
            raise CgroupError(f"cannot enable {request} in {base}: {error}") from None
    pids = own.pids()
    if not move_hub:
        raise CgroupError(
            f"cgroup v2: {base} holds processes {sorted(pids)}, so it cannot enable {request} "
            "for codespaces; start the hub in a group of its own"
        )
    leaf = base / HUB_LEAF
    leaf.mkdir(exist_ok=True)
    for pid in sorted(pids):
        with contextlib.suppress(ProcessLookupError):
            _write_file(leaf / "cgroup.procs", str(pid))
    try:
        _write_file(base / "cgroup.subtree_control", request)
    except OSError as error:
        raise CgroupError(f"cannot enable {request} in {base}: {error}") from None


# -- one group --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cgroup:
    """One group: a directory per v1 hierarchy (``dirs``), or one v2 directory."""

    version: int
    dirs: dict[str, Path]  # controller -> directory (v2: the same directory for all)

    @property
    def path(self) -> Path:
        """The group's directory (v1: the memory hierarchy's)."""
        return self.dirs.get("memory") or next(iter(self.dirs.values()))

    @property
    def directories(self) -> list[Path]:
        return sorted(set(self.dirs.values()))

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.directories]

    def to_state(self) -> dict[str, object]:
        """For the spawner state: a restarted hub finds its groups wherever it now runs."""
        return {"version": self.version, "dirs": {c: str(p) for c, p in self.dirs.items()}}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Cgroup:
        dirs = state.get("dirs")
        version = state.get("version")
        if version not in (1, 2) or not isinstance(dirs, dict) or not dirs:
            raise CgroupError(f"not a cgroup state: {state!r}")
        paths = {str(c): Path(str(p)) for c, p in dirs.items()}
        if not all(p.is_absolute() for p in paths.values()):
            raise CgroupError(f"cgroup paths must be absolute: {state!r}")
        return cls(int(version), paths)  # type: ignore[call-overload]

    def exists(self) -> bool:
        return all(d.is_dir() for d in self.directories)

    # -- making and limiting --

    def child(self, name: str, limits: CgroupLimits | None = None) -> Cgroup:
        """Create (or reuse) the sub-group ``name`` with exactly ``limits``."""
        if not _NAME.match(name) or name in (".", ".."):
            raise CgroupError(f"{name!r} is not a cgroup name ([A-Za-z0-9_.-], not . or ..)")
        if self.version == 2:
            enable = " ".join(f"+{c}" for c in self.dirs)
            enabled = set(_read(self.path / "cgroup.subtree_control").split())
            if not set(self.dirs) <= enabled:
                try:
                    _write_file(self.path / "cgroup.subtree_control", enable)
                except OSError as error:
                    raise CgroupError(f"cannot enable {enable} in {self.path}: {error}") from None
        dirs = {c: d / name for c, d in self.dirs.items()}
        for directory in sorted(set(dirs.values())):
            try:
                directory.mkdir(exist_ok=True)
            except OSError as error:
                raise CgroupError(f"cannot create cgroup {directory}: {error}") from None
        group = replace(self, dirs=dirs)
        group.apply(limits or CgroupLimits())
        return group

    def apply(self, limits: CgroupLimits) -> None:
        """Write ``limits`` (unset ones as unlimited) to the group's control files."""
        for write in limit_writes(self.version, limits):
            directory = self.dirs.get(write.controller)
            if directory is None:
                continue  # the controller is not available here (reported by probe)
            target = directory / write.file
            if write.when != "always" and not target.exists():
                continue
            try:
                _write_file(target, write.value)
            except OSError as error:
                if write.when == "try" and error.errno == errno.EINVAL:
                    continue
                raise CgroupError(f"cannot write {write.value} to {target}: {error}") from None

    # -- processes --

    def add(self, pid: int) -> None:
        """Move process ``pid`` (all its threads) into this group."""
        for procs in self.procs_files:
            _write_file(procs, str(pid))

    def preexec(self) -> Callable[[], None]:
        """A ``preexec_fn`` that puts the child in this group before it execs (as root,
        before any uid switch; chain it before :meth:`Account.demote`)."""
        files = [os.fsencode(p) for p in self.procs_files]

        def join() -> None:
            pid = str(os.getpid()).encode()
            for name in files:
                fd = os.open(name, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

        return join

    def join_argv(self, argv: Sequence[str] = (), *, shell: str = "/bin/sh") -> list[str]:
        """``argv`` prefixed by a ``/bin/sh`` that joins this group and then ``exec``\\s it
        (same pid; exit 125 when the join fails). Must start as root."""
        files = [str(p) for p in self.procs_files]
        return [shell, "-c", _JOIN_SCRIPT, "cgroup-join", *files, "--", *argv]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files:
            found |= {int(pid) for pid in _read(procs).split()}
        return found

    def signal(self, sig: int) -> int:
        """Send ``sig`` to every process in the group; return how many there were."""
        sent = 0
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
                sent += 1
        return sent

    def kill(self, timeout: float = 5.0) -> bool:
        """SIGKILL everything in the group until it is empty; True when it is."""
        kill_file = self.path / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while self.pids():
            if self.version == 2 and kill_file.exists():
                _write_file(kill_file, "1")
            else:
                self.signal(signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what remains, then remove the group's directories (read OOM counts first)."""
        if not any(d.exists() for d in self.directories):
            return
        if not self.kill(timeout):
            raise CgroupError(f"processes {sorted(self.pids())} survive in {self.path}")
        deadline = time.monotonic() + timeout
        for directory in self.directories:
            while directory.exists():
                try:
                    directory.rmdir()
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove {directory}: {error}") from None
                    time.sleep(0.02)

    # -- what happened --

    def memory_events(self) -> dict[str, int]:
        """Counters: v2 ``memory.events`` (``oom``, ``oom_kill``, ``max``...); v1
        ``memory.oom_control`` (``oom_kill``, ``under_oom``) plus ``failcnt``."""
        directory = self.dirs.get("memory")
        if directory is None:
            return {}
        if self.version == 2:
            text = _read(directory / "memory.events")
        else:
            text = _read(directory / "memory.oom_control")
            text += f"\nfailcnt {_read(directory / 'memory.failcnt').strip() or 0}"
        events = {}
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                events[key] = int(value)
        return events

    def oom_kills(self) -> int:
        return self.memory_events().get("oom_kill", 0)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this group for exceeding its memory."""
        return self.oom_kills() > 0

    def stats(self) -> dict[str, int]:
        """Memory now/peak/limit, OOM kills and processes (what a spawn page can show)."""
        memory, pids = self.dirs.get("memory"), self.dirs.get("pids")
        if self.version == 2:
            names = {"memory_current": "memory.current", "memory_peak": "memory.peak"}
            names |= {"memory_limit": "memory.max"}
        else:
            names = {
                "memory_current": "memory.usage_in_bytes",
                "memory_peak": "memory.max_usage_in_bytes",
                "memory_limit": "memory.limit_in_bytes",
            }
        found = {}
        for key, name in names.items():
            value = _read(memory / name).strip() if memory else ""
            if value.isdigit():
                found[key] = int(value)
        current = _read(pids / "pids.current").strip() if pids else ""
        if current.isdigit():
            found["pids_current"] = int(current)
        found["oom_kill"] = self.oom_kills()
        return found
