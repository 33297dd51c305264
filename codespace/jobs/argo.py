"""Jobs on Argo Workflows: one ``Workflow`` per submission, in the user's namespace.

The Workflow is the record: :func:`~codespace.jobs.argo_workflow.build_workflow` puts the
owner, the submission, the platform's job ids and the idempotency key on it, and every
state is read back from its ``status.nodes`` (one DAG task per job). Two ways to reach Argo:

- the Kubernetes API (default): ``argoproj.io/v1alpha1`` ``workflows`` through
  kubernetes_asyncio's CustomObjectsApi with the pod's service account (in-cluster config,
  else ``$KUBECONFIG``); logs are the ``main`` container's logs of the job's pods;
- an Argo Server's REST API (``server_url`` + a token): the ``WorkflowsService`` endpoints
  (``/api/v1/workflows/<namespace>...``: create, get, list, stop/terminate, log).

A submission with an idempotency key is looked up by its key's label before anything is
built, and its Workflow is named after the key, so two racing retries collide on the name
and both answer the one Workflow. Everything is scoped to the owner (a label to select, the
exact name in an annotation to check): another user's job id is :class:`JobNotFound`. An
API that cannot be reached is ``BackendUnavailable`` (HTTP 503).

Cancelling a job stops its submission's Workflow (``spec.shutdown: Stop``, or ``Terminate``
with the ``cancel: terminate`` option): Argo cannot stop one task of a DAG, so the
submission's other unfinished jobs are cancelled with it.

Options (``JobSettings.options``), all optional:

==================== ==========================================================================
namespace            the user's namespace (default ``$POD_NAMESPACE``, the service account's)
image                the image jobs run in (default ``$CODESPACE_IMAGE``)
workspace_claim      the workspace PVC (default ``$CODESPACE_WORKSPACE_CLAIM``, else found on
                     this server's pod ``$HOSTNAME``)
workspace_mount      where that PVC is mounted (default: as on this server's pod, /workspaces)
working_dir          the checkout jobs run in (default ``$CODESPACE_WORKSPACE``)
same_node            run jobs next to this server's pod (a ReadWriteOnce workspace):
                     ``auto`` (default: when the PVC is not ReadWriteMany), true, false
profiles, profile    the admin's profiles (GPU sharing modes, as in the Kubernetes config);
                     without them a GPU request is whole ``nvidia.com/gpu`` devices
service_account      the Workflow's service account (Argo's executor needs one)
run_as_user          the jobs' uid (default 1000) ; ``fs_group`` (default 100)
pull_secrets         image pull secrets ; ``labels``: extra labels
ttl_seconds          delete finished Workflows (and so their records) after this
cancel               ``stop`` (default) or ``terminate``
kubeconfig           a kubeconfig file instead of the in-cluster config
server_url           an Argo Server: use its REST API; ``token`` or ``token_file``
                     (``Bearer`` added), ``verify_ssl`` (default true)
==================== ==========================================================================
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from codespace.datasets.mounts import DATASETS_ENV
from codespace.jobs.argo_api import ArgoApi, Conflict, KubeApi, ServerApi
from codespace.jobs.argo_workflow import (
    JOBS_ANNOTATION,
    KEY_ANNOTATION,
    KEY_LABEL,
    MANAGED_BY,
    OWNER_ANNOTATION,
    OWNER_LABEL,
    SPEC_ANNOTATION,
    SUBMISSION_LABEL,
    ArgoContext,
    job_id,
    key_hash,
    keyed_submission_id,
    label_value,
    output_notebook,
    split_job_id,
    workflow_name,
)
from codespace.jobs.backend import JobBackend, JobError, JobNotFound, JobSettings
from codespace.jobs.models import JobRecord, JobSpec, JobState, Submission
from codespace.kube.client import namespace_from
from codespace.kube.config import Profile, backend_profiles
from codespace.launch import LAUNCH_ENV, PLATFORM_VARIABLES, RuntimePlan

OPTIONS = {
    "namespace", "image", "workspace_claim", "workspace_mount", "working_dir", "same_node",
    "profiles", "profile", "service_account", "run_as_user", "fs_group", "pull_secrets",
    "labels", "ttl_seconds", "cancel", "kubeconfig", "server_url", "token", "token_file",
    "verify_ssl",
}  # fmt: skip
STOPPED = "Stopped with strategy"  # Argo's message on nodes a shutdown ended
# Labels KubeSpawner puts on a server's pod that pick out that one pod.
POD_IDENTITY = ("hub.jupyter.org/username", "hub.jupyter.org/servername", "component")


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- records: a Workflow's status.nodes, per job ----------------------------------------------


def _descendants(node: dict, by_id: Mapping[str, dict]) -> list[dict]:
    found, todo, seen = [], list(node.get("children") or []), set()
    while todo:
        child = by_id.get(todo.pop())
        if child is None or child["id"] in seen:
            continue
        seen.add(child["id"])
        found.append(child)
        todo.extend(child.get("children") or [])
    return found


def _pods(node: dict, by_id: Mapping[str, dict]) -> list[dict]:
    pods = [n for n in [node, *_descendants(node, by_id)] if n.get("type") == "Pod"]
    return sorted(pods, key=lambda n: (n.get("startedAt") or "", n.get("name", "")))


def _exit_code(node: dict, by_id: Mapping[str, dict], state: JobState) -> int | None:
    pods = _pods(node, by_id)
    codes = [
        (pod.get("phase"), (pod.get("outputs") or {}).get("exitCode"))
        for pod in pods
        if (pod.get("outputs") or {}).get("exitCode") is not None
    ]
    if state == "failed":
        failed = [int(code) for phase, code in codes if phase in ("Failed", "Error")]
        return next((c for c in reversed(failed) if c != 0), failed[-1] if failed else None)
    if state == "succeeded":
        return 0
    return None


def _message(node: dict, by_id: Mapping[str, dict]) -> str:
    """The most telling message: a failed attempt's own rather than its group's summary."""
    for pod in reversed(_pods(node, by_id)):
        if pod.get("phase") in ("Failed", "Error") and pod.get("message"):
            return pod["message"]
    return node.get("message") or ""


def job_state(workflow: dict, job: JobSpec, node: dict | None, by_id: Mapping[str, dict]):
    """``(state, reason)`` of one job from its DAG task's node (None: not started)."""
    status = workflow.get("status") or {}
    stopping = bool((workflow.get("spec") or {}).get("shutdown"))
    if node is None:
        if stopping:
            return "cancelled", "cancelled before it started"
        if status.get("phase") in ("Failed", "Error"):
            return "failed", status.get("message") or "the workflow failed before this job ran"
        if job.after:
            return "queued", f"waiting for {', '.join(job.after)}"
        return "queued", status.get("message") or "waiting for the workflow controller"
    phase, message = node.get("phase") or "Pending", _message(node, by_id)
    if phase == "Succeeded":
        return "succeeded", ""
    if phase in ("Pending", "Running") and stopping:
        return "cancelled", "cancelled (the workflow is stopping)"
    if phase == "Pending":
        return "queued", message or "pending"
    if phase == "Running":
        return "running", ""
    if phase in ("Omitted", "Skipped"):
        why = "cancelled" if stopping else "not run: a job it waits for did not succeed"
        return "cancelled", f"{why} ({message})" if message else why
    if STOPPED in message or (stopping and not message):
        return "cancelled", message or "cancelled"
    limit = job.resources.timeLimit
    if limit and "deadline" in message.lower():
        return "failed", f"time limit {limit} reached: {message}"
    return "failed", message or f"{phase.lower()} (no message from Argo)"


def job_records(workflow: dict, backend: str = "argo") -> list[JobRecord]:
    """Every job of a submission's Workflow, in submission (topological) order."""
    meta = workflow["metadata"]
    annotations = meta.get("annotations") or {}
    try:
        ids: dict[str, str] = json.loads(annotations[JOBS_ANNOTATION])
        jobs = [JobSpec.model_validate(j) for j in json.loads(annotations[SPEC_ANNOTATION])["jobs"]]
    except (KeyError, ValueError) as error:
        name = meta.get("name")
        raise JobError(f"workflow {name} is not a codespace submission: {error}") from None
    name = meta["name"]
    submission = (meta.get("labels") or {}).get(SUBMISSION_LABEL) or name
    by_id = (workflow.get("status") or {}).get("nodes") or {}
    by_name = {node.get("name"): node for node in by_id.values()}
    submitted = _time(meta.get("creationTimestamp")) or datetime.now(UTC)
    records = []
    for job in jobs:
        node = by_name.get(f"{name}.{job.name}")
        state, reason = job_state(workflow, job, node, by_id)
        finished = state in ("succeeded", "failed", "cancelled")
        ident = ids.get(job.name) or job_id(submission, job.name)
        output = None
        if job.notebook is not None:
            output = output_notebook(job, ident, 0 if job.array else None)
        records.append(
            JobRecord(
                id=ident,
                name=job.name,
                owner=annotations.get(OWNER_ANNOTATION, ""),
                backend=job.backend or backend,
                backendId=f"{name}.{job.name}",
                submission=submission,
                state=state,
                reason=reason,
                submitted=submitted,
                started=_time((node or {}).get("startedAt")) if state != "queued" else None,
                finished=_time((node or {}).get("finishedAt")) if finished else None,
                exitCode=_exit_code(node, by_id, state) if node else None,
                outputNotebook=output,
                spec=job,
            )
        )
    return records


# -- the codespace's side: from the server's settings and pod ---------------------------------


def launch_env(environment: Mapping[str, str]) -> dict[str, str]:
    """The variables a job gets from the launch plan: the plan itself when the environment
    carries it, else the platform's ``CODESPACE_*`` variables and the environment's paths.
    Never the server's own credentials (``JUPYTERHUB_*``)."""
    text = environment.get(LAUNCH_ENV)
    if text:
        try:
            return RuntimePlan.from_json(text).server_env(environment)
        except (ValueError, TypeError, KeyError):
            pass
    keep = (*PLATFORM_VARIABLES, "VIRTUAL_ENV", "PATH", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH")
    return {key: environment[key] for key in keep if environment.get(key)}


def dataset_paths(environment: Mapping[str, str]) -> dict[str, str]:
    """``CODESPACE_DATASETS`` (``name=path,...``) as a mapping."""
    paths = {}
    for item in environment.get(DATASETS_ENV, "").split(","):
        name, sep, path = item.partition("=")
        if sep and name.strip() and path.strip():
            paths[name.strip()] = path.strip()
    return paths


def pod_workspace(pod: dict, working_dir: str) -> tuple[str, str] | None:
    """``(claim, mount path)`` of the PVC a pod mounts that holds ``working_dir``."""
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if v.get("persistentVolumeClaim")
    }
    best: tuple[str, str] | None = None
    for container in (pod.get("spec") or {}).get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            path = mount["mountPath"].rstrip("/") or "/"
            inside = working_dir == path or working_dir.startswith(path.rstrip("/") + "/")
            if mount["name"] in claims and inside and (best is None or len(path) > len(best[1])):
                best = (claims[mount["name"]], mount["mountPath"])
    return best


def next_to(pod: dict) -> dict:
    """An affinity that puts a job's pods on the node of ``pod`` (KubeSpawner's labels)."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    selector = {key: labels[key] for key in POD_IDENTITY if key in labels} or dict(labels)
    term = {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}
    return {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def _check_options(options: Mapping[str, Any]) -> list[Profile]:
    profiles = backend_profiles("argo", options, OPTIONS, JobError)
    if options.get("cancel", "stop") not in ("stop", "terminate"):
        raise JobError("argo backend: cancel is 'stop' or 'terminate'")
    if options.get("same_node", "auto") not in ("auto", True, False):
        raise JobError("argo backend: same_node is 'auto', true or false")
    return profiles


# -- the backend -------------------------------------------------------------------------------


class ArgoBackend(JobBackend):
    """One Workflow per submission in the user's namespace; see the module's docstring."""

    kind = "argo"

    def __init__(
        self,
        api: ArgoApi,
        *,
        owner: str,
        workspace: Path,
        environment: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.api = api
        self.owner = owner
        self.workspace = workspace
        self.environment = dict(environment or {})
        self.options = dict(options or {})
        self.profiles = _check_options(self.options)
        self.strategy = "Terminate" if self.options.get("cancel") == "terminate" else "Stop"
        self._context: ArgoContext | None = None

    @classmethod
    def from_settings(cls, settings: JobSettings) -> Self:
        options, environment = dict(settings.options), settings.environment
        _check_options(options)
        namespace = namespace_from(options, environment)
        api: ArgoApi
        if options.get("server_url"):
            token: Any = options.get("token")
            if not token and options.get("token_file"):
                token = ServerApi.token_from_file(str(options["token_file"]))
            verify = bool(options.get("verify_ssl", True))
            api = ServerApi(str(options["server_url"]), namespace, token, verify_ssl=verify)
        else:
            api = KubeApi(namespace, kubeconfig=options.get("kubeconfig"))
        return cls(
            api,
            owner=settings.owner,
            workspace=settings.workspace,
            environment=environment,
            options=options,
        )

    async def context(self) -> ArgoContext:
        """Where jobs run (found once): the image, the workspace volume, the datasets."""
        if self._context is not None:
            return self._context
        options, env = self.options, self.environment
        working_dir = options.get("working_dir") or env.get("CODESPACE_WORKSPACE")
        working_dir = str(working_dir or self.workspace)
        claim = options.get("workspace_claim") or env.get("CODESPACE_WORKSPACE_CLAIM")
        mount = options.get("workspace_mount")
        same_node = options.get("same_node", "auto")
        pod = None
        if env.get("HOSTNAME") and (not claim or not mount or same_node is not False):
            pod = await self.api.own_pod(env["HOSTNAME"])
        found = pod_workspace(pod, working_dir) if pod else None
        if found is not None:
            claim, mount = claim or found[0], mount or found[1]
        if not claim:
            raise JobError(
                "argo backend: no workspace volume for jobs: set its workspace_claim option "
                "(or CODESPACE_WORKSPACE_CLAIM)"
            )
        affinity = None
        if pod is not None and same_node is not False:
            pvc = await self.api.claim(claim) if same_node == "auto" else None
            modes = ((pvc or {}).get("spec") or {}).get("accessModes") or []
            if same_node is True or (pvc is not None and "ReadWriteMany" not in modes):
                affinity = next_to(pod)
        self._context = ArgoContext(
            image=str(options.get("image") or env.get("CODESPACE_IMAGE") or ""),
            namespace=self.api.namespace,
            owner=self.owner,
            workspace_claim=str(claim),
            workspace_mount=str(mount or "/workspaces"),
            working_dir=working_dir,
            env=launch_env(env),
            datasets=dataset_paths(env),
            profiles=tuple(self.profiles),
            profile=options.get("profile"),
            service_account=options.get("service_account"),
            run_as_user=options.get("run_as_user", 1000),
            fs_group=options.get("fs_group", 100),
            affinity=affinity,
            pull_secrets=tuple(options.get("pull_secrets") or ()),
            labels=dict(options.get("labels") or {}),
            ttl_seconds=options.get("ttl_seconds"),
        )
        return self._context

    def _mine(self, workflow: dict | None) -> bool:
        meta = (workflow or {}).get("metadata") or {}
        return (meta.get("annotations") or {}).get(OWNER_ANNOTATION) == self.owner and (
            meta.get("labels") or {}
        ).get(MANAGED_BY) == "codespace"

    def _records(self, workflow: dict) -> list[JobRecord]:
        return job_records(workflow, self.kind)

    async def _keyed(self, key: str) -> dict | None:
        selector = (
            f"{OWNER_LABEL}={label_value(self.owner)},{KEY_LABEL}={key_hash(self.owner, key)[:40]}"
        )
        for workflow in await self.api.list(selector):
            annotations = workflow["metadata"].get("annotations") or {}
            if self._mine(workflow) and annotations.get(KEY_ANNOTATION) == key:
                return workflow
        return None

    async def submit(self, submission: Submission) -> list[JobRecord]:
        key = submission.idempotencyKey
        if key:
            existing = await self._keyed(key)
            if existing is not None:
                return self._records(existing)
        context = await self.context()
        sid = keyed_submission_id(self.owner, key) if key else secrets.token_hex(6)
        from codespace.jobs.argo_workflow import build_workflow

        # The first build imports Hera (~1.8 s): off the server's event loop.
        workflow = await asyncio.to_thread(build_workflow, submission, sid, context)
        try:
            return self._records(await self.api.create(workflow))
        except Conflict:
            existing = await self.api.get(workflow_name(sid))
            annotations = ((existing or {}).get("metadata") or {}).get("annotations") or {}
            if key and self._mine(existing) and annotations.get(KEY_ANNOTATION) == key:
                return self._records(existing)  # type: ignore[arg-type]
            raise JobError(f"a workflow named {workflow_name(sid)} exists already") from None

    async def list(self) -> list[JobRecord]:
        selector = f"{MANAGED_BY}=codespace,{OWNER_LABEL}={label_value(self.owner)}"
        ranked = []
        for workflow in await self.api.list(selector):
            if not self._mine(workflow):
                continue
            try:
                records = self._records(workflow)
            except JobError:  # labelled as ours, but not a submission (edited by hand)
                continue
            ranked += [(r.submitted, position, r) for position, r in enumerate(records)]
        ranked.sort(key=lambda item: item[:2], reverse=True)
        return [record for *_, record in ranked]

    async def _workflow(self, job_id: str) -> tuple[dict, JobRecord]:
        parts = split_job_id(job_id)
        workflow = await self.api.get(workflow_name(parts[0])) if parts else None
        if parts is None or workflow is None or not self._mine(workflow):
            raise JobNotFound(job_id)
        for record in self._records(workflow):
            if record.name == parts[1]:
                return workflow, record
        raise JobNotFound(job_id)

    async def get(self, job_id: str) -> JobRecord:
        return (await self._workflow(job_id))[1]

    async def logs(self, job_id: str, tail: int | None = None) -> str:
        workflow, record = await self._workflow(job_id)
        parts = await self.api.pod_logs(workflow["metadata"]["name"], record.name, tail)
        if len(parts) == 1:
            text = parts[0][1]
        else:
            sections = []
            for label, body in parts:
                end = "" if not body or body.endswith("\n") else "\n"
                sections.append(f"==> {label} <==\n{body}{end}")
            text = "".join(sections)
        if tail is None:
            return text
        return "".join(text.splitlines(keepends=True)[-tail:]) if tail > 0 else ""

    async def cancel(self, job_id: str) -> JobRecord:
        workflow, record = await self._workflow(job_id)
        if record.done:
            return record
        updated = await self.api.shutdown(workflow["metadata"]["name"], self.strategy)
        if updated is None:
            raise JobNotFound(job_id)
        return next(r for r in self._records(updated) if r.name == record.name)

    async def close(self) -> None:
        await self.api.close()
