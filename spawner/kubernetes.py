"""``KubeCodespaceSpawner``: KubeSpawner that launches a codespace pod from a repository.

KubeSpawner does all the Kubernetes work (pod, PVC, reflectors, stop, poll). This subclass
only decides *what* to launch, in :meth:`load_user_options` (KubeSpawner calls it at the
start of every spawn): read the repository's spec, plan with :mod:`codespace.kube`, check
the Fluid datasets, make sure the image exists (registry ``HEAD``, else a build Job whose
log streams into the progress), then set KubeSpawner's traits from the plan. Datasets a
running codespace recorded with ``mount()`` (a ConfigMap, :mod:`codespace.kube.pending`) are
mounted too when Bound. While the pod is pending, :meth:`is_pod_running` ends the spawn at
once on a pull error or an unschedulable pod, except when what it waits for is an
*optional* GPU: then :meth:`_start` makes the pod again without the GPU (same profile, same
image) and says so. The spawn form lists the namespace's Fluid Datasets
(:meth:`render_options_form`).

With a Git host login (:class:`~spawner.git_credentials.GitCredentialsMixin`) and a
repository on that host, the hub's clone sends the user's token in git's environment, and the
clones in the cluster (the workspace's init container, the build Job's) read it from the
user's Secret (:mod:`codespace.kube.gitauth`, written at each such spawn and deleted when the
user's last active server stops or is deleted: :mod:`spawner.kube.git_secret`): no pod or Job
spec contains it. The codespace's git asks the hub for the token at each push
(``codespace git-credential`` of the platform's environment in the image).
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
from codespace.kube.gitauth import (
    CREDENTIAL_HELPER,
    GitAuthRef,
    git_auth_ref,
    git_secret,
    git_secret_name,
)
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
from codespace.launch import with_user_options
from codespace.options import UserOptions
from codespace.policy import PolicyRefused
from codespace.policy.gpu import gpu_amount
from codespace.resolve import default_resolution, resolve
from codespace.spec.errors import SpecError
from spawner.form import parse_form, render_form, validate_options
from spawner.git_credentials import GitCredentialsMixin
from spawner.kube.build import BuildFailed, run_build_job
from spawner.kube.datasets import check_datasets, list_datasets, usable_pending
from spawner.kube.failfast import EVENT_REASONS, WAITING_REASONS, pod_failure
from spawner.kube.form import dataset_choices
from spawner.kube.git_secret import delete_git_secret, save_git_secret
from spawner.kube.gpu_retry import OptionalGpuRetry, OptionalGpuUnavailable
from spawner.kube.pending import delete_pending, read_pending
from spawner.kube.registry import Credentials, image_exists
from spawner.metrics import count_plan, environment_lookup, image_build, watch_start
from spawner.policy import PolicyMixin, start_refused
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
        spawner.check_policy_options(options)  # profile, datasets, running codespaces
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


class KubeCodespaceSpawner(PolicyMixin, GitCredentialsMixin, OptionalGpuRetry, KubeSpawner):
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
    _replan: KubePlan | None = None  # a start's plan again, without its optional GPU
    _progress: ProgressLog | None = None

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return 1800  # includes an image build

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        # codespace-start applies the launch plan (variables, lifecycle commands,
        # CODESPACE_ERRORS.md), then runs the server: codespace.kube.entrypoint
        return [*ENTRYPOINT, "jupyterhub-singleuser"]

    @default("git_credential_helper")
    def _default_git_credential_helper(self) -> str:
        return CREDENTIAL_HELPER  # the platform's `codespace`, inside the codespace image

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
        allowed = set(spawner.allowed_profile_slugs([p["slug"] for p in profiles]))
        profiles = [p for p in profiles if p["slug"] in allowed]
        names = set(spawner.allowed_dataset_names([n for n, _ in datasets + unavailable]))
        return render_form(
            profiles if len(profiles) > 1 else [],
            datasets=[choice for choice in datasets if choice[0] in names],
            datasets_note=note,
            unavailable=[choice for choice in unavailable if choice[0] in names],
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
        replan, self._replan = self._replan, None
        if replan is not None:  # this start again, without an optional GPU (:meth:`_start`)
            self._apply_plan(replan)
            return
        self._progress = log = ProgressLog()
        try:
            options = UserOptions.model_validate(validate_options(self.user_options or {}))
            pending = await self._pending_datasets(options, log)
            plan = await self._plan(options, log, pending)
            self._check_policy(plan, log)
            await self._save_git_secret(options.repo, log)
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
        return make_kube_plan(launch, config, self._names(), self.git_auth(options.repo))

    def _names(self) -> Names:
        return Names(namespace=self.namespace, pod=self.pod_name, pvc=self.pvc_name)

    def _check_policy(self, plan: KubePlan, log: ProgressLog) -> None:
        """The group policy on what the repository asks for (GPUs as the plan grants them)."""
        spec = plan.launch.spec
        log.line(f"environment: hash {plan.launch.environment.env_hash}")
        gpus = gpu_amount(spec.resources.gpu) if plan.gpu.granted else 0.0
        try:
            self.check_policy_spec(spec, gpus)
        except PolicyRefused as error:
            raise start_refused(error) from None

    # -- the user's Git host token in the cluster (codespace.kube.gitauth) -------------------

    def git_auth(self, repo: str) -> GitAuthRef | None:
        """Where the clones in the cluster read the token for ``repo``: None when the user
        has no Git host login or ``repo`` is not on that host (nothing is added then)."""
        credential = self.git_credential
        if credential is None or not credential.covers(repo):
            return None
        return git_auth_ref(credential, self.user.name)

    async def _save_git_secret(self, repo: str, log: ProgressLog) -> None:
        """Write the user's Secret before the build Job and the pod that read it."""
        ref, credential = self.git_auth(repo), self.git_credential
        if ref is None or credential is None:
            return
        secret = git_secret(ref, credential, self.namespace, self.user.name)
        await save_git_secret(self.api, secret)
        log.line(f"Git host credentials for {credential.host}: Secret {ref.secret_name}")

    async def _drop_git_secret(self) -> None:
        """Delete the user's Secret unless another of their servers is active (it may still
        be cloning); the next spawn on the Git host writes it again."""
        if not self.git_host_url:  # no Git host login: never written
            return
        spawners = getattr(self.user, "spawners", None) or {}
        if any(other is not self and other.active for other in spawners.values()):
            return
        name = git_secret_name(self.user.name)  # by name: a new hub may not know the token
        try:
            if await delete_git_secret(self.api, self.namespace, name):
                self.log.info("Deleted Secret %s/%s", self.namespace, name)
        except ApiException as error:
            self.log.warning(
                "Cannot delete Secret %s/%s: %s %s",
                self.namespace,
                name,
                error.status,
                error.reason,
            )

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
            source = await checkout(
                options.repo,
                options.ref,
                work / "repo",
                on_line=log.line,
                clone_env=self.git_clone_env(options.repo),  # the token for the Git host only
            )
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
            with_user_options(resolution, options),  # a GPU the options ask for
            options,
            config,
            pending=pending or (),
            recovery=bool(problems),
            problems=problems,
        )
        try:
            plan = make_kube_plan(launch, config, self._names(), self.git_auth(options.repo))
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
        # git push to the Git host asks the hub for the user's current token
        env.update(self.git_helper_env())
        env.update(self.policy_env())  # jobs, deployments, dataset mounts: the user's rules
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

    async def stop(self, now: bool = False) -> None:
        """KubeSpawner's stop, then the user's Git host Secret when no other server of
        theirs is active."""
        await super().stop(now=now)
        await self._drop_git_secret()

    async def delete_forever(self) -> None:
        """The server is deleted: its PVC (KubeSpawner, when ``delete_pvc``), its record and
        the user's Git host Secret when no other server of theirs is active."""
        await super().delete_forever()
        if await delete_pending(self.api, self.namespace, self.pending_configmap):
            self.log.info("Deleted ConfigMap %s/%s", self.namespace, self.pending_configmap)
        await self._drop_git_secret()

    def is_pod_running(self, pod: dict | None) -> bool:
        if pod is not None and self._spawn_pending:
            reason = pod_failure(
                pod, self.events, self.fail_fast_waiting_reasons, self.fail_fast_event_reasons
            )
            if reason and self._optional_gpu_short(reason):
                raise OptionalGpuUnavailable(reason)
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
        events = super().progress() if log is None else log.then(super().progress())
        async for event in events:
            yield event
