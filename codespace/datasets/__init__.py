"""Datasets: one interface (:class:`DatasetBackend`), a local catalog and a Fluid backend.

From a notebook, the module-level functions talk to this codespace's server::

    from codespace import datasets
    datasets.list()                    # [Dataset(name=..., status=DatasetStatus(...)), ...]
    datasets.files("mnist", "train")   # FilePage
    datasets.prewarm("weather")        # PrewarmOperation; poll datasets.get("weather").status
    datasets.mount("mnist")            # MountResult: mounted now, or at the next start

Importing this package loads neither fsspec nor kubernetes_asyncio; the backends import
what they need when used (server side).
"""

from __future__ import annotations

from codespace.datasets.backend import DatasetBackend, DatasetError, DatasetNotFound
from codespace.datasets.models import (
    CatalogEntry,
    Dataset,
    DatasetStatus,
    FileEntry,
    FilePage,
    MountResult,
    PrewarmOperation,
)
from codespace.datasets.paths import PathRefused
from codespace.datasets.sdk import files, get, list, mount, prewarm, prewarm_history, unmount

__all__ = [
    "CatalogEntry",
    "Dataset",
    "DatasetBackend",
    "DatasetError",
    "DatasetNotFound",
    "DatasetStatus",
    "FileEntry",
    "FilePage",
    "MountResult",
    "PathRefused",
    "PrewarmOperation",
    "files",
    "get",
    "list",
    "mount",
    "prewarm",
    "prewarm_history",
    "unmount",
]
