"""The environment hash: which inputs define a codespace's environment, and their digest.

A built environment (a uv venv locally, an image on Kubernetes) is cached under this
hash, so it must move when, and only when, an environment input changes. The inputs:

- the manifest's environment keys (:data:`~codespace.spec.model.ENVIRONMENT_KEYS`:
  ``image``, ``build``, ``python``, ``apt``, ``features``, ``postBuild``) as canonical JSON;
- the files they name: requirement files (and the files they include with ``-r``/``-c``),
  the conda environment file and what its ``pip:`` section names (``-r``/``-c`` files and
  their includes, local wheels, and the project files of local projects such as ``-e .``),
  the project's ``pyproject.toml``/``setup.py``/``setup.cfg``
  and lock files when the project itself is installed, the ``postBuild`` script, the
  Dockerfile and the files its ``COPY``/``ADD`` instructions take from the build context
  (where the sources are literal paths or globs);
- extra configuration files a source contributes (``apt.txt``, ``runtime.txt``).

Each file is hashed under its repository path (so a rename counts) with line endings
normalised (CRLF -> LF), nothing else. Code, notebooks and the rest of a commit are not
inputs. A named input that is missing is hashed as missing; one that is a symlink leaving
the repository is an error.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import posixpath
import shlex
from collections.abc import Iterable
from pathlib import Path

from .sources.conda import is_environment_file, read_environment
from .spec.errors import SpecError
from .spec.files import exists, inside, read_text, relpath
from .spec.model import ENVIRONMENT_KEYS, Codespace
from .spec.requirements import includes

VERSION = b"codespace-env-v1"
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "uv.lock", "poetry.lock", "pdm.lock")
MAX_CONTEXT_FILES = 10_000


def environment_keys(codespace: Codespace) -> str:
    """Canonical JSON of the environment-defining keys of a resolved model."""
    data = codespace.model_dump(mode="json", include=set(ENVIRONMENT_KEYS))
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def environment_files(root: Path, codespace: Codespace, extra: Iterable[str] = ()) -> list[str]:
    """Repository-relative paths of the files that define the environment, sorted."""
    files: set[str] = set(extra)
    python = codespace.python
    for requirement in python.requirements:
        if is_environment_file(requirement):
            files |= _environment_closure(root, requirement)
        else:
            files |= _requirement_closure(root, requirement)
    if python.environmentFile:
        files |= _environment_closure(root, python.environmentFile)
    if python.installProject:
        files |= {name for name in PROJECT_FILES if (root / name).exists()}
    if codespace.postBuild:
        files.add(codespace.postBuild)
    if codespace.build and codespace.build.dockerfile:
        files.add(codespace.build.dockerfile)
        files |= dockerfile_sources(
            root, codespace.build.dockerfile, codespace.build.context or "."
        )
    return sorted(files)


def environment_hash(
    root: Path, codespace: Codespace, extra: Iterable[str] = ()
) -> tuple[str, list[str]]:
    """``(sha256 hex, files)`` for the environment of ``codespace`` in ``root``."""
    files = environment_files(root, codespace, extra)
    digest = hashlib.sha256(VERSION + b"\0keys\0")
    digest.update(environment_keys(codespace).encode())
    for path in files:
        digest.update(b"\0file\0" + path.encode() + b"\0" + _file_digest(root, path))
    return digest.hexdigest(), files


def _file_digest(root: Path, path: str) -> bytes:
    candidate = root / path
    if candidate.is_symlink() or candidate.exists():
        resolved = inside(root, path)
    else:
        return b"missing"
    if resolved.is_dir():
        return b"directory"
    digest = hashlib.sha256()
    pending_cr = False
    with open(resolved, "rb") as handle:
        while chunk := handle.read(1 << 16):
            if pending_cr:
                chunk = b"\r" + chunk
            pending_cr = chunk.endswith(b"\r")
            if pending_cr:
                chunk = chunk[:-1]
            digest.update(chunk.replace(b"\r\n", b"\n"))
    if pending_cr:
        digest.update(b"\r")
    return digest.hexdigest().encode()


def _environment_closure(root: Path, path: str) -> set[str]:
    """A conda environment file and the files its ``pip:`` section installs from.

    A broken file raises :class:`SpecError` with its line (``resolve`` reports it).
    """
    files = {path}
    if not (root / path).is_file():
        return files
    environment = read_environment(read_text(root, path), path)
    for entry in environment.pip:
        if entry.kind in ("requirements", "constraints") and entry.path:
            if not exists(root, entry.path):
                where = f"{environment.directory}/" if environment.directory else "the root"
                raise SpecError.at(
                    entry.location,
                    f"{entry.value!r} does not exist (paths are relative to {where})",
                )
            files |= _requirement_closure(root, entry.path)
    for local in environment.local_paths:
        if (root / local).is_dir():
            prefix = "" if local == "." else f"{local}/"
            files |= {prefix + name for name in PROJECT_FILES if exists(root, prefix + name)}
        elif exists(root, local):
            files.add(local)
    return files


def _requirement_closure(root: Path, first: str) -> set[str]:
    """A requirement file and the files it includes with -r/-c, recursively."""
    seen: set[str] = set()
    pending = [first]
    while pending and len(seen) < 100:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        candidate = root / path
        if not candidate.is_file():
            continue
        resolved = inside(root, path)
        text = resolved.read_text(encoding="utf-8", errors="replace")
        for target, location in includes(text, path):
            try:
                pending.append(relpath(target, posixpath.dirname(path)))
            except ValueError:
                raise SpecError.at(
                    location, f"included file {target!r} leaves the repository"
                ) from None
    return seen


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs with line continuations joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        instructions.append((word.upper(), rest.strip()))
        current = ""
    if current.strip():
        word, _, rest = current.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
    return instructions


def copy_sources(arguments: str) -> list[str] | None:
    """The context sources of one COPY/ADD, or None when they come from elsewhere."""
    if arguments.startswith("["):
        try:
            parts = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    else:
        try:
            parts = shlex.split(arguments)
        except ValueError:
            return None
    flags = [p for p in parts if isinstance(p, str) and p.startswith("--")]
    if any(flag.startswith("--from") for flag in flags):
        return None
    args = [p for p in parts if isinstance(p, str) and not p.startswith("--")]
    if len(args) < 2 or args[0].startswith("<<"):
        return None
    return [
        src
        for src in args[:-1]
        if "$" not in src and "://" not in src and not src.startswith("git@")
    ]


def dockerfile_sources(root: Path, dockerfile: str, context: str) -> set[str]:
    """Files inside the build context that the Dockerfile's COPY/ADD instructions read."""
    path = root / dockerfile
    if not path.is_file():
        return set()
    text = inside(root, dockerfile).read_text(encoding="utf-8", errors="replace")
    found: set[str] = set()
    for instruction, arguments in dockerfile_instructions(text):
        if instruction not in ("COPY", "ADD"):
            continue
        for source in copy_sources(arguments) or []:
            try:
                pattern = relpath(source.lstrip("/"), context)
            except ValueError:
                continue
            for match in _expand(root, pattern):
                found.add(match)
                if len(found) >= MAX_CONTEXT_FILES:
                    return found
    return found


def _expand(root: Path, pattern: str) -> list[str]:
    matches = (
        glob.glob(pattern, root_dir=root, include_hidden=True)
        if glob.has_magic(pattern)
        else [pattern]
    )
    files: list[str] = []
    for match in sorted(matches):
        match = match.replace(os.sep, "/")
        full = root / match
        if full.is_symlink() or full.is_file():
            files.append(match)
        elif full.is_dir():
            for directory, dirnames, filenames in os.walk(full):
                dirnames[:] = sorted(d for d in dirnames if d != ".git")
                for name in sorted(filenames):
                    relative = os.path.relpath(os.path.join(directory, name), root)
                    files.append(relative.replace(os.sep, "/"))
                    if len(files) >= MAX_CONTEXT_FILES:
                        return files
    return files
