"""The Slurm backend's pure writing side: a job spec -> a batch script, a REST payload per
API version, sbatch's argv. No I/O here (:mod:`codespace.jobs.slurm` does it; reading
Slurm's answers is :mod:`codespace.jobs.slurm_states`).

The batch script is the same on both paths (slurmrestd and ``sbatch``). It runs in the
workspace with the codespace's environment (the transport carries it: the REST
``environment`` field, or sbatch's own environment with ``--export=ALL``) and:

- resolves the program first, so a command that does not exist ends the job with
  ``command 'x' not found on the job's PATH`` (exit 127) instead of a shell message;
- runs a ``command`` as its argv (quoted with :func:`shlex.join`, never a shell string),
  a ``.py`` ``script`` with the environment's Python (``$VIRTUAL_ENV/bin/python``, else the
  PATH's), another script as an executable, a ``notebook`` with the platform's papermill
  (kernel ``codespace``, parameters as one JSON map with ``-y``) into an output notebook next
  to the logs;
- gives an array task ``CODESPACE_JOB_INDEX`` from ``SLURM_ARRAY_TASK_ID``;
- retries a failed program ``retries`` times in the same allocation after ``backoff`` seconds
  (doubling): dependents (``--dependency=afterok``) wait for the final outcome, and a
  program never runs twice at once. ``requeue`` is off: Slurm never reruns a job by itself;
- enforces the time limit to the second (``timeout``; Slurm's own limit is rounded up to
  whole minutes, plus a margin, as a backstop);
- leaves markers in ``codespace-jobs/<id>/``: ``.task-<i>.started`` (the Slurm job id),
  ``.task-<i>.exit`` (the exit code), ``.task-<i>.reason`` (why it failed, when the script
  knows). They are how the backend knows that a job ran even when Slurm lost its record
  (slurmctld killed before it saved its state), so a lost job is resubmitted only if it
  never started: nothing is lost and nothing runs twice.

The REST payload is per API version (:data:`PAYLOADS`): v0.0.38 is what Debian's Slurm
22.05 serves; a newer slurmrestd (v0.0.40+) needs its own builder and reader.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from codespace.jobs.models import (
    JobSpec,
    job_dir,
    log_name,
    output_notebook,
    seconds,
)
from codespace.kube.quantity import to_mib

KERNEL = "codespace"
COMMENT_PREFIX = "codespace:"
KILL_GRACE = 10  # seconds between SIGTERM and SIGKILL when the time limit is reached
SLURM_MARGIN = 60  # seconds added to Slurm's own (minute-rounded) time limit


def comment(job_id: str) -> str:
    """The Slurm comment that names the platform's job (how a job is found again)."""
    return f"{COMMENT_PREFIX}{job_id}"


# --- the job as Slurm is asked to run it -----------------------------------------------------


@dataclass(frozen=True)
class Site:
    """What the site configured that a job's script and request need."""

    workspace: str  # absolute path of the workspace (on the cluster's shared filesystem)
    python: str  # the platform's Python, which runs papermill
    kernel: str = KERNEL
    partition: str | None = None
    account: str | None = None
    qos: str | None = None


@dataclass(frozen=True)
class SlurmJob:
    """One job as Slurm is asked to run it: what the REST payload and sbatch's argv say."""

    name: str
    comment: str
    script: str
    cwd: str
    environment: Mapping[str, str]
    standard_output: str
    cpus: int | None = None
    memory_mb: int | None = None
    time_minutes: int | None = None
    gpus: int | None = None
    array: int | None = None
    dependency: Sequence[str] = ()  # Slurm job ids that must succeed first
    partition: str | None = None
    account: str | None = None
    qos: str | None = None


def slurm_job(
    spec: JobSpec,
    job_id: str,
    site: Site,
    environment: Mapping[str, str],
    after: Sequence[str] = (),
) -> SlurmJob:
    """The Slurm request for ``spec`` (``after``: the Slurm ids it waits for)."""
    resources = spec.resources
    limit = seconds(resources.timeLimit) if resources.timeLimit else None
    gpu = resources.gpu
    directory = f"{site.workspace}/{job_dir(job_id)}"
    return SlurmJob(
        name=spec.name,
        comment=comment(job_id),
        script=batch_script(spec, job_id, site),
        cwd=site.workspace,
        environment=job_environment(environment, spec, job_id, directory),
        standard_output=f"{directory}/{log_name(spec, '%a')}",
        cpus=math.ceil(resources.cpu) if resources.cpu else None,
        memory_mb=to_mib(resources.memory) if resources.memory else None,
        time_minutes=None if limit is None else math.ceil((limit + SLURM_MARGIN) / 60),
        gpus=(gpu.count or 1) if gpu is not None else None,  # Slurm gives whole GPUs
        array=spec.array,
        dependency=tuple(after),
        partition=site.partition,
        account=site.account,
        qos=site.qos,
    )


def job_environment(
    base: Mapping[str, str], spec: JobSpec, job_id: str, directory: str
) -> dict[str, str]:
    """The codespace's environment (no Slurm variables of the server's own), the job's
    ``env`` and the ``CODESPACE_JOB_*`` variables (the index comes from the script)."""
    env = {k: v for k, v in base.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env |= spec.env
    env.setdefault("PYTHONUNBUFFERED", "1")
    env |= {"CODESPACE_JOB_ID": job_id, "CODESPACE_JOB_NAME": spec.name}
    env["CODESPACE_JOB_DIR"] = directory
    for key in ("CODESPACE_JOB_INDEX", "CODESPACE_JOB_COUNT", "CODESPACE_JOB_DATASETS"):
        env.pop(key, None)
    if spec.array:
        env["CODESPACE_JOB_COUNT"] = str(spec.array)
    if spec.datasets:
        env["CODESPACE_JOB_DATASETS"] = ",".join(spec.datasets)
    return env


# --- the batch script --------------------------------------------------------------------------

_PRELUDE = """\
#!/bin/bash
# codespace job {job_id} ({name}): generated by codespace.jobs.slurm
index="${{SLURM_ARRAY_TASK_ID:-0}}"
{index_export}dir={directory}
mark="$dir/.task-$index"
printf '%s\\n' "${{SLURM_JOB_ID:-}}" > "$mark.started"
cd {workspace} || exit 1
finish() {{ printf '%s\\n' "$1" > "$mark.exit"; exit "$1"; }}
fail() {{ printf '%s\\n' "$2" > "$mark.reason"; printf 'codespace: %s\\n' "$2" >&2; finish "$1"; }}
"""

_RUN = """\
retries={retries}
delay={backoff}
limit={limit}
deadline=$((SECONDS + limit))
attempt=0
while :; do
    attempt=$((attempt + 1))
    if [ "$limit" -gt 0 ]; then
        left=$((deadline - SECONDS))
        [ "$left" -gt 0 ] || fail 124 {limit_reason}
        timeout --kill-after={grace} "$left" "${{argv[@]}}"
        code=$?
        [ "$code" -ne 124 ] && [ "$code" -ne 137 ] || [ "$SECONDS" -lt "$deadline" ] \\
            || fail "$code" {limit_reason}
    else
        "${{argv[@]}}"
        code=$?
    fi
    if [ "$code" -eq 0 ] || [ "$attempt" -gt "$retries" ]; then finish "$code"; fi
    printf 'codespace: attempt %s of %s failed (exit code %s); retrying in %ss\\n' \\
        "$attempt" "$((retries + 1))" "$code" "$delay" >&2
    sleep "$delay"
    delay=$(awk "BEGIN {{ print $delay * 2 }}")
done
"""


def batch_script(spec: JobSpec, job_id: str, site: Site) -> str:
    """The job's bash batch script (user values quoted with :mod:`shlex`)."""
    directory = f"{site.workspace}/{job_dir(job_id)}"
    index_export = ""
    if spec.array:
        index_export = 'export CODESPACE_JOB_INDEX="$index"\n'
    limit = seconds(spec.resources.timeLimit) if spec.resources.timeLimit else 0
    limit_reason = shlex.quote(f"time limit {spec.resources.timeLimit} reached")
    return (
        _PRELUDE.format(
            job_id=job_id,
            name=spec.name,
            index_export=index_export,
            directory=shlex.quote(directory),
            workspace=shlex.quote(site.workspace),
        )
        + "\n".join(program_lines(spec, job_id, site))
        + "\n"
        + _RUN.format(
            retries=spec.retries,
            backoff=f"{spec.backoff:g}",
            limit=limit,
            limit_reason=limit_reason,
            grace=KILL_GRACE,
        )
    )


def _fail(code: int, reason: str) -> str:
    return f"fail {code} {shlex.quote(reason)}"


def program_lines(spec: JobSpec, job_id: str, site: Site) -> list[str]:
    """Bash that resolves the program (or fails with the reason) and sets ``argv``."""
    if spec.command is not None:
        first, *rest = spec.command
        if "/" in first:
            where = "" if first.startswith("/") else " in the workspace"
            found = f"[ -f {shlex.quote(first)} ] && [ -x {shlex.quote(first)} ]"
            return [
                f"{found} || {_fail(127, f'command {first!r} not found{where}')}",
                f"argv=({shlex.join(spec.command)})",
            ]
        return [
            f"program=$(type -P -- {shlex.quote(first)}) || "
            + _fail(127, f"command {first!r} not found on the job's PATH"),
            f'argv=("$program" {shlex.join(rest)})',
        ]
    if spec.script is not None:
        return _script_lines(spec.script, spec.args)
    return _notebook_lines(spec, job_id, site)


def _script_lines(script: str, args: Sequence[str]) -> list[str]:
    path = shlex.quote(script)
    lines = [f"[ -f {path} ] || {_fail(127, f'script {script!r} not found in the workspace')}"]
    if script.endswith(".py"):
        return [
            *lines,
            'python="${VIRTUAL_ENV:+$VIRTUAL_ENV/bin/python}"',
            '[ -n "$python" ] && [ -x "$python" ] || python=$(type -P python || type -P python3)'
            + " || "
            + _fail(127, "no python on the job's PATH to run the script with"),
            f'argv=("$python" {shlex.join([script, *args])})',
        ]
    reason = f"script {script!r} is not executable (chmod +x, or a .py)"
    return [
        *lines,
        f"[ -x {path} ] || {_fail(126, reason)}",
        f"argv=({shlex.join(['./' + script, *args])})",
    ]


def _notebook_lines(spec: JobSpec, job_id: str, site: Site) -> list[str]:
    assert spec.notebook is not None
    notebook = spec.notebook
    source = f"{site.workspace}/{notebook}"
    if spec.array:  # one output notebook per task: <stem>-<index>.ipynb
        stem = PurePosixPath(notebook).stem
        prefix = f"{site.workspace}/{job_dir(job_id)}/{stem}-"
        output_word = shlex.quote(prefix) + '"$index"' + shlex.quote(".ipynb")
    else:
        output_word = shlex.quote(f"{site.workspace}/{output_notebook(job_id, spec)}")
    parent = str(PurePosixPath(source).parent)
    argv = [site.python, "-I", "-m", "papermill", source]
    options = ["-k", site.kernel, "--cwd", parent, "--log-output", "--no-progress-bar"]
    if spec.parameters:
        options += ["-y", json.dumps(spec.parameters)]
    missing = _fail(127, f"notebook {notebook!r} not found in the workspace")
    return [
        f"[ -f {shlex.quote(notebook)} ] || {missing}",
        f"argv=({shlex.join(argv)} {output_word} {shlex.join(options)})",
    ]


# --- requests: the REST payload per API version, sbatch's argv ------------------------------


def payload_v0_0_38(job: SlurmJob) -> dict[str, Any]:
    """``POST /slurm/v0.0.38/job/submit``'s body."""
    properties: dict[str, Any] = {
        "name": job.name,
        "comment": job.comment,
        "current_working_directory": job.cwd,
        "environment": dict(job.environment),
        "standard_output": job.standard_output,
        "requeue": False,
        "kill_on_invalid_dependency": True,
    }
    optional = {
        "cpus_per_task": job.cpus,
        "memory_per_node": job.memory_mb,
        "time_limit": job.time_minutes,
        "gres": f"gpu:{job.gpus}" if job.gpus else None,
        "array": f"0-{job.array - 1}" if job.array else None,
        "dependency": "afterok:" + ":".join(job.dependency) if job.dependency else None,
        "partition": job.partition,
        "account": job.account,
        "qos": job.qos,
    }
    properties |= {key: value for key, value in optional.items() if value is not None}
    return {"script": job.script, "job": properties}


PAYLOADS: dict[str, Callable[[SlurmJob], dict[str, Any]]] = {"v0.0.38": payload_v0_0_38}


def sbatch_argv(job: SlurmJob, sbatch: str = "sbatch") -> list[str]:
    """sbatch's argv (the script comes on stdin; every value is one ``--option=value``)."""
    argv = [sbatch, "--parsable", f"--job-name={job.name}", f"--comment={job.comment}"]
    argv += [f"--chdir={job.cwd}", f"--output={job.standard_output}", "--export=ALL"]
    argv += ["--no-requeue", "--kill-on-invalid-dep=yes"]
    optional = {
        "--cpus-per-task": job.cpus,
        "--mem": f"{job.memory_mb}M" if job.memory_mb else None,
        "--time": job.time_minutes,
        "--gres": f"gpu:{job.gpus}" if job.gpus else None,
        "--array": f"0-{job.array - 1}" if job.array else None,
        "--dependency": "afterok:" + ":".join(job.dependency) if job.dependency else None,
        "--partition": job.partition,
        "--account": job.account,
        "--qos": job.qos,
    }
    return argv + [f"{key}={value}" for key, value in optional.items() if value is not None]
