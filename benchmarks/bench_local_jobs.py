"""200 short jobs through the local job backend against 200 raw processes, in one run.

The backend (``codespace.jobs.local``: a record in SQLite per job, a process group per task,
an exit file, the scheduler's polling) against starting the same command with
``subprocess.run`` from a pool of the same size (the backend's concurrency limit). Prints the
throughput ratio (jobs per second through the backend / raw; higher is better) and how many
jobs were lost (target: 0).

``BENCH_JOBS`` (default 200) sets N.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codespace.jobs.backend import JobSettings
from codespace.jobs.local import LocalJobBackend
from codespace.jobs.models import Submission

JOBS = int(os.environ.get("BENCH_JOBS", "200"))
COMMAND = ["true"]
CONCURRENCY = os.cpu_count() or 1


def raw(count: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        list(pool.map(lambda _: subprocess.run(COMMAND, check=True), range(count)))
    return time.perf_counter() - started


async def through_backend(count: int, work: Path) -> tuple[float, int, int]:
    workspace = work / "ws"
    workspace.mkdir()
    settings = JobSettings(
        workspace=workspace,
        state_dir=work / "state",
        owner="bench",
        environment=dict(os.environ),
        options={"concurrency": CONCURRENCY, "poll_interval": 0.02},
    )
    backend = LocalJobBackend.from_settings(settings)
    started = time.perf_counter()
    made = []
    for index in range(count):
        submission = Submission.model_validate(
            {"jobs": [{"name": f"job-{index}", "command": COMMAND}]}
        )
        made += await backend.submit(submission)
    while True:
        records = await backend.list()
        if all(record.done for record in records) and len(records) >= count:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    succeeded = sum(record.state == "succeeded" for record in records)
    await backend.close()
    return elapsed, len(made), succeeded


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        baseline = raw(JOBS)
        elapsed, made, succeeded = asyncio.run(through_backend(JOBS, Path(tmp)))
    ratio = baseline / elapsed
    print(
        f"local jobs: {JOBS} short jobs in {elapsed:.2f} s through the backend vs {baseline:.2f} s "
        f"as raw processes ({CONCURRENCY} at a time): throughput {ratio:.2f}x of raw"
    )
    print(f"submitted {made}, succeeded {succeeded}, lost {JOBS - succeeded} (target: 0)")


if __name__ == "__main__":
    main()
