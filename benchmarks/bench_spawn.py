"""Warm codespace spawn vs a bare ``jupyterhub-singleuser`` with ``SimpleLocalProcessSpawner``.

Two real hubs (JupyterHub + configurable-http-proxy on 127.0.0.1), measured in the same run:
the time from the start request to the server being ready, through the REST API.
"Warm" means the environment is already in the cache: each measured codespace is a new named
server (fresh clone, resolve, cache hit, lifecycle, server start). Prints the medians and the
ratio; target: codespace <= 1.3 x bare.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers.hub import RunningHub, running_hub
from tests.helpers.repos import fixture_repo

RUNS = int(os.environ.get("BENCH_RUNS", "3"))
BARE_CONFIG = f"""
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [{str(Path(sys.executable).parent / "jupyterhub-singleuser")!r}]
c.Spawner.args = {["--ServerApp.allow_root=True"] if os.geteuid() == 0 else []!r}
c.SimpleLocalProcessSpawner.home_dir_template = "{{data}}/home/{{{{username}}}}"
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
"""


def timed_spawn(hub: RunningHub, user: str, server: str, options: dict) -> float:
    started = time.perf_counter()
    events = hub.spawn(user, server, options)
    elapsed = time.perf_counter() - started
    if not events[-1].get("ready"):
        raise RuntimeError(f"{server} failed: {events}")
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-spawn-") as tmp:
        work = Path(tmp)
        repo = fixture_repo(work)
        codespace_times, bare_times = [], []
        with running_hub(work / "codespace-hub") as hub:
            timed_spawn(hub, "bench", "warmup", {"repo": str(repo)})  # fills the env cache
            hub.stop("bench", "warmup")
            for run in range(RUNS):
                codespace_times.append(timed_spawn(hub, "bench", f"w{run}", {"repo": str(repo)}))
                hub.stop("bench", f"w{run}")
        bare_dir = work / "bare-hub"
        with running_hub(
            bare_dir, base_config=None, extra_config=BARE_CONFIG.replace("{data}", str(bare_dir))
        ) as hub:
            timed_spawn(hub, "bench", "warmup", {})
            hub.stop("bench", "warmup")
            for run in range(RUNS):
                bare_times.append(timed_spawn(hub, "bench", f"b{run}", {}))
                hub.stop("bench", f"b{run}")
    codespace_s, bare_s = statistics.median(codespace_times), statistics.median(bare_times)
    runs = ", ".join(f"{t:.2f}" for t in codespace_times)
    print(f"warm codespace spawn (LocalCodespaceSpawner): {codespace_s:6.2f} s  (runs: {runs})")
    runs = ", ".join(f"{t:.2f}" for t in bare_times)
    print(f"bare jupyterhub-singleuser (Simple...Spawner): {bare_s:6.2f} s  (runs: {runs})")
    print(f"warm spawn ratio codespace/bare: {codespace_s / bare_s:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
