"""Run the lifecycle commands after ``waitFor`` in the background, outside the hub.

The spawner writes a job file (mode 0600: it holds the codespace's environment) and starts
``python -m codespace.lifecycle_runner JOB`` in a process group of its own, as the codespace's
account; stopping the codespace ends that group, commands included. Output goes to the
workspace's lifecycle log, states to its status file (:mod:`codespace.lifecycle_status`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from codespace.lifecycle import LifecycleError, Step, run_steps


def write_job(path: Path, workspace: Path, env: dict[str, str], steps: list[Step]) -> Path:
    """Write the job file the runner reads (private: it holds the environment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    job = {"workspace": str(workspace), "env": env, "steps": [s.to_json() for s in steps]}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(job, handle)
    return path


def runner_argv(job: Path) -> list[str]:
    return [sys.executable, "-m", "codespace.lifecycle_runner", str(job)]


async def _run(job: dict[str, Any]) -> int:
    steps = [Step.from_json(step) for step in job["steps"]]
    try:
        await run_steps(steps, Path(job["workspace"]), env=job["env"])
    except LifecycleError:
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m codespace.lifecycle_runner JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    return asyncio.run(_run(job))


if __name__ == "__main__":
    sys.exit(main())
