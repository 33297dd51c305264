"""Fluid datasets through the Kubernetes API (kubernetes_asyncio custom objects).

Runs inside a codespace's server (in a pod) with the namespace's service account:
``Dataset`` objects and their runtime's phases are read, ``DataLoad`` objects are created
to prewarm. A Fluid dataset reaches a pod as the PVC Fluid creates with the dataset's name,
so a running pod cannot gain one: ``mount`` records it for the next start in a
:class:`~codespace.datasets.fluid_pending.PendingStore` (on Kubernetes, a ConfigMap that
``KubeCodespaceSpawner`` reads; the record is kept until ``unmount``).

kubernetes_asyncio is imported lazily so the kernel layer never needs it.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any, Self

from codespace.datasets.backend import (
    DEFAULT_PAGE_SIZE,
    DatasetBackend,
    DatasetError,
    DatasetNotFound,
    DatasetSettings,
    list_local_directory,
)
from codespace.datasets.fluid_objects import (
    DATASET_LABEL,
    GROUP,
    VERSION,
    dataload_manifest,
    dataload_name,
    dataset_from_object,
    prewarm_from_dataload,
    runtime_ref,
)
from codespace.datasets.fluid_pending import (
    FilePending,
    PendingStore,
    kube_api_client,
    pending_store,
)
from codespace.datasets.models import Dataset, FilePage, MountResult, PrewarmOperation
from codespace.datasets.mounts import PendingMounts
from codespace.datasets.paths import clean_relative, clean_target


class FluidBackend(DatasetBackend):
    """Fluid ``Dataset`` objects in one namespace."""

    kind = "fluid"

    def __init__(
        self,
        namespace: str,
        *,
        api_client: Any = None,
        mount_paths: dict[str, str] | None = None,
        mount_root: str = "/datasets",
        pending: PendingStore | PendingMounts | None = None,
    ) -> None:
        self.namespace = namespace
        self.mount_paths = mount_paths or {}
        self.mount_root = mount_root
        self.pending: PendingStore | None = (
            FilePending(pending) if isinstance(pending, PendingMounts) else pending
        )
        self._api_client = api_client
        self._owns_client = api_client is None
        self._custom: Any = None

    @classmethod
    def from_settings(cls, settings: DatasetSettings) -> Self:
        return cls(
            settings.namespace,
            mount_paths=dict(settings.mount_paths),
            pending=pending_store(settings.namespace, settings.state_dir),
        )

    async def _api(self) -> Any:
        if self._custom is None:
            from kubernetes_asyncio import client

            if self._api_client is None:
                self._api_client = await kube_api_client()
            self._custom = client.CustomObjectsApi(self._api_client)
        return self._custom

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from kubernetes_asyncio.client.exceptions import ApiException

        api = await self._api()
        try:
            return await getattr(api, method)(*args, **kwargs)
        except ApiException as error:
            if error.status == 404:
                raise LookupError(error.reason) from error
            raise DatasetError(
                f"Kubernetes API: {error.status} {error.reason}: {(error.body or '')[:300]}"
            ) from error

    def _mount_path(self, name: str) -> str:
        return self.mount_paths.get(name) or f"{self.mount_root.rstrip('/')}/{name}"

    async def _runtime(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        ref = runtime_ref(obj)
        if ref is None:
            return None
        plural, namespace, name = ref
        try:
            return await self._call(
                "get_namespaced_custom_object", GROUP, VERSION, namespace, plural, name
            )
        except LookupError:
            return None

    def _to_dataset(self, obj: dict[str, Any], runtime: dict[str, Any] | None) -> Dataset:
        name = obj["metadata"]["name"]
        path = self._mount_path(name)
        return dataset_from_object(obj, runtime, mount_path=path, mounted=os.path.isdir(path))

    async def _dataset_object(self, name: str) -> dict[str, Any]:
        try:
            return await self._call(
                "get_namespaced_custom_object", GROUP, VERSION, self.namespace, "datasets", name
            )
        except LookupError as error:
            raise DatasetNotFound(name) from error

    async def list(self) -> list[Dataset]:
        listing = await self._call(
            "list_namespaced_custom_object", GROUP, VERSION, self.namespace, "datasets"
        )
        objects = listing.get("items") or []
        runtimes = await asyncio.gather(*(self._runtime(obj) for obj in objects))
        return [self._to_dataset(obj, rt) for obj, rt in zip(objects, runtimes, strict=True)]

    async def get(self, name: str) -> Dataset:
        obj = await self._dataset_object(name)
        return self._to_dataset(obj, await self._runtime(obj))

    async def files(
        self,
        name: str,
        path: str = "",
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> FilePage:
        relative = clean_relative(path)
        await self._dataset_object(name)
        root = Path(self._mount_path(name))
        if not root.is_dir():
            raise DatasetError(
                f"dataset {name!r} is not mounted in this codespace, so its files cannot be "
                "listed here; mount it (it is mounted at the next start)"
            )
        return await asyncio.to_thread(
            list_local_directory, name, root, relative, limit=limit, cursor=cursor
        )

    async def prewarm(self, name: str, paths: list[str] | None = None) -> PrewarmOperation:
        await self._dataset_object(name)
        targets = sorted({"/" + clean_target(path) for path in (paths or [""])})
        manifest = dataload_manifest(
            name,
            self.namespace,
            targets,
            name=dataload_name(name, targets, f"{time.time_ns()}"),
        )
        created = await self._call(
            "create_namespaced_custom_object", GROUP, VERSION, self.namespace, "dataloads", manifest
        )
        return prewarm_from_dataload(created)

    async def prewarm_history(self, name: str) -> list[PrewarmOperation]:
        await self._dataset_object(name)
        listing = await self._call(
            "list_namespaced_custom_object",
            GROUP,
            VERSION,
            self.namespace,
            "dataloads",
            label_selector=f"{DATASET_LABEL}={name}",
        )
        operations = [prewarm_from_dataload(obj) for obj in listing.get("items") or []]
        return sorted(operations, key=lambda op: op.startedAt or 0, reverse=True)

    async def mount(self, name: str) -> MountResult:
        dataset = await self.get(name)
        path = self._mount_path(name)
        if dataset.mounted:
            return MountResult(
                dataset=name,
                mountPath=path,
                mounted=True,
                readOnlyEnforced=dataset.readOnly,
                message="already mounted (Fluid's PVC)",
            )
        if self.pending is None:
            raise DatasetError("a running pod cannot gain a volume, and no pending list is set")
        await self.pending.add(name)
        return MountResult(
            dataset=name,
            mountPath=path,
            mounted=False,
            pendingRestart=True,
            readOnlyEnforced=dataset.readOnly,
            message=(
                f"a running pod cannot gain a volume: recorded ({self.pending.where}), it is "
                f"mounted at {path} when this codespace next starts"
                + (
                    ""
                    if dataset.status.phase == "Bound"
                    else f" (it is {dataset.status.phase} now: mounted once Bound)"
                )
            ),
        )

    async def unmount(self, name: str) -> MountResult:
        path = self._mount_path(name)
        mounted = os.path.isdir(path)
        if self.pending is not None and name in await self.pending.names():
            await self.pending.remove(name)
            message = (
                "not mounted at the next start; a mounted volume stays until then"
                if mounted
                else "no longer pending"
            )
            return MountResult(dataset=name, mountPath=path, mounted=mounted, message=message)
        return MountResult(
            dataset=name,
            mountPath=path,
            mounted=mounted,
            message=(
                "mounted because the repository's spec or the spawn form asks for it; "
                "it stays until the codespace starts without it"
                if mounted
                else "not mounted"
            ),
        )

    async def close(self) -> None:
        if self.pending is not None:
            await self.pending.close()
        if self._owns_client and self._api_client is not None:
            await self._api_client.close()
        self._api_client = None
        self._custom = None
