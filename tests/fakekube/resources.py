"""The resources the fake API server knows: the built-in kinds and those CRDs serve (discovery,
scope, subresources, schema), and Kubernetes' version order."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakekube.errors import ApiError

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CRD_API, CRD_PLURAL = "apiextensions.k8s.io/v1", "customresourcedefinitions"


@dataclass(frozen=True)
class Resource:
    """What discovery says about one resource (``GET /api/v1``, ``/apis/<group>/<version>``)."""

    api_version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = VERBS
    custom: bool = False  # defined by a CustomResourceDefinition
    schema: dict | None = field(default=None, compare=False)  # its openAPIV3Schema

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    def discovery(self) -> list[dict]:
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        subs = [
            {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"] if sub in ("status", "scale") else ["get"],
            }
            for sub in self.subresources
        ]
        return [entry, *subs]


def _builtin(api_version: str, plural: str, kind: str, namespaced: bool = True, *subs: str):
    return Resource(api_version, plural, kind, namespaced, kind.lower(), subs)


BUILTINS: dict[tuple[str, str], Resource] = {
    (r.api_version, r.plural): r
    for r in (
        _builtin("v1", "pods", "Pod", True, "status", "log"),
        _builtin("v1", "events", "Event"),
        _builtin("v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, "status"),
        _builtin("v1", "services", "Service", True, "status"),
        _builtin("v1", "secrets", "Secret"),
        _builtin("v1", "configmaps", "ConfigMap"),
        _builtin("v1", "resourcequotas", "ResourceQuota", True, "status"),
        _builtin("v1", "serviceaccounts", "ServiceAccount"),
        _builtin("v1", "namespaces", "Namespace", False, "status"),
        _builtin("batch/v1", "jobs", "Job", True, "status"),
        _builtin(CRD_API, CRD_PLURAL, "CustomResourceDefinition", False, "status"),
    )
}
CORE_KINDS = {plural: r.kind for (api, plural), r in BUILTINS.items() if api == "v1"}


def _version_key(version: str) -> tuple:
    """Kubernetes' version priority: GA > beta > alpha, higher numbers first, others last."""
    found = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not found:
        return (0, 0, 0, version)
    major, stage, minor = found.groups()
    rank = {None: 3, "beta": 2, "alpha": 1}[stage]
    return (rank, int(major), int(minor or 0), "")


def sort_versions(versions: list[str]) -> list[str]:
    known = sorted((v for v in versions if _version_key(v)[0]), key=_version_key, reverse=True)
    return known + sorted(v for v in versions if not _version_key(v)[0])


def _crd_resources(crd: dict) -> list[Resource]:
    """The resources one CRD serves; a malformed CRD is a 422 like the real validation."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
    scope, versions = spec.get("scope"), spec.get("versions") or []
    problems = [
        what
        for what, ok in (
            ("spec.group", group),
            ("spec.names.plural", plural),
            ("spec.names.kind", kind),
            ("spec.scope", scope in ("Namespaced", "Cluster")),
            ("spec.versions", versions and all(v.get("name") for v in versions)),
        )
        if not ok
    ]
    if problems:
        raise ApiError(422, "Invalid", f"CustomResourceDefinition: invalid {', '.join(problems)}")
    name = (crd.get("metadata") or {}).get("name")
    if name != f"{plural}.{group}":
        raise ApiError(
            422,
            "Invalid",
            f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
        )
    if sum(bool(v.get("storage")) for v in versions) != 1:
        raise ApiError(422, "Invalid", "spec.versions: exactly one version must be storage")
    return [
        Resource(
            api_version=f"{group}/{version['name']}",
            plural=plural,
            kind=kind,
            namespaced=scope == "Namespaced",
            singular=names.get("singular") or kind.lower(),
            subresources=tuple(sorted((version.get("subresources") or {}).keys())),
            short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()),
            custom=True,
            schema=(version.get("schema") or {}).get("openAPIV3Schema"),
        )
        for version in versions
        if version.get("served", True)
    ]
