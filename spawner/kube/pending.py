"""The hub's side of the ConfigMap recording ``mount()`` requests.

The pure half is :mod:`codespace.kube.pending`.
"""

from __future__ import annotations

from kubernetes_asyncio.client import ApiException

from codespace.kube.pending import pending_datasets


async def read_pending(core, namespace: str, name: str) -> list[str]:
    """The dataset names recorded in the ConfigMap ``name`` (none when it does not exist)."""
    try:
        configmap = await core.read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        return []
    return pending_datasets(core.api_client.sanitize_for_serialization(configmap))


async def delete_pending(core, namespace: str, name: str) -> bool:
    """Delete the record (when the server is deleted); False when there was none."""
    try:
        await core.delete_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        return False
    return True
