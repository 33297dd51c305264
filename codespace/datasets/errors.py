"""Dataset errors, shared by the server-side backends and the kernel-side SDK (stdlib only)."""

from __future__ import annotations


class DatasetError(Exception):
    """A dataset operation failed in a way the user can act on (message says how)."""


class DatasetNotFound(DatasetError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no dataset named {name!r}")
        self.name = name
