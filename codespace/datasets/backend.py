"""The one interface every dataset backend implements, and helpers they share.

A backend is async (the server extension awaits it on Jupyter's event loop); blocking
filesystem work runs in threads. The same backend object serves the REST API, and through
it the lab panel, the notebook widget and the CLI.

The server extension picks the backend class by configuration
(``CodespaceExtension.dataset_backend_class``) and builds it with
:meth:`DatasetBackend.from_settings`, from one plain :class:`DatasetSettings`: a site's own
backend subclasses :class:`DatasetBackend` and reads what it needs from the settings.
"""

from __future__ import annotations

import base64
import os
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from codespace.datasets.errors import DatasetError, DatasetNotFound
from codespace.datasets.models import Dataset, FileEntry, FilePage, MountResult, PrewarmOperation
from codespace.datasets.paths import PathRefused, clean_relative, resolve_within

DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 5000


@dataclass(frozen=True)
class DatasetSettings:
    """What the server extension knows that a dataset backend may need (plain data).

    Every backend is built from the same settings and reads the fields it uses.
    """

    workspace: Path  # the codespace's workspace (local mounts go under ``datasets/``)
    state_dir: Path  # where mounts asked for the next start are recorded
    cache_dir: Path  # where prewarmed copies of remote sources are kept
    catalog: Path | None = None  # the local catalog file; None: none configured
    storage_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    namespace: str = "default"  # the Kubernetes namespace of engine objects
    mount_paths: Mapping[str, str] = field(default_factory=dict)  # name -> path in this pod


class DatasetBackend(ABC):
    """List, inspect, browse, prewarm and mount datasets."""

    kind: str = "abstract"

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: DatasetSettings) -> Self:
        """The backend the server extension configured (``dataset_backend_class``)."""

    @abstractmethod
    async def list(self) -> list[Dataset]:
        """All datasets, cheaply: statuses come from what is already known."""

    @abstractmethod
    async def get(self, name: str) -> Dataset:
        """One dataset with a fresh status; raise DatasetNotFound."""

    @abstractmethod
    async def files(
        self,
        name: str,
        path: str = "",
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> FilePage:
        """One page of the directory ``path`` inside the dataset; raise PathRefused."""

    @abstractmethod
    async def prewarm(self, name: str, paths: list[str] | None = None) -> PrewarmOperation:
        """Start filling the cache with ``paths`` (default: everything)."""

    @abstractmethod
    async def prewarm_history(self, name: str) -> list[PrewarmOperation]:
        """Prewarm operations of this dataset, newest first."""

    @abstractmethod
    async def mount(self, name: str) -> MountResult:
        """Make the dataset visible in this codespace, now or at the next start."""

    @abstractmethod
    async def unmount(self, name: str) -> MountResult:
        """Undo ``mount``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and stop background work."""


# --- pagination ------------------------------------------------------------------------


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        kind, _, number = text.partition(":")
        offset = int(number)
    except (ValueError, UnicodeDecodeError) as error:
        raise DatasetError(f"invalid cursor {cursor!r}") from error
    if kind != "o" or offset < 0:
        raise DatasetError(f"invalid cursor {cursor!r}")
    return offset


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise DatasetError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
    return limit


# A listing row before it becomes a FileEntry: (name, is_directory, size, modified).
Row = tuple[str, bool, int | None, float | None]


def paginate(dataset: str, path: str, rows: list[Row], limit: int, cursor: str | None) -> FilePage:
    """Directories first, then files, each by name; one page from the cursor on."""
    limit = check_limit(limit)
    rows.sort(key=lambda row: (not row[1], row[0]))
    start = decode_cursor(cursor)
    end = start + limit
    prefix = f"{path}/" if path else ""
    return FilePage(
        dataset=dataset,
        path=path,
        entries=[
            FileEntry(
                name=name,
                path=prefix + name,
                type="directory" if is_dir else "file",
                size=None if is_dir else size,
                modified=modified,
            )
            for name, is_dir, size, modified in rows[start:end]
        ],
        total=len(rows),
        nextCursor=encode_cursor(end) if end < len(rows) else None,
    )


def list_local_directory(
    dataset: str, root: Path, path: str, *, limit: int, cursor: str | None
) -> FilePage:
    """A page of a local directory inside ``root``; symlinks leading out are hidden."""
    relative = clean_relative(path)
    directory = resolve_within(root, relative)
    if not directory.is_dir():
        raise DatasetError(f"{relative or '/'} is not a directory in dataset {dataset!r}")
    real_root = root.resolve()
    rows: list[Row] = []
    with os.scandir(directory) as scan:
        for item in scan:
            try:
                info = item.stat()  # follows symlinks
            except OSError:
                continue  # dangling link
            if item.is_symlink():
                target = Path(item.path).resolve()
                if target != real_root and real_root not in target.parents:
                    continue  # never show what lies outside the dataset
            rows.append((item.name, stat.S_ISDIR(info.st_mode), info.st_size, info.st_mtime))
    return paginate(dataset, relative, rows, limit, cursor)


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DatasetBackend",
    "DatasetError",
    "DatasetNotFound",
    "DatasetSettings",
    "PathRefused",
    "list_local_directory",
    "paginate",
]
