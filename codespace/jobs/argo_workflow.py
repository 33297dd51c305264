"""Argo Workflows: one submission as one Hera-built ``Workflow`` (pure: data in, a dict out).

:func:`build_workflow` turns a :class:`~codespace.jobs.models.Submission` and the codespace's
context (:class:`ArgoContext`: its image, namespace, workspace volume and checkout, datasets,
the launch plan's variables, the admin's GPU profiles) into an ``argoproj.io/v1alpha1``
``Workflow``, built with Hera (Argo's Python SDK) and returned as ``w.to_dict()``:

- a DAG: one task per job, ``after`` becomes the task's ``depends``;
- one container template per job, in the codespace's image, in the checkout (``workingDir``)
  on the workspace PVC, with the job's datasets (the PVCs Fluid made) read-only: an argv
  ``command`` as is, a ``.py`` ``script`` with the repository environment's ``python``
  (another script as a program), a ``notebook`` with papermill and the ``codespace``
  kernel, its parameters injected; the job's directory ``codespace-jobs/<job id>/`` in the
  workspace (``CODESPACE_JOB_DIR``) holds the executed notebook, as with the other backends;
- ``retryStrategy`` (limit, backoff doubling from the job's ``backoff``), cpu/memory
  requests = limits, GPUs as extended resources through the profile logic of
  :mod:`codespace.kube.gpu` (a plain ``nvidia.com/gpu`` count without profiles),
  ``activeDeadlineSeconds`` from ``timeLimit`` (per attempt);
- an array of N copies: ``withSequence`` (count N), each copy's index in
  ``CODESPACE_JOB_INDEX`` (``CODESPACE_JOB_COUNT`` = N);
- labels and annotations that make the Workflow the record: the owner, the submission id,
  the platform's job ids, the submitted spec and the idempotency key (hashed in a label);
- run after prewarm: a job with ``prewarm`` waits in the DAG for one ``prewarm-<dataset>``
  task per dataset (shared by the submission's jobs), a ``resource`` template that creates a
  Fluid ``DataLoad`` of the whole dataset (owned by the Workflow, so deleted with it),
  succeeding when its ``status.phase`` is ``Complete`` and failing on ``Failed`` (the job is
  then not run). The Workflow's service account needs ``create``/``get`` on
  ``dataloads.data.fluid.io``. ``releaseCache`` is refused: Fluid's cache belongs to the
  dataset's runtime, not to a job.

Hera is imported by :func:`build_workflow` only (~1.8 s the first time), so the backend
(:mod:`codespace.jobs.argo`) loads without it and a server that never submits to Argo never
pays for it. Argo substitutes ``{{...}}`` anywhere in a template: a job's own strings
must not contain such expressions.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codespace.datasets.fluid_objects import dataload_manifest, dataload_name
from codespace.datasets.mounts import DATASETS_ENV, DatasetMount
from codespace.jobs.backend import JobError
from codespace.jobs.models import JOBS_DIR, JobSpec, Submission, job_dir, seconds
from codespace.kube.config import Profile
from codespace.kube.datasets import dataset_mounts
from codespace.kube.gpu import GpuPlan, GpuUnsatisfiable, plan_workload_gpu
from codespace.kube.quantity import to_bytes

GROUP, VERSION, PLURAL, KIND = "argoproj.io", "v1alpha1", "workflows", "Workflow"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "app.kubernetes.io/managed-by"
OWNER_LABEL = "codespace.io/owner"  # label-safe form of the owner (see label_value)
SUBMISSION_LABEL = "codespace.io/submission"
KEY_LABEL = "codespace.io/idempotency"  # a hash of the owner and the key
JOB_LABEL = "codespace.io/job"  # on each template, so on its pods: the job's name
OWNER_ANNOTATION = "codespace.io/owner"
KEY_ANNOTATION = "codespace.io/idempotency-key"
JOBS_ANNOTATION = "codespace.io/jobs"  # {"job name": "platform job id"}
SPEC_ANNOTATION = "codespace.io/submission"  # the submission as JSON
JOB_ID_ANNOTATION = "codespace.io/job-id"  # on each template (its pods)
WORKFLOW_LABEL = "workflows.argoproj.io/workflow"  # Argo's, on every pod of a workflow
MAIN_CONTAINER = "main"  # Argo's name for a container template's container
OUTPUT_DIR = JOBS_DIR
KERNEL = "codespace"
INDEX_ENV, COUNT_ENV = "CODESPACE_JOB_INDEX", "CODESPACE_JOB_COUNT"
INDEX_PARAMETER = "{{inputs.parameters.index}}"
NAME_PREFIX = "codespace-"
# "$1": a directory to create; the rest: the program (an argument list, no shell parsing).
MKDIR_AND_RUN = 'mkdir -p "$1" && shift && exec "$@"'
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class ArgoContext:
    """Where a submission's jobs run: the codespace's side of the Workflow (plain data)."""

    image: str  # the codespace's image (CODESPACE_IMAGE)
    namespace: str  # the user's namespace
    owner: str  # the hub user
    workspace_claim: str  # the workspace PVC
    workspace_mount: str  # where that PVC is mounted (the codespace pod's mount path)
    working_dir: str  # the checkout, under workspace_mount (CODESPACE_WORKSPACE)
    env: Mapping[str, str] = field(default_factory=dict)  # the launch plan's variables
    datasets: Mapping[str, str] = field(default_factory=dict)  # dataset -> mount path
    profiles: Sequence[Profile] = ()  # the admin's profiles (GPU modes); none: whole GPUs
    profile: str | None = None  # always this profile (else the first that fits a job)
    service_account: str | None = None
    run_as_user: int | None = 1000  # as the codespace's server (writes the workspace)
    fs_group: int | None = 100
    affinity: Mapping[str, Any] | None = None  # e.g. next to the codespace's pod (RWO PVC)
    pull_secrets: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # extra, on workflow and pods
    ttl_seconds: int | None = None  # delete a finished Workflow (and the record) after this


def label_value(text: str) -> str:
    """``text`` when it is a valid label value, else a stable hash of it."""
    if _LABEL_VALUE.match(text):
        return text
    return "h-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def key_hash(owner: str, key: str) -> str:
    return hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()


def keyed_submission_id(owner: str, key: str) -> str:
    """The submission id an idempotency key always gives (so a retry collides by name)."""
    return key_hash(owner, key)[:12]


def workflow_name(submission_id: str) -> str:
    return f"{NAME_PREFIX}{submission_id}"


def job_id(submission_id: str, name: str) -> str:
    return f"{submission_id}-{name}"


def split_job_id(value: str) -> tuple[str, str] | None:
    """``(submission id, job name)`` of a job id, or None when it is not one of ours."""
    submission, sep, name = value.partition("-")
    if not sep or not re.fullmatch(r"[0-9a-f]{12}", submission) or not name:
        return None
    return submission, name


def output_notebook(job: JobSpec, ident: str, index: int | str | None = None) -> str:
    """Where a notebook job's executed copy goes, relative to the workspace."""
    assert job.notebook is not None
    stem = posixpath.splitext(posixpath.basename(job.notebook))[0]
    suffix = "" if index is None else f"-{index}"
    return f"{job_dir(ident)}/{stem}{suffix}.ipynb"


def program(job: JobSpec, ident: str, env: Mapping[str, str]) -> list[str]:
    """The container's argv, run in the checkout with the launch plan's variables: the job's
    directory is made first, then the program replaces the shell (it is the pod's main
    process, so Argo's signals reach it)."""
    if job.command is not None:
        argv = list(job.command)
    elif job.script is not None:
        prefix = env.get("VIRTUAL_ENV")
        python = f"{prefix}/bin/python" if prefix else "python"
        script = job.script if job.script.endswith(".py") else f"./{job.script}"
        argv = [python, script, *job.args] if job.script.endswith(".py") else [script, *job.args]
    else:
        assert job.notebook is not None
        output = output_notebook(job, ident, INDEX_PARAMETER if job.array else None)
        argv = ["papermill", job.notebook, output, "--kernel", KERNEL]
        argv += ["--cwd", posixpath.dirname(job.notebook) or ".", "--log-output"]
        argv += ["--no-progress-bar"]
        if job.parameters:
            argv += ["--parameters_yaml", json.dumps(job.parameters, sort_keys=True)]
    return ["sh", "-c", MKDIR_AND_RUN, "codespace-job", job_dir(ident), *argv]


def gpu_plan(job: JobSpec, context: ArgoContext) -> tuple[GpuPlan, Profile | None]:
    """The job's GPU share under the site's profiles (whole NVIDIA GPUs without any)."""
    try:
        return plan_workload_gpu(job.resources.gpu, context.profiles, context.profile, "argo")
    except GpuUnsatisfiable as error:
        raise JobError(f"job {job.name!r}: resources.gpu: {error}") from None


def _quantity(job: JobSpec) -> str | None:
    memory = job.resources.memory
    if memory is not None:
        try:
            to_bytes(memory)
        except ValueError:
            raise JobError(
                f"job {job.name!r}: resources.memory: {memory!r} is not a quantity such as '8Gi'"
            ) from None
    return memory


def resources(job: JobSpec, gpu: GpuPlan) -> dict[str, dict[str, str]]:
    """Requests = limits for cpu and memory (the job gets what it asked); GPUs as limits."""
    amounts: dict[str, str] = {}
    if job.resources.cpu is not None:
        amounts["cpu"] = f"{job.resources.cpu:g}"
    memory = _quantity(job)
    if memory is not None:
        amounts["memory"] = memory
    result: dict[str, dict[str, str]] = {}
    if amounts:
        result["requests"] = dict(amounts)
    limits = {**amounts, **gpu.limits}
    if limits:
        result["limits"] = limits
    return result


def job_env(job: JobSpec, ident: str, submission_id: str, context: ArgoContext, gpu: GpuPlan):
    """The launch plan's variables, the job's own, then the platform's job variables."""
    env = {key: value for key, value in context.env.items() if key != DATASETS_ENV}
    env.setdefault("PYTHONUNBUFFERED", "1")  # the pod's log follows the program
    env.update(job.env)
    env.update(gpu.env)
    env.update(CODESPACE_JOB_ID=ident, CODESPACE_JOB_NAME=job.name)
    env["CODESPACE_JOB_DIR"] = posixpath.join(context.working_dir, job_dir(ident))
    env["CODESPACE_SUBMISSION"] = submission_id
    if job.datasets:
        env["CODESPACE_JOB_DATASETS"] = ",".join(job.datasets)
        env[DATASETS_ENV] = ",".join(f"{n}={_dataset_path(n, context)}" for n in job.datasets)
    if job.array:
        env[INDEX_ENV], env[COUNT_ENV] = INDEX_PARAMETER, str(job.array)
    return env


def _dataset_path(name: str, context: ArgoContext) -> str:
    return context.datasets.get(name) or f"/datasets/{name}"


def _mounts(job: JobSpec, context: ArgoContext):
    """The job's datasets (the PVC Fluid made for each), always read-only."""
    wanted = [
        DatasetMount(name=n, mountPath=_dataset_path(n, context), origin="options")
        for n in job.datasets
    ]
    return dataset_mounts(wanted)


def _labels(context: ArgoContext, submission_id: str) -> dict[str, str]:
    return {
        **context.labels,
        MANAGED_BY: "codespace",
        OWNER_LABEL: label_value(context.owner),
        SUBMISSION_LABEL: submission_id,
    }


def _annotations(submission: Submission, submission_id: str, context: ArgoContext):
    ids = {job.name: job_id(submission_id, job.name) for job in submission.jobs}
    spec = submission.model_dump(mode="json", exclude_none=True, exclude={"idempotencyKey"})
    annotations = {
        OWNER_ANNOTATION: context.owner,
        JOBS_ANNOTATION: json.dumps(ids, separators=(",", ":")),
        SPEC_ANNOTATION: json.dumps(spec, separators=(",", ":"), sort_keys=True),
    }
    if submission.idempotencyKey:
        annotations[KEY_ANNOTATION] = submission.idempotencyKey
    return annotations


def _template(job: JobSpec, submission_id: str, context: ArgoContext, volumes: dict) -> Any:
    """One job's container template (Hera ``Container``; registers in the open Workflow)."""
    from hera.workflows import Container, Env, Parameter, RetryStrategy
    from hera.workflows import models as m

    ident = job_id(submission_id, job.name)
    gpu, profile = gpu_plan(job, context)
    mounts = _mounts(job, context)
    for volume in mounts.volumes:
        volumes.setdefault(volume["name"], volume)
    volume_mounts = [{"name": "workspace", "mountPath": context.workspace_mount}, *mounts.mounts]
    node_selector = {**(profile.nodeSelector if profile else {}), **gpu.node_selector}
    tolerations = [*(profile.tolerations if profile else []), *gpu.tolerations]
    retry = None
    if job.retries:
        backoff = m.Backoff(duration=f"{job.backoff:g}s", factor=2)
        retry = RetryStrategy(limit=job.retries, retry_policy="Always", backoff=backoff)
    limit = job.resources.timeLimit
    patch = {"runtimeClassName": gpu.runtime_class_name} if gpu.runtime_class_name else None
    env = job_env(job, ident, submission_id, context, gpu)
    amounts = resources(job, gpu)
    return Container(
        name=job.name,
        image=context.image,
        command=program(job, ident, context.env),
        working_dir=context.working_dir,
        env=[Env(name=key, value=value) for key, value in env.items()],
        volume_mounts=[m.VolumeMount.model_validate(mount) for mount in volume_mounts],
        resources=m.ResourceRequirements.model_validate(amounts) if amounts else None,
        retry_strategy=retry,
        active_deadline_seconds=seconds(limit) if limit else None,
        inputs=[Parameter(name="index")] if job.array else None,
        labels={**_labels(context, submission_id), **mounts.labels, JOB_LABEL: job.name},
        annotations={JOB_ID_ANNOTATION: ident},
        node_selector=node_selector or None,
        tolerations=[m.Toleration.model_validate(t) for t in tolerations] or None,
        scheduler_name=gpu.scheduler_name,
        pod_spec_patch=json.dumps(patch) if patch else None,
    )


def dataload(dataset: str, submission_id: str, namespace: str) -> dict[str, Any]:
    """The Fluid ``DataLoad`` a submission's ``prewarm`` jobs wait for (the whole dataset)."""
    name = dataload_name(dataset, ["/"], submission_id)
    return dataload_manifest(dataset, namespace, ["/"], name=name)


def _prewarm_templates(submission: Submission, submission_id: str, context: ArgoContext):
    """dataset -> its DataLoad task's name and ``Resource`` template (none: no prewarm)."""
    from hera.workflows import Resource

    taken = {job.name for job in submission.jobs}
    made: dict[str, tuple[str, Any]] = {}
    for job in submission.jobs:
        if job.releaseCache:
            raise JobError(
                f"job {job.name!r}: releaseCache is not supported by the Argo backend: Fluid "
                "keeps a dataset's cache in its runtime (scale or delete the runtime to free it)"
            )
        for dataset in job.datasets if job.prewarm else ():
            if dataset in made:
                continue
            name = f"prewarm-{dataset}"
            while name in taken:
                name += "-load"
            taken.add(name)
            manifest = dataload(dataset, submission_id, context.namespace)
            template = Resource(
                name=name,
                action="create",
                manifest=json.dumps(manifest, sort_keys=True),  # JSON is YAML
                set_owner_reference=True,
                success_condition="status.phase == Complete",
                failure_condition="status.phase == Failed",
            )
            made[dataset] = (name, template)
    return made


def _workflow_options(context: ArgoContext, volumes: dict) -> dict[str, Any]:
    from hera.workflows import models as m

    options: dict[str, Any] = {
        "volumes": [m.Volume.model_validate(v) for v in volumes.values()],
        "service_account_name": context.service_account,
    }
    if context.run_as_user is not None or context.fs_group is not None:
        options["security_context"] = m.PodSecurityContext(
            run_as_user=context.run_as_user, fs_group=context.fs_group
        )
    if context.affinity:
        options["affinity"] = m.Affinity.model_validate(dict(context.affinity))
    if context.pull_secrets:
        options["image_pull_secrets"] = [
            m.LocalObjectReference(name=name) for name in context.pull_secrets
        ]
    if context.ttl_seconds is not None:
        options["ttl_strategy"] = m.TTLStrategy(seconds_after_completion=context.ttl_seconds)
    return options


def _check(context: ArgoContext) -> None:
    if not context.image:
        raise JobError("no image to run jobs in: set CODESPACE_IMAGE or the backend's image")
    mount = context.workspace_mount.rstrip("/") or "/"
    if posixpath.commonpath([mount, context.working_dir]) != mount:
        raise JobError(
            f"the checkout {context.working_dir} is not on the workspace volume mounted at "
            f"{context.workspace_mount}"
        )


def build_workflow(submission: Submission, submission_id: str, context: ArgoContext) -> dict:
    """The submission as an Argo ``Workflow`` (a dict); JobError names what cannot be run."""
    from hera.workflows import DAG, Task, Workflow
    from hera.workflows import models as m

    _check(context)
    names = {job.name for job in submission.jobs}
    entry = "submission"
    while entry in names:
        entry += "-dag"
    volumes: dict[str, dict] = {
        "workspace": {
            "name": "workspace",
            "persistentVolumeClaim": {"claimName": context.workspace_claim},
        }
    }
    labels = _labels(context, submission_id)
    if submission.idempotencyKey:
        labels[KEY_LABEL] = key_hash(context.owner, submission.idempotencyKey)[:40]
    with Workflow(
        name=workflow_name(submission_id),
        namespace=context.namespace,
        labels=labels,
        annotations=_annotations(submission, submission_id, context),
        entrypoint=entry,
    ) as workflow:
        templates = {
            job.name: _template(job, submission_id, context, volumes) for job in submission.jobs
        }
        prewarms = _prewarm_templates(submission, submission_id, context)
        with DAG(name=entry):
            for task_name, template in prewarms.values():
                Task(name=task_name, template=template)
            for job in submission.jobs:  # topological order: dependencies first
                loads = [prewarms[d][0] for d in job.datasets] if job.prewarm else []
                Task(
                    name=job.name,
                    template=templates[job.name],
                    depends=" && ".join([*job.after, *loads]) or None,
                    with_sequence=m.Sequence(count=str(job.array)) if job.array else None,
                    arguments={"index": "{{item}}"} if job.array else None,
                )
    for key, value in _workflow_options(context, volumes).items():
        if value is not None:
            setattr(workflow, key, value)
    return workflow.to_dict()
