"""Module-level dataset functions for notebooks: typed records over the REST client.

Kernel side: standard library only (see :mod:`codespace.datasets.records`), so it works in any
repository environment whatever its own pins (pydantic 1, no PyYAML, ...).
"""

from __future__ import annotations

import builtins

from codespace.client import CodespaceClient
from codespace.datasets.records import Dataset, FilePage, MountResult, PrewarmOperation


def _client(client: CodespaceClient | None) -> CodespaceClient:
    return client or CodespaceClient()


def list(*, client: CodespaceClient | None = None) -> builtins.list[Dataset]:
    """All datasets this codespace can use."""
    return [Dataset.from_json(item) for item in _client(client).list_datasets()]


def get(name: str, *, client: CodespaceClient | None = None) -> Dataset:
    """One dataset with a fresh status."""
    return Dataset.from_json(_client(client).get_dataset(name))


def files(
    name: str,
    path: str = "",
    *,
    limit: int | None = None,
    cursor: str | None = None,
    client: CodespaceClient | None = None,
) -> FilePage:
    """One page of a directory inside the dataset (pass ``nextCursor`` for the next)."""
    return FilePage.from_json(_client(client).list_files(name, path, limit=limit, cursor=cursor))


def prewarm(
    name: str, paths: builtins.list[str] | None = None, *, client: CodespaceClient | None = None
) -> PrewarmOperation:
    """Start warming the cache (all of it, or ``paths``); poll ``get(name).status``."""
    return PrewarmOperation.from_json(_client(client).prewarm(name, paths))


def prewarm_history(
    name: str, *, client: CodespaceClient | None = None
) -> builtins.list[PrewarmOperation]:
    """This dataset's prewarms, newest first."""
    return [PrewarmOperation.from_json(op) for op in _client(client).prewarm_history(name)]


def mount(name: str, *, client: CodespaceClient | None = None) -> MountResult:
    """Mount now where the backend can; otherwise record it for the next start (see message)."""
    return MountResult.from_json(_client(client).mount(name))


def unmount(name: str, *, client: CodespaceClient | None = None) -> MountResult:
    """Undo ``mount`` (or drop it from the next start's list)."""
    return MountResult.from_json(_client(client).unmount(name))
