"""``codespace jobs submit|list|show|logs|cancel|resubmit``.

The commands talk to this codespace's server extension (the REST API the lab panel and the
SDK use)::

    codespace jobs submit --backend local --name train -- python train.py --epochs 3
    codespace jobs submit --script train.py --time-limit 2h -- --epochs 3
    codespace jobs submit --notebook report.ipynb -p alpha=0.5 -p title=weekly --wait
    codespace jobs submit --dataset weather --prewarm --release-cache -- python train.py
    codespace jobs list --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from codespace.cli.common import command_group, print_fields, print_table, runner
from codespace.client import ApiError, CodespaceClient
from codespace.jobs.records import JobRecord
from codespace.jobs.sdk import job_spec


def _elapsed(job: dict[str, Any]) -> str:
    seconds = JobRecord.from_json(job).elapsed
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _value(text: str) -> Any:
    """A parameter value: JSON when it parses (3, 0.5, true, [1, 2]), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: list[str] | None, what: str, parse: Any = str) -> dict[str, Any] | None:
    if not items:
        return None
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r} is not KEY=VALUE")
        pairs[key] = parse(value)
    return pairs


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The job spec the ``submit`` options describe (JSON, as the SDK sends it)."""
    rest = list(args.command or [])
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if args.script and args.notebook:
        raise ValueError("give --script or --notebook, not both")
    if args.notebook and rest:
        raise ValueError(f"a notebook job takes parameters (-p), not arguments: {rest}")
    if not (args.script or args.notebook or rest):
        raise ValueError("nothing to run: give a command after --, --script or --notebook")
    resources = {
        "cpu": args.cpu,
        "memory": args.memory,
        "gpu": args.gpu,
        "timeLimit": args.time_limit,
    }
    return job_spec(
        None if (args.script or args.notebook) else rest,
        args.script,
        args.notebook,
        parameters=_pairs(args.parameter, "parameter", _value),
        args=rest if args.script and rest else None,
        name=args.name,
        backend=args.backend,
        resources={k: v for k, v in resources.items() if v is not None} or None,
        datasets=args.dataset or None,
        env=_pairs(args.env, "environment variable"),
        array=args.array,
        retries=args.retries,
        after=args.after or None,
        prewarm=args.prewarm,
        release_cache=args.release_cache,
    )


def _summary(job: dict[str, Any]) -> str:
    reason = f" ({job['reason']})" if job.get("reason") else ""
    return f"{job['id']}  {job['name']}  {job['state']}{reason}"


def _wait(api: CodespaceClient, job: dict[str, Any], poll: float) -> dict[str, Any]:
    while job["state"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(poll)
        job = api.get_job(job["id"])
    return job


def _submit(args: argparse.Namespace, api: CodespaceClient) -> Any:
    jobs = api.submit_jobs({"jobs": [spec_from_args(args)]})
    if args.wait:
        jobs = [_wait(api, job, args.poll) for job in jobs]
        args.exit_code = 0 if all(job["state"] == "succeeded" for job in jobs) else 1
    if args.json:
        return jobs
    for job in jobs:
        print(_summary(job))
        if job.get("outputNotebook") and job["state"] != "queued":
            print(f"  output notebook: {job['outputNotebook']}")
    return None


def _list(args: argparse.Namespace, api: CodespaceClient) -> Any:
    jobs = api.list_jobs()
    if args.json:
        return jobs
    rows = [["ID", "NAME", "BACKEND", "STATE", "ELAPSED", "LIMIT", "REASON"]]
    for job in jobs:
        limit = (job["spec"].get("resources") or {}).get("timeLimit") or ""
        rows.append(
            [
                job["id"],
                job["name"],
                job["backend"],
                job["state"],
                _elapsed(job),
                limit,
                job.get("reason") or "",
            ]
        )
    print_table(rows)
    return None


def _show(args: argparse.Namespace, api: CodespaceClient) -> Any:
    job = api.get_job(args.id)
    if args.json:
        return job
    spec = job.pop("spec")
    print_fields(job.items(), 16)
    print(f"{'spec:':16} {json.dumps(spec, separators=(',', ':'))}")
    return None


def _logs(args: argparse.Namespace, api: CodespaceClient) -> Any:
    text = api.job_logs(args.id, args.tail)
    if args.json:
        return {"text": text}
    sys.stdout.write(text)
    return None


def _cancel(args: argparse.Namespace, api: CodespaceClient) -> Any:
    job = api.cancel_job(args.id)
    if args.json:
        return job
    print(_summary(job))
    return None


def _resubmit(args: argparse.Namespace, api: CodespaceClient) -> Any:
    jobs = api.resubmit_job(args.id)
    if args.json:
        return jobs
    for job in jobs:
        print(_summary(job))
    return None


_run = runner("codespace jobs", lambda args: CodespaceClient(), (ApiError, ValueError))


def _submit_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    submit = commands.add_parser(
        "submit",
        parents=[common],
        help="submit a command, script or notebook",
        description="Submit a job: a command after --, a --script (its arguments after --) "
        "or a --notebook (its parameters with -p KEY=VALUE).",
    )
    submit.add_argument("--name", help="a DNS label (default: from what runs)")
    submit.add_argument("--backend", help="a configured backend (default: the site's)")
    submit.add_argument("--script", help="a script of the workspace (.py: the env's python)")
    submit.add_argument("--notebook", help="a notebook of the workspace, run with papermill")
    submit.add_argument(
        "-p", "--parameter", action="append", metavar="KEY=VALUE", help="notebook parameter"
    )
    submit.add_argument("--cpu", type=float, help="CPU cores")
    submit.add_argument("--memory", help="memory, e.g. 8Gi")
    submit.add_argument("--gpu", type=int, help="whole GPUs")
    submit.add_argument("--time-limit", help="e.g. 30m, 2h, HH:MM:SS")
    submit.add_argument("--after", action="append", metavar="ID", help="a job to succeed first")
    submit.add_argument("--array", type=int, help="run N copies ($CODESPACE_JOB_INDEX)")
    submit.add_argument("--retries", type=int, default=0, help="retries after a failure")
    submit.add_argument("--env", action="append", metavar="KEY=VALUE", help="a variable")
    submit.add_argument("--dataset", action="append", metavar="NAME", help="a dataset")
    submit.add_argument(
        "--prewarm",
        action="store_true",
        help="prewarm the datasets first; the job starts when their prewarm completes",
    )
    submit.add_argument(
        "--release-cache",
        action="store_true",
        help="after the job ends, release the datasets' cached copy",
    )
    submit.add_argument("--wait", action="store_true", help="wait until it has finished")
    submit.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    submit.add_argument("command", nargs=argparse.REMAINDER, help="-- the command and arguments")
    submit.set_defaults(func=_run(_submit))


def register(subparsers: argparse._SubParsersAction) -> None:
    commands, common = command_group(subparsers, "jobs", "submit, list, inspect and cancel jobs")

    _submit_parser(commands, common)
    commands.add_parser("list", parents=[common], help="your jobs").set_defaults(func=_run(_list))
    for name, handler, text in (
        ("show", _show, "one job"),
        ("cancel", _cancel, "cancel a job"),
        ("resubmit", _resubmit, "submit a job's spec again"),
    ):
        command = commands.add_parser(name, parents=[common], help=text)
        command.add_argument("id")
        command.set_defaults(func=_run(handler))
    logs = commands.add_parser("logs", parents=[common], help="a job's output")
    logs.add_argument("id")
    logs.add_argument("--tail", type=int, help="the last N lines")
    logs.set_defaults(func=_run(_logs))
