"""Run lifecycle commands in a process of their own, as the codespace's account.

The hub never runs a repository's commands itself: it starts ``python -m
codespace.lifecycle_runner`` (confined: the codespace's cgroup, sandbox and account) with a job
on standard input (``{"workspace", "env", "steps", "timeout"}``; on stdin because it holds the
codespace's environment). The runner writes the workspace's lifecycle log and status file as
the account and prints every line, so the start can stream them to the spawn page.

- the commands up to ``waitFor`` run while the start waits: the last line the runner prints is
  ``RESULT_PREFIX`` + JSON (``{"ok": true}`` or the failure's name, label, status, tail, timeout);
- the later ones run in the background, in a process group the spawner ends when it stops.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from codespace.lifecycle import LifecycleError, Step, run_steps
from codespace.lifecycle_status import ERRORS_FILE

RESULT_PREFIX = "codespace-lifecycle-result: "


def job_text(
    workspace: Path,
    env: dict[str, str],
    steps: list[Step],
    timeout: float | None = None,
    *,
    background: bool = False,
) -> str:
    """The job the runner reads from standard input; a ``background`` job reports a failure
    in the workspace's ``CODESPACE_ERRORS.md`` itself (nobody waits for its result)."""
    job = {
        "workspace": str(workspace),
        "env": env,
        "steps": [step.to_json() for step in steps],
        "timeout": timeout,
        "background": background,
    }
    return json.dumps(job)


def _report_in_errors_file(workspace: Path, error: LifecycleError) -> None:
    path = workspace / ERRORS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = "# This codespace started with problems\n\n"
    path.write_text(text.rstrip("\n") + "\n\n" + error.markdown(background=True), "utf-8")


def runner_argv() -> list[str]:
    return [sys.executable, "-m", "codespace.lifecycle_runner"]


def parse_result(line: str) -> LifecycleError | bool | None:
    """``None`` when ``line`` is not the result, ``True`` for success, else the error."""
    if not line.startswith(RESULT_PREFIX):
        return None
    data = json.loads(line[len(RESULT_PREFIX) :])
    if data.get("ok"):
        return True
    return LifecycleError(
        data["name"],
        data["label"],
        data["returncode"],
        data["tail"],
        timeout=data["timeout"],
        out_of_memory=data.get("out_of_memory", False),
    )


async def _run(job: dict[str, Any]) -> int:
    steps = [Step.from_json(step) for step in job["steps"]]
    result: dict[str, Any] = {"ok": True}
    try:
        await run_steps(
            steps,
            Path(job["workspace"]),
            env=job["env"],
            on_line=lambda line: print(line, flush=True),
            timeout=job.get("timeout"),
        )
    except LifecycleError as error:
        if job.get("background"):
            _report_in_errors_file(Path(job["workspace"]), error)
        result = {
            "ok": False,
            "name": error.name,
            "label": error.label,
            "returncode": error.returncode,
            "tail": error.tail,
            "timeout": error.timeout,
            "out_of_memory": error.out_of_memory,
        }
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


def main() -> int:
    job = json.loads(sys.stdin.read())
    return asyncio.run(_main(job))


async def _main(job: dict[str, Any]) -> int:
    """Run the job; SIGTERM (the codespace stops) ends the running command's whole group."""
    task = asyncio.ensure_future(_run(job))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return 143


if __name__ == "__main__":
    sys.exit(main())
