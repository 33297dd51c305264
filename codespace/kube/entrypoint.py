"""``codespace-start``: a Kubernetes codespace's entrypoint; applies its launch plan, then
runs the server.

The pod runs ``codespace-start -- jupyterhub-singleuser ARGS`` from the platform
environment (the one that lives in every codespace image). It reads the runtime part of the
launch plan from ``CODESPACE_LAUNCH`` (JSON, set by :func:`codespace.kube.plan.make_kube_plan`)
and does what the local spawner does before its server starts:

- the server's environment variables: ``containerEnv`` and ``remoteEnv`` expanded against the
  image's environment, the repository environment first on ``PATH``;
- the lifecycle commands due in this workspace (create-time ones once per workspace, on the
  persistent volume) up to ``waitFor``; the later ones in the background, with their output in
  ``.codespace-logs/`` as locally;
- ``CODESPACE_ERRORS.md`` in the workspace: why this is a recovery codespace (a configuration
  error, a failed image build), what failed, what the mode did not honour.

Then it replaces itself with the server. A failing lifecycle command never keeps the server
from starting; it is reported in ``CODESPACE_ERRORS.md`` as locally.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from codespace.errors_file import ERRORS_FILE, errors_markdown
from codespace.git import CODESPACE_FILES, with_excludes
from codespace.launch import LAUNCH_ENV, RuntimePlan
from codespace.lifecycle import LOG_DIR, LifecycleError, Step, due_steps, run_steps
from codespace.lifecycle_runner import job_text, runner_argv
from codespace.spec.lifecycle import split_for_wait

USAGE = "usage: codespace-start -- SERVER-COMMAND [ARGS...]"


def apply_launch(
    environ: Mapping[str, str], on_line: Callable[[str], None] = print
) -> dict[str, str]:
    """Apply the runtime plan in ``environ`` (if any); return the server's environment."""
    text = environ.get(LAUNCH_ENV)
    env = {key: value for key, value in environ.items() if key != LAUNCH_ENV}
    if not text:
        return env
    runtime = RuntimePlan.from_json(text)
    env.update(runtime.server_env(environ))
    workspace = Path(env["CODESPACE_WORKSPACE"])
    if not workspace.is_dir():
        on_line(f"codespace-start: no workspace at {workspace}; lifecycle commands not run")
        return env
    problems = list(runtime.problems)
    waited, background = split_for_wait(due_steps(runtime.steps, workspace), runtime.wait_for)
    try:
        asyncio.run(run_steps(waited, workspace, env=env, on_line=on_line))
    except LifecycleError as error:
        problems.append(error.markdown())
        on_line(f"codespace-start: {error}; later commands did not run")
        background = []
    text = errors_markdown(problems, runtime.warnings, runtime.recovery)
    errors = workspace / ERRORS_FILE
    if text is None:
        errors.unlink(missing_ok=True)
    else:
        errors.write_text(text, encoding="utf-8")
    _exclude_from_git(workspace)
    if background:
        start_background(workspace, env, background)
    return env


def _exclude_from_git(workspace: Path) -> None:
    """``CODESPACE_ERRORS.md`` and the logs are not the user's changes (.git/info/exclude)."""
    exclude = workspace / ".git" / "info" / "exclude"
    if not exclude.parent.parent.is_dir():
        return
    current = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    updated = with_excludes(current, CODESPACE_FILES)
    if updated is not None:
        exclude.parent.mkdir(exist_ok=True)
        exclude.write_text(updated, encoding="utf-8")


def start_background(workspace: Path, env: Mapping[str, str], steps: list[Step]) -> None:
    """The commands after ``waitFor``: the lifecycle runner, in its own session, beside the
    server (it reports a failure in ``CODESPACE_ERRORS.md`` itself)."""
    log_dir = workspace / LOG_DIR
    log_dir.mkdir(exist_ok=True)
    with (log_dir / "lifecycle-runner.log").open("ab") as output:
        process = subprocess.Popen(
            runner_argv(),
            cwd=workspace,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    assert process.stdin is not None
    process.stdin.write(job_text(workspace, dict(env), steps, background=True).encode())
    process.stdin.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(USAGE, file=sys.stderr)
        return 2
    env = apply_launch(os.environ, on_line=lambda line: print(line, flush=True))
    sys.stdout.flush()
    os.execvpe(args[0], args, env)  # noqa: S606 (the server command, an argument list)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
