"""The fake API server's object store: namespaced collections, resource versions, watchers."""

from __future__ import annotations

import asyncio
import copy
import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

CORE_KINDS = {
    "pods": "Pod",
    "events": "Event",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "services": "Service",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "serviceaccounts": "ServiceAccount",
    "namespaces": "Namespace",
}
HISTORY = 2000


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _lookup(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _selector_terms(selector: str | None) -> list[tuple[str, str, str | None]]:
    terms = []
    for term in filter(None, (selector or "").split(",")):
        for op in ("!=", "==", "="):
            if op in term:
                key, value = term.split(op, 1)
                terms.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            terms.append((term.strip().lstrip("!"), "!" if term.startswith("!") else "?", None))
    return terms


def matches(obj: dict, label_selector: str | None, field_selector: str | None) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, value in _selector_terms(label_selector):
        present = key in labels
        if (
            (op == "=" and labels.get(key) != value)
            or (op == "!=" and labels.get(key) == value)
            or (op == "?" and not present)
            or (op == "!" and present)
        ):
            return False
    for key, op, value in _selector_terms(field_selector):
        actual = _lookup(obj, key)
        actual = "" if actual is None else str(actual)
        if (op == "=" and actual != value) or (op == "!=" and actual == value):
            return False
    return True


@dataclass
class Collection:
    api_version: str
    plural: str
    kind: str
    objects: dict[tuple[str, str], dict] = field(default_factory=dict)


@dataclass
class Watcher:
    namespace: str | None
    label_selector: str | None
    field_selector: str | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic-merge patches: lists replace)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class Store:
    """All objects, keyed by (apiVersion, plural); every change bumps one resourceVersion."""

    def __init__(self) -> None:
        self.resource_version = 0
        self.collections: dict[tuple[str, str], Collection] = {}
        self.history: dict[tuple[str, str], list[tuple[int, str, dict]]] = {}
        self.watchers: dict[tuple[str, str], list[Watcher]] = {}
        self.listeners: list = []  # callables (event_type, api_version, plural, obj)

    def collection(self, api_version: str, plural: str, kind: str | None = None) -> Collection:
        key = (api_version, plural)
        if key not in self.collections:
            kind = kind or CORE_KINDS.get(plural) or plural.rstrip("s").capitalize()
            self.collections[key] = Collection(api_version, plural, kind)
        elif kind and self.collections[key].kind != kind:
            self.collections[key].kind = kind
        return self.collections[key]

    def _notify(self, api_version: str, plural: str, event_type: str, obj: dict) -> None:
        key = (api_version, plural)
        snapshot = copy.deepcopy(obj)
        history = self.history.setdefault(key, [])
        history.append((self.resource_version, event_type, snapshot))
        del history[:-HISTORY]
        namespace = obj["metadata"].get("namespace")
        for watcher in self.watchers.get(key, []):
            if watcher.namespace not in (None, namespace):
                continue
            if matches(snapshot, watcher.label_selector, watcher.field_selector):
                watcher.queue.put_nowait({"type": event_type, "object": snapshot})
        for listener in list(self.listeners):
            listener(event_type, api_version, plural, snapshot)

    def _bump(self, obj: dict) -> None:
        self.resource_version += 1
        obj["metadata"]["resourceVersion"] = str(self.resource_version)

    # -- operations (all on the server loop) -------------------------------------------------

    def list(self, api_version, plural, namespace=None, label_selector=None, field_selector=None):
        collection = self.collection(api_version, plural)
        items = [
            copy.deepcopy(obj)
            for (ns, _), obj in sorted(collection.objects.items())
            if namespace in (None, ns) and matches(obj, label_selector, field_selector)
        ]
        return {
            "apiVersion": api_version,
            "kind": f"{collection.kind}List",
            "metadata": {"resourceVersion": str(self.resource_version)},
            "items": items,
        }

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict:
        obj = self.collection(api_version, plural).objects.get((namespace, name))
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        return copy.deepcopy(obj)

    def create(self, api_version: str, plural: str, namespace: str, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        name = metadata.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        collection = self.collection(api_version, plural, obj.get("kind"))
        if (namespace, name) in collection.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", collection.kind)
        metadata.update(
            namespace=namespace, uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1
        )
        if plural == "pods":
            obj.setdefault("status", {"phase": "Pending", "conditions": []})
        self._bump(obj)
        collection.objects[(namespace, name)] = obj
        self._notify(api_version, plural, "ADDED", obj)
        return copy.deepcopy(obj)

    def replace(self, api_version, plural, namespace, name, obj, subresource=None) -> dict:
        current = self.collection(api_version, plural).objects.get((namespace, name))
        if current is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        if subresource == "status":
            current["status"] = copy.deepcopy(obj.get("status", {}))
        else:
            keep = {k: current["metadata"][k] for k in ("uid", "creationTimestamp", "namespace")}
            status = current.get("status")
            current.clear()
            current.update(copy.deepcopy(obj))
            current["metadata"].update(keep)
            if status is not None and "status" not in obj:
                current["status"] = status
        self._bump(current)
        self._notify(api_version, plural, "MODIFIED", current)
        return copy.deepcopy(current)

    def patch(self, api_version, plural, namespace, name, patch, subresource=None) -> dict:
        current = self.get(api_version, plural, namespace, name)
        if subresource == "status":
            patch = {"status": patch.get("status", {})}
        merged = merge_patch(current, patch)
        return self.replace(api_version, plural, namespace, name, merged)

    def delete(self, api_version: str, plural: str, namespace: str, name: str) -> dict:
        collection = self.collection(api_version, plural)
        obj = collection.objects.pop((namespace, name), None)
        if obj is None:
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        self._bump(obj)
        self._notify(api_version, plural, "DELETED", obj)
        return copy.deepcopy(obj)

    def watch(self, api_version, plural, namespace, label_selector, field_selector, since):
        """Register a watcher; replay history newer than ``since`` (a resourceVersion)."""
        watcher = Watcher(namespace, label_selector, field_selector)
        key = (api_version, plural)
        self.collection(api_version, plural)
        if not since:  # no resourceVersion: the current state first, as ADDED events
            for obj in self.list(api_version, plural, namespace, label_selector, field_selector)[
                "items"
            ]:
                watcher.queue.put_nowait({"type": "ADDED", "object": obj})
        else:
            for rv, event_type, obj in self.history.get(key, []):
                if rv > since and namespace in (None, obj["metadata"].get("namespace")):
                    if matches(obj, label_selector, field_selector):
                        watcher.queue.put_nowait({"type": event_type, "object": obj})
        self.watchers.setdefault(key, []).append(watcher)
        return watcher

    def unwatch(self, api_version: str, plural: str, watcher: Watcher) -> None:
        watchers = self.watchers.get((api_version, plural), [])
        if watcher in watchers:
            watchers.remove(watcher)
