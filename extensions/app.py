"""The server extension application: settings (traitlets) and handler wiring only."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Enum, Unicode, default

from codespace.datasets.backend import DatasetBackend
from codespace.datasets.catalog import Catalog, catalog_path
from codespace.datasets.fluid import FluidBackend
from codespace.datasets.fluid_pending import pending_store
from codespace.datasets.local import LocalBackend
from extensions.datasets_handlers import dataset_handlers

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class CodespaceExtension(ExtensionApp):
    """REST API for datasets (and, later, jobs and deployments) inside a codespace."""

    name = "codespace"
    load_other_extensions = True

    dataset_backend = Enum(
        ["local", "fluid"],
        default_value="local",
        config=True,
        help="Dataset backend: 'local' (a catalog file) or 'fluid' (Fluid Datasets in the "
        "codespace's Kubernetes namespace).",
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

    def make_dataset_backend(self) -> DatasetBackend:
        if self.dataset_backend == "fluid":
            return FluidBackend(
                self.fluid_namespace,
                mount_paths=self.dataset_mount_paths,
                pending=pending_store(self.fluid_namespace, Path(self.state_dir)),
            )
        return LocalBackend(
            Catalog(catalog_path(self.dataset_catalog or None)),
            cache_dir=Path(self.dataset_cache_dir),
            workspace=Path(self.workspace),
            storage_options=self.storage_options,
            pending_dir=Path(self.state_dir),
        )

    def initialize_settings(self) -> None:
        self.datasets = self.make_dataset_backend()
        self.log.info("codespace: %s dataset backend", self.datasets.kind)

    def initialize_handlers(self) -> None:
        self.handlers.extend(dataset_handlers(self.datasets))

    async def stop_extension(self) -> None:
        await self.datasets.close()
