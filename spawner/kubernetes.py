"""``KubeCodespaceSpawner``: KubeSpawner that launches a codespace pod from a repository.

KubeSpawner does all the Kubernetes work (pod, PVC, reflectors, stop, poll). This subclass
only decides *what* to launch, in :meth:`load_user_options` (KubeSpawner calls it at the
start of every spawn): read the repository's spec, plan with :mod:`codespace.kube`, check
the Fluid datasets, make sure the image exists (registry ``HEAD``, else a build Job whose
log streams into the progress), then set KubeSpawner's traits from the plan. Datasets a
running codespace recorded with ``mount()`` (a ConfigMap, :mod:`codespace.kube.pending`) are
mounted too when Bound. While the pod is pending, :meth:`is_pod_running` ends the spawn at
once on a pull error or an unschedulable pod. The spawn form lists the namespace's Fluid
Datasets (:meth:`render_options_form`).
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiException
from kubespawner import KubeSpawner
from kubespawner.clients import shared_client
from tornado import web
from traitlets import Bool, Dict, List, Unicode, default

from codespace.errors_file import ERRORS_FILE, env_problem, spec_problem
from codespace.git import checkout
from codespace.kube.config import KubeConfig, load_config, parse_config
from codespace.kube.image import ImageError
from codespace.kube.pending import pending_configmap_name, pending_env
from codespace.kube.plan import (
    ENTRYPOINT,
    OVERRIDE_TRAITS,
    KubePlan,
    Names,
    launch_plan,
    make_kube_plan,
)
from codespace.options import UserOptions
from codespace.resolve import default_resolution, resolve
from codespace.spec.errors import SpecError
from spawner.form import parse_form, render_form, validate_options
from spawner.kube.build import BuildFailed, run_build_job
from spawner.kube.datasets import check_datasets, list_datasets, usable_pending
from spawner.kube.failfast import EVENT_REASONS, WAITING_REASONS, pod_failure
from spawner.kube.form import dataset_choices
from spawner.kube.pending import delete_pending, read_pending
from spawner.kube.registry import Credentials, image_exists
from spawner.metrics import count_plan, environment_lookup, image_build, watch_start
from spawner.progress import ProgressLog
from spawner.ssh import kube_ssh_env
from spawner.traits import sources_trait

KSERVE_BACKEND = "codespace.deploy.kserve_backend.KServeDeployBackend"
FLUID_BACKEND = "codespace.datasets.fluid.FluidBackend"

# KubeSpawner traits whose strings it formats with user properties ("{username}"):
# our values are data, so their braces are escaped before they reach it.
EXPANDED_TRAITS = {
    "environment",
    "volumes",
    "volume_mounts",
    "init_containers",
    "extra_labels",
    "extra_annotations",
    "extra_pod_config",
}


def check_user_options(spawner: KubeCodespaceSpawner, user_options: dict[str, Any]) -> None:
    """Refuse bad options before the spawn starts (the API answers 400 with the reason): the
    values themselves, and a profile the Kubernetes document does not have. No side effects:
    the hub also calls it to check options before any server exists."""
    try:
        options = validate_options(user_options or {})
        wanted = options.get("profile")
        names = [profile.name for profile in spawner.kube_config().profiles]
        if wanted and wanted not in names:
            raise ValueError(f"profile {wanted!r} is not one of the hub's: {', '.join(names)}")
    except ValueError as error:
        raise web.HTTPError(400, str(error), reason=str(error)) from None


def escape_braces(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, list):
        return [escape_braces(item) for item in value]
    if isinstance(value, dict):
        return {key: escape_braces(item) for key, item in value.items()}
    return value


class KubeCodespaceSpawner(KubeSpawner):
    """Spawn codespaces from git repositories as Kubernetes pods."""

    codespace_config = Dict(
        config=True,
        help="""The Kubernetes document (registry, build, workspace, profiles) as a dict: the
        same document ``codespace plan --config`` reads. Ignored when codespace_config_file
        is set. Empty: the documented defaults (one CPU-only profile).""",
    )
    codespace_config_file = Unicode(
        "", config=True, help="Path of the Kubernetes document (YAML or JSON)."
    )
    registry_auth_file = Unicode(
        "",
        config=True,
        help="""A docker config JSON (``.dockerconfigjson``) with credentials for the
        manifest check; the build Job pushes with ``registry.pushSecret`` instead.""",
    )
    check_registry = Bool(
        True,
        config=True,
        help="Ask the registry whether the image exists before building (False: always build).",
    )
    fail_fast_waiting_reasons = List(
        Unicode(),
        default_value=list(WAITING_REASONS),
        config=True,
        help="Container waiting reasons that end a spawn at once (e.g. ImagePullBackOff).",
    )
    fail_fast_event_reasons = List(
        Unicode(),
        default_value=list(EVENT_REASONS),
        config=True,
        help="""Warning event reasons that end a spawn at once (FailedScheduling, unless the
        cluster autoscaler reports TriggeredScaleUp).""",
    )

    fluid_datasets = Bool(
        True,
        config=True,
        help="""Fluid datasets: list the namespace's Datasets in the spawn form, mount the ones
        a running codespace recorded with ``mount()`` (ConfigMap
        ``codespace-pending-<pod>``), and start the codespace's dataset API with the Fluid
        backend (``--CodespaceExtension.dataset_backend_class=`` the Fluid backend).""",
    )

    kserve_deploy = Bool(
        True,
        config=True,
        help="""Deployments go to KServe: the codespace's deploy API uses the KServe backend
        (``codespace.deploy.kserve_backend``: an InferenceService per deployment in the
        codespace's namespace, served from the codespace's image) as its only backend.""",
    )

    codespace_sources = sources_trait()

    codespace_plan: KubePlan | None = None

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return 1800  # includes an image build

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        # codespace-start applies the launch plan (variables, lifecycle commands,
        # CODESPACE_ERRORS.md), then runs the server: codespace.kube.entrypoint
        return [*ENTRYPOINT, "jupyterhub-singleuser"]

    @default("options_form")
    def _default_options_form(self) -> Any:
        return self.render_options_form  # JupyterHub awaits it each time the form is shown

    async def render_options_form(self, spawner: KubeCodespaceSpawner) -> str:
        """The spawn form: repository, ref, the profiles, and the namespace's Fluid Datasets
        (Bound ones selectable, the others shown disabled with their phase)."""
        profiles = [
            {"slug": p.name, "display_name": p.title, "description": p.description or ""}
            for p in spawner.kube_config().profiles
        ]
        datasets, unavailable, note = [], [], ""
        if spawner.fluid_datasets:
            try:
                objects = await list_datasets(shared_client("CustomObjectsApi"), spawner.namespace)
            except ApiException as error:
                spawner.log.warning("Cannot list Fluid Datasets: %s %s", error.status, error.reason)
                note = f"The datasets of namespace {spawner.namespace} cannot be listed now."
            else:
                datasets, unavailable = dataset_choices(objects)
                if datasets or unavailable:
                    note = (
                        f"Fluid datasets of namespace {spawner.namespace}, mounted at "
                        "/datasets/<name> with the ones the repository lists; only Bound "
                        "datasets can be picked."
                    )
        return render_form(
            profiles if len(profiles) > 1 else [],
            datasets=datasets,
            datasets_note=note,
            unavailable=unavailable,
        )

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return parse_form

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return check_user_options

    def kube_config(self) -> KubeConfig:
        if self.codespace_config_file:
            return load_config(self.codespace_config_file)
        return parse_config(self.codespace_config)

    # -- spawn ------------------------------------------------------------------------------

    def start(self) -> asyncio.Future:
        """KubeSpawner's start (a future), its end counted (:mod:`spawner.metrics`)."""
        return watch_start(self, super().start(), "kubernetes")

    async def load_user_options(self) -> None:
        """Plan the codespace and set KubeSpawner's traits from the plan (see module doc)."""
        self._progress = log = ProgressLog()
        try:
            options = UserOptions.model_validate(validate_options(self.user_options or {}))
            pending = await self._pending_datasets(options, log)
            plan = await self._plan(options, log, pending)
            if plan.datasets:
                names = ", ".join(d.name for d in plan.datasets)
                log.step(10, f"Checking datasets: {names}", phase="datasets")
                custom = shared_client("CustomObjectsApi")
                await check_datasets(custom, self.namespace, [d.name for d in plan.datasets])
            plan = await self._image_or_recovery(plan, options, log, pending)
            self._apply_plan(plan)
            count_plan(plan)
            creating = "Creating the pod: schedule, pull the image, start the server"
            log.step(60, creating, phase="server")
        finally:
            log.close()

    async def _image_or_recovery(
        self, plan: KubePlan, options: UserOptions, log: ProgressLog, pending: list[str]
    ) -> KubePlan:
        """Make sure the image exists; a build that fails or cannot start gives a recovery
        codespace on the platform image (the repository checked out, the error in
        ``CODESPACE_ERRORS.md`` and here), never a lockout."""
        try:
            await self._ensure_image(plan, log)
            return plan
        except BuildFailed as error:
            log.step(56, "error: the image build failed; starting a recovery codespace")
            for line in str(error).splitlines():
                log.line(line)
            problems = [*plan.launch.problems, env_problem(str(error), what="image")]
        recovery = self._recovery_plan(options, problems, pending)
        await self._ensure_image(recovery, log)
        return recovery

    def _recovery_plan(
        self, options: UserOptions, problems: list[str], pending: list[str]
    ) -> KubePlan:
        """The platform default for this repository, with the problems that led to it."""
        config = self.kube_config()
        fallback = default_resolution(".", mode="kubernetes")
        launch = launch_plan(
            fallback, options, config, pending=pending, recovery=True, problems=problems
        )
        return make_kube_plan(launch, config, self._names())

    def _names(self) -> Names:
        return Names(namespace=self.namespace, pod=self.pod_name, pvc=self.pvc_name)

    @property
    def pending_configmap(self) -> str:
        """The ConfigMap where this server's codespace records ``mount()`` requests."""
        return pending_configmap_name(self.pod_name)

    async def _pending_datasets(self, options: UserOptions, log: ProgressLog) -> list[str]:
        """Recorded datasets not already asked for, keeping only those that are Bound."""
        if not self.fluid_datasets:
            return []
        recorded = await read_pending(self.api, self.namespace, self.pending_configmap)
        recorded = [name for name in recorded if name not in options.datasets]
        if not recorded:
            return []
        names = ", ".join(recorded)
        log.step(3, f"Datasets recorded by mount() for this start: {names}", phase="datasets")
        custom = shared_client("CustomObjectsApi")
        return await usable_pending(custom, self.namespace, recorded, log.line)

    async def _plan(
        self, options: UserOptions, log: ProgressLog, pending: list[str] | None = None
    ) -> KubePlan:
        where = f"{options.repo} {options.ref or ''}".strip()
        log.step(2, f"Reading the codespace spec of {where}", phase="resolve")
        work = Path(tempfile.mkdtemp(prefix="codespace-spec-"))
        problems: list[str] = []
        try:
            source = await checkout(options.repo, options.ref, work / "repo", on_line=log.line)
            try:
                resolution = resolve(
                    source.path,
                    config=options.config,
                    mode="kubernetes",
                    sources=self.codespace_sources,
                )
            except SpecError as error:
                log.step(5, "The codespace spec has errors; starting a recovery codespace:")
                for line in str(error).splitlines():
                    log.line(line)
                problems.append(spec_problem(error))
                resolution = default_resolution(source.path, mode="kubernetes")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for warning in resolution.warnings:
            log.line(f"warning: {warning}")
        config = self.kube_config()
        launch = launch_plan(
            resolution,
            options,
            config,
            pending=pending or (),
            recovery=bool(problems),
            problems=problems,
        )
        try:
            plan = make_kube_plan(launch, config, self._names())
        except ImageError as error:  # e.g. an image reference that is not one
            log.line(f"error: {error}; starting a recovery codespace")
            plan = self._recovery_plan(
                options, [env_problem(str(error), what="image")], pending or []
            )
        for warning in plan.warnings:
            log.line(f"warning: {warning}")
        gpu = plan.gpu.env.get("CODESPACE_GPU_RESOURCE")
        log.step(8, f"Profile {plan.profile.title}" + (f", GPU {gpu}" if gpu else ""))
        return plan

    async def _ensure_image(self, plan: KubePlan, log: ProgressLog) -> None:
        image = plan.image.image
        if plan.build_job is None:
            log.step(15, f"Image {image}", phase="environment")
            return
        log.mark("environment")
        registry = self.kube_config().registry
        if self.check_registry:
            credentials = Credentials()
            if self.registry_auth_file:
                host = image.split("/", 1)[0]
                text = Path(self.registry_auth_file).read_text(encoding="utf-8")
                credentials = Credentials.from_docker_config(text, host)
            if await image_exists(image, credentials, insecure=registry.insecure):
                environment_lookup("kubernetes", hit=True)
                log.step(15, f"Image {image} is in the registry: no build needed")
                return
        environment_lookup("kubernetes", hit=False)
        log.step(15, f"Building image {image} (environment changed)")
        batch = shared_client("BatchV1Api")
        try:
            await run_build_job(batch, self.api, plan.build_job, log.line)
        except Exception:
            image_build(succeeded=False)
            raise
        image_build(succeeded=True)
        log.step(55, f"Image {image} built and pushed")

    def _apply_plan(self, plan: KubePlan) -> None:
        """Set traits from the plan on top of the configured values (not a previous plan's)."""
        configured = getattr(self, "_configured_values", None)
        if configured is None:
            configured = {name: copy.deepcopy(getattr(self, name)) for name in OVERRIDE_TRAITS}
            self._configured_values = configured
            self._configured_url = self.default_url
        for name, value in configured.items():  # forget the previous spawn's plan
            setattr(self, name, copy.deepcopy(value))
        for name, value in plan.kubespawner_overrides().items():
            if name in EXPANDED_TRAITS:
                value = escape_braces(value)
            base = copy.deepcopy(configured[name])
            if isinstance(value, dict) and isinstance(base, dict):
                value = {**base, **value}
            elif isinstance(value, list) and isinstance(base, list):
                value = [*base, *value]
            setattr(self, name, value)
        launch = plan.launch
        noteworthy = launch.problems or launch.warnings or plan.warnings
        self.default_url = f"/lab/tree/{ERRORS_FILE}" if noteworthy else self._configured_url
        self.codespace_plan = plan

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        env["POD_NAMESPACE"] = self.namespace
        if self.fluid_datasets:
            labels = self._build_pod_labels({})
            server_labels = {
                key: value
                for key, value in labels.items()
                if key not in ("component", "app.kubernetes.io/component")
            }
            env.update(pending_env(self.pod_name, server_labels))
        # SSH: the owner's keys at this start; the pod writes its sshd files on the workspace
        # volume (codespace.ssh.runtime); keys added later apply at the next start
        env.update(kube_ssh_env(self.user, self.kube_config().workspace.mountPath))
        return env

    def get_args(self) -> list[str]:
        args = super().get_args()
        if self.fluid_datasets:
            args.append(f"--CodespaceExtension.dataset_backend_class={FLUID_BACKEND}")
        if self.kserve_deploy:
            args += [
                f"--CodespaceExtension.deploy_backends=kserve={KSERVE_BACKEND}",
                "--CodespaceExtension.default_deploy_backend=kserve",
            ]
        return args

    async def delete_forever(self) -> None:
        """The server is deleted: its PVC (KubeSpawner, when ``delete_pvc``) and its record."""
        await super().delete_forever()
        if await delete_pending(self.api, self.namespace, self.pending_configmap):
            self.log.info("Deleted ConfigMap %s/%s", self.namespace, self.pending_configmap)

    def is_pod_running(self, pod: dict | None) -> bool:
        if pod is not None and self._spawn_pending:
            reason = pod_failure(
                pod, self.events, self.fail_fast_waiting_reasons, self.fail_fast_event_reasons
            )
            if reason:
                raise RuntimeError(f"The codespace cannot start: {reason}")
        return super().is_pod_running(pod)

    def clear_state(self) -> None:
        super().clear_state()
        self._progress = None

    async def progress(self):  # type: ignore[override]
        # Our steps (spec, datasets, image build) first, then KubeSpawner's pod events.
        while getattr(self, "_progress", None) is None:
            if self._start_future is not None and self._start_future.done():
                break
            await asyncio.sleep(0.1)
        log = getattr(self, "_progress", None)
        if log is not None:
            async for event in log.follow():
                yield event
        async for event in super().progress():
            yield event
