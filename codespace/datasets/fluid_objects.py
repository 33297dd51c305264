"""Pure builders and readers for Fluid's custom objects (data.fluid.io/v1alpha1).

No I/O here: the Fluid backend sends these dicts through the Kubernetes API, and the tests
validate every one against Fluid's CRD schemas.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from codespace.datasets.models import Dataset, DatasetStatus, PrewarmOperation

GROUP = "data.fluid.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
DATASET_LABEL = "codespace.dev/dataset"
MANAGED_BY = {"app.kubernetes.io/managed-by": "codespace-hub"}

# status.runtimes[].type -> the runtime's plural resource name
RUNTIME_PLURALS = {
    "alluxio": "alluxioruntimes",
    "juicefs": "juicefsruntimes",
    "thin": "thinruntimes",
    "jindo": "jindoruntimes",
    "goosefs": "goosefsruntimes",
    "efc": "efcruntimes",
    "vineyard": "vineyardruntimes",
}
RUNTIME_KINDS = {
    "AlluxioRuntime": "alluxioruntimes",
    "JuiceFSRuntime": "juicefsruntimes",
    "ThinRuntime": "thinruntimes",
}


def dataset_manifest(
    name: str,
    namespace: str,
    source: str,
    *,
    read_only: bool = True,
    description: str = "",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A Fluid ``Dataset`` for one underlying source (``s3://...``, ``pvc://...``, ...)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**MANAGED_BY, **(labels or {})},
    }
    if description:
        metadata["annotations"] = {"codespace.dev/description": description}
    return {
        "apiVersion": API_VERSION,
        "kind": "Dataset",
        "metadata": metadata,
        "spec": {
            "mounts": [{"mountPoint": source, "name": name, "readOnly": read_only}],
            "accessModes": ["ReadOnlyMany" if read_only else "ReadWriteMany"],
        },
    }


def alluxio_runtime_manifest(
    name: str, namespace: str, *, replicas: int = 1, quota: str = "2Gi", medium: str = "MEM"
) -> dict[str, Any]:
    """An ``AlluxioRuntime`` (same name as its Dataset) caching in memory or on SSD."""
    path = "/dev/shm" if medium == "MEM" else "/var/lib/fluid/cache"
    return {
        "apiVersion": API_VERSION,
        "kind": "AlluxioRuntime",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "replicas": replicas,
            "tieredstore": {"levels": [{"mediumtype": medium, "path": path, "quota": quota}]},
        },
    }


def dataload_name(dataset: str, paths: list[str], stamp: str) -> str:
    """A DNS-1123 name, unique per dataset, paths and time stamp."""
    digest = hashlib.sha256(f"{dataset}\0{','.join(paths)}\0{stamp}".encode()).hexdigest()[:8]
    return f"{dataset[:50]}-load-{digest}"


def dataload_manifest(
    dataset: str, namespace: str, paths: list[str], *, name: str, replicas: int = 1
) -> dict[str, Any]:
    """A ``DataLoad`` that warms ``paths`` (absolute inside the dataset, '/' = all)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "DataLoad",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, DATASET_LABEL: dataset},
        },
        "spec": {
            "dataset": {"name": dataset, "namespace": namespace},
            "loadMetadata": True,
            "target": [{"path": path, "replicas": replicas} for path in paths],
        },
    }


def runtime_ref(obj: dict[str, Any]) -> tuple[str, str, str] | None:
    """(plural, namespace, name) of a Dataset's bound runtime, if it has one."""
    for runtime in (obj.get("status") or {}).get("runtimes") or []:
        plural = RUNTIME_PLURALS.get(str(runtime.get("type", "")).lower())
        if plural and runtime.get("name"):
            namespace = runtime.get("namespace") or obj["metadata"].get("namespace", "")
            return plural, namespace, runtime["name"]
    return None


def runtime_phases(runtime: dict[str, Any] | None) -> dict[str, str]:
    status = (runtime or {}).get("status") or {}
    phases = {
        part: status[f"{part}Phase"]
        for part in ("master", "worker", "fuse")
        if status.get(f"{part}Phase")
    }
    return phases


def _int(value: Any) -> int | None:
    try:
        return int(str(value).replace(",", ""))
    except (TypeError, ValueError):
        return None


def dataset_status(obj: dict[str, Any], runtime: dict[str, Any] | None = None) -> DatasetStatus:
    status = obj.get("status") or {}
    cache = status.get("cacheStates") or {}
    conditions = status.get("conditions") or []
    message = conditions[-1].get("message") if conditions else None
    return DatasetStatus(
        phase=status.get("phase") or "Pending",
        ufsTotal=status.get("ufsTotal") or None,
        fileNum=_int(status.get("fileNum")),
        cached=cache.get("cached"),
        cacheCapacity=cache.get("cacheCapacity"),
        cachedPercentage=cache.get("cachedPercentage"),
        cacheHitRatio=cache.get("cacheHitRatio"),
        runtimePhases=runtime_phases(runtime),
        message=message,
    )


def dataset_from_object(
    obj: dict[str, Any], runtime: dict[str, Any] | None, *, mount_path: str, mounted: bool
) -> Dataset:
    metadata = obj.get("metadata") or {}
    mounts = (obj.get("spec") or {}).get("mounts") or []
    modes = (obj.get("spec") or {}).get("accessModes") or ["ReadOnlyMany"]
    annotations = metadata.get("annotations") or {}
    return Dataset(
        name=metadata["name"],
        description=annotations.get("codespace.dev/description", ""),
        source=", ".join(m.get("mountPoint", "") for m in mounts),
        readOnly=all(mode.startswith("ReadOnly") for mode in modes),
        tags=[tag for tag in annotations.get("codespace.dev/tags", "").split(",") if tag],
        backend="fluid",
        status=dataset_status(obj, runtime),
        mountPath=mount_path,
        mounted=mounted,
    )


def _timestamp(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def prewarm_from_dataload(obj: dict[str, Any]) -> PrewarmOperation:
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    if phase not in ("Pending", "Executing", "Complete", "Failed"):
        phase = "Pending"
    conditions = status.get("conditions") or []
    finished = next(
        (
            c.get("lastTransitionTime")
            for c in conditions
            if c.get("type") in ("Complete", "Failed")
        ),
        None,
    )
    return PrewarmOperation(
        id=metadata.get("name", ""),
        dataset=(spec.get("dataset") or {}).get("name", ""),
        paths=[target.get("path", "/") for target in spec.get("target") or []] or ["/"],
        phase=phase,
        startedAt=_timestamp(metadata.get("creationTimestamp")),
        finishedAt=_timestamp(finished) if phase in ("Complete", "Failed") else None,
        message=(conditions[-1].get("message") if conditions else None) or status.get("duration"),
    )
