"""Path safety for dataset listings: a request names a path *inside* a dataset, never outside.

Requests give POSIX paths relative to the dataset root. ``..`` components, absolute paths,
backslashes and NUL bytes are refused before anything touches a filesystem; for local
directories the resolved path (symlinks followed) must still lie under the resolved root.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath


class PathRefused(ValueError):
    """A requested path would leave the dataset, or is not a path at all."""


def clean_relative(path: str | None) -> str:
    """Normalise a requested relative path to ``a/b`` ('' is the root); raise PathRefused."""
    path = (path or "").strip()
    if "\x00" in path or "\\" in path:
        raise PathRefused(f"path {path!r} contains a NUL byte or backslash")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise PathRefused(f"path {path!r} is absolute; give a path relative to the dataset")
    parts = [part for part in PurePosixPath(path).parts if part not in ("", ".")]
    if ".." in parts:
        raise PathRefused(f"path {path!r} contains '..'")
    return "/".join(parts)


def resolve_within(root: Path, relative: str) -> Path:
    """The real path of ``root/relative``; refused when a symlink leads outside ``root``."""
    real_root = root.resolve()
    candidate = (real_root / clean_relative(relative)).resolve()
    if candidate != real_root and real_root not in candidate.parents:
        raise PathRefused(f"path {relative!r} leads outside the dataset (through a symlink)")
    return candidate


def clean_target(path: str) -> str:
    """A prewarm target: Fluid-style '/train' (rooted at the dataset) or 'train' -> 'train'."""
    path = (path or "").strip()
    return clean_relative(path[1:] if path.startswith("/") else path)
