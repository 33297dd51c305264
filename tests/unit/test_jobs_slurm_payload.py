"""The Slurm backend's pure parts: spec -> batch script / REST payload / sbatch argv, and
Slurm's job list -> the platform's states. The batch script also runs here, under bash,
with the variables Slurm would set (no Slurm needed)."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from codespace.jobs.backend import JobError
from codespace.jobs.models import JobSpec
from codespace.jobs.slurm import read_markers
from codespace.jobs.slurm_client import RestClient, parse_options, read_squeue, token_user
from codespace.jobs.slurm_payload import (
    PAYLOADS,
    Site,
    batch_script,
    job_environment,
    sbatch_argv,
    slurm_job,
)
from codespace.jobs.slurm_states import (
    Markers,
    SlurmTask,
    TaskView,
    array_indexes,
    read_v0_0_38,
    shell_exit,
    summarize,
    task_view,
    transient_errno,
    transient_text,
)

SITE = Site(workspace="/work/ws", python="/opt/platform/bin/python", partition="debug")
ENV = {"PATH": "/env/bin:/usr/bin:/bin", "VIRTUAL_ENV": "/env", "SLURM_JOB_ID": "7"}


def spec(**fields: Any) -> JobSpec:
    return JobSpec.model_validate({"name": "train", **fields})


def test_the_v0_0_38_payload_maps_resources_array_and_dependencies() -> None:
    job = spec(
        command=["python", "train.py"],
        resources={"cpu": 1.5, "memory": "1Gi", "gpu": 2, "timeLimit": "90s"},
        array=4,
        env={"EPOCHS": "3"},
    )
    body = PAYLOADS["v0.0.38"](slurm_job(job, "slurm-abc", SITE, ENV, after=["11", "12"]))
    properties = body["job"]
    assert body["script"].startswith("#!/bin/bash\n")
    assert properties["name"] == "train"
    assert properties["comment"] == "codespace:slurm-abc"
    assert properties["current_working_directory"] == "/work/ws"
    assert properties["standard_output"] == "/work/ws/codespace-jobs/slurm-abc/output-%a.log"
    assert properties["cpus_per_task"] == 2
    assert properties["memory_per_node"] == 1024
    assert properties["time_limit"] == 3  # 90 s + the margin, in whole minutes
    assert properties["gres"] == "gpu:2"
    assert properties["array"] == "0-3"
    assert properties["dependency"] == "afterok:11:12"
    assert properties["partition"] == "debug"
    assert properties["requeue"] is False and properties["kill_on_invalid_dependency"] is True
    env = properties["environment"]
    assert env["EPOCHS"] == "3" and env["VIRTUAL_ENV"] == "/env"
    assert env["CODESPACE_JOB_ID"] == "slurm-abc" and env["CODESPACE_JOB_COUNT"] == "4"
    assert "SLURM_JOB_ID" not in env  # the server's own Slurm variables stay out


def test_a_plain_job_asks_for_nothing_it_did_not_say() -> None:
    properties = PAYLOADS["v0.0.38"](slurm_job(spec(command=["true"]), "j", SITE, ENV))["job"]
    for key in ("cpus_per_task", "memory_per_node", "time_limit", "gres", "array", "dependency"):
        assert key not in properties
    assert properties["standard_output"].endswith("/j/output.log")


def test_sbatch_gets_one_argument_per_option_and_the_script_on_stdin() -> None:
    job = spec(command=["echo", "a; rm -rf /"], resources={"memory": "512Mi"}, array=2)
    argv = sbatch_argv(slurm_job(job, "j1", SITE, ENV, after=["5"]), "/usr/bin/sbatch")
    assert argv[:2] == ["/usr/bin/sbatch", "--parsable"]
    assert "--comment=codespace:j1" in argv and "--mem=512M" in argv
    assert "--array=0-1" in argv and "--dependency=afterok:5" in argv
    assert "--export=ALL" in argv and "--no-requeue" in argv
    assert not any("rm -rf" in arg for arg in argv)  # the command is in the script only


def test_the_environment_keeps_the_codespace_and_adds_the_job() -> None:
    env = job_environment(
        ENV, spec(command=["x"], env={"PATH": "/mine"}, datasets=["d"]), "j", "/d"
    )
    assert env["PATH"] == "/mine" and env["PYTHONUNBUFFERED"] == "1"
    assert env["CODESPACE_JOB_DIR"] == "/d" and env["CODESPACE_JOB_DATASETS"] == "d"
    assert "CODESPACE_JOB_COUNT" not in env


def test_unknown_options_and_versions_are_refused() -> None:
    with pytest.raises(JobError, match="unknown option 'uri'"):
        parse_options({"uri": "http://x"})
    with pytest.raises(JobError, match="needs the slurmrestd 'url'"):
        parse_options({"mode": "rest"})
    assert parse_options({})["mode"] == "cli"
    assert parse_options({"url": "http://x", "submit_timeout": "5"})["submit_timeout"] == 5.0
    with pytest.raises(JobError, match=r"API version 'v0\.0\.99' unknown"):
        RestClient("http://x", lambda: "t", api_version="v0.0.99")


def test_the_user_comes_from_the_token() -> None:
    claims = base64.urlsafe_b64encode(json.dumps({"sun": "alice"}).encode()).decode().rstrip("=")
    assert token_user(f"h.{claims}.s") == "alice"
    assert token_user("not-a-jwt") is None


# --- reading Slurm ---------------------------------------------------------------------------


def entry(**fields: Any) -> dict[str, Any]:
    base = {
        "job_id": 10,
        "array_job_id": 0,
        "array_task_id": None,
        "array_task_string": "",
        "job_state": "COMPLETED",
        "state_reason": "None",
        "exit_code": 0,
        "start_time": 1000,
        "end_time": 1010,
        "comment": "codespace:j",
        "user_name": "alice",
    }
    return {**base, **fields}


def test_exit_statuses_become_shell_codes() -> None:
    assert shell_exit(3 << 8) == 3
    assert shell_exit(15) == 143
    assert shell_exit(None) is None


def test_array_strings_expand() -> None:
    assert array_indexes("0-3,5%2") == (0, 1, 2, 3, 5)
    assert array_indexes("0-6:3") == (0, 3, 6)
    assert array_indexes("") == ()


def test_the_reader_knows_plain_jobs_array_tasks_and_the_pending_rest() -> None:
    plain = read_v0_0_38(entry(exit_code=768, job_state="FAILED"))
    assert (plain.submitted_id, plain.indexes, plain.exit_code) == ("10", (0,), 3)
    task = read_v0_0_38(entry(job_id=12, array_job_id=10, array_task_id=2))
    assert (task.submitted_id, task.indexes) == ("10", (2,))
    rest = read_v0_0_38(entry(array_job_id=10, array_task_string="3-4", job_state="PENDING"))
    assert rest.indexes == (3, 4) and rest.start is None and rest.end is None


def test_a_newer_squeue_shape_reads_the_same() -> None:
    newer = entry(
        job_state=["FAILED"],
        exit_code={"return_code": {"number": 2}, "signal": {"id": {"number": 0}}},
        start_time={"set": True, "number": 1000},
        end_time={"set": True, "number": 1010},
        array_job_id={"set": True, "number": 0},
        array_task_id={"set": False, "number": 0},
    )
    task = read_squeue(newer)
    assert (task.state, task.exit_code, task.start, task.end) == ("FAILED", 2, 1000, 1010)


def slurm_task(state: str, reason: str = "None", code: int = 0, **fields: Any) -> SlurmTask:
    return read_v0_0_38(entry(job_state=state, state_reason=reason, exit_code=code, **fields))


@pytest.mark.parametrize(
    ("state", "reason", "code", "expected"),
    [
        ("PENDING", "Resources", 0, ("queued", "waiting for resources", None)),
        ("PENDING", "Dependency", 0, ("queued", "waiting for the jobs it runs after", None)),
        ("RUNNING", "None", 0, ("running", "", None)),
        ("COMPLETED", "None", 0, ("succeeded", "", 0)),
        ("FAILED", "NonZeroExitCode", 2 << 8, ("failed", "exit code 2", 2)),
        ("TIMEOUT", "TimeLimit", 15, ("failed", "time limit reached (Slurm)", 143)),
        ("OUT_OF_MEMORY", "OutOfMemory", 9, ("failed", "out of memory", 137)),
        ("NODE_FAIL", "None", 0, ("failed", "node failure (Slurm)", 0)),
        (
            "CANCELLED",
            "DependencyNeverSatisfied",
            0,
            ("cancelled", "a job it runs after did not succeed", None),
        ),
    ],
)
def test_slurm_states_map_to_platform_states(
    state: str, reason: str, code: int, expected: tuple[str, str, int | None]
) -> None:
    view = task_view(0, slurm_task(state, reason, code), Markers(started={0: "10"}))
    if state == "CANCELLED":
        view = task_view(0, slurm_task(state, reason, code), Markers())
    assert (view.state, view.reason, view.exit_code) == expected


def test_the_scripts_reason_wins_over_slurms_words() -> None:
    markers = Markers(started={0: "10"}, exits={0: 127}, reasons={0: "command 'x' not found"})
    view = task_view(0, slurm_task("FAILED", "NonZeroExitCode", 127 << 8), markers)
    assert (view.state, view.reason, view.exit_code) == ("failed", "command 'x' not found", 127)


def test_a_job_slurm_forgot_is_judged_by_its_markers() -> None:
    done = Markers(started={0: "10"}, exits={0: 0}, times={0: (1.0, 2.0)})
    assert task_view(0, None, done) == TaskView(0, "succeeded", "", 0, 1.0, 2.0)
    cut = task_view(0, None, Markers(started={0: "10"}))
    assert cut.state == "failed" and cut.reason.startswith("lost:")
    assert task_view(0, None, Markers()).state == "queued"


def test_an_array_summary_names_the_first_failed_task() -> None:
    job = spec(command=["x"], array=3)
    views = [
        TaskView(0, "succeeded", "", 0, 1.0, 2.0),
        TaskView(1, "failed", "exit code 4", 4, 1.0, 3.0),
        TaskView(2, "succeeded", "", 0, 1.0, 2.5),
    ]
    summary = summarize(job, views)
    assert summary["state"] == "failed" and summary["exitCode"] == 4
    assert summary["reason"] == "task 1: exit code 4 (1 of 3 tasks failed)"
    assert summary["finished"].timestamp() == 3.0
    running = summarize(job, [TaskView(0, "succeeded"), TaskView(1, "running"), TaskView(2)])
    assert running["state"] == "running"
    assert summarize(job, [TaskView(i, reason="waiting for resources") for i in range(3)]) == {
        "started": None,
        "state": "queued",
        "reason": "waiting for resources",
    }


def test_transient_errors_are_told_apart() -> None:
    assert transient_errno(1007) and transient_errno(5004) and transient_errno(11)
    assert not transient_errno(2014) and not transient_errno(9001)
    assert transient_text("sbatch: error: Unable to contact slurm controller (connect failure)")
    assert not transient_text("sbatch: error: Invalid generic resource (gres) specification")


# --- the batch script, run by bash here ---------------------------------------------------------


def run_script(
    job: JobSpec, workspace: Path, index: int | None = None, **env: str
) -> tuple[int, Markers, str]:
    site = Site(workspace=str(workspace), python="/usr/bin/python3")
    (workspace / "codespace-jobs" / "j").mkdir(parents=True, exist_ok=True)
    script = batch_script(job, "j", site)
    environ = {**os.environ, "SLURM_JOB_ID": "77", **job_environment(os.environ, job, "j", "/d")}
    environ |= env
    if index is not None:
        environ["SLURM_ARRAY_TASK_ID"] = str(index)
    done = subprocess.run(
        ["bash", "-c", script], env=environ, capture_output=True, text=True, timeout=60
    )
    return (
        done.returncode,
        read_markers(workspace / "codespace-jobs" / "j"),
        done.stdout + done.stderr,
    )


def test_the_script_runs_the_argv_as_given(tmp_path: Path) -> None:
    nasty = ["a b", "$HOME", "'quoted'", "; echo injected", "`id`"]
    job = spec(command=["printf", "[%s]\\n", *nasty])
    code, markers, output = run_script(job, tmp_path)
    assert code == 0 and markers.exits == {0: 0} and markers.started == {0: "77"}
    assert output.splitlines() == [f"[{arg}]" for arg in nasty]
    assert shlex.join(nasty) in batch_script(job, "j", Site(str(tmp_path), "p"))


def test_a_missing_command_leaves_its_reason(tmp_path: Path) -> None:
    code, markers, output = run_script(spec(command=["no-such-program-x"]), tmp_path)
    assert code == 127 and markers.exits == {0: 127}
    assert markers.reasons == {0: "command 'no-such-program-x' not found on the job's PATH"}
    assert "codespace: command 'no-such-program-x' not found" in output


def test_scripts_run_with_the_environments_python_or_as_executables(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("import sys; print(sys.argv[1:])")
    code, _, output = run_script(spec(script="job.py", args=["x y"]), tmp_path, VIRTUAL_ENV="")
    assert (code, output.strip()) == (0, "['x y']")
    (tmp_path / "job.sh").write_text("#!/bin/sh\necho shell $1\n")
    code, markers, _ = run_script(spec(script="job.sh"), tmp_path)
    assert code == 126 and "is not executable" in markers.reasons[0]
    (tmp_path / "job.sh").chmod(0o755)
    code, _, output = run_script(spec(script="job.sh", args=["ok"]), tmp_path)
    assert (code, output.strip()) == (0, "shell ok")


def test_an_array_task_gets_its_index(tmp_path: Path) -> None:
    job = spec(command=["bash", "-c", "echo $CODESPACE_JOB_INDEX/$CODESPACE_JOB_COUNT"], array=3)
    code, markers, output = run_script(job, tmp_path, index=2)
    assert (code, output.strip(), markers.exits) == (0, "2/3", {2: 0})


def test_retries_and_the_time_limit(tmp_path: Path) -> None:
    flaky = 'n=$(cat tries 2>/dev/null || echo 0); echo $((n+1)) > tries; [ "$n" -ge 1 ]'
    job = spec(command=["bash", "-c", flaky], retries=2, backoff=0)
    code, _, output = run_script(job, tmp_path)
    assert code == 0 and (tmp_path / "tries").read_text().strip() == "2"
    assert "attempt 1 of 3 failed (exit code 1)" in output
    slow = spec(command=["sleep", "30"], resources={"timeLimit": "1s"}, retries=3, backoff=0)
    code, markers, _ = run_script(slow, tmp_path)
    assert code == 124 and markers.reasons == {0: "time limit 1s reached"}


def test_a_notebook_job_calls_papermill_with_the_codespace_kernel() -> None:
    job = spec(notebook="nb/report.ipynb", parameters={"lr": 0.1, "name": "it's"}, array=2)
    script = batch_script(job, "j", SITE)
    line = next(line for line in script.splitlines() if line.startswith("argv=("))
    words = shlex.split(line[len("argv=(") : -1].replace('"$index"', "IDX"))
    assert words[:5] == [
        "/opt/platform/bin/python",
        "-I",
        "-m",
        "papermill",
        "/work/ws/nb/report.ipynb",
    ]
    assert words[5] == "/work/ws/codespace-jobs/j/report-IDX.ipynb"
    assert words[6:12] == [
        "-k",
        "codespace",
        "--cwd",
        "/work/ws/nb",
        "--log-output",
        "--no-progress-bar",
    ]
    assert json.loads(words[words.index("-y") + 1]) == {"lr": 0.1, "name": "it's"}
