"""codespace.local.limits: detection, the writes, and real cgroups as root (OOM, CPU, pids)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codespace.local import limits
from codespace.local.limits import (
    Cgroup,
    CgroupError,
    CgroupLimits,
    CgroupSupport,
    limit_writes,
    parse_mountinfo,
    parse_proc_cgroup,
    probe,
    weight_to_shares,
)
from tests.conftest import missing
from tests.helpers.confinement import cgroup_parent

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / {root}/cpu rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / {root}/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / {root}/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / {root}/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / {root}/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
4:memory:/hubs/one
1:cpu,cpuacct:/
0::/
"""


# -- pure -------------------------------------------------------------------------------------


def test_limits_parse_spec_quantities() -> None:
    limits = CgroupLimits.parse(cpu="500m", memory="8Gi", pids=256, cpu_weight=50)
    assert limits == CgroupLimits(cpu=0.5, memory_bytes=8 * 2**30, pids=256, cpu_weight=50)
    assert CgroupLimits.parse(cpu=2, memory="512M").memory_bytes == 512 * 10**6
    assert CgroupLimits.parse() == CgroupLimits()
    assert "0.5 CPU" in limits.describe() and "8 GiB" in limits.describe()


@pytest.mark.parametrize(
    "kwargs", [{"cpu": 0}, {"memory_bytes": 100}, {"pids": 0}, {"cpu_weight": 0}]
)
def test_limits_refuse_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CgroupLimits(**kwargs)


def test_defaults_and_maximum() -> None:
    requested = CgroupLimits(cpu=8, memory_bytes=None)
    defaults = CgroupLimits(cpu=1, memory_bytes=2 << 30, pids=512)
    maximum = CgroupLimits(cpu=4, memory_bytes=16 << 30)
    effective = requested.or_defaults(defaults).within(maximum)
    assert effective == CgroupLimits(cpu=4, memory_bytes=2 << 30, pids=512)
    assert CgroupLimits().within(maximum) == maximum


def test_v1_writes_keep_memsw_above_the_limit_and_reset_unset_ones() -> None:
    writes = limit_writes(1, CgroupLimits(cpu=1.5, memory_bytes=64 << 20, pids=10, cpu_weight=50))
    seen = [(w.file, w.value, w.when) for w in writes]
    assert seen[:3] == [
        ("memory.memsw.limit_in_bytes", str(64 << 20), "try"),
        ("memory.limit_in_bytes", str(64 << 20), "always"),
        ("memory.memsw.limit_in_bytes", str(64 << 20), "present"),
    ]
    assert ("cpu.cfs_quota_us", "150000", "always") in seen
    assert ("cpu.shares", "512", "always") in seen and ("pids.max", "10", "always") in seen
    unset = {(w.file, w.value) for w in limit_writes(1, CgroupLimits())}
    assert {("memory.limit_in_bytes", "-1"), ("cpu.cfs_quota_us", "-1")} <= unset
    assert {("pids.max", "max"), ("cpu.shares", "1024")} <= unset


def test_v2_writes() -> None:
    writes = {
        w.file: w.value for w in limit_writes(2, CgroupLimits(cpu=0.25, memory_bytes=1 << 30))
    }
    assert writes["memory.max"] == str(1 << 30) and writes["memory.swap.max"] == "0"
    assert writes["cpu.max"] == "25000 100000" and writes["cpu.weight"] == "100"
    assert {w.file: w.value for w in limit_writes(2, CgroupLimits())}["cpu.max"] == "max 100000"


def test_weight_to_shares() -> None:
    assert weight_to_shares(100) == 1024 and weight_to_shares(1) == 10
    assert weight_to_shares(10_000) == 102_400


def test_parse_mountinfo_and_proc_cgroup() -> None:
    mounts = parse_mountinfo(HYBRID_MOUNTINFO.format(root="/sys/fs/cgroup"))
    assert [(m.point.name, m.fstype) for m in mounts] == [
        ("cpu", "cgroup"),
        ("memory", "cgroup"),
        ("pids", "cgroup"),
        ("systemd", "cgroup"),
        ("unified", "cgroup2"),
    ]
    assert "cpuacct" in mounts[0].options
    escaped = parse_mountinfo("1 2 0:1 / /a\\040b rw - cgroup2 cgroup2 rw")
    assert escaped[0].point == Path("/a b")
    own = parse_proc_cgroup(HYBRID_CGROUP)
    assert own["memory"] == "/hubs/one" and own["cpuacct"] == "/" and own[""] == "/"


def _fake_hybrid(tmp_path: Path) -> tuple[Path, Path]:
    for sub in ("cpu", "memory/hubs/one", "pids", "systemd", "unified"):
        (tmp_path / sub).mkdir(parents=True)
    (tmp_path / "unified" / "cgroup.controllers").write_text("\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(HYBRID_MOUNTINFO.format(root=tmp_path))
    proc = tmp_path / "cgroup"
    proc.write_text(HYBRID_CGROUP)
    return mountinfo, proc


def test_probe_skips_an_empty_unified_mount_and_uses_v1(tmp_path: Path) -> None:
    mountinfo, proc = _fake_hybrid(tmp_path)
    support = probe(mountinfo=mountinfo, proc_cgroup=proc)
    assert support.version == 1 and support.controllers == ("memory", "cpu", "pids")
    assert support.bases["memory"] == tmp_path / "memory" / "hubs" / "one"
    assert support.bases["cpu"] == tmp_path / "cpu"
    assert support.sentence() == "cgroup v1 memory,cpu,pids: limits enforced"


def test_probe_prefers_v2_with_controllers(tmp_path: Path) -> None:
    (tmp_path / "cg" / "hub.service").mkdir(parents=True)
    (tmp_path / "cg" / "hub.service" / "cgroup.controllers").write_text("cpu memory io\n")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"30 1 0:26 / {tmp_path}/cg rw - cgroup2 cgroup2 rw,nsdelegate\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/hub.service\n")
    support = probe(mountinfo=mountinfo, proc_cgroup=proc)
    assert support.version == 2 and support.controllers == ("memory", "cpu")
    assert support.missing == ("pids",)
    assert support.sentence().endswith("limits enforced (pids not available)")


def test_probe_without_cgroups(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text("1 0 0:1 / / rw - ext4 /dev/vda rw\n")
    (tmp_path / "cgroup").write_text("")
    support = probe(mountinfo=tmp_path / "mountinfo", proc_cgroup=tmp_path / "cgroup")
    assert not support.enforced
    assert support.sentence().endswith("limits are not enforced")
    with pytest.raises(CgroupError):
        support.parent()
    denied = CgroupSupport(1, {"memory": tmp_path}, writable=False, detail="no write access")
    assert denied.sentence().startswith("cgroups not writable")


def test_fake_v2_group_gets_its_files_written(tmp_path: Path) -> None:
    parent = Cgroup(2, {c: tmp_path for c in ("memory", "cpu", "pids")})
    (tmp_path / "cgroup.subtree_control").write_text("")
    (tmp_path / "one").mkdir()
    for name in ("memory.max", "cpu.max", "cpu.weight", "pids.max"):
        (tmp_path / "one" / name).write_text("")
    group = parent.child("one", CgroupLimits(cpu=2, memory_bytes=1 << 30, pids=64, cpu_weight=20))
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (tmp_path / "one" / "memory.max").read_text() == str(1 << 30)
    assert not (tmp_path / "one" / "memory.swap.max").exists()  # absent file: skipped
    assert (tmp_path / "one" / "cpu.max").read_text() == "200000 100000"
    assert (tmp_path / "one" / "cpu.weight").read_text() == "20"
    assert Cgroup.from_state(group.to_state()) == group
    (tmp_path / "one" / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.oom_killed() and group.memory_events()["max"] == 3
    with pytest.raises(CgroupError):
        parent.child("../escape")
    with pytest.raises(CgroupError):
        Cgroup.from_state({"version": 1, "dirs": {"memory": "relative"}})


def test_v2_hub_moves_into_a_leaf_when_its_group_holds_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The "no internal processes" rule, faked: the first subtree_control write is EBUSY."""
    own = tmp_path / "hub.service"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.procs").write_text("101\n102\n")
    writes: list[tuple[str, str]] = []
    busy = [True]

    def fake_write(path: Path, value: str) -> None:
        relative = str(path.relative_to(own))
        if relative == "cgroup.subtree_control" and busy[0]:
            busy[0] = False
            raise OSError(errno.EBUSY, "Device or resource busy")
        writes.append((relative, value))

    monkeypatch.setattr(limits, "_write_file", fake_write)
    support = CgroupSupport(2, {c: own for c in ("memory", "cpu", "pids")}, writable=True)
    parent = support.parent(limits=CgroupLimits(cpu_weight=10))
    assert parent.path == own / "codespace-hub"
    assert writes[:3] == [
        ("hub/cgroup.procs", "101"),
        ("hub/cgroup.procs", "102"),
        ("cgroup.subtree_control", "+memory +cpu +pids"),
    ]
    assert ("codespace-hub/cpu.weight", "10") in writes
    busy[0] = True
    (own / "cgroup.subtree_control").write_text("")
    with pytest.raises(CgroupError, match="holds processes"):
        support.parent(move_hub=False)


def test_join_argv_ends_options_before_the_command() -> None:
    group = Cgroup(1, {"memory": Path("/cg/memory/x"), "pids": Path("/cg/pids/x")})
    argv = group.join_argv(["--help"])
    assert argv[:2] == ["/bin/sh", "-c"] and argv[-2:] == ["--", "--help"]
    assert argv[4:6] == ["/cg/memory/x/cgroup.procs", "/cg/pids/x/cgroup.procs"]


# -- as root: real cgroups ---------------------------------------------------------------------


@pytest.fixture
def parent() -> Iterator[Cgroup]:
    with cgroup_parent() as made:
        yield made


PYTHON = sys.executable
ALLOCATE = "b = b'x' * (256 << 20); print('survived')"
SLEEP = "import time; print('up', flush=True); time.sleep(60)"


def test_memory_limit_kills_only_that_codespace(parent: Cgroup) -> None:
    small = parent.child("small", CgroupLimits(memory_bytes=64 << 20))
    other = parent.child("other", CgroupLimits(memory_bytes=512 << 20))
    neighbour = subprocess.Popen(
        other.join_argv([PYTHON, "-c", SLEEP]), stdout=subprocess.PIPE, text=True
    )
    try:
        assert neighbour.stdout is not None and neighbour.stdout.readline() == "up\n"
        hog = subprocess.run(
            [PYTHON, "-c", ALLOCATE], preexec_fn=small.preexec(), capture_output=True, text=True
        )
        assert hog.returncode == -signal.SIGKILL and "survived" not in hog.stdout
        assert small.oom_killed() and small.oom_kills() == 1
        assert neighbour.poll() is None and not other.oom_killed()
        assert neighbour.pid in other.pids()
        assert small.stats()["memory_limit"] == 64 << 20
        shell = subprocess.run(small.join_argv(["/bin/sh", "-c", f'{PYTHON} -c "{ALLOCATE}"']))
        assert shell.returncode == 128 + signal.SIGKILL  # what a shell or the spawner sees
    finally:
        neighbour.kill()
        neighbour.wait()
    small.remove()
    other.remove()
    assert not any(d.exists() for d in small.directories + other.directories)


def test_cpu_quota_and_weight_are_written(parent: Cgroup) -> None:
    group = parent.child("cpu", CgroupLimits(cpu=0.5, cpu_weight=25))
    cpu = group.dirs.get("cpu")
    if cpu is None:
        missing("no cpu cgroup controller here (probe().missing)")
    if group.version == 1:
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
        assert (cpu / "cpu.shares").read_text().strip() == "256"
    else:
        assert (cpu / "cpu.max").read_text().split() == ["50000", "100000"]
        assert (cpu / "cpu.weight").read_text().strip() == "25"
    group.apply(CgroupLimits())  # back to unlimited
    if group.version == 1:
        assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "-1"
    group.remove()


FORK_BOMB = """
import os, time
made = 0
for _ in range(20):
    try:
        if os.fork() == 0:
            os.closerange(1, 3)  # the test reads the count without waiting for them
            time.sleep(30)
            os._exit(0)
        made += 1
    except OSError:
        pass
print(made, flush=True)
"""


def test_pids_limit_stops_a_fork_bomb(parent: Cgroup) -> None:
    group = parent.child("pids", CgroupLimits(pids=10))
    if "pids" not in group.dirs:
        missing("no pids cgroup controller here (probe().missing)")
    done = subprocess.run(
        group.join_argv([PYTHON, "-c", FORK_BOMB]), capture_output=True, text=True
    )
    made = int(done.stdout.strip())
    assert made == 9  # 10 processes: the parent and 9 children
    assert len(group.pids()) == 9  # the children sleep on
    assert group.stats()["pids_current"] == 9
    group.remove()
    assert not any(d.exists() for d in group.directories)


def test_memory_limit_can_be_raised_and_lowered(parent: Cgroup) -> None:
    group = parent.child("resize", CgroupLimits(memory_bytes=64 << 20))
    group.apply(CgroupLimits(memory_bytes=256 << 20))  # memsw must grow first on v1
    group.apply(CgroupLimits(memory_bytes=32 << 20))
    assert group.stats()["memory_limit"] == 32 << 20
    group.remove()


def test_remove_kills_what_is_left_and_leaves_no_directories(parent: Cgroup) -> None:
    group = parent.child("leftovers")
    started = [subprocess.Popen([PYTHON, "-c", SLEEP], preexec_fn=group.preexec()) for _ in "ab"]
    deadline = time.monotonic() + 10
    while len(group.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert group.pids() == {p.pid for p in started}
    assert group.signal(signal.SIGTERM) == 2
    for process in started:
        assert process.wait(10) == -signal.SIGTERM
    again = subprocess.Popen([PYTHON, "-c", SLEEP], preexec_fn=group.preexec())
    group.remove()
    assert again.wait(10) == -signal.SIGKILL
    assert not any(d.exists() for d in group.directories)
    group.remove()  # removing twice is fine


def test_a_restarted_hub_finds_its_group_from_the_state(parent: Cgroup) -> None:
    group = parent.child("kept", CgroupLimits(pids=50))
    found = Cgroup.from_state(group.to_state())
    assert found.exists() and found == group
    found.remove()
    assert not group.exists()


def test_probe_here_names_the_hubs_own_groups() -> None:
    support = probe()
    for controller, base in support.bases.items():
        assert base.is_dir(), controller
    if support.enforced:
        assert os.access(support.bases["memory"], os.W_OK)
