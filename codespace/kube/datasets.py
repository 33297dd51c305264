"""Fluid datasets: mount the PVC Fluid creates for each Bound ``Dataset``.

A ``data.fluid.io/v1alpha1`` Dataset bound to a runtime gets a PVC of the same name in its
namespace. A codespace mounts it at the requested path (read-only unless asked), and its
pod carries ``fuse.serverful.fluid.io/inject: "true"`` so Fluid's webhook injects the FUSE
sidecar for a long-running (serverful) pod. With ``datasetCacheAffinity`` the pod also asks
Fluid to schedule it where the dataset is cached (``fluid.io/dataset.<name>.sched``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from codespace.datasets.fluid_objects import GROUP, VERSION
from codespace.datasets.mounts import DatasetMount

FLUID_GROUP, FLUID_VERSION = GROUP, VERSION  # one definition: codespace.datasets.fluid_objects
FLUID_DATASETS = "datasets"
FUSE_INJECT_LABEL = "fuse.serverful.fluid.io/inject"


class DatasetNotReady(RuntimeError):
    """A requested dataset is missing or not Bound; the message says which and why."""


@dataclass
class DatasetMounts:
    volumes: list[dict] = field(default_factory=list)
    mounts: list[dict] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def volume_name(dataset: str) -> str:
    name = f"dataset-{dataset}"
    if len(name) <= 63:
        return name
    return f"dataset-{dataset[:45]}-{hashlib.sha256(dataset.encode()).hexdigest()[:8]}"


def sched_label(dataset: str) -> str:
    return f"fluid.io/dataset.{dataset}.sched"


def dataset_mounts(datasets: Sequence[DatasetMount], cache_affinity: bool = False) -> DatasetMounts:
    """Volumes, mounts and labels for the launch plan's datasets (the PVC Fluid made for each)."""
    result = DatasetMounts()
    if not datasets:
        return result
    result.labels[FUSE_INJECT_LABEL] = "true"
    for dataset in datasets:
        volume = volume_name(dataset.name)
        result.volumes.append(
            {
                "name": volume,
                "persistentVolumeClaim": {
                    "claimName": dataset.name,
                    "readOnly": dataset.readOnly,
                },
            }
        )
        result.mounts.append(
            {"name": volume, "mountPath": dataset.mountPath, "readOnly": dataset.readOnly}
        )
        if cache_affinity:
            key = sched_label(dataset.name)
            if len(key.split("/", 1)[1]) > 63:
                raise DatasetNotReady(
                    f"dataset name {dataset.name!r} is too long for the cache-affinity label "
                    f"{key!r} (at most 49 characters)"
                )
            result.labels[key] = "required"
    return result


def dataset_problem(name: str, namespace: str, obj: dict | None) -> str | None:
    """Why the Dataset object ``obj`` cannot be mounted now, or None when it is Bound."""
    if obj is None:
        return (
            f"dataset {name!r} does not exist in namespace {namespace!r} "
            f"(no {FLUID_GROUP}/{FLUID_VERSION} Dataset of that name)"
        )
    status = obj.get("status") or {}
    phase = status.get("phase") or "(no phase yet)"
    if phase == "Bound":
        return None
    conditions = status.get("conditions") or []
    details = "; ".join(
        f"{c.get('type')}={c.get('status')}"
        + (f" ({c.get('reason')})" if c.get("reason") else "")
        + (f": {c['message']}" if c.get("message") else "")
        for c in conditions
    )
    message = f"dataset {name!r} in namespace {namespace!r} is {phase}, not Bound"
    return f"{message}: {details}" if details else message
