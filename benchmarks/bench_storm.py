"""A spawn storm: N users start codespaces of the same small repository at once.

One real hub (JupyterHub + configurable-http-proxy + LocalCodespaceSpawner, with accounts,
cgroups and the sandbox when run as root), measured in the same run:

- **spawn**: the p95 of the storm's spawn times (request to ready, through the REST API;
  the environment is not built yet when the storm starts) against a single spawn of the same
  repository by a new user once the storm's servers are stopped (environment cached; the
  median of three); target <= 4x on 2 cores;
- **builds**: how many spawns built the environment (target: 1; the others wait for it);
- **hub API**: the p95 latency of ``GET /hub/api/users/<name>`` polled every 50 ms by
  another client during the storm (target < 100 ms).

It also prints the floor the CPU sets for the spawn ratio. The storm is CPU-bound: N starts
need N times a start's CPU, so the last are ready no sooner than ``storm CPU / cores``; a
single start on a quiet machine takes ``single CPU / parallelism`` (its processes overlap:
hub, git, the server). Hence ``p95 / single >= 0.95 * storm CPU / cores / single``, about
``0.95 * N / cores * (single CPU / single wall)``: cheaper starts shorten both sides alike.

``BENCH_USERS`` (default 20) sets N.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.hub import RunningHub, running_hub
from tests.helpers.repos import fixture_repo

USERS = int(os.environ.get("BENCH_USERS", "20"))
SINGLE_RUNS = 3


def cpu_seconds() -> tuple[float, float]:
    """Busy and idle CPU-seconds of the whole machine so far (``/proc/stat``)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / tick, idle / tick


def process_cpu(pid: int) -> float:
    """CPU-seconds a process (and the children it waited for) used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


STEPS = ("account:", "fetch:", "resolve:", "limits:", "environment:", "lifecycle:", "server:")


def spawn(hub: RunningHub, user: str, repo: Path) -> tuple[float, bool, list[str]]:
    """Seconds to ready, whether this spawn built the environment, and its step lines."""
    started = time.perf_counter()
    events = hub.spawn(user, "storm", {"repo": str(repo)})
    elapsed = time.perf_counter() - started
    if not events[-1].get("ready"):
        raise RuntimeError(f"{user} failed: {events[-1]}")
    messages = [str(e.get("message", "")) for e in events]
    built = any("environment: built" in message for message in messages)
    steps = [m for m in messages if any(m.partition("] ")[2].startswith(s) for s in STEPS)]
    return elapsed, built, steps


class ApiProbe(threading.Thread):
    """Poll the hub's REST API while the storm runs; keep the latencies."""

    def __init__(self, hub: RunningHub) -> None:
        super().__init__(daemon=True)
        self.hub, self.latencies, self.done = hub, [], threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            started = time.perf_counter()
            self.hub.api("GET", "/users/probe").raise_for_status()
            self.latencies.append(time.perf_counter() - started)
            self.done.wait(0.05)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-storm-") as tmp:
        work = Path(tmp)
        repo = fixture_repo(work)
        with running_hub(work / "hub") as hub:
            hub.ensure_user("probe")
            users = [f"storm{i:02d}" for i in range(USERS)]
            for user in users:
                hub.ensure_user(user)
            probe = ApiProbe(hub)
            probe.start()
            started, cpu_before = time.perf_counter(), cpu_seconds()
            hub_before = process_cpu(hub.process.pid)
            with ThreadPoolExecutor(max_workers=USERS) as pool:
                results = list(pool.map(lambda user: spawn(hub, user, repo), users))
            wall = time.perf_counter() - started
            busy, idle = (a - b for a, b in zip(cpu_seconds(), cpu_before, strict=True))
            hub_cpu = process_cpu(hub.process.pid) - hub_before
            probe.done.set()
            probe.join()
            with ThreadPoolExecutor(max_workers=USERS) as pool:  # a quiet machine again
                list(pool.map(lambda user: hub.stop(user, "storm"), users))
            singles, single_cpu = [], []
            for run in range(SINGLE_RUNS):
                before = cpu_seconds()[0]
                singles.append(spawn(hub, f"single{run}", repo))
                single_cpu.append(cpu_seconds()[0] - before)
            single = statistics.median(seconds for seconds, _, _ in singles)
            single_steps = singles[0][2]
    times = [seconds for seconds, _, _ in results]
    builds = sum(built for _, built, _ in results)
    slowest = max(results, key=lambda result: result[0])
    storm_p95, api_p95 = p95(times), p95(probe.latencies) * 1000
    print(f"storm: {USERS} spawns at once, all ready in {wall:.1f} s")
    print(
        f"CPU during the storm: {busy:.1f} s busy, {idle:.1f} s idle ({os.cpu_count()} cores); "
        f"the hub process {hub_cpu:.1f} s"
    )
    print(
        f"storm spawn p95 {storm_p95:.2f} s (median {statistics.median(times):.2f} s) "
        f"vs single spawn {single:.2f} s: {storm_p95 / single:.2f}x (target <= 4x)"
    )
    cores = os.cpu_count() or 1
    floor = 0.95 * busy / cores
    print(
        f"CPU floor: a single spawn used {statistics.median(single_cpu):.2f} CPU-s in "
        f"{single:.2f} s; the storm's {busy:.1f} CPU-s on {cores} cores put its p95 at "
        f">= {floor:.1f} s, {floor / single:.1f}x a single spawn "
        f"(measured: {storm_p95 / floor:.2f}x that floor)"
    )
    print(f"environment builds during the storm: {builds} (target: 1)")
    print(
        f"hub API p95 during the storm: {api_p95:.0f} ms over {len(probe.latencies)} requests "
        f"(max {max(probe.latencies) * 1000:.0f} ms; target < 100 ms)"
    )
    print("slowest storm spawn, by step:\n  " + "\n  ".join(slowest[2]))
    print("single spawn, by step:\n  " + "\n  ".join(single_steps))


if __name__ == "__main__":
    main()
