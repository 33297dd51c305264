"""The fake API server's object store: collections, resource versions, watchers, CRDs.

Objects are keyed by ``(apiVersion, plural)`` and then ``(namespace, name)``; a cluster-scoped
object has the namespace ``""`` in its key and no ``metadata.namespace``. What the real API
server does and the fake does too:

* every change bumps the one ``resourceVersion`` counter; an update that changes nothing is a
  no-op (no new version, no watch event);
* ``metadata.generation`` starts at 1 and grows when anything but ``metadata`` and ``status``
  changes;
* ``DELETE`` of an object with ``metadata.finalizers`` only sets ``deletionTimestamp`` (and
  ``deletionGracePeriodSeconds: 0``) and answers the object (a ``MODIFIED`` event); the update
  that leaves such an object with no finalizers deletes it (a ``DELETED`` event);
* a ``CustomResourceDefinition`` (``apiextensions.k8s.io/v1``, cluster-scoped) makes its
  resource known: discovery lists it, its scope is enforced and, with the ``status``
  subresource, writes to the main resource through the API ignore ``status`` while writes to
  ``/status`` change only ``status``; every write to its objects is pruned, defaulted and
  validated by the version's ``openAPIV3Schema`` (:mod:`tests.fakekube.schema`). Deleting
  the CRD deletes its objects.

Calls from the HTTP layer pass ``strict=True`` (scope, ``resourceVersion`` preconditions,
status-subresource rules, no new finalizers while deleting); the fake's own controllers
(kubelet, Argo, KServe) call without it and may write ``status`` through the main resource.
Kinds without a CRD here (Fluid, Argo, KServe unless registered) are stored as before: any
namespaced ``/apis/<group>/<version>/...`` path, no schema, no status split.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.fakekube import schema as openapi
from tests.fakekube.errors import ApiError, _not_found, now
from tests.fakekube.patches import invalid_patch, json_patch, merge_patch
from tests.fakekube.resources import (
    BUILTINS,
    CRD_API,
    CRD_PLURAL,
    Resource,
    _crd_resources,
)

HISTORY = 2000


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


def _spec_part(obj: dict, with_status: bool) -> dict:
    skip = {"metadata", "apiVersion", "kind"} | (set() if with_status else {"status"})
    return {k: v for k, v in obj.items() if k not in skip}


class Store:
    """All objects, keyed by (apiVersion, plural); every change bumps one resourceVersion."""

    def __init__(self) -> None:
        self.resource_version = 0
        self.collections: dict[tuple[str, str], Collection] = {}
        self.history: dict[tuple[str, str], list[tuple[int, str, dict]]] = {}
        self.compacted: dict[tuple[str, str], int] = {}  # the newest version dropped from history
        self.watchers: dict[tuple[str, str], list[Watcher]] = {}
        self.listeners: list = []  # callables (event_type, api_version, plural, obj)
        self.resources: dict[tuple[str, str], Resource] = dict(BUILTINS)

    # -- resources -------------------------------------------------------------------------

    def resource(self, api_version: str, plural: str) -> Resource | None:
        return self.resources.get((api_version, plural))

    def plural_of(self, api_version: str, kind: str) -> str | None:
        for (version, plural), resource in self.resources.items():
            if version == api_version and resource.kind == kind:
                return plural
        return None

    def namespaced(self, api_version: str, plural: str) -> bool | None:
        """True/False for a known resource, None for one the fake stores without knowing."""
        resource = self.resource(api_version, plural)
        return None if resource is None else resource.namespaced

    def _status_subresource(self, api_version: str, plural: str) -> bool:
        resource = self.resource(api_version, plural)
        return resource is not None and resource.custom and "status" in resource.subresources

    def _admit(self, api_version: str, plural: str, obj: dict) -> dict:
        """A custom resource pruned, defaulted and validated by its CRD's schema."""
        resource = self.resource(api_version, plural)
        if resource is None or not resource.custom or not resource.schema:
            return obj
        obj, found = openapi.admit(obj, resource.schema)
        if found:
            name = obj["metadata"].get("name", "")
            message = f'{resource.kind}.{resource.group} "{name}" is invalid: {"; ".join(found)}'
            raise ApiError(422, "Invalid", message)
        return obj

    def _check_scope(self, api_version: str, plural: str, namespace: str | None) -> None:
        resource = self.resource(api_version, plural)
        if resource is not None and resource.namespaced != (namespace is not None):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _register_crd(self, crd: dict) -> None:
        served = _crd_resources(crd)
        self._unregister_crd(crd, keep={(r.api_version, r.plural) for r in served})
        for resource in served:
            self.resources[(resource.api_version, resource.plural)] = resource
            self.collection(resource.api_version, resource.plural, resource.kind)

    def _unregister_crd(self, crd: dict, keep: Iterable[tuple[str, str]] = ()) -> None:
        keep = set(keep)
        spec = crd.get("spec") or {}
        group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
        for key, resource in list(self.resources.items()):
            if resource.custom and (resource.group, resource.plural) == (group, plural):
                if key not in keep:
                    del self.resources[key]

    def _crd_status(self, crd: dict) -> dict:
        names = dict(crd["spec"]["names"])
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
        conditions = [
            {
                "type": kind,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": now(),
            }
            for kind, reason, message in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ]
        stored = [v["name"] for v in crd["spec"]["versions"] if v.get("storage")]
        return {"acceptedNames": names, "conditions": conditions, "storedVersions": stored}

    def _crd_removed(self, crd: dict) -> None:
        """A deleted CRD takes its objects with it (the real server's cleanup finalizer)."""
        spec = crd.get("spec") or {}
        group, plural = spec.get("group"), (spec.get("names") or {}).get("plural")
        for version in spec.get("versions") or []:
            key = (f"{group}/{version.get('name')}", plural)
            collection = self.collections.get(key)
            for (namespace, name), obj in list(collection.objects.items() if collection else []):
                del collection.objects[(namespace, name)]
                self._bump(obj)
                self._notify(*key, "DELETED", obj)
        self._unregister_crd(crd)

    # -- internals -------------------------------------------------------------------------

    def collection(self, api_version: str, plural: str, kind: str | None = None) -> Collection:
        key = (api_version, plural)
        if key not in self.collections:
            known = self.resources.get(key)
            kind = kind or (known.kind if known else None) or plural.rstrip("s").capitalize()
            self.collections[key] = Collection(api_version, plural, kind)
        elif kind and self.collections[key].kind != kind:
            self.collections[key].kind = kind
        return self.collections[key]

    def _notify(self, api_version: str, plural: str, event_type: str, obj: dict) -> None:
        key = (api_version, plural)
        snapshot = copy.deepcopy(obj)
        history = self.history.setdefault(key, [])
        history.append((self.resource_version, event_type, snapshot))
        if len(history) > HISTORY:
            self.compacted[key] = history[-HISTORY - 1][0]
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

    def _remove(self, api_version: str, plural: str, key: tuple[str, str], obj: dict) -> dict:
        self.collection(api_version, plural).objects.pop(key, None)
        self._bump(obj)
        self._notify(api_version, plural, "DELETED", obj)
        if (api_version, plural) == (CRD_API, CRD_PLURAL):
            self._crd_removed(obj)
        return copy.deepcopy(obj)

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

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict:
        obj = self.collection(api_version, plural).objects.get((namespace or "", name))
        if obj is None:
            raise _not_found(plural, name)
        return copy.deepcopy(obj)

    def create(
        self, api_version: str, plural: str, namespace: str | None, obj: dict, *, strict=False
    ) -> dict:
        """Create an object; ``namespace=None`` makes it cluster-scoped."""
        if strict:
            self._check_scope(api_version, plural, namespace)
            given = (obj.get("metadata") or {}).get("namespace")
            if given and given != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
        name = metadata.get("name")
        if not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        is_crd = (api_version, plural) == (CRD_API, CRD_PLURAL)
        if is_crd:
            _crd_resources(obj)  # validate before storing
        collection = self.collection(api_version, plural, obj.get("kind"))
        if (namespace or "", name) in collection.objects:
            raise ApiError(409, "AlreadyExists", f'{plural} "{name}" already exists')
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", collection.kind)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            metadata.pop(key, None)
        metadata.pop("namespace", None)
        if namespace is not None:
            metadata["namespace"] = namespace
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        if plural == "pods":
            obj.setdefault("status", {"phase": "Pending", "conditions": []})
        if is_crd:
            obj["status"] = self._crd_status(obj)
            self._register_crd(obj)
        elif strict and self._status_subresource(api_version, plural):
            obj.pop("status", None)  # the status comes through /status only
        obj = self._admit(api_version, plural, obj)
        self._bump(obj)
        collection.objects[(namespace or "", name)] = obj
        self._notify(api_version, plural, "ADDED", obj)
        return copy.deepcopy(obj)

    def replace(
        self, api_version, plural, namespace, name, obj, subresource=None, *, strict=False
    ) -> dict:
        """PUT semantics. ``strict`` (the API): a stale ``metadata.resourceVersion`` is a 409,
        and a custom resource's ``status`` subresource is honoured both ways."""
        key = (namespace or "", name)
        current = self.collection(api_version, plural).objects.get(key)
        if current is None:
            raise _not_found(plural, name)
        status_sub = self._status_subresource(api_version, plural)
        if strict:
            self._check_scope(api_version, plural, namespace)
            resource = self.resource(api_version, plural)
            if subresource and resource is not None and subresource not in resource.subresources:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            wanted = (obj.get("metadata") or {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                )
            given = (obj.get("metadata") or {}).get("name")
            if given and given != name:
                raise ApiError(400, "BadRequest", "the name of the object does not match the URL")
        if subresource == "status":
            new = copy.deepcopy(current)
            if obj.get("status") is None:
                new.pop("status", None)
            else:
                new["status"] = copy.deepcopy(obj["status"])
        else:
            new = copy.deepcopy(obj)
            new.setdefault("apiVersion", current.get("apiVersion", api_version))
            new.setdefault("kind", current.get("kind"))
            meta = new.setdefault("metadata", {})
            meta["name"] = name
            fixed = ("uid", "creationTimestamp", "namespace", "deletionTimestamp")
            for field_name in (*fixed, "deletionGracePeriodSeconds", "generation"):
                if field_name in current["metadata"]:
                    meta[field_name] = current["metadata"][field_name]
                else:
                    meta.pop(field_name, None)
            resource = self.resource(api_version, plural)
            plain_custom = resource is not None and resource.custom and not status_sub
            # With a status subresource the API ignores status here; the fake's own callers
            # and other kinds (leniently) keep the current status when they send none.
            if (strict and status_sub) or ("status" not in obj and not plain_custom):
                new.pop("status", None)
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
        new = self._admit(api_version, plural, new)
        if subresource != "status":
            resource = self.resource(api_version, plural)
            plain_custom = resource is not None and resource.custom and not status_sub
            if _spec_part(new, plain_custom) != _spec_part(current, plain_custom):
                new["metadata"]["generation"] = int(current["metadata"].get("generation") or 1) + 1
        meta = new["metadata"]
        meta["resourceVersion"] = current["metadata"].get("resourceVersion")
        if new == current:
            return copy.deepcopy(current)  # no change: no new version, no event
        added = set(meta.get("finalizers") or ()) - set(current["metadata"].get("finalizers") or ())
        if strict and added and meta.get("deletionTimestamp"):
            raise ApiError(
                422,
                "Invalid",
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object "
                "is being deleted",
            )
        if (api_version, plural) == (CRD_API, CRD_PLURAL) and subresource != "status":
            self._register_crd(new)
        if (
            meta.get("deletionTimestamp")
            and meta.get("deletionGracePeriodSeconds", 0) == 0
            and not meta.get("finalizers")
        ):
            return self._remove(api_version, plural, key, new)
        self.collection(api_version, plural).objects[key] = new
        self._bump(new)
        self._notify(api_version, plural, "MODIFIED", new)
        return copy.deepcopy(new)

    def patch(
        self,
        api_version,
        plural,
        namespace,
        name,
        patch,
        subresource=None,
        *,
        patch_type: str = "merge",
        strict=False,
    ) -> dict:
        """A merge patch (``patch_type="merge"``, also used for strategic merge) or a JSON
        patch (``"json"``), then :meth:`replace` semantics (``/status`` keeps only status)."""
        current = self.get(api_version, plural, namespace, name)
        if patch_type == "json":
            merged = json_patch(current, patch)
        elif isinstance(patch, dict):
            merged = merge_patch(current, patch)
        else:
            raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
        if not isinstance(merged, dict):
            raise invalid_patch("the patched object is not an object")
        # A resourceVersion the patch sets is a precondition, checked by replace (strict).
        return self.replace(
            api_version, plural, namespace, name, merged, subresource, strict=strict
        )

    def delete(
        self, api_version: str, plural: str, namespace: str | None, name: str, grace: int = 0
    ) -> dict:
        """Delete at once, or, with finalizers or a grace period, mark ``deletionTimestamp``."""
        key = (namespace or "", name)
        current = self.collection(api_version, plural).objects.get(key)
        if current is None:
            raise _not_found(plural, name)
        meta = current["metadata"]
        if not meta.get("finalizers") and grace == 0:
            return self._remove(api_version, plural, key, current)
        changed = False
        if not meta.get("deletionTimestamp"):
            meta["deletionTimestamp"] = now()
            meta["deletionGracePeriodSeconds"] = grace
            changed = True
        elif grace < meta.get("deletionGracePeriodSeconds", 0):
            meta["deletionGracePeriodSeconds"] = grace
            changed = True
        if changed:
            self._bump(current)
            self._notify(api_version, plural, "MODIFIED", current)
        return copy.deepcopy(current)

    def exists(self, api_version: str, plural: str, namespace: str | None, name: str) -> bool:
        return (namespace or "", name) in self.collection(api_version, plural).objects

    def watch(self, api_version, plural, namespace, label_selector, field_selector, since):
        """Register a watcher; replay history newer than ``since`` (a resourceVersion).

        A ``since`` older than the kept history gets an ``ERROR`` event with a 410 ``Status``
        ("too old resource version"), as from the real server.
        """
        watcher = Watcher(namespace, label_selector, field_selector)
        key = (api_version, plural)
        self.collection(api_version, plural)
        if not since:  # no resourceVersion: the current state first, as ADDED events
            for obj in self.list(api_version, plural, namespace, label_selector, field_selector)[
                "items"
            ]:
                watcher.queue.put_nowait({"type": "ADDED", "object": obj})
        elif since < self.compacted.get(key, 0):
            gone = ApiError(410, "Expired", f"too old resource version: {since}")
            watcher.queue.put_nowait({"type": "ERROR", "object": gone.status()})
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
