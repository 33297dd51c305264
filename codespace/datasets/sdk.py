"""Module-level dataset functions for notebooks: typed results over the REST client."""

from __future__ import annotations

import builtins

from codespace.client import CodespaceClient
from codespace.datasets.models import Dataset, FilePage, MountResult, PrewarmOperation


def _client(client: CodespaceClient | None) -> CodespaceClient:
    return client or CodespaceClient()


def list(*, client: CodespaceClient | None = None) -> builtins.list[Dataset]:
    """All datasets this codespace can use."""
    return [Dataset.model_validate(item) for item in _client(client).list_datasets()]


def get(name: str, *, client: CodespaceClient | None = None) -> Dataset:
    """One dataset with a fresh status."""
    return Dataset.model_validate(_client(client).get_dataset(name))


def files(
    name: str,
    path: str = "",
    *,
    limit: int | None = None,
    cursor: str | None = None,
    client: CodespaceClient | None = None,
) -> FilePage:
    """One page of a directory inside the dataset (pass ``nextCursor`` for the next)."""
    return FilePage.model_validate(
        _client(client).list_files(name, path, limit=limit, cursor=cursor)
    )


def prewarm(
    name: str, paths: builtins.list[str] | None = None, *, client: CodespaceClient | None = None
) -> PrewarmOperation:
    """Start warming the cache (all of it, or ``paths``)."""
    return PrewarmOperation.model_validate(_client(client).prewarm(name, paths))


def prewarm_history(
    name: str, *, client: CodespaceClient | None = None
) -> builtins.list[PrewarmOperation]:
    return [PrewarmOperation.model_validate(op) for op in _client(client).prewarm_history(name)]


def mount(name: str, *, client: CodespaceClient | None = None) -> MountResult:
    """Mount now where the backend can; otherwise record it for the next start (see message)."""
    return MountResult.model_validate(_client(client).mount(name))


def unmount(name: str, *, client: CodespaceClient | None = None) -> MountResult:
    return MountResult.model_validate(_client(client).unmount(name))
