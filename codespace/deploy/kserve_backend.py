"""Deployments on KServe: an ``InferenceService`` (and its ``ServingRuntime``) per deployment.

The objects come from the pure builders of :mod:`codespace.deploy.kserve` (names, runtime,
``storageUri``, modes and GPU are explained there); this module talks to the Kubernetes API
with kubernetes_asyncio (imported when first used) and to the model servers with httpx:

- ``create`` refuses a bad spec before anything is made (the format read from the artifact
  when this server sees it: the workspace or a mounted dataset; a format no runtime serves;
  a GPU no profile gives; no image). Then the ServingRuntime, then the InferenceService;
  when the second fails, the first is deleted. The runtime is owner-referenced by the service.
- ``list`` / ``get``: the owner's deployments only (the owner label selects, the exact owner
  annotation decides); another user's name is :class:`DeploymentNotFound`. States come from
  ``status.conditions`` / ``status.modelStatus``; while starting, the predictor pods too: a
  crash loop or an image that cannot be pulled is ``failed`` with the log's last lines.
- ``logs``: the ``kserve-container`` log of the predictor pods
  (``serving.kserve.io/inferenceservice=<name>``), the previous run's after a restart.
- ``predict``: to ``status.address.url`` (in the cluster; else ``status.url``) plus the infer
  path; Knative's activator holds a request to a deployment scaled to zero while it starts.

A workspace artifact is read from the workspace PVC: when it is ReadWriteOnce, the predictor
prefers the codespace's node (preferred, so it still starts once the codespace is gone).

Options (``DeploySettings.options``), all optional:

================ ==========================================================================
mode             ``RawDeployment`` (default) or ``Serverless`` (Knative: scale to zero)
namespace        default ``$POD_NAMESPACE``, the service account's, else ``default``
image            the image to serve in (default ``$CODESPACE_IMAGE``)
python           its Python (default ``$VIRTUAL_ENV/bin/python`` of the launch plan)
workspace_claim  the workspace PVC (default ``$CODESPACE_WORKSPACE_CLAIM``)
workspace_mount  where the codespace mounts it (default ``/workspaces``)
working_dir      the checkout (default ``$CODESPACE_WORKSPACE``, else the server's workspace)
same_node        ``auto`` (default: prefer the codespace's node for a RWO workspace), false
profiles,profile the admin's profiles (GPU sharing modes), as in the Kubernetes config
service_account  the predictor's (object-storage credentials); ``pull_secrets``, ``labels``
run_as_user      the model server's uid (default 1000)
api_url          the API server, with ``token`` or ``token_file`` (read at each request),
                 ``ca``, ``verify_ssl``; else in-cluster config, else ``kubeconfig``
timeout          seconds a prediction may take, a cold start included (default 300)
================ ==========================================================================
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Self

from codespace.deploy import kserve as ks
from codespace.deploy.backend import (
    BackendUnavailable,
    DeployBackend,
    DeployError,
    DeploymentExists,
    DeploymentNotFound,
    DeploySettings,
    Response,
)
from codespace.deploy.formats import FormatError, ModelFormat, detect
from codespace.deploy.models import URI_SCHEMES, DeploymentRecord, DeploymentSpec, endpoint
from codespace.jobs.argo import dataset_paths, launch_env
from codespace.jobs.argo_workflow import MANAGED_BY, OWNER_ANNOTATION, OWNER_LABEL, label_value
from codespace.kube.client import Conflict, KubeClient, namespace_from
from codespace.kube.config import Profile, backend_profiles

OPTIONS = {
    "mode", "namespace", "image", "python", "workspace_claim", "workspace_mount", "working_dir",
    "same_node", "profiles", "profile", "service_account", "pull_secrets", "labels",
    "run_as_user", "api_url", "token", "token_file", "ca", "verify_ssl", "kubeconfig", "timeout",
}  # fmt: skip
LOG_LINES_IN_REASON = 5


def _not_installed(api_version: str, plural: str) -> BackendUnavailable:
    return BackendUnavailable(f"the Kubernetes API has no {api_version} {plural}: no KServe?")


class KubeApi(KubeClient):
    """The few calls the backend makes on one namespace (see :class:`KubeClient`; the
    connection options are the backend's ``api_url``, ``token``, ``token_file``, ``ca``,
    ``verify_ssl`` and ``kubeconfig``); other refusals are DeployError."""

    unavailable, refused = BackendUnavailable, DeployError

    async def _custom(self, method: str, api_version: str, plural: str, *args, **kwargs):
        version = api_version.rpartition("/")[2]
        return await self._call(
            "CustomObjectsApi", method, ks.GROUP, version, self.namespace, plural, *args, **kwargs
        )

    async def create(self, api_version: str, plural: str, body: dict) -> dict:
        try:
            return await self._custom("create_namespaced_custom_object", api_version, plural, body)
        except LookupError as error:
            raise _not_installed(api_version, plural) from error

    async def get(self, api_version: str, plural: str, name: str) -> dict | None:
        try:
            return await self._custom("get_namespaced_custom_object", api_version, plural, name)
        except LookupError:
            return None

    async def list(self, api_version: str, plural: str, selector: str) -> list[dict]:
        method = "list_namespaced_custom_object"
        try:
            listing = await self._custom(method, api_version, plural, label_selector=selector)
        except LookupError as error:
            raise _not_installed(api_version, plural) from error
        return listing.get("items") or []

    async def replace(self, api_version: str, plural: str, name: str, body: dict) -> dict:
        method = "replace_namespaced_custom_object"
        return await self._custom(method, api_version, plural, name, body)

    async def patch(self, api_version: str, plural: str, name: str, body: dict) -> dict:
        method = "patch_namespaced_custom_object"
        merge = "application/merge-patch+json"  # custom resources take no strategic merge
        return await self._custom(method, api_version, plural, name, body, _content_type=merge)

    async def delete(self, api_version: str, plural: str, name: str) -> bool:
        try:
            await self._custom("delete_namespaced_custom_object", api_version, plural, name)
        except LookupError:
            return False
        return True

    async def pods(self, selector: str) -> list[dict]:
        method = "list_namespaced_pod"
        listing = await self._serialized(
            "CoreV1Api", method, self.namespace, label_selector=selector
        )
        return listing.get("items") or []

    async def pod_log(self, pod: str, container: str, tail: int | None, previous=False) -> str:
        kwargs: dict[str, Any] = {"container": container, "tail_lines": tail}
        kwargs = {k: v for k, v in {**kwargs, "previous": previous or None}.items() if v}
        try:
            method = "read_namespaced_pod_log"
            return await self._call("CoreV1Api", method, pod, self.namespace, **kwargs) or ""
        except (LookupError, DeployError):  # gone, or its container has not started
            return ""

    async def read(self, kind: str, name: str) -> dict | None:
        """A core object (``pod``, ``persistent_volume_claim``), None when unreadable."""
        try:
            method = f"read_namespaced_{kind}"
            return await self._serialized("CoreV1Api", method, name, self.namespace)
        except (LookupError, DeployError):
            return None


# -- options ------------------------------------------------------------------------------


def _check_options(options: Mapping[str, Any]) -> list[Profile]:
    profiles = backend_profiles("kserve", options, OPTIONS, DeployError)
    try:
        ks.mode_of(options.get("mode"))
    except ks.KServeSpecError as error:
        raise DeployError(f"kserve backend: {error}") from None
    if options.get("same_node", "auto") not in ("auto", False):
        raise DeployError("kserve backend: same_node is 'auto' or false")
    return profiles


# -- the backend --------------------------------------------------------------------------


class KServeDeployBackend(DeployBackend):
    """One InferenceService per deployment in the user's namespace; see the docstring."""

    kind = "kserve"

    def __init__(
        self,
        api: KubeApi,
        *,
        owner: str,
        workspace: Path,
        environment: Mapping[str, str] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.api = api
        self.owner = owner
        self.workspace = Path(workspace)
        self.environment = dict(environment or {})
        self.options = dict(options or {})
        self.profiles = _check_options(self.options)
        self.mode = ks.mode_of(self.options.get("mode"))
        self.timeout = float(self.options.get("timeout") or 300)
        self._http: Any = None

    @classmethod
    def from_settings(cls, settings: DeploySettings) -> Self:
        options, environment = dict(settings.options), dict(settings.environment)
        api = KubeApi(namespace_from(options, environment), options)
        owner, workspace = settings.owner, settings.workspace
        return cls(api, owner=owner, workspace=workspace, environment=environment, options=options)

    # -- what a deployment needs ------------------------------------------------------------

    def context(self, affinity: Mapping[str, Any] | None = None) -> ks.KServeContext:
        options, env = self.options, launch_env(self.environment)
        python = options.get("python")
        if not python:
            python = f"{env['VIRTUAL_ENV']}/bin/python" if env.get("VIRTUAL_ENV") else "python"
        return ks.KServeContext(
            namespace=self.api.namespace,
            owner=self.owner,
            image=str(options.get("image") or self.environment.get("CODESPACE_IMAGE") or ""),
            mode=self.mode,
            python=str(python),
            env=env,
            profiles=tuple(self.profiles),
            profile=options.get("profile"),
            service_account=options.get("service_account"),
            run_as_user=options.get("run_as_user", 1000),
            pull_secrets=tuple(options.get("pull_secrets") or ()),
            labels=dict(options.get("labels") or {}),
            affinity=affinity,
        )

    def local_path(self, artifact: str) -> Path | None:
        """Where this server sees ``artifact`` (None for a URI): the workspace, or for
        ``datasets/<name>/...`` the dataset's mount when the workspace has no such path."""
        if artifact.startswith(URI_SCHEMES):
            return None
        path = self.workspace / artifact
        parts = PurePosixPath(artifact).parts
        if path.exists() or len(parts) < 2 or parts[0] != ks.DATASETS_DIR:
            return path
        mount = dataset_paths(self.environment).get(parts[1]) or f"/datasets/{parts[1]}"
        return Path(mount, *parts[2:])

    def model_format(self, spec: DeploymentSpec) -> tuple[ModelFormat, dict[str, str]]:
        """The artifact's format (read from it when it can be), and runtime variables it
        needs (a Hugging Face pipeline's task)."""
        local = self.local_path(spec.artifact)
        is_dataset = PurePosixPath(spec.artifact).parts[0] == ks.DATASETS_DIR
        if local is not None and local.exists():
            try:
                fmt = detect(local, spec.format)
            except FormatError as error:
                raise DeployError(f"{spec.artifact}: {error}") from error
        elif local is not None and not is_dataset:
            raise DeployError(f"{spec.artifact}: no such file or directory in the workspace")
        else:
            try:
                fmt = ks.format_from_name(spec.artifact, spec.format)
            except ks.KServeSpecError as error:
                raise DeployError(str(error)) from None
        extra: dict[str, str] = {}
        if fmt.name == "huggingface":
            task = None
            if local is not None and (local / "config.json").is_file():
                try:
                    task = ks.hf_task(json.loads((local / "config.json").read_text("utf-8")))
                except (OSError, ValueError):
                    task = None
            if task is None:
                raise DeployError(
                    f"{spec.artifact}: the pipeline task of this Hugging Face model cannot be "
                    "told from its config.json 'architectures'"
                )
            extra["MLSERVER_MODEL_HUGGINGFACE_TASK"] = task
        return fmt, extra

    def _checkout_in_claim(self) -> str:
        checkout = str(
            self.options.get("working_dir")
            or self.environment.get("CODESPACE_WORKSPACE")
            or self.workspace
        )
        mount = str(self.options.get("workspace_mount") or "/workspaces")
        try:
            return str(PurePosixPath(checkout).relative_to(PurePosixPath(mount)))
        except ValueError:
            raise DeployError(
                f"the checkout {checkout} is not under the workspace volume's mount {mount}: "
                "set the kserve backend's workspace_mount (or working_dir) option"
            ) from None

    async def placement(self, spec: DeploymentSpec) -> tuple[str, dict | None, list[str]]:
        """``(storageUri, affinity, warnings)`` of the artifact."""
        parts = PurePosixPath(spec.artifact).parts
        if spec.artifact.startswith(URI_SCHEMES) or parts[0] == ks.DATASETS_DIR:
            return ks.storage_uri(spec.artifact, workspace_claim=None), None, []
        claim = self.options.get("workspace_claim") or self.environment.get(
            "CODESPACE_WORKSPACE_CLAIM"
        )
        try:
            uri = ks.storage_uri(
                spec.artifact, workspace_claim=claim, workspace_subpath=self._checkout_in_claim()
            )
        except ks.KServeSpecError as error:
            raise DeployError(str(error)) from None
        hostname = self.environment.get("HOSTNAME")
        if self.options.get("same_node", "auto") is False or not hostname:
            return uri, None, []
        pvc = await self.api.read("persistent_volume_claim", str(claim))
        modes = ((pvc or {}).get("spec") or {}).get("accessModes") or []
        pod = await self.api.read("pod", hostname) if pvc is not None else None
        if pod is None or "ReadWriteMany" in modes:
            return uri, None, []
        warning = (
            f"the workspace volume {claim} is ReadWriteOnce: the model server prefers this "
            "codespace's node; put the model on a dataset or object storage to serve it "
            "from any node"
        )
        return uri, ks.prefer_node_of(pod), [warning]

    # -- create ------------------------------------------------------------------------------

    async def create(self, spec: DeploymentSpec) -> DeploymentRecord:
        fmt, extra_env = self.model_format(spec)
        uri, affinity, warnings = await self.placement(spec)
        ctx = self.context(affinity)
        try:
            runtime = None
            if spec.protocol == "v2":
                runtime = ks.serving_runtime(spec, fmt, ctx, extra_env=extra_env)
            isvc = ks.inference_service(spec, fmt, ctx, storage_uri=uri, warnings=warnings)
        except ks.KServeSpecError as error:
            raise DeployError(str(error)) from None
        name = ks.kube_name(self.owner, spec.name)
        if await self.api.get(ks.ISVC_API, ks.ISVC_PLURAL, name) is not None:
            raise DeploymentExists(f"you already have a deployment named {spec.name!r}")
        made_runtime = runtime is not None and await self._create_runtime(runtime)
        try:
            created = await self.api.create(ks.ISVC_API, ks.ISVC_PLURAL, isvc)
        except BaseException as error:
            if made_runtime:  # leave nothing half-made behind
                await asyncio.shield(self._delete_quietly(ks.RUNTIME_API, ks.RUNTIME_PLURAL, name))
            if not isinstance(error, Conflict):
                raise
            taken = f"you already have a deployment named {spec.name!r}"
            raise DeploymentExists(taken) from None
        if runtime is not None:
            try:  # Kubernetes deletes the runtime with the service (belt and braces)
                await self.api.patch(ks.RUNTIME_API, ks.RUNTIME_PLURAL, name, ks.owned_by(created))
            except (LookupError, DeployError):
                pass
        return ks.deployment_record(created, self.kind)

    async def _create_runtime(self, runtime: dict) -> bool:
        """Create the ServingRuntime (True), or take over one left behind by an earlier
        create that failed half-way (False: this call did not make it)."""
        try:
            await self.api.create(ks.RUNTIME_API, ks.RUNTIME_PLURAL, runtime)
            return True
        except Conflict:
            pass
        name = runtime["metadata"]["name"]
        current = await self.api.get(ks.RUNTIME_API, ks.RUNTIME_PLURAL, name)
        owner = ((current or {}).get("metadata", {}).get("annotations") or {}).get(OWNER_ANNOTATION)
        if current is None or owner != self.owner:
            raise DeployError(f"a ServingRuntime named {name} exists and is not yours")
        body = {**runtime, "metadata": {**runtime["metadata"], **_version(current)}}
        await self.api.replace(ks.RUNTIME_API, ks.RUNTIME_PLURAL, name, body)
        return False

    async def _delete_quietly(self, api_version: str, plural: str, name: str) -> None:
        try:
            await self.api.delete(api_version, plural, name)
        except (DeployError, Conflict):
            pass

    # -- read --------------------------------------------------------------------------------

    def _selector(self) -> str:
        return f"{MANAGED_BY}=codespace,{OWNER_LABEL}={label_value(self.owner)}"

    def _mine(self, isvc: Mapping[str, Any], name: str | None = None) -> bool:
        meta = isvc.get("metadata") or {}
        if (meta.get("annotations") or {}).get(OWNER_ANNOTATION) != self.owner:
            return False
        return name is None or (meta.get("labels") or {}).get(ks.DEPLOYMENT_LABEL) == name

    async def _own(self, name: str) -> dict:
        isvc = await self.api.get(ks.ISVC_API, ks.ISVC_PLURAL, ks.kube_name(self.owner, name))
        if isvc is None or not self._mine(isvc, name):
            raise DeploymentNotFound(f"no deployment {name!r}")
        return isvc

    async def _record(self, isvc: dict) -> DeploymentRecord:
        """The record, with the predictor pods' trouble while it is starting."""
        record = ks.deployment_record(isvc, self.kind)
        if record.state not in ("creating", "loading"):
            return record
        pods = await self.api.pods(f"{ks.ISVC_POD_LABEL}={isvc['metadata']['name']}")
        problem = ks.pod_problem(pods)
        if problem is None:
            return record
        broken, why, pod = problem
        if not broken:
            return record.model_copy(update={"reason": why})
        tail = (await self._pod_text(pod, LOG_LINES_IN_REASON)).strip()
        reason = f"{why}\n{tail}" if tail else why
        return record.model_copy(update={"state": "failed", "reason": reason})

    async def list(self) -> builtins.list[DeploymentRecord]:
        objects = await self.api.list(ks.ISVC_API, ks.ISVC_PLURAL, self._selector())
        mine = []
        for isvc in objects:
            if not self._mine(isvc):
                continue
            try:
                ks.deployment_record(isvc, self.kind)
            except ValueError:
                continue  # labelled like ours, but no spec: not a deployment
            mine.append(isvc)
        records = await asyncio.gather(*(self._record(isvc) for isvc in mine))
        return sorted(records, key=lambda r: r.created.timestamp(), reverse=True)

    async def get(self, name: str) -> DeploymentRecord:
        isvc = await self._own(name)
        try:
            return await self._record(isvc)
        except ValueError as error:
            raise DeploymentNotFound(f"no deployment {name!r} ({error})") from None

    async def _pod_text(self, pod: Mapping[str, Any], tail: int | None) -> str:
        """The model server's log in ``pod`` (the previous run's when it restarted empty, the
        storage initializer's when it never started)."""
        name = pod["metadata"]["name"]
        text = await self.api.pod_log(name, ks.CONTAINER, tail)
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        ours = [s for s in statuses if s.get("name") == ks.CONTAINER]
        restarts = sum(int(s.get("restartCount") or 0) for s in ours)
        if not text.strip() and restarts:
            text = await self.api.pod_log(name, ks.CONTAINER, tail, previous=True)
        if not text.strip():  # the model never started: what fetching it said
            text = await self.api.pod_log(name, "storage-initializer", tail)
        lines = text.splitlines()
        if tail is not None:
            lines = lines[-tail:] if tail else []
        return "".join(f"{line}\n" for line in lines)

    async def logs(self, name: str, tail: int | None = None) -> str:
        isvc = await self._own(name)
        pods = await self.api.pods(f"{ks.ISVC_POD_LABEL}={isvc['metadata']['name']}")
        if not pods:
            record = ks.deployment_record(isvc, self.kind)
            if record.state == "idle":
                return "(scaled to zero: no model server is running; the next request starts one)\n"
            return f"(no model server pod yet: {record.state}, {record.reason})\n"
        pods.sort(
            key=lambda pod: (
                pod["metadata"].get("creationTimestamp") or "",
                pod["metadata"]["name"],
            )
        )
        texts = [await self._pod_text(pod, tail) for pod in pods]
        if len(pods) == 1:
            return texts[0]
        return "".join(
            f"==> {pod['metadata']['name']} <==\n{text}"
            for pod, text in zip(pods, texts, strict=True)
        )

    # -- act ---------------------------------------------------------------------------------

    async def delete(self, name: str) -> None:
        isvc = await self._own(name)
        kname = isvc["metadata"]["name"]
        await self.api.delete(ks.ISVC_API, ks.ISVC_PLURAL, kname)
        runtime = await self.api.get(ks.RUNTIME_API, ks.RUNTIME_PLURAL, kname)
        if runtime is not None and self._mine(runtime, name):
            await self.api.delete(ks.RUNTIME_API, ks.RUNTIME_PLURAL, kname)

    def _client(self) -> Any:
        if self._http is None:
            import httpx

            verify = self.options.get("verify_ssl", True)
            self._http = httpx.AsyncClient(timeout=self.timeout, verify=bool(verify))
        return self._http

    async def predict(self, name: str, body: bytes, path: str = "") -> Response:
        import httpx

        isvc = await self._own(name)
        record = ks.deployment_record(isvc, self.kind)
        base = ks.internal_url(isvc)
        if not base or record.endpoint is None:
            raise DeployError(
                f"deployment {name!r} has no URL yet ({record.state}: {record.reason})"
            )
        target = endpoint(base, ks.served_model(isvc), record.protocol).infer
        if path:
            target = base.rstrip("/") + "/" + path.lstrip("/")
        method = "POST" if body or not path else "GET"
        headers = {"Content-Type": "application/json"} if body else {}
        try:
            answer = await self._client().request(method, target, content=body, headers=headers)
        except httpx.HTTPError as error:
            raise DeployError(f"deployment {name!r}: {target}: {error!r}") from error
        kind = answer.headers.get("content-type", "application/json")
        return Response(answer.status_code, answer.content, kind)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self.api.close()


def _version(current: Mapping[str, Any]) -> dict[str, Any]:
    version = (current.get("metadata") or {}).get("resourceVersion")
    return {"resourceVersion": version} if version else {}
