"""Datasets: the notebook SDK, and (server side) one backend interface with several backends.

From a notebook, the module-level functions talk to this codespace's server::

    from codespace import datasets
    datasets.list()                    # [Dataset(name=..., status=DatasetStatus(...)), ...]
    datasets.files("mnist", "train")   # FilePage
    datasets.prewarm("weather")        # PrewarmOperation; poll datasets.get("weather").status
    datasets.mount("mnist")            # MountResult: mounted now, or at the next start

Two sides, kept apart (DESIGN §4). Importing this package loads only the standard library: the
SDK and the records it returns (:mod:`~codespace.datasets.records`) run in the repository's
environment, next to whatever pydantic or PyYAML the repository pins. The server side (the
pydantic models in :mod:`~codespace.datasets.models`, :class:`DatasetBackend`, the catalog, the
Fluid and local backends) is imported from its own modules, or lazily through this package's
attributes (``CatalogEntry``, ``DatasetBackend``), and is never loaded by the SDK.
"""

from __future__ import annotations

from codespace._lazy import lazy_attributes
from codespace.datasets.errors import DatasetError, DatasetNotFound
from codespace.datasets.paths import PathRefused
from codespace.datasets.records import (
    Dataset,
    DatasetStatus,
    FileEntry,
    FilePage,
    MountResult,
    PrewarmOperation,
)
from codespace.datasets.sdk import files, get, list, mount, prewarm, prewarm_history, unmount

# Server-side names, imported on first use (PEP 562) so the kernel side never needs pydantic.
_LAZY = {
    "CatalogEntry": "codespace.datasets.models",
    "DatasetBackend": "codespace.datasets.backend",
}
__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


# The lazy server-side names stay out of __all__: ``import *`` in a notebook loads no pydantic.
__all__ = [
    "Dataset",
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
