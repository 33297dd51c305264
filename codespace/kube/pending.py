"""The ConfigMap that records the datasets ``mount()`` asked for in a running codespace.

A running pod cannot gain a volume, so on Kubernetes ``codespace.datasets.mount("name")``
records the name in a ConfigMap of the codespace's namespace, one per server, named after
its pod (``codespace-pending-<pod name>``). ``KubeCodespaceSpawner`` reads it at every start
and mounts the recorded datasets that are Bound, next to the spec's and the form's. The record
is kept across starts (the pod, and with it its volumes, is recreated at each start); the
server's ``unmount("name")`` removes a name.

The spawner tells the server which ConfigMap is its own and how to label it through the
environment variables :data:`ENV_NAME` and :data:`ENV_LABELS` (JSON: the user/server labels
KubeSpawner puts on the pod; the component label is added here), so the server needs
neither KubeSpawner's naming rules nor read access to its own pod.

Pure data in, plain dicts out: the Fluid backend (in the codespace) writes these objects with
kubernetes_asyncio, the spawner (in the hub) reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from codespace.kube.plan import COMPONENT_LABEL
from codespace.spec.model import DNS1123_LABEL

PENDING_COMPONENT = "codespace-pending-mounts"
PREFIX = "codespace-pending-"
DATA_KEY = "datasets.json"
ENV_NAME = "CODESPACE_PENDING_CONFIGMAP"
ENV_LABELS = "CODESPACE_PENDING_CONFIGMAP_LABELS"


def pending_configmap_name(pod_name: str) -> str:
    """``codespace-pending-<pod>``: unique per server in a namespace, like the pod's name."""
    return PREFIX + pod_name


def pending_labels(server_labels: Mapping[str, str]) -> dict[str, str]:
    """The user/server labels KubeSpawner puts on the pod, plus our component label."""
    return {**server_labels, COMPONENT_LABEL: PENDING_COMPONENT}


def pending_configmap(
    name: str, namespace: str, server_labels: Mapping[str, str], datasets: Iterable[str]
) -> dict[str, Any]:
    """The whole ConfigMap recording ``datasets`` (order kept, duplicates dropped)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": pending_labels(server_labels),
        },
        "data": pending_data(datasets),
    }


def pending_data(datasets: Iterable[str]) -> dict[str, str]:
    """The ConfigMap's ``data``: one JSON document, ``{"datasets": [names]}``."""
    return {DATA_KEY: json.dumps({"datasets": list(dict.fromkeys(datasets))})}


def pending_datasets(configmap: Mapping[str, Any] | None) -> list[str]:
    """The recorded names; an absent or unreadable record is an empty one (never a lockout).

    Anything but a DNS-1123 label is dropped: the record is written from inside a codespace,
    so the spawner treats it as untrusted input.
    """
    if not configmap:
        return []
    raw = (configmap.get("data") or {}).get(DATA_KEY)
    try:
        names = json.loads(raw)["datasets"] if raw else []
    except (ValueError, TypeError, KeyError):
        return []
    if not isinstance(names, list):
        return []
    valid = [n for n in names if isinstance(n, str) and DNS1123_LABEL.match(n)]
    return list(dict.fromkeys(valid))


def pending_env(pod_name: str, server_labels: Mapping[str, str]) -> dict[str, str]:
    """What the spawner puts in the pod's environment so the server finds its record."""
    return {
        ENV_NAME: pending_configmap_name(pod_name),
        ENV_LABELS: json.dumps(dict(server_labels), sort_keys=True),
    }
