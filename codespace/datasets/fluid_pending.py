"""Where the Fluid backend records datasets for the next start.

Two stores with one async interface (:class:`PendingStore`):

- :class:`ConfigMapPending`: in a Kubernetes pod started by ``KubeCodespaceSpawner``, a
  ConfigMap of the codespace's namespace that the spawner reads at the next start (its name
  and labels come from the pod's environment, see :mod:`codespace.kube.pending`);
- :class:`FilePending`: anywhere else, the JSON file of
  :class:`~codespace.datasets.mounts.PendingMounts`.

:func:`pending_store` picks one from the environment. kubernetes_asyncio is imported lazily.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from codespace.datasets.backend import DatasetError
from codespace.datasets.mounts import PendingMounts
from codespace.kube.pending import (
    ENV_LABELS,
    ENV_NAME,
    pending_configmap,
    pending_data,
    pending_datasets,
)


class PendingStore(Protocol):
    """Datasets asked for by ``mount()`` that this codespace gets at its next start."""

    where: str  # for messages: where the record lives

    async def names(self) -> list[str]: ...

    async def add(self, name: str) -> None: ...

    async def remove(self, name: str) -> None: ...

    async def close(self) -> None: ...


async def kube_api_client() -> Any:
    """An ApiClient from the pod's service account, else from the kubeconfig."""
    from kubernetes_asyncio import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


class FilePending:
    """The record as a file (:class:`PendingMounts`): for a spawner that reads the home."""

    def __init__(self, file: PendingMounts) -> None:
        self.file = file
        self.where = str(file.path)

    async def names(self) -> list[str]:
        return self.file.names()

    async def add(self, name: str) -> None:
        self.file.add(name)

    async def remove(self, name: str) -> None:
        self.file.remove(name)

    async def close(self) -> None:
        return None


class ConfigMapPending:
    """The record as the ConfigMap ``name`` in ``namespace``, read by KubeCodespaceSpawner.

    Needs ``get``, ``create``, ``patch`` and ``delete`` on configmaps in the namespace
    (``config/helm/rbac.yaml``, role ``codespace-singleuser``); the admission policy of
    ``config/helm/admission.yaml`` lets a pod write only ``codespace-pending-<its pod name>``
    (the name the spawner passes) with the component label that :func:`pending_configmap`
    always sets. Writes are read-modify-write (one server writes its own record, from one
    user's actions).
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        labels: Mapping[str, str] | None = None,
        *,
        api_client: Any = None,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self.labels = dict(labels or {})
        self.where = f"ConfigMap {namespace}/{name}"
        self._api_client = api_client
        self._owns_client = api_client is None
        self._core: Any = None

    async def _api(self) -> Any:
        if self._core is None:
            from kubernetes_asyncio import client

            if self._api_client is None:
                self._api_client = await kube_api_client()
            self._core = client.CoreV1Api(self._api_client)
        return self._core

    async def _read(self) -> dict[str, Any] | None:
        from kubernetes_asyncio.client.exceptions import ApiException

        api = await self._api()
        try:
            obj = await api.read_namespaced_config_map(self.name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise self._error("read", error) from error
        return self._api_client.sanitize_for_serialization(obj)

    def _error(self, action: str, error: Any) -> DatasetError:
        try:  # the API's own words, e.g. the admission policy's message on a 403
            detail = json.loads(error.body or "{}").get("message") or ""
        except (ValueError, AttributeError):
            detail = ""
        return DatasetError(
            f"could not {action} {self.where} (the record of datasets for the next start): "
            f"Kubernetes API {error.status} {error.reason}" + (f": {detail}" if detail else "")
        )

    async def names(self) -> list[str]:
        return pending_datasets(await self._read())

    async def _write(self, current: dict[str, Any] | None, names: list[str]) -> None:
        from kubernetes_asyncio.client.exceptions import ApiException

        api = await self._api()
        try:
            if current is None:
                body = pending_configmap(self.name, self.namespace, self.labels, names)
                await api.create_namespaced_config_map(self.namespace, body)
            elif names:
                await api.patch_namespaced_config_map(
                    self.name, self.namespace, {"data": pending_data(names)}
                )
            else:  # nothing left to record
                await api.delete_namespaced_config_map(self.name, self.namespace)
        except ApiException as error:
            raise self._error("write", error) from error

    async def add(self, name: str) -> None:
        current = await self._read()
        names = pending_datasets(current)
        if name not in names:
            await self._write(current, [*names, name])

    async def remove(self, name: str) -> None:
        current = await self._read()
        names = pending_datasets(current)
        if current is not None and name in names:
            await self._write(current, [n for n in names if n != name])

    async def close(self) -> None:
        if self._owns_client and self._api_client is not None:
            await self._api_client.close()
        self._api_client = None
        self._core = None


def pending_store(
    namespace: str, state_dir: Path, environ: Mapping[str, str] = os.environ
) -> PendingStore:
    """The ConfigMap named by ``$CODESPACE_PENDING_CONFIGMAP`` (set by KubeCodespaceSpawner)
    when there is one, else the file in ``state_dir``."""
    name = environ.get(ENV_NAME)
    if name:
        labels = json.loads(environ.get(ENV_LABELS) or "{}")
        return ConfigMapPending(namespace, name, labels)
    return FilePending(PendingMounts(state_dir))
