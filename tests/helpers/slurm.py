"""A private single-node Slurm (Debian's 22.05) on 127.0.0.1 for tests and benchmarks.

The recipe is ../shared/FACTS.md's: munged with a private key and socket, slurmctld and
slurmd as the current user (root in CI) on free ports, and slurmrestd as ``nobody`` with
JWT authentication, everything under one base directory::

    with running_slurm(tmp_path / "slurm") as slurm:
        token = slurm.token("alice")
        slurm.run("sbatch", "--wrap", "true")
        slurm.kill_controller(); slurm.start_controller()

Tests use the session-scoped fixture :func:`slurm_session`. Without the binaries a test
skips locally and fails with ``CI=true`` (:func:`tests.conftest.missing`). Teardown stops
every daemon with SIGTERM, then SIGKILL (slurmd may ignore SIGTERM while slurmctld is gone).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import missing
from tests.helpers.hub import free_port

BINARIES = (
    "munged",
    "slurmctld",
    "slurmd",
    "slurmrestd",
    "sbatch",
    "squeue",
    "scontrol",
    "scancel",
)
INSTALL = "apt-get install slurm-wlm slurmrestd munge slurm-client slurm-wlm-jwt-plugin"
JWT_PLUGIN = Path("/usr/lib/x86_64-linux-gnu/slurm-wlm/auth_jwt.so")
API_VERSIONS = "openapi/v0.0.36,openapi/v0.0.37,openapi/v0.0.38"
CPUS = 8  # more than the machine's cores (config_overrides): short jobs run side by side


def find_binaries() -> tuple[dict[str, str], str | None]:
    """The Slurm binaries' paths, and what is missing (None: nothing)."""
    found = {name: shutil.which(name) or shutil.which(name, path="/usr/sbin") for name in BINARIES}
    absent = [name for name, path in found.items() if not path]
    if absent or not JWT_PLUGIN.exists():
        return {}, f"Slurm is not installed ({', '.join(absent) or 'auth_jwt.so'}): {INSTALL}"
    if os.geteuid() != 0:
        return {}, "the private Slurm runs its daemons as root (slurmrestd as nobody)"
    return {name: str(path) for name, path in found.items()}, None


def require_slurm() -> dict[str, str]:
    """The paths of the Slurm binaries, or skip (locally) / fail (CI) naming what is missing."""
    bins, problem = find_binaries()
    if problem:
        missing(problem)
    return bins


def slurm_conf(base: Path, user: str, ctld_port: int, slurmd_port: int) -> str:
    lines = {
        "ClusterName": "codespace",
        "SlurmctldHost": "localhost",
        "SlurmctldPort": str(ctld_port),
        "SlurmdPort": str(slurmd_port),
        "SlurmUser": user,
        "SlurmdUser": user,
        "AuthType": "auth/munge",
        "AuthInfo": f"socket={base}/munge/munge.socket",
        "AuthAltTypes": "auth/jwt",
        "AuthAltParameters": f"jwt_key={base}/jwt_hs256.key",
        "StateSaveLocation": f"{base}/state",
        "SlurmdSpoolDir": f"{base}/spool",
        "SlurmctldPidFile": f"{base}/run/slurmctld.pid",
        "SlurmdPidFile": f"{base}/run/slurmd.pid",
        "SlurmctldLogFile": f"{base}/log/slurmctld.log",
        "SlurmdLogFile": f"{base}/log/slurmd.log",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/linux",
        "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/filetxt",
        "JobCompLoc": f"{base}/log/jobcomp.log",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory",
        # test every pending job every 2 s (default 60): after a restart nothing else wakes
        # the scheduler once the node is back
        "SchedulerParameters": "sched_interval=2",
        "DefMemPerCPU": "100",
        "SlurmdParameters": "config_overrides",
        "GresTypes": "gpu",
        "MpiDefault": "none",
        "MailProg": "/bin/true",
        "ReturnToService": "2",
        "MessageTimeout": "5",
        "MinJobAge": "600",
        "NodeName": (
            f"localhost CPUs={CPUS} Boards=1 SocketsPerBoard=1 CoresPerSocket={CPUS}"
            " ThreadsPerCore=1 RealMemory=4000 State=UNKNOWN"
        ),
        "PartitionName": "debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


@dataclass
class Slurm:
    """A started private Slurm: its configuration, REST URL and daemons."""

    base: Path
    bins: dict[str, str]
    rest_port: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.base / "slurm.conf"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment for the Slurm client tools (``SLURM_CONF``)."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *argv: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=60, **kwargs
        )

    def token(self, user: str, lifespan: int = 7200) -> str:
        done = self.run(self.bins["scontrol"], "token", f"username={user}", f"lifespan={lifespan}")
        return done.stdout.strip().partition("=")[2]

    def _start(self, name: str, argv: list[str], **kwargs: object) -> None:
        log = open(self.base / "log" / f"{name}.out", "ab")
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
        log.close()

    def start_munge(self) -> None:
        munge = self.base / "munge"
        self._start(
            "munged",
            [
                self.bins["munged"],
                "--foreground",
                "--force",
                f"--key-file={munge}/munge.key",
                f"--socket={munge}/munge.socket",
                f"--pid-file={munge}/munged.pid",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/munged.seed",
            ],
        )
        _wait(lambda: (munge / "munge.socket").exists(), "munged's socket", self)

    def start_controller(self) -> None:
        self._start("slurmctld", [self.bins["slurmctld"], "-D", "-f", str(self.conf)])
        _wait(self.pingable, "slurmctld", self)

    def start_slurmd(self) -> None:
        self._start("slurmd", [self.bins["slurmd"], "-D", "-f", str(self.conf)])
        _wait(self.node_idle, "the node to be idle", self, timeout=30)

    def start_rest(self) -> None:
        env = {**self.env, "SLURM_JWT": "daemon"}
        argv = [self.bins["slurmrestd"], "-u", "nobody", "-g", "nogroup", "-a", "rest_auth/jwt"]
        argv += ["-s", API_VERSIONS, f"127.0.0.1:{self.rest_port}"]
        self._start("slurmrestd", argv, env=env)
        _wait(self.rest_ready, "slurmrestd", self)

    def pingable(self) -> bool:
        done = self.run(self.bins["scontrol"], "ping", check=False)
        return "UP" in done.stdout

    def node_idle(self) -> bool:
        done = self.run(self.bins["scontrol"], "show", "node", "localhost", check=False)
        return "State=IDLE" in done.stdout or "State=MIXED" in done.stdout

    def rest_ready(self) -> bool:
        try:
            httpx.get(f"{self.rest_url}/openapi/v3", timeout=2)  # 401 without a token: up
            return True
        except httpx.HTTPError:
            return False

    def kill_controller(self, sig: int = signal.SIGKILL) -> None:
        """Kill slurmctld (SIGKILL: no state saved on the way out) and wait for it to go."""
        process = self.processes.pop("slurmctld")
        process.send_signal(sig)
        process.wait(timeout=30)

    def drain(self, timeout: float = 300) -> None:
        """Wait until the queue is empty (every job finished)."""

        def empty() -> bool:
            done = self.run(self.bins["squeue"], "--noheader", "--format=%i", check=False)
            return done.returncode == 0 and not done.stdout.strip()

        _wait(empty, "the queue to drain", self, timeout=timeout, interval=0.5)

    def cancel_all(self, timeout: float = 15) -> None:
        """Cancel every job of the private partition and wait for their steps to end (a
        job's slurmstepd outlives slurmd, so it must not be left running at teardown)."""
        controller = self.processes.get("slurmctld")
        if controller is None or controller.poll() is not None:
            return
        self.run(self.bins["scancel"], "--partition=debug", check=False)

        def quiet() -> bool:
            done = self.run(self.bins["squeue"], "--noheader", "--format=%i", check=False)
            return done.returncode != 0 or not done.stdout.strip()

        deadline = time.monotonic() + timeout
        while not quiet() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.cancel_all()
        for name in ("slurmrestd", "slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is not None:
                _terminate(process)

    def logs(self) -> str:
        parts = []
        for path in sorted((self.base / "log").glob("*")):
            text = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _wait(
    ready: object, what: str, slurm: Slurm, timeout: float = 20, interval: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():  # type: ignore[operator]
            return
        for name, process in slurm.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited ({process.returncode})\n{slurm.logs()}")
        time.sleep(interval)
    raise RuntimeError(f"timed out waiting for {what}\n{slurm.logs()}")


def prepare(base: Path) -> None:
    """The base directory: keys, configuration, state; readable where nobody must read."""
    for sub, mode in (("munge", 0o755), ("state", 0o700), ("spool", 0o755), ("log", 0o755)):
        (base / sub).mkdir(parents=True, exist_ok=True)
        (base / sub).chmod(mode)
    (base / "run").mkdir(exist_ok=True)
    base.chmod(0o755)
    for key, size in (("munge/munge.key", 1024), ("jwt_hs256.key", 32)):
        path = base / key
        path.write_bytes(secrets.token_bytes(size))
        path.chmod(0o400)


@contextlib.contextmanager
def running_slurm(base: Path, bins: dict[str, str] | None = None) -> Iterator[Slurm]:
    """munged, slurmctld, slurmd and slurmrestd under ``base``; all stopped on exit."""
    bins = bins or require_slurm()
    prepare(base)
    slurm = Slurm(base, bins, rest_port=free_port())
    user = pwd.getpwuid(os.geteuid()).pw_name
    slurm.conf.write_text(slurm_conf(base, user, free_port(), free_port()))
    slurm.conf.chmod(0o644)
    try:
        slurm.start_munge()
        slurm.start_controller()
        slurm.start_slurmd()
        slurm.start_rest()
        yield slurm
    finally:
        slurm.stop()


def slurm_session() -> Iterator[Slurm]:
    """For a session-scoped fixture: a private Slurm in a fresh 755 directory under /tmp."""
    require_slurm()
    base = Path(tempfile.mkdtemp(prefix="codespace-slurm-"))
    try:
        with running_slurm(base) as slurm:
            yield slurm
    finally:
        shutil.rmtree(base, ignore_errors=True)
