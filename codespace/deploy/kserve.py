"""KServe: a deployment as an ``InferenceService`` and its ``ServingRuntime`` (pure builders).

:func:`inference_service` turns a :class:`~codespace.deploy.models.DeploymentSpec` and the
codespace's side (:class:`KServeContext`: namespace, owner, image, mode, the launch plan's
variables, the admin's GPU profiles) into a ``serving.kserve.io/v1beta1`` InferenceService;
:func:`serving_runtime` builds the ``serving.kserve.io/v1alpha1`` ServingRuntime it runs in;
:func:`deployment_record` reads one back as a :class:`DeploymentRecord`. No I/O here.

Choices (:mod:`codespace.deploy.kserve_backend` points here):

- **Names.** Users of one namespace may pick the same name, so the objects are named
  :func:`kube_name`: the name (cut to 38 characters) and 6 hex digits of a hash of owner
  and name -- at most 45 characters, like every deployment name, short enough for the names
  KServe and Knative derive (``<name>-predictor-00001``). The record keeps the user's name:
  labels ``codespace.io/owner`` (label-safe form of the owner), ``codespace.io/deployment``
  and ``app.kubernetes.io/managed-by: codespace``; the owner's exact name, the spec and the
  warnings are annotations. The model is served under the user's name
  (``/v2/models/<name>/infer``, as the local backend does).
- **Runtime (protocol v2).** One ServingRuntime per deployment, same name, running the
  **codespace's own image** (``CODESPACE_IMAGE``) with the repository environment's Python
  (``$VIRTUAL_ENV/bin/python``): ``python -m mlserver.cli.main start /mnt/models`` (that is
  ``mlserver start``; MLServer 1.7 has no ``python -m mlserver``) configured by ``MLSERVER_*``
  variables only (model name, the format's MLServer runtime, ``MLSERVER_MODEL_URI`` = the
  artifact under ``/mnt/models``, ports 8080/9000, ``parallel_workers`` 0), so the model loads
  with the library versions it was trained with. A shell preamble checks that the
  environment can import MLServer and the format's runtime and otherwise says so in the
  pod's log. ``autoSelect`` is false: no other InferenceService of the namespace picks it.
- **Protocol v1.** MLServer serves only v2, so v1 uses KServe's own Python model servers
  (the ``kserve-sklearnserver`` / ``kserve-xgbserver`` ClusterServingRuntimes, picked by
  KServe for the format and ``protocolVersion: v1``): their image, not the codespace's, and
  they name the model after the InferenceService (both said in the record's warnings).
- **storageUri.** ``s3://``, ``gs://``, ``pvc://``, ``https://`` pass through; a workspace
  path ``p`` becomes ``pvc://<workspace claim>/<checkout in the claim>/p``; a path
  ``datasets/<dataset>/rest`` becomes ``pvc://<dataset>/rest`` (Fluid makes one PVC named
  after each bound Dataset). KServe's storage initializer links or downloads it under
  ``/mnt/models``.
- **Modes.** ``Serverless`` (Knative): ``minReplicas: 0`` scales to zero; the idle time is
  Knative's per-revision ``autoscaling.knative.dev/scale-to-zero-pod-retention-period``
  (KServe passes InferenceService annotations to the revision): the last pod stays at least
  that long after the autoscaler, seeing no requests in its window (60 s by default),
  decides on zero. ``RawDeployment``: a
  Deployment cannot scale to zero (kserve#4007), so ``minReplicas: 0`` becomes 1 with a
  warning. The legacy mode names are written (newer KServe reads them as Knative/Standard).
- **GPU.** The profile logic of the Kubernetes spawner (:mod:`codespace.kube.gpu`): the
  site's profiles decide the extended resources, node selector, tolerations, runtime class
  and scheduler; without profiles, whole ``nvidia.com/gpu`` devices.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from codespace.datasets.mounts import DATASETS_ENV
from codespace.deploy.formats import FORMATS, ModelFormat, supported
from codespace.deploy.models import (
    URI_SCHEMES,
    DeploymentRecord,
    DeploymentSpec,
    DeploymentState,
    endpoint,
)
from codespace.deploy.serving import IMAGE_SERVING_PREFIX
from codespace.jobs.argo_workflow import MANAGED_BY, OWNER_ANNOTATION, OWNER_LABEL, label_value
from codespace.kube.config import Profile
from codespace.kube.gpu import GpuPlan, GpuUnsatisfiable, plan_workload_gpu
from codespace.kube.quantity import to_bytes

GROUP = "serving.kserve.io"
ISVC_API, ISVC_KIND, ISVC_PLURAL = f"{GROUP}/v1beta1", "InferenceService", "inferenceservices"
RUNTIME_API, RUNTIME_KIND, RUNTIME_PLURAL = f"{GROUP}/v1alpha1", "ServingRuntime", "servingruntimes"
ISVC_POD_LABEL = "serving.kserve.io/inferenceservice"  # KServe's, on the predictor's pods
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
RETENTION_ANNOTATION = "autoscaling.knative.dev/scale-to-zero-pod-retention-period"
DEPLOYMENT_LABEL = "codespace.io/deployment"
SPEC_ANNOTATION = "codespace.io/deployment-spec"
WARNINGS_ANNOTATION = "codespace.io/warnings"
MODEL_ANNOTATION = "codespace.io/model-name"
CONTAINER = "kserve-container"  # the name KServe merges the predictor's model container into
MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts the artifact
HTTP_PORT, GRPC_PORT = 8080, 9000
DATASETS_DIR = "datasets"  # workspace paths datasets/<name>/... are the dataset's PVC
Mode = Literal["Serverless", "RawDeployment"]
MODES: dict[str, Mode] = {
    "Serverless": "Serverless",
    "Knative": "Serverless",
    "RawDeployment": "RawDeployment",
    "Standard": "RawDeployment",
}
# KServe's own Python model servers for protocol v1, and the files each one loads.
V1_SERVERS = {
    "sklearn": ("kserve-sklearnserver", (".joblib", ".pkl", ".pickle")),
    "xgboost": ("kserve-xgbserver", (".bst", ".json", ".ubj")),
}
# Ready=False while a RawDeployment's first pod starts: not a failure yet.
STARTING_REASONS = {"MinimumReplicasUnavailable", "RevisionMissing", "Deploying"}
# Pod states that do not get better by waiting.
BROKEN_WAITING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
                  "CreateContainerConfigError", "CreateContainerError"}  # fmt: skip
HF_TASKS = (  # Hugging Face architecture suffix -> MLServer (transformers) pipeline task
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("ForSeq2SeqLM", "text2text-generation"),
    ("ForImageClassification", "image-classification"),
)
# "$1": the environment's python, "$2": the modules it must import; the rest: its arguments.
PREFLIGHT = """python="$1"; modules="$2"; shift 2
if [ -x "$CODESPACE_SERVING_PYTHON" ]; then python="$CODESPACE_SERVING_PYTHON"; fi
if ! out=$("$python" -c "import $modules" 2>&1); then
  printf '%s\\n' "$out" | tail -n 3 >&2
  echo "codespace: $python cannot import $modules: to deploy on Kubernetes the codespace's \
environment needs MLServer and the runtime of the model's format ($CODESPACE_SERVING_PACKAGES)" >&2
  exit 3
fi
exec "$python" "$@"
"""
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


class KServeSpecError(ValueError):
    """A deployment KServe cannot serve as asked; the message says why."""


@dataclass(frozen=True)
class KServeContext:
    """The codespace's side of a deployment (plain data)."""

    namespace: str
    owner: str
    image: str  # the codespace's image (CODESPACE_IMAGE)
    mode: Mode = "RawDeployment"
    python: str = "python"  # the repository environment's python in that image
    env: Mapping[str, str] = field(default_factory=dict)  # the launch plan's variables
    profiles: Sequence[Profile] = ()  # the admin's profiles (GPU modes); none: whole GPUs
    profile: str | None = None  # always this profile (else the first that fits)
    service_account: str | None = None  # e.g. one with object-storage credentials
    run_as_user: int | None = 1000  # as the codespace's server (reads the workspace)
    pull_secrets: Sequence[str] = ()
    labels: Mapping[str, str] = field(default_factory=dict)  # extra, on both objects
    affinity: Mapping[str, Any] | None = None  # e.g. near the codespace (RWO workspace)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", mode_of(self.mode))  # Knative/Standard spelt too


# -- names and URIs ------------------------------------------------------------------------


def kube_name(owner: str, name: str) -> str:
    """The objects' name: unique per (owner, name) in a shared namespace, at most 45."""
    digest = hashlib.sha256(f"{owner}\0{name}".encode()).hexdigest()[:6]
    return f"{name[:38].rstrip('-')}-{digest}"


def mode_of(value: str | None) -> Mode:
    """``Serverless`` or ``RawDeployment`` (KServe's newer ``Knative`` / ``Standard`` too)."""
    mode = MODES.get(value or "RawDeployment")
    if mode is None:
        raise KServeSpecError(f"mode {value!r}: use Serverless (Knative) or RawDeployment")
    return mode


def storage_uri(artifact: str, *, workspace_claim: str | None, workspace_subpath: str = "") -> str:
    """Where KServe fetches ``artifact`` from (see the module's docstring)."""
    if artifact.startswith(URI_SCHEMES):
        return artifact
    parts = PurePosixPath(artifact).parts
    if len(parts) >= 2 and parts[0] == DATASETS_DIR:
        return "/".join(["pvc:/", parts[1], *parts[2:]])
    if not workspace_claim:
        raise KServeSpecError(
            f"{artifact} is in the workspace, but the workspace volume is not known: set the "
            "kserve backend's workspace_claim option (or CODESPACE_WORKSPACE_CLAIM)"
        )
    path = posixpath.normpath(posixpath.join(workspace_subpath or ".", artifact)).lstrip("/")
    return f"pvc://{workspace_claim}/{path}"


def model_uri(artifact: str, fmt: ModelFormat) -> str:
    """The model's path in the server's container: the file under ``/mnt/models``, or the
    directory itself (a directory format, or a URI that names no file of the format)."""
    name = PurePosixPath(artifact.split("://", 1)[-1]).name
    if fmt.marker is None and name and PurePosixPath(name).suffix.lower() in fmt.suffixes:
        return f"{MODEL_DIR}/{name}"
    return MODEL_DIR


def format_from_name(artifact: str, declared: str | None) -> ModelFormat:
    """The format of an artifact that cannot be read here: declared, or its suffix's."""
    if declared is not None:
        if declared not in FORMATS:
            raise KServeSpecError(f"format {declared!r} is not supported; supported: {supported()}")
        return FORMATS[declared]
    suffix = PurePosixPath(artifact.split("://", 1)[-1]).suffix.lower()
    found = [fmt for fmt in FORMATS.values() if suffix and suffix in fmt.suffixes]
    if len(found) == 1:
        return found[0]
    raise KServeSpecError(
        f"the format of {artifact} cannot be told from here: give format "
        f"(one of {', '.join(FORMATS)})"
    )


def prefer_node_of(pod: Mapping[str, Any]) -> dict[str, Any]:
    """A preferred affinity to the node of ``pod`` (the codespace's server, KubeSpawner's
    labels): preferred, so the server still starts once the codespace is gone."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    keys = ("hub.jupyter.org/username", "hub.jupyter.org/servername", "component")
    selector = {key: labels[key] for key in keys if key in labels} or dict(labels)
    term = {"labelSelector": {"matchLabels": selector}, "topologyKey": "kubernetes.io/hostname"}
    weighted = {"weight": 100, "podAffinityTerm": term}
    return {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [weighted]}}


def hf_task(config: Mapping[str, Any]) -> str | None:
    """The pipeline task of a Hugging Face model from its ``config.json`` architectures."""
    for architecture in config.get("architectures") or []:
        for suffix, task in HF_TASKS:
            if str(architecture).endswith(suffix):
                return task
    return None


# -- checks, resources ----------------------------------------------------------------------


def check_supported(spec: DeploymentSpec, fmt: ModelFormat) -> None:
    """Refuse what no runtime serves, before anything is created."""
    if spec.protocol == "v2":
        if fmt.mlserver_runtime is None:
            raise KServeSpecError(
                f"{fmt.description} models: MLServer has no runtime for them and KServe's "
                "Triton needs a model repository; supported with protocol v2: "
                + ", ".join(f.name for f in FORMATS.values() if f.mlserver_runtime)
            )
        return
    server = V1_SERVERS.get(fmt.name)
    if server is None:
        raise KServeSpecError(
            f"protocol v1 is served by KServe's model servers for {', '.join(V1_SERVERS)} "
            f"models, not {fmt.name}: deploy it with protocol v2"
        )
    name = PurePosixPath(spec.artifact.split("://", 1)[-1]).name
    if PurePosixPath(name).suffix.lower() not in server[1]:
        raise KServeSpecError(
            f"KServe's {server[0]} loads {', '.join(server[1])} files, not {name}: "
            "rename the model file or deploy it with protocol v2"
        )


def gpu_plan(spec: DeploymentSpec, ctx: KServeContext) -> tuple[GpuPlan, Profile | None]:
    """The deployment's GPU share under the site's profiles (whole NVIDIA GPUs without)."""
    try:
        return plan_workload_gpu(spec.resources.gpu, ctx.profiles, ctx.profile, "kserve")
    except GpuUnsatisfiable as error:
        raise KServeSpecError(f"resources.gpu: {error}") from None


def _memory(value: str) -> str:
    try:
        size = to_bytes(value)
    except ValueError:
        raise KServeSpecError(
            f"resources.memory: {value!r} is not a quantity such as '2Gi'"
        ) from None
    return value if _QUANTITY.match(value) else str(size)


def resources(spec: DeploymentSpec, gpu: GpuPlan) -> dict[str, dict[str, str]]:
    """Requests = limits for cpu and memory (the server gets what it asked); GPUs as limits."""
    amounts: dict[str, str] = {}
    if spec.resources.cpu is not None:
        amounts["cpu"] = f"{spec.resources.cpu:g}"
    if spec.resources.memory is not None:
        amounts["memory"] = _memory(spec.resources.memory)
    result: dict[str, dict[str, str]] = {}
    if amounts:
        result["requests"] = dict(amounts)
    if limits := {**amounts, **gpu.limits}:
        result["limits"] = limits
    return result


def _env_list(env: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": key, "value": str(value)} for key, value in env.items()]


def _metadata(spec: DeploymentSpec, ctx: KServeContext, annotations: dict) -> dict[str, Any]:
    labels = {
        **ctx.labels,
        MANAGED_BY: "codespace",
        OWNER_LABEL: label_value(ctx.owner),
        DEPLOYMENT_LABEL: spec.name,
    }
    return {
        "name": kube_name(ctx.owner, spec.name),
        "namespace": ctx.namespace,
        "labels": labels,
        "annotations": {OWNER_ANNOTATION: ctx.owner, **annotations},
    }


# -- the objects ----------------------------------------------------------------------------


def runtime_env(
    spec: DeploymentSpec, fmt: ModelFormat, ctx: KServeContext, extra: Mapping[str, str]
) -> dict[str, str]:
    """The launch plan's variables, then MLServer's settings for this one model."""
    env = {key: value for key, value in ctx.env.items() if key != DATASETS_ENV}
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(
        MLSERVER_MODEL_NAME=spec.name,
        MLSERVER_MODEL_IMPLEMENTATION=str(fmt.mlserver_runtime),
        MLSERVER_MODEL_URI=model_uri(spec.artifact, fmt),
        MLSERVER_HTTP_PORT=str(HTTP_PORT),
        MLSERVER_GRPC_PORT=str(GRPC_PORT),
        MLSERVER_PARALLEL_WORKERS="0",  # the worker pool fails under uvloop 0.22+ (FACTS.md)
        CODESPACE_SERVING_PACKAGES=f"mlserver {fmt.mlserver_package}",
        # the image's serving layer (codespace.deploy.image_layer), used when it is there
        CODESPACE_SERVING_PYTHON=f"{IMAGE_SERVING_PREFIX}/bin/python",
    )
    env.update(extra)
    return env


def serving_runtime(
    spec: DeploymentSpec,
    fmt: ModelFormat,
    ctx: KServeContext,
    *,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ServingRuntime of a v2 deployment: MLServer in the codespace's image."""
    check_supported(spec, fmt)
    if spec.protocol != "v2":
        raise KServeSpecError("protocol v1 runs in KServe's own runtimes: no ServingRuntime")
    if not ctx.image:
        raise KServeSpecError(
            "no image to serve in: set CODESPACE_IMAGE or the kserve backend's image option"
        )
    modules = ", ".join(["mlserver", str(fmt.mlserver_runtime).rsplit(".", 1)[0]])
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": ctx.image,
        "command": ["sh", "-c", PREFLIGHT, "codespace-model-server", ctx.python, modules],
        "args": ["-m", "mlserver.cli.main", "start", MODEL_DIR],
        "env": _env_list(runtime_env(spec, fmt, ctx, extra_env or {})),
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if ctx.run_as_user is not None:
        container["securityContext"]["runAsUser"] = ctx.run_as_user
    body: dict[str, Any] = {
        "supportedModelFormats": [{"name": fmt.name, "autoSelect": False}],
        "protocolVersions": ["v2"],
        "multiModel": False,
        "containers": [container],
    }
    if ctx.pull_secrets:
        body["imagePullSecrets"] = [{"name": name} for name in ctx.pull_secrets]
    return {
        "apiVersion": RUNTIME_API,
        "kind": RUNTIME_KIND,
        "metadata": _metadata(spec, ctx, {}),
        "spec": body,
    }


def _scaling(spec: DeploymentSpec, ctx: KServeContext, annotations: dict, warnings: list):
    """``(minReplicas, maxReplicas)`` in the mode, with its annotations and warnings."""
    low = spec.minReplicas
    if low == 0 and ctx.mode == "Serverless":
        annotations[RETENTION_ANNOTATION] = f"{spec.idleTimeout}s"
    elif low == 0:
        low = 1
        warnings.append(
            "RawDeployment cannot scale to zero (kserve#4007): one replica keeps running; "
            "the site's kserve backend needs mode Serverless (Knative) to scale to zero"
        )
    return low, max(spec.maxReplicas, low)


def _placement(predictor: dict, gpu: GpuPlan, profile: Profile | None, ctx: KServeContext):
    node_selector = {**(profile.nodeSelector if profile else {}), **gpu.node_selector}
    tolerations = [*(profile.tolerations if profile else []), *gpu.tolerations]
    optional = {
        "nodeSelector": node_selector or None,
        "tolerations": tolerations or None,
        "runtimeClassName": gpu.runtime_class_name,
        "schedulerName": gpu.scheduler_name,
        "serviceAccountName": ctx.service_account,
        "affinity": dict(ctx.affinity) if ctx.affinity else None,
    }
    predictor.update({key: value for key, value in optional.items() if value is not None})


def inference_service(
    spec: DeploymentSpec,
    fmt: ModelFormat,
    ctx: KServeContext,
    *,
    storage_uri: str,
    warnings: Sequence[str] = (),
) -> dict[str, Any]:
    """The InferenceService of ``spec`` (its ServingRuntime has the same name for v2)."""
    check_supported(spec, fmt)
    name = kube_name(ctx.owner, spec.name)
    notes = list(warnings)
    annotations: dict[str, str] = {MODE_ANNOTATION: ctx.mode}
    low, high = _scaling(spec, ctx, annotations, notes)
    gpu, profile = gpu_plan(spec, ctx)
    if gpu.note:
        notes.append(gpu.note)
    model: dict[str, Any] = {
        "modelFormat": {"name": fmt.name},
        "protocolVersion": spec.protocol,
        "storageUri": storage_uri,
    }
    model_name = spec.name
    if spec.protocol == "v2":
        model["runtime"] = name
    else:
        model_name = name
        notes.append(
            f"protocol v1 is served by KServe's {V1_SERVERS[fmt.name][0]} (its image, not the "
            f"codespace's environment); it names the model {name}"
        )
    if amounts := resources(spec, gpu):
        model["resources"] = amounts
    if gpu.granted:  # announced as on the notebook's pod (CODESPACE_GPU_*)
        model["env"] = _env_list(gpu.env)
    predictor: dict[str, Any] = {"minReplicas": low, "maxReplicas": high, "model": model}
    _placement(predictor, gpu, profile, ctx)
    stored = spec.model_dump(mode="json", exclude_none=True)
    annotations[SPEC_ANNOTATION] = json.dumps(stored, separators=(",", ":"), sort_keys=True)
    annotations[MODEL_ANNOTATION] = model_name
    if notes:
        annotations[WARNINGS_ANNOTATION] = json.dumps(notes)
    return {
        "apiVersion": ISVC_API,
        "kind": ISVC_KIND,
        "metadata": _metadata(spec, ctx, annotations),
        "spec": {"predictor": predictor},
    }


def owned_by(isvc: Mapping[str, Any]) -> dict[str, Any]:
    """The ownerReferences patch that lets Kubernetes delete a runtime with its service."""
    meta = isvc["metadata"]
    reference = {
        "apiVersion": ISVC_API,
        "kind": ISVC_KIND,
        "name": meta["name"],
        "uid": meta["uid"],
    }
    return {"metadata": {"ownerReferences": [reference]}}


# -- status -------------------------------------------------------------------------------


def _condition_text(condition: Mapping[str, Any]) -> str:
    reason, message = condition.get("reason") or "", condition.get("message") or ""
    if reason and message:
        return f"{reason}: {message}"
    return message or reason


def _failure(model_status: Mapping[str, Any], conditions: list[dict]) -> str | None:
    """Why the model failed to load, when KServe's modelStatus says it did."""
    states = model_status.get("states") or {}
    transition = model_status.get("transitionStatus")
    if states.get("targetModelState") != "FailedToLoad" and transition not in (
        "BlockedByFailedLoad",
        "InvalidSpec",
    ):
        return None
    info = model_status.get("lastFailureInfo") or {}
    if info.get("message") or info.get("reason"):
        return _condition_text(info)
    failed = next((c for c in conditions if c.get("status") == "False"), None)
    return _condition_text(failed) if failed else "the model failed to load"


def deployment_state(isvc: Mapping[str, Any]) -> tuple[DeploymentState, str]:
    """``(state, reason)`` from ``status.conditions`` and ``status.modelStatus``."""
    status = isvc.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if c.get("type")]
    by_type = {c["type"]: c for c in conditions}
    model_status = status.get("modelStatus") or {}
    failure = _failure(model_status, conditions)
    if failure is not None:
        return "failed", failure
    ready = by_type.get("Ready") or {}
    if ready.get("status") == "True":
        if not status.get("url"):
            return "loading", "ready, waiting for its URL"
        copies = (model_status.get("copies") or {}).get("totalCopies")
        mode = (isvc.get("metadata", {}).get("annotations") or {}).get(MODE_ANNOTATION)
        if copies == 0 and MODES.get(mode or "") == "Serverless":
            return "idle", "scaled to zero: the next request starts it (a cold start)"
        return "ready", ""
    if ready.get("status") == "False":
        if ready.get("reason") == "Stopped":
            return "failed", "stopped (serving.kserve.io/stop)"
        if ready.get("reason") in STARTING_REASONS:
            return "loading", _condition_text(ready)
        return "failed", _condition_text(ready) or "not ready (no reason given by KServe)"
    if not conditions:
        return "creating", "waiting for the KServe controller"
    states = model_status.get("states") or {}
    pending = next((c for c in conditions if c.get("status") != "True"), None)
    text = _condition_text(pending) if pending else ""
    if "Loading" in (states.get("targetModelState"), states.get("activeModelState")):
        return "loading", f"loading the model: {text}" if text else "loading the model"
    return "creating", text or "starting"


def pod_problem(pods: Sequence[Mapping[str, Any]]) -> tuple[bool, str, Mapping] | None:
    """``(broken, why, pod)`` when one of the predictor's pods cannot run, else None: a
    crash loop or an image that cannot be pulled is broken; an unschedulable pod may fit."""
    for pod in pods:
        status = pod.get("status") or {}
        statuses = [
            *(status.get("initContainerStatuses") or []),
            *(status.get("containerStatuses") or []),
        ]
        for container in statuses:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in BROKEN_WAITING:
                text = _condition_text(waiting)
                return True, f"container {container.get('name')}: {text}", pod
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                text = _condition_text(condition)
                return False, f"pod {pod['metadata']['name']} cannot be scheduled yet: {text}", pod
    return None


def _time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def deployment_record(isvc: Mapping[str, Any], backend: str = "kserve") -> DeploymentRecord:
    """A codespace InferenceService as the record every backend returns (ValueError when
    it carries no deployment spec)."""
    meta = isvc.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    if SPEC_ANNOTATION not in annotations:
        raise ValueError(f"InferenceService {meta.get('name')} is not a codespace deployment")
    spec = DeploymentSpec.model_validate_json(annotations[SPEC_ANNOTATION])
    model = ((isvc.get("spec") or {}).get("predictor") or {}).get("model") or {}
    state, reason = deployment_state(isvc)
    url = (isvc.get("status") or {}).get("url")
    model_name = annotations.get(MODEL_ANNOTATION) or spec.name
    return DeploymentRecord(
        name=spec.name,
        owner=annotations.get(OWNER_ANNOTATION, ""),
        backend=backend,
        state=state,
        reason=reason,
        format=spec.format or (model.get("modelFormat") or {}).get("name") or "",
        protocol=spec.protocol,
        created=_time(meta.get("creationTimestamp")),
        endpoint=endpoint(url, model_name, spec.protocol) if url else None,
        warnings=json.loads(annotations.get(WARNINGS_ANNOTATION) or "[]"),
        spec=spec,
    )


def served_model(isvc: Mapping[str, Any]) -> str:
    """The name the model server serves the model under."""
    meta = isvc.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    return annotations.get(MODEL_ANNOTATION) or (meta.get("labels") or {})[DEPLOYMENT_LABEL]


def internal_url(isvc: Mapping[str, Any]) -> str | None:
    """The address to call from inside the cluster (``status.address.url``), else the URL."""
    status = isvc.get("status") or {}
    return (status.get("address") or {}).get("url") or status.get("url")
