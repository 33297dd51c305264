"""Reading repository files safely: inside the repository, bounded in size, UTF-8.

A repository is untrusted input. Every configuration file goes through
:func:`read_text`, which refuses symlinks that leave the repository, files over
:data:`MAX_FILE_BYTES` and bytes that are not UTF-8, with a position a user can act on.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from .errors import Location, SpecError

MAX_FILE_BYTES = 1024 * 1024


def inside(root: Path, relative: str) -> Path:
    """The path of ``relative`` under ``root``; an error if it leaves the repository.

    Symlinks are followed, so a link to ``/etc/passwd`` or ``../../secret`` is refused.
    """
    root = root.resolve()
    candidate = root / relative
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as error:  # symlink loops
        raise SpecError.at(Location(relative), f"cannot resolve path: {error}") from None
    if resolved != root and root not in resolved.parents:
        what = "a symlink that leaves" if _has_symlink(root, relative) else "outside"
        raise SpecError.at(Location(relative), f"{relative!r} is {what} the repository")
    return resolved


def _has_symlink(root: Path, relative: str) -> bool:
    current = root
    for part in PurePosixPath(relative).parts:
        current = current / part
        if current.is_symlink():
            return True
    return False


def exists(root: Path, relative: str) -> bool:
    """Whether ``relative`` exists (as anything, including a dangling or escaping link)."""
    path = root / relative
    return path.is_symlink() or path.exists()


def read_bytes(root: Path, relative: str) -> bytes:
    """Bytes of a repository file after the containment and size checks."""
    path = inside(root, relative)
    if not path.is_file():
        raise SpecError.at(Location(relative), "not a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SpecError.at(
            Location(relative),
            f"file is {size} bytes; configuration files are limited to {MAX_FILE_BYTES} (1 MiB)",
        )
    with open(path, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:  # grew while reading
        raise SpecError.at(Location(relative), "file is larger than 1 MiB")
    return data


def read_text(root: Path, relative: str) -> str:
    """A repository file as text; non-UTF-8 bytes are an error at their line and column."""
    data = read_bytes(root, relative)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        col = error.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError.at(
            Location(relative, line, col),
            f"file is not valid UTF-8 (byte 0x{data[error.start]:02x})",
        ) from None
    return text.removeprefix("\ufeff")


def relpath(path: str, base_dir: str = "") -> str:
    """Normalise ``path`` (relative to the repo directory ``base_dir``) to a repo path.

    Returns a POSIX path without ``.``/``..`` parts; raises ``ValueError`` when the
    result would leave the repository or ``path`` is absolute.
    """
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise ValueError(f"{path!r} must be relative to the repository, not absolute")
    joined = os.path.normpath(os.path.join(base_dir or ".", path)).replace(os.sep, "/")
    if joined == ".." or joined.startswith("../"):
        raise ValueError(f"{path!r} leaves the repository")
    return joined
