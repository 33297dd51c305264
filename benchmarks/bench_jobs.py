"""200 job submissions through the Slurm backend against 200 raw ``sbatch --wrap``, one run.

A private single-node Slurm (Debian's 22.05: munged, slurmctld, slurmd, slurmrestd with JWT;
``tests/helpers/slurm.py``) on 127.0.0.1. Phase 1: ``sbatch --parsable --wrap`` N times, one
after the other (the CLI baseline). Phase 2: N one-job submissions, each with an idempotency
key, through :class:`codespace.jobs.slurm.SlurmBackend` over slurmrestd (a record in SQLite,
the job's directory, the REST call). The queue drains between the phases, and after each every
job's own line in a file is counted. Prints both throughputs (submissions per second), their
ratio (target >= 0.8x) and how many jobs were lost or ran twice (target: 0).

``BENCH_JOBS`` (default 200) sets N. Needs root and the Slurm packages; skips otherwise.
"""

from __future__ import annotations

import asyncio
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codespace.jobs.backend import JobSettings
from codespace.jobs.models import Submission
from codespace.jobs.slurm import SlurmBackend
from tests.helpers.slurm import Slurm, find_binaries, running_slurm

JOBS = int(os.environ.get("BENCH_JOBS", "200"))


def raw_sbatch(slurm: Slurm, count: int, workspace: Path) -> tuple[float, int]:
    """Seconds for ``count`` sbatch calls; jobs that did not run exactly once."""
    env = slurm.env
    argv = [slurm.bins["sbatch"], "--parsable", f"--chdir={workspace}", "--output=/dev/null"]
    argv += ["--wrap", 'echo "$SLURM_JOB_ID" >> raw.txt']
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(argv, env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - started
    slurm.drain()
    ran = collections.Counter((workspace / "raw.txt").read_text().split())
    return elapsed, count - sum(1 for n in ran.values() if n == 1)


async def through_backend(slurm: Slurm, count: int, work: Path) -> tuple[float, float, int]:
    """Seconds to submit, seconds until all finished; jobs lost or run twice."""
    workspace = work / "ws-backend"
    workspace.mkdir()
    settings = JobSettings(
        workspace=workspace,
        state_dir=work / "state",
        owner="bench",
        environment={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work)},
        options={"url": slurm.rest_url, "token": slurm.token("root"), "user_name": "root"},
    )
    backend = SlurmBackend.from_settings(settings)
    command = ["bash", "-c", 'echo "$CODESPACE_JOB_ID" >> ran.txt']
    started = time.perf_counter()
    ids = []
    for n in range(count):
        jobs = [{"name": f"bench-{n}", "command": command}]
        submission = Submission.model_validate({"jobs": jobs, "idempotencyKey": f"bench-{n:06d}"})
        ids += [record.id for record in await backend.submit(submission)]
    submitted = time.perf_counter() - started
    while not all(record.done for record in await backend.list()):
        await asyncio.sleep(0.5)
    finished = time.perf_counter() - started
    records = await backend.list()
    await backend.close()
    ran = collections.Counter((workspace / "ran.txt").read_text().split())
    good = sum(1 for r in records if r.state == "succeeded" and ran[r.id] == 1)
    return submitted, finished, len(ids) - good


def main() -> None:
    bins, problem = find_binaries()
    if problem:
        print(f"jobs benchmark (Slurm): skipped: {problem}")
        return
    work = Path(tempfile.mkdtemp(prefix="codespace-bench-jobs-"))
    work.chmod(0o755)
    try:
        with running_slurm(work / "slurm", bins) as slurm:
            raw_ws = work / "ws-raw"
            raw_ws.mkdir()
            raw_s, raw_lost = raw_sbatch(slurm, JOBS, raw_ws)
            backend_s, backend_done, backend_lost = asyncio.run(through_backend(slurm, JOBS, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    raw_rate, backend_rate = JOBS / raw_s, JOBS / backend_s
    ratio = backend_rate / raw_rate
    verdict = "ok" if ratio >= 0.8 and backend_lost == 0 else "UNDER TARGET"
    print(f"jobs benchmark (Slurm 22.05, {JOBS} submissions each, one after the other)")
    print(f"  raw sbatch --wrap:        {raw_rate:7.1f} jobs/s ({raw_s:.2f} s), lost {raw_lost}")
    print(
        f"  SlurmBackend (REST):      {backend_rate:7.1f} jobs/s ({backend_s:.2f} s), "
        f"lost or run twice {backend_lost}, all finished after {backend_done:.1f} s"
    )
    print(f"  throughput ratio: {ratio:.2f}x of raw (target >= 0.8x, 0 lost): {verdict}")


if __name__ == "__main__":
    main()
