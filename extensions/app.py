"""The server extension application: settings (traitlets) and handler wiring only.

Each capability's backend is a class picked by a ``Type`` trait (as jupyter_server picks its
contents manager) and built with ``from_settings(settings)``: a site plugs in its own backend
by configuration alone. A capability adds one ``<capability>_backend_class`` trait and one
``self.build_backend(...)`` line in :meth:`CodespaceExtension.initialize_settings`.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Integer, TraitError, Type, Unicode, default, observe, validate
from traitlets.utils.importstring import import_item

from codespace.datasets.backend import DatasetBackend, DatasetSettings
from codespace.datasets.catalog import catalog_path
from codespace.datasets.local import LocalBackend
from codespace.deploy.backend import DeployBackend, DeployError, DeploySettings
from codespace.deploy.service import DeployService
from codespace.jobs.backend import JobBackend, JobError, JobSettings
from codespace.jobs.prewarm import DatasetPrewarmGate
from codespace.jobs.service import JobService
from codespace.policy import Effective
from extensions.activity import (
    ActivityMonitor,
    ActivityReporter,
    activity_handlers,
    deployments_activity,
    idle_timeout_from,
    local_jobs_activity,
)
from extensions.datasets_handlers import dataset_handlers
from extensions.deploy_handlers import deploy_handlers
from extensions.jobs_handlers import job_handlers
from extensions.metrics_handlers import metrics_handlers
from extensions.session_handlers import session_handlers

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
# Seconds after the server started before job backends that kept state are built (so the
# local backend re-attaches its running jobs and starts queued ones without a request).
JOB_RESUME_DELAY = 2.0

# The short names ``dataset_backend`` (deprecated) accepts, each the import string of a class.
DATASET_BACKENDS = {
    "local": "codespace.datasets.local.LocalBackend",
    "fluid": "codespace.datasets.fluid.FluidBackend",
}


class CodespaceExtension(ExtensionApp):
    """REST API for datasets, jobs and deployments inside a codespace."""

    name = "codespace"
    load_other_extensions = True

    dataset_backend_class = Type(
        default_value=LocalBackend,
        klass=DatasetBackend,
        config=True,
        help="The dataset backend: a DatasetBackend subclass (or its import string), built "
        "with its from_settings(DatasetSettings). Ours: codespace.datasets.local.LocalBackend "
        "(a catalog file; the default) and codespace.datasets.fluid.FluidBackend (Fluid "
        "Datasets in the codespace's Kubernetes namespace).",
    )
    dataset_backend = Unicode(
        "",
        config=True,
        help="Deprecated: use dataset_backend_class. A short name, "
        + " or ".join(repr(name) for name in DATASET_BACKENDS)
        + ", that sets dataset_backend_class.",
    )
    dataset_catalog = Unicode(
        "",
        config=True,
        help="Local backend: the catalog YAML file. Empty: $CODESPACE_DATASET_CATALOG.",
    )
    dataset_cache_dir = Unicode(
        config=True, help="Local backend: where prewarmed copies of remote sources are kept."
    )
    workspace = Unicode(
        config=True,
        help="The codespace's workspace; local mounts appear under its 'datasets/' "
        "directory. Default: the server's root_dir.",
    )
    storage_options = Dict(
        config=True,
        help="Local backend: fsspec options per protocol, e.g. {'s3': {'endpoint_url': ...}}.",
    )
    fluid_namespace = Unicode(
        config=True,
        help="Fluid backend: the namespace of the Datasets. Default: $POD_NAMESPACE or the "
        "pod's service-account namespace.",
    )
    dataset_mount_paths = Dict(
        config=True,
        help="Fluid backend: dataset name -> mount path in this pod. Default: "
        "$CODESPACE_DATASET_MOUNTS (JSON); unlisted datasets are looked for under /datasets.",
    )
    state_dir = Unicode(
        config=True,
        help="Where mounts requested for the next start are recorded (the spawner reads it); "
        "in a pod of KubeCodespaceSpawner, the ConfigMap $CODESPACE_PENDING_CONFIGMAP instead.",
    )

    job_backends = Dict(
        {"local": "codespace.jobs.local.LocalJobBackend"},
        config=True,
        help="The job backends, all active at once: name -> a JobBackend subclass or its "
        "import string, each built on first use with from_settings(JobSettings). A job's "
        "'backend' picks one by name. Ours: codespace.jobs.local.LocalJobBackend (processes "
        "of this server; the default), plus the Slurm and Argo backends.",
    )
    default_job_backend = Unicode(
        "local",
        config=True,
        help="The job backend (a name in job_backends) for jobs that name none, unless the "
        "codespace's .codespace 'jobs:' key sets a backend.",
    )
    job_backend_options = Dict(
        config=True,
        help="Per job backend, its own settings (JobSettings.options): name -> mapping, e.g. "
        "{'local': {'concurrency': 4}}.",
    )

    deploy_backends = Dict(
        {"local": "codespace.deploy.local.LocalDeployBackend"},
        config=True,
        help="The deploy backends, all active at once: name -> a DeployBackend subclass or "
        "its import string, each built on first use with from_settings(DeploySettings). A "
        "deployment's 'backend' picks one by name. Ours: "
        "codespace.deploy.local.LocalDeployBackend (model servers behind the hub; the "
        "default), plus the KServe backend.",
    )
    default_deploy_backend = Unicode(
        "local",
        config=True,
        help="The deploy backend (a name in deploy_backends) for deployments that name none, "
        "unless the codespace's .codespace 'deploy:' key sets a backend.",
    )
    deploy_backend_options = Dict(
        config=True,
        help="Per deploy backend, its own settings (DeploySettings.options): name -> mapping.",
    )

    activity_interval = Float(
        60.0,
        config=True,
        help="Seconds between this server's activity reports to the hub "
        "(/hub/api/codespace/activity); 0 sends none.",
    )
    activity_dir = Unicode(
        config=True,
        help="Where processes beside the server (the SSH listener, VS Code's extension host) "
        "record their activity; exported to them as $CODESPACE_ACTIVITY_DIR. Default: "
        "<state_dir>/activity.",
    )
    idle_timeout = Integer(
        None,
        allow_none=True,
        config=True,
        help="The codespace's idle timeout in seconds, reported to the hub's culler. Default: "
        "$CODESPACE_IDLE_TIMEOUT (the spec's lifetime.idleTimeout; unset: the hub's default).",
    )

    @default("activity_dir")
    def _default_activity_dir(self) -> str:
        return str(Path(self.state_dir) / "activity")

    @default("idle_timeout")
    def _default_idle_timeout(self) -> int | None:
        return idle_timeout_from(os.environ)

    @default("dataset_cache_dir")
    def _default_cache_dir(self) -> str:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
        return os.path.join(base, "codespace", "datasets")

    @default("state_dir")
    def _default_state_dir(self) -> str:
        base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
        return os.path.join(base, "codespace")

    @default("workspace")
    def _default_workspace(self) -> str:
        return str(self.serverapp.root_dir) if self.serverapp else os.getcwd()

    @default("fluid_namespace")
    def _default_namespace(self) -> str:
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return "default"

    @default("dataset_mount_paths")
    def _default_mount_paths(self) -> dict[str, str]:
        raw = os.environ.get("CODESPACE_DATASET_MOUNTS")
        return json.loads(raw) if raw else {}

    @validate("dataset_backend")
    def _check_backend_name(self, proposal: dict[str, Any]) -> str:
        name = proposal["value"]
        if name and name not in DATASET_BACKENDS:
            raise TraitError(
                f"CodespaceExtension.dataset_backend: unknown backend {name!r}; known: "
                f"{', '.join(DATASET_BACKENDS)} (or set dataset_backend_class to a class)"
            )
        return name

    @observe("dataset_backend")
    def _backend_name_changed(self, change: dict[str, Any]) -> None:
        if not change["new"]:
            return
        target = DATASET_BACKENDS[change["new"]]
        self.log.warning(
            "CodespaceExtension.dataset_backend=%s is deprecated; "
            "use CodespaceExtension.dataset_backend_class=%s",
            change["new"],
            target,
        )
        self.dataset_backend_class = target

    def dataset_settings(self) -> DatasetSettings:
        return DatasetSettings(
            workspace=Path(self.workspace),
            state_dir=Path(self.state_dir),
            cache_dir=Path(self.dataset_cache_dir),
            catalog=catalog_path(self.dataset_catalog or None),
            storage_options=self.storage_options,
            namespace=self.fluid_namespace,
            mount_paths=self.dataset_mount_paths,
        )

    def spec_defaults(self, key: str) -> dict[str, Any]:
        """The workspace's ``.codespace`` ``jobs:`` or ``deploy:`` key (empty when the spec
        does not resolve)."""
        from codespace.resolve import resolve  # on first use: not at server start
        from codespace.spec.errors import SpecError

        try:
            return dict(getattr(resolve(self.workspace).codespace, key))
        except (SpecError, OSError, ValueError) as error:  # a broken spec: no defaults
            self.log.warning("codespace: no %s defaults from %s: %s", key, self.workspace, error)
            return {}

    def job_defaults(self) -> dict[str, Any]:
        """The workspace's ``.codespace`` ``jobs:`` key (empty when it does not resolve)."""
        return self.spec_defaults("jobs")

    def deploy_defaults(self) -> dict[str, Any]:
        """The workspace's ``.codespace`` ``deploy:`` key (empty when it does not resolve)."""
        return self.spec_defaults("deploy")

    def job_settings(self, name: str) -> JobSettings:
        return JobSettings(
            workspace=Path(self.workspace),
            state_dir=Path(self.state_dir) / "jobs" / name,
            owner=os.environ.get("JUPYTERHUB_USER") or getpass.getuser(),
            environment=dict(os.environ),
            defaults=self.job_defaults(),
            options=dict(self.job_backend_options.get(name) or {}),
        )

    def build_job_backend(self, name: str) -> JobBackend:
        """The job backend configured as ``name`` (called on its first use)."""
        target = self.job_backends[name]
        cls = import_item(target) if isinstance(target, str) else target
        if not (isinstance(cls, type) and issubclass(cls, JobBackend)):
            raise JobError(f"CodespaceExtension.job_backends[{name!r}] is not a JobBackend")
        return self.build_backend(cls, self.job_settings(name))

    def job_service(self) -> JobService:
        default = self.default_job_backend
        if default not in self.job_backends and self.job_backends:
            fallback = next(iter(self.job_backends))
            self.log.error(
                "codespace: default_job_backend %r is not in job_backends; using %r",
                default,
                fallback,
            )
            default = fallback
        factories = {
            name: functools.partial(self.build_job_backend, name) for name in self.job_backends
        }
        # Jobs with ``prewarm`` wait for this server's dataset backend (local backend).
        gate = DatasetPrewarmGate(self.datasets)
        return JobService(factories, default, self.job_defaults, prewarm_gate=gate)

    def deploy_settings(self, name: str) -> DeploySettings:
        return DeploySettings(
            workspace=Path(self.workspace),
            owner=os.environ.get("JUPYTERHUB_USER") or getpass.getuser(),
            environment=dict(os.environ),
            defaults=self.deploy_defaults(),
            options=dict(self.deploy_backend_options.get(name) or {}),
        )

    def build_deploy_backend(self, name: str) -> DeployBackend:
        """The deploy backend configured as ``name`` (called on its first use)."""
        target = self.deploy_backends[name]
        cls = import_item(target) if isinstance(target, str) else target
        if not (isinstance(cls, type) and issubclass(cls, DeployBackend)):
            raise DeployError(
                f"CodespaceExtension.deploy_backends[{name!r}] is not a DeployBackend"
            )
        return self.build_backend(cls, self.deploy_settings(name))

    def deploy_service(self) -> DeployService:
        default = self.default_deploy_backend
        if default not in self.deploy_backends and self.deploy_backends:
            fallback = next(iter(self.deploy_backends))
            self.log.error(
                "codespace: default_deploy_backend %r is not in deploy_backends; using %r",
                default,
                fallback,
            )
            default = fallback
        factories = {
            name: functools.partial(self.build_deploy_backend, name)
            for name in self.deploy_backends
        }
        return DeployService(factories, default, Path(self.workspace), self.deploy_defaults)

    def build_backend(self, cls: Any, settings: Any) -> Any:
        """``cls.from_settings(settings)``, closed when the extension stops."""
        backend = cls.from_settings(settings)
        self.log.info("codespace: %s backend %s.%s", backend.kind, cls.__module__, cls.__qualname__)
        self._backends.append(backend)
        return backend

    def local_job_backend(self) -> Any:
        """The local job backend when this server has one with jobs (else None)."""
        from codespace.jobs.local import LocalJobBackend  # on first use: not at server start

        for name, target in self.job_backends.items():
            cls = import_item(target) if isinstance(target, str) else target
            kept = (Path(self.state_dir) / "jobs" / name).is_dir()
            if kept and isinstance(cls, type) and issubclass(cls, LocalJobBackend):
                return self.jobs.backend(name)
        return None

    def activity_monitor(self) -> ActivityMonitor:
        """This server's activity sources (extensions.activity); the processes it starts
        find the activity directory in their environment."""
        os.environ["CODESPACE_ACTIVITY_DIR"] = self.activity_dir
        polled = {
            "jobs": functools.partial(local_jobs_activity, self.local_job_backend),
            "deployments": functools.partial(deployments_activity, self.deployments),
        }
        web_app = getattr(self.serverapp, "web_app", None)
        settings = web_app.settings if web_app is not None else {}
        return ActivityMonitor(
            settings, Path(self.activity_dir), polled=polled, idle_timeout=self.idle_timeout
        )

    def initialize_settings(self) -> None:
        self._backends: list[Any] = []
        self.datasets = self.build_backend(self.dataset_backend_class, self.dataset_settings())
        self.jobs = self.job_service()  # builds no job backend yet
        self.deployments = self.deploy_service()  # builds no deploy backend yet
        self.policy = Effective.from_environ()  # the owner's group policy (spawner.policy)
        if self.policy is not None:
            self.jobs.permit = self.policy.check_job_backend
            self.deployments.permit = self.policy.check_deploy_backend
        self.activity = self.activity_monitor()
        web_app = getattr(self.serverapp, "web_app", None)
        if web_app is not None:  # what JupyterHub's single-user extension reports is ours
            web_app.last_activity = self.activity.last_activity
            self.serverapp.contents_manager.register_post_save_hook(self.activity.file_saved)

    def initialize_handlers(self) -> None:
        self.handlers.extend(dataset_handlers(self.datasets, self.policy))
        self.handlers.extend(job_handlers(self.jobs))
        self.handlers.extend(deploy_handlers(self.deployments))
        self.handlers.extend(session_handlers(self.workspace))
        self.handlers.extend(activity_handlers(self.activity))
        self.handlers.extend(metrics_handlers(self.jobs))

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        loop = asyncio.get_running_loop()

        def resume() -> None:
            self._resume_task = loop.create_task(self.resume_jobs())

        self._resume = loop.call_later(JOB_RESUME_DELAY, resume)
        self._reporter = ActivityReporter(self.activity, os.environ, self.activity_interval)
        if self.activity_interval > 0:
            self._reporter.start()

    async def resume_jobs(self) -> None:
        """Build the job backends that kept state, so their jobs are watched again."""
        for name in self.job_backends:
            if not (Path(self.state_dir) / "jobs" / name).is_dir():
                continue
            try:
                await self.jobs.backend(name).list()
            except JobError as error:
                self.log.error("codespace: job backend %s did not resume: %s", name, error)

    async def stop_extension(self) -> None:
        resume = getattr(self, "_resume", None)
        if resume is not None:
            resume.cancel()
        reporter = getattr(self, "_reporter", None)
        if reporter is not None:
            await reporter.stop()
        for backend in reversed(self._backends):
            await backend.close()
