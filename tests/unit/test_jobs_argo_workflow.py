"""Argo Workflows built with Hera from job submissions: every one validated against the
Workflow CRD in ../shared/crds/argoproj.io (types, required fields, and no field the CRD
lacks), and the backend's pure parts (job states from ``status.nodes``, the codespace's side
from its environment and pod)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from codespace.jobs.argo import (
    dataset_paths,
    job_records,
    launch_env,
    next_to,
    pod_workspace,
)
from codespace.jobs.argo_workflow import (
    JOB_ID_ANNOTATION,
    JOB_LABEL,
    JOBS_ANNOTATION,
    KEY_ANNOTATION,
    KEY_LABEL,
    OWNER_ANNOTATION,
    OWNER_LABEL,
    SPEC_ANNOTATION,
    ArgoContext,
    build_workflow,
    keyed_submission_id,
    split_job_id,
)
from codespace.jobs.backend import JobError
from codespace.jobs.models import Submission
from codespace.kube.config import GpuConfig, Profile
from codespace.launch import LAUNCH_ENV, RuntimePlan
from tests.helpers.k8s_schema import assert_strictly_valid, problems, unknown_fields

SID = "0123456789ab"
CONTEXT = ArgoContext(
    image="registry.example/codespace/repo:env-1234",
    namespace="codespace-alice",
    owner="alice",
    workspace_claim="claim-alice",
    workspace_mount="/workspaces",
    working_dir="/workspaces/repo",
    env={
        "VIRTUAL_ENV": "/opt/codespace/env",
        "PATH": "/opt/codespace/env/bin:/usr/bin:/bin",
        "CODESPACE_REPO": "https://git.example/repo.git",
        "CODESPACE_WORKSPACE": "/workspaces/repo",
    },
    datasets={"imagenet": "/data/imagenet"},
)


def build(*jobs: dict, context: ArgoContext = CONTEXT, key: str | None = None) -> dict:
    workflow = build_workflow(Submission(jobs=list(jobs), idempotencyKey=key), SID, context)
    return assert_strictly_valid(workflow)


def templates(workflow: dict) -> dict[str, dict]:
    return {t["name"]: t for t in workflow["spec"]["templates"]}


def tasks(workflow: dict) -> dict[str, dict]:
    entry = templates(workflow)[workflow["spec"]["entrypoint"]]
    return {t["name"]: t for t in entry["dag"]["tasks"]}


def env(template: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in template["container"].get("env") or []}


def test_a_command_runs_as_is_in_the_image_on_the_workspace() -> None:
    workflow = build({"name": "hello", "command": ["echo", "hi there"]})
    assert (workflow["apiVersion"], workflow["kind"]) == ("argoproj.io/v1alpha1", "Workflow")
    meta = workflow["metadata"]
    assert (meta["name"], meta["namespace"]) == (f"codespace-{SID}", "codespace-alice")
    assert meta["labels"][OWNER_LABEL] == "alice"
    assert meta["annotations"][OWNER_ANNOTATION] == "alice"
    assert json.loads(meta["annotations"][JOBS_ANNOTATION]) == {"hello": f"{SID}-hello"}
    assert json.loads(meta["annotations"][SPEC_ANNOTATION])["jobs"][0]["command"] == [
        "echo",
        "hi there",
    ]
    template = templates(workflow)["hello"]
    container = template["container"]
    assert container["command"] == [
        "sh",
        "-c",
        'mkdir -p "$1" && shift && exec "$@"',
        "codespace-job",
        f"codespace-jobs/{SID}-hello",
        "echo",
        "hi there",
    ]
    assert container["image"] == CONTEXT.image
    assert container["workingDir"] == "/workspaces/repo"
    assert container["volumeMounts"] == [{"name": "workspace", "mountPath": "/workspaces"}]
    assert workflow["spec"]["volumes"] == [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "claim-alice"}}
    ]
    variables = env(template)
    assert variables["VIRTUAL_ENV"] == "/opt/codespace/env"
    assert variables["CODESPACE_JOB_ID"] == f"{SID}-hello"
    assert variables["CODESPACE_JOB_DIR"] == f"/workspaces/repo/codespace-jobs/{SID}-hello"
    assert variables["PYTHONUNBUFFERED"] == "1"
    assert "CODESPACE_JOB_INDEX" not in variables
    assert template["metadata"]["labels"][JOB_LABEL] == "hello"
    assert template["metadata"]["annotations"][JOB_ID_ANNOTATION] == f"{SID}-hello"
    assert "retryStrategy" not in template and "activeDeadlineSeconds" not in template
    assert workflow["spec"]["securityContext"] == {"runAsUser": 1000, "fsGroup": 100}
    assert list(tasks(workflow)) == ["hello"] and "depends" not in tasks(workflow)["hello"]


def test_scripts_run_with_the_repository_environment() -> None:
    workflow = build(
        {"name": "train", "script": "src/train.py", "args": ["--epochs", "3"]},
        {"name": "setup", "script": "scripts/setup.sh"},
        {"name": "tool", "script": "bin/tool"},
    )
    commands = {
        n: t["container"]["command"][5:]
        for n, t in templates(workflow).items()
        if n in tasks(workflow)
    }
    assert commands["train"] == ["/opt/codespace/env/bin/python", "src/train.py", "--epochs", "3"]
    assert commands["setup"] == ["./scripts/setup.sh"]  # executable, like locally
    assert commands["tool"] == ["./bin/tool"]


def test_a_notebook_runs_with_papermill_into_the_job_directory() -> None:
    job = {"name": "report", "notebook": "notebooks/report.ipynb"}
    workflow = build({**job, "parameters": {"alpha": 0.5, "name": "x y", "steps": [1, 2]}})
    command = templates(workflow)["report"]["container"]["command"]
    output = f"codespace-jobs/{SID}-report/report.ipynb"
    assert command[:5] == [
        "sh",
        "-c",
        'mkdir -p "$1" && shift && exec "$@"',
        "codespace-job",
        (f"codespace-jobs/{SID}-report"),
    ]
    papermill = command[5:]
    assert papermill[:3] == ["papermill", "notebooks/report.ipynb", output]
    assert papermill[papermill.index("--kernel") + 1] == "codespace"
    assert papermill[papermill.index("--cwd") + 1] == "notebooks"
    parameters = json.loads(papermill[papermill.index("--parameters_yaml") + 1])
    assert parameters == {"alpha": 0.5, "name": "x y", "steps": [1, 2]}

    plain = templates(build(job))["report"]["container"]["command"]
    assert "--parameters_yaml" not in plain


def test_after_becomes_the_dag_dependencies() -> None:
    workflow = build(
        {"name": "report", "command": ["true"], "after": ["train", "eval"]},
        {"name": "eval", "command": ["true"], "after": ["train"]},
        {"name": "train", "command": ["true"]},
    )
    dag = tasks(workflow)
    assert list(dag) == ["train", "eval", "report"]
    assert "depends" not in dag["train"]
    assert dag["eval"]["depends"] == "train"
    assert dag["report"]["depends"] == "train && eval"
    assert all(task["template"] == name for name, task in dag.items())


def test_a_job_named_like_the_entry_template_keeps_its_own_template() -> None:
    workflow = build({"name": "submission", "command": ["true"]})
    assert workflow["spec"]["entrypoint"] == "submission-dag"
    assert tasks(workflow)["submission"]["template"] == "submission"


def test_retries_back_off_exponentially() -> None:
    workflow = build({"name": "flaky", "command": ["true"], "retries": 3, "backoff": 15})
    assert templates(workflow)["flaky"]["retryStrategy"] == {
        "limit": 3,
        "retryPolicy": "Always",
        "backoff": {"duration": "15s", "factor": 2},
    }


def test_an_array_is_a_sequence_with_the_index_in_the_environment() -> None:
    workflow = build(
        {"name": "sweep", "notebook": "sweep.ipynb", "array": 4},
        {"name": "merge", "command": ["true"], "after": ["sweep"]},
    )
    task = tasks(workflow)["sweep"]
    assert task["withSequence"] == {"count": "4"}
    assert task["arguments"] == {"parameters": [{"name": "index", "value": "{{item}}"}]}
    template = templates(workflow)["sweep"]
    assert template["inputs"] == {"parameters": [{"name": "index"}]}
    variables = env(template)
    assert variables["CODESPACE_JOB_INDEX"] == "{{inputs.parameters.index}}"
    assert variables["CODESPACE_JOB_COUNT"] == "4"
    output = f"codespace-jobs/{SID}-sweep/sweep-{{{{inputs.parameters.index}}}}.ipynb"
    assert output in template["container"]["command"]
    assert tasks(workflow)["merge"]["depends"] == "sweep"


def test_cpu_memory_and_time_limit() -> None:
    job = {"name": "big", "command": ["true"]}
    resources = {"cpu": 2.5, "memory": "8Gi", "timeLimit": "1:30:00"}
    template = templates(build({**job, "resources": resources}))["big"]
    assert template["container"]["resources"] == {
        "requests": {"cpu": "2.5", "memory": "8Gi"},
        "limits": {"cpu": "2.5", "memory": "8Gi"},
    }
    assert template["activeDeadlineSeconds"] == 5400
    with pytest.raises(JobError, match=r"job 'big': resources.memory: '8 gigs'"):
        build_workflow(Submission(jobs=[{**job, "resources": {"memory": "8 gigs"}}]), SID, CONTEXT)


def test_gpus_without_profiles_are_whole_nvidia_gpus() -> None:
    job = {"name": "gpu", "command": ["nvidia-smi"]}
    template = templates(build({**job, "resources": {"gpu": 2}}))["gpu"]
    assert template["container"]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert env(template)["CODESPACE_GPU_COUNT"] == "2"
    share = templates(build({**job, "resources": {"gpu": {"fraction": 0.5}}}))["gpu"]
    assert share["container"]["resources"] == {"limits": {"nvidia.com/gpu": "1"}}


def test_gpus_follow_the_sites_profiles() -> None:
    mig = Profile(
        name="a100",
        nodeSelector={"pool": "gpu"},
        gpu=GpuConfig(
            mode="mig",
            migProfiles=["1g.10gb", "3g.40gb", "7g.80gb"],
            runtimeClassName="nvidia",
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        ),
    )
    vgpu = Profile(name="volcano", gpu=GpuConfig(mode="vgpu", memory="24Gi"))
    context = replace(CONTEXT, profiles=(Profile(name="cpu", default=True), mig, vgpu))
    job = {"name": "gpu", "command": ["true"]}
    template = templates(build({**job, "resources": {"gpu": {"memory": "8Gi"}}}, context=context))
    template = template["gpu"]
    assert template["container"]["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": "1"}
    assert template["nodeSelector"] == {"pool": "gpu"}
    assert template["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert json.loads(template["podSpecPatch"]) == {"runtimeClassName": "nvidia"}
    assert env(template)["CODESPACE_GPU_SHARING"] == "mig"

    request = {"gpu": {"fraction": 0.5, "sharing": "vgpu"}}
    shared = templates(build({**job, "resources": request}, context=context))["gpu"]
    assert shared["schedulerName"] == "volcano"
    assert shared["container"]["resources"]["limits"]["volcano.sh/vgpu-memory"] == "12288"

    cpu = templates(build(job, context=context))["gpu"]
    assert "nodeSelector" not in cpu and "resources" not in cpu["container"]

    with pytest.raises(JobError, match=r"job 'gpu': resources.gpu: .*cannot be met"):
        build_workflow(Submission(jobs=[{**job, "resources": {"gpu": 4}}]), SID, context)


def test_datasets_are_their_pvcs_read_only() -> None:
    workflow = build({"name": "read", "command": ["ls"], "datasets": ["imagenet", "laion"]})
    volumes = {v["name"]: v for v in workflow["spec"]["volumes"]}
    assert volumes["dataset-imagenet"]["persistentVolumeClaim"] == {
        "claimName": "imagenet",
        "readOnly": True,
    }
    assert volumes["dataset-laion"]["persistentVolumeClaim"]["claimName"] == "laion"
    template = templates(workflow)["read"]
    mounts = {m["name"]: m for m in template["container"]["volumeMounts"]}
    assert mounts["dataset-imagenet"] == {
        "name": "dataset-imagenet",
        "mountPath": "/data/imagenet",
        "readOnly": True,
    }
    assert mounts["dataset-laion"]["mountPath"] == "/datasets/laion"
    assert template["metadata"]["labels"]["fuse.serverful.fluid.io/inject"] == "true"
    assert env(template)["CODESPACE_DATASETS"] == "imagenet=/data/imagenet,laion=/datasets/laion"
    assert env(template)["CODESPACE_JOB_DATASETS"] == "imagenet,laion"


def test_owner_key_and_site_settings_on_the_workflow() -> None:
    context = replace(
        CONTEXT,
        owner="alice@example.org",
        service_account="argo-workflow",
        pull_secrets=("registry",),
        labels={"team": "vision"},
        ttl_seconds=86400,
        affinity=next_to({"metadata": {"labels": {"component": "singleuser-server"}}}),
    )
    workflow = build({"name": "a", "command": ["true"]}, context=context, key="retry-key-1")
    meta, spec = workflow["metadata"], workflow["spec"]
    assert meta["labels"][OWNER_LABEL].startswith("h-")  # '@' is not a label character
    assert meta["annotations"][OWNER_ANNOTATION] == "alice@example.org"
    assert meta["annotations"][KEY_ANNOTATION] == "retry-key-1"
    assert len(meta["labels"][KEY_LABEL]) == 40
    assert meta["labels"]["team"] == "vision"
    assert spec["serviceAccountName"] == "argo-workflow"
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    assert spec["ttlStrategy"] == {"secondsAfterCompletion": 86400}
    term = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert keyed_submission_id("alice", "k" * 8) == keyed_submission_id("alice", "k" * 8)
    assert keyed_submission_id("alice", "k" * 8) != keyed_submission_id("bob", "k" * 8)


def test_every_kind_of_job_at_once_is_valid() -> None:
    workflow = build(
        {"name": "prep", "script": "prep.py", "datasets": ["imagenet"], "retries": 2},
        {
            "name": "train",
            "notebook": "train.ipynb",
            "parameters": {"lr": 0.1},
            "array": 3,
            "after": ["prep"],
            "resources": {"cpu": 4, "memory": "16Gi", "gpu": 1, "timeLimit": "2h"},
            "env": {"WANDB_MODE": "offline"},
        },
        {"name": "report", "command": ["python", "-m", "report"], "after": ["train"]},
        key="submission-0001",
    )
    assert problems(workflow) == [] and unknown_fields(workflow) == []
    assert env(templates(workflow)["train"])["WANDB_MODE"] == "offline"


def test_the_validator_is_not_a_no_op() -> None:
    workflow = build({"name": "a", "command": ["true"]})
    broken = json.loads(json.dumps(workflow))
    broken["spec"]["templates"][0]["activeDeadlineSeconds"] = {"seconds": 3}
    del broken["spec"]["templates"][-1]["dag"]["tasks"][0]["name"]
    assert len(problems(broken)) == 2
    broken["spec"]["templates"][0]["container"]["workdir"] = "/x"
    assert unknown_fields(broken) == ["spec.templates.0.container.workdir: unknown field"]


def test_what_cannot_run_is_refused_before_anything_is_built() -> None:
    submission = Submission(jobs=[{"name": "a", "command": ["true"]}])
    with pytest.raises(JobError, match="CODESPACE_IMAGE"):
        build_workflow(submission, SID, replace(CONTEXT, image=""))
    with pytest.raises(JobError, match="not on the workspace volume"):
        build_workflow(submission, SID, replace(CONTEXT, working_dir="/home/jovyan/repo"))


def test_job_ids_name_their_submission() -> None:
    assert split_job_id(f"{SID}-train-2") == (SID, "train-2")
    assert split_job_id("train") is None and split_job_id("xyz-train") is None


def test_the_backend_loads_without_hera() -> None:
    code = "import sys, codespace.jobs.argo; print('hera' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- job states from status.nodes --------------------------------------------------------------


def _node(wf: str, task: str, phase: str, **extra) -> dict:
    return {
        "id": f"{wf}-{task}",
        "name": f"{wf}.{task}",
        "displayName": task,
        "type": "Pod",
        "phase": phase,
        **extra,
    }


def _workflow(nodes: list[dict], shutdown: str | None = None, **status) -> dict:
    workflow = build(
        {"name": "train", "command": ["true"], "resources": {"timeLimit": "30m"}},
        {"name": "report", "command": ["true"], "after": ["train"]},
    )
    workflow["metadata"]["creationTimestamp"] = "2026-12-01T10:00:00Z"
    workflow["status"] = {"nodes": {n["id"]: n for n in nodes}, **status}
    if shutdown:
        workflow["spec"]["shutdown"] = shutdown
    return workflow


def states(workflow: dict) -> dict[str, tuple[str, str]]:
    return {r.name: (r.state, r.reason) for r in job_records(workflow)}


def test_states_follow_the_nodes() -> None:
    wf = f"codespace-{SID}"
    pending = _node(wf, "train", "Pending", message="Unschedulable: 0/3 nodes are available")
    assert states(_workflow([pending], phase="Running")) == {
        "train": ("queued", "Unschedulable: 0/3 nodes are available"),
        "report": ("queued", "waiting for train"),
    }
    started = "2026-12-01T10:01:00Z"
    running = _node(wf, "train", "Running", startedAt=started)
    (train, _) = job_records(_workflow([running], phase="Running"))
    assert (train.state, train.started.isoformat()) == ("running", "2026-12-01T10:01:00+00:00")
    assert train.finished is None and train.backendId == f"{wf}.train"

    deadline = "Pod was active on the node longer than the specified deadline"
    failed = _node(wf, "train", "Failed", message=deadline, outputs={"exitCode": "137"})
    omitted = _node(wf, "report", "Omitted", type="Omitted")
    records = job_records(_workflow([failed, omitted], phase="Failed"))
    assert [(r.state, r.exitCode) for r in records] == [("failed", 137), ("cancelled", None)]
    assert records[0].reason == f"time limit 30m reached: {deadline}"
    assert records[1].reason == "not run: a job it waits for did not succeed"

    done = _node(wf, "train", "Succeeded", outputs={"exitCode": "0"}, finishedAt=started)
    stopped = _node(wf, "report", "Failed", message="Stopped with strategy 'Stop'")
    records = job_records(_workflow([done, stopped], "Stop", phase="Failed"))
    assert [(r.state, r.exitCode) for r in records] == [("succeeded", 0), ("cancelled", None)]
    assert records[1].reason == "Stopped with strategy 'Stop'"
    assert states(_workflow([], "Stop"))["train"] == ("cancelled", "cancelled before it started")
    assert states(_workflow([], phase="Error", message="invalid spec"))["train"] == (
        "failed",
        "invalid spec",
    )


def test_retries_and_arrays_report_their_attempts() -> None:
    wf = f"codespace-{SID}"
    retry = _node(wf, "train", "Failed", type="Retry", children=["a0", "a1"])
    attempts = [
        {"id": "a0", "name": f"{wf}.train(0)", "type": "Pod", "phase": "Failed",
         "message": "Error (exit code 3)", "startedAt": "2026-12-01T10:00:01Z",
         "outputs": {"exitCode": "3"}},
        {"id": "a1", "name": f"{wf}.train(1)", "type": "Pod", "phase": "Failed",
         "message": "Error (exit code 2)", "startedAt": "2026-12-01T10:00:09Z",
         "outputs": {"exitCode": "2"}},
    ]  # fmt: skip
    (train, _) = job_records(_workflow([retry, *attempts], phase="Failed"))
    assert (train.state, train.exitCode, train.reason) == ("failed", 2, "Error (exit code 2)")


# -- the codespace's side, from its environment and pod ----------------------------------------


def test_jobs_get_the_launch_plans_variables_never_the_servers_credentials() -> None:
    server = {
        "PATH": "/opt/codespace/env/bin:/usr/bin",
        "VIRTUAL_ENV": "/opt/codespace/env",
        "CODESPACE_REPO": "r",
        "CODESPACE_DATASETS": "imagenet=/data/imagenet,bad",
        "JUPYTERHUB_API_TOKEN": "secret",
        "HOSTNAME": "jupyter-alice",
    }
    assert launch_env(server) == {
        "PATH": "/opt/codespace/env/bin:/usr/bin",
        "VIRTUAL_ENV": "/opt/codespace/env",
        "CODESPACE_REPO": "r",
        "CODESPACE_DATASETS": "imagenet=/data/imagenet,bad",
    }
    assert dataset_paths(server) == {"imagenet": "/data/imagenet"}


def test_with_the_launch_plan_jobs_get_its_container_and_remote_env() -> None:
    plan = RuntimePlan(
        variables={"CODESPACE_REPO": "r"},
        container_env={"DATA": "/data", "PATH": "/opt/tool/bin:${containerEnv:PATH}"},
        remote_env={"MODE": "remote"},
        prefix="/opt/codespace/env",
        steps=(),
        wait_for="postCreateCommand",
    )
    server = {"PATH": "/usr/bin", LAUNCH_ENV: plan.to_json(), "JUPYTERHUB_API_TOKEN": "x"}
    assert launch_env(server) == {
        "DATA": "/data",
        "PATH": "/opt/codespace/env/bin:/opt/tool/bin:/usr/bin",
        "VIRTUAL_ENV": "/opt/codespace/env",
        "MODE": "remote",
        "CODESPACE_REPO": "r",
    }


def test_the_workspace_volume_is_found_on_the_servers_pod() -> None:
    pod = {
        "metadata": {"labels": {"component": "singleuser-server", "app": "jupyterhub"}},
        "spec": {
            "volumes": [
                {"name": "workspace", "persistentVolumeClaim": {"claimName": "claim-alice"}},
                {"name": "home", "persistentVolumeClaim": {"claimName": "home-alice"}},
                {"name": "dataset-x", "persistentVolumeClaim": {"claimName": "x"}},
            ],
            "containers": [
                {
                    "name": "notebook",
                    "volumeMounts": [
                        {"name": "home", "mountPath": "/"},
                        {"name": "workspace", "mountPath": "/workspaces"},
                        {"name": "dataset-x", "mountPath": "/workspaces-data"},
                    ],
                }
            ],
        },
    }
    assert pod_workspace(pod, "/workspaces/repo") == ("claim-alice", "/workspaces")
    assert pod_workspace(pod, "/srv") == ("home-alice", "/")
    selector = next_to(pod)["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert selector["labelSelector"] == {"matchLabels": {"component": "singleuser-server"}}
