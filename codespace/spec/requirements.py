"""Requirement files and the files they include with ``-r``/``-c``, read safely.

Every file a resolved model names is untrusted input like the manifests: it must stay inside
the repository, be at most 1 MiB and be UTF-8 (:func:`~codespace.spec.files.read_text`).
A requirement file's ``-r other.txt`` / ``-c constraints.txt`` (also ``--requirement=``,
``--constraint``) are followed, relative to the including file as pip does; a missing or
escaping include is an error at its line and column. URLs and paths with ``$`` variables
(expanded by pip from the environment) are not followed.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from .errors import Diagnostic, Location, SpecError
from .files import exists, inside, read_text, relpath

# The include syntax, also what the environment hash follows (codespace.envhash).
INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s+|=)(?P<path>\S+)")
MAX_FILES = 100


def includes(text: str, path: str) -> list[tuple[str, Location]]:
    """``(target as written, its location)`` for each include line of a requirement file."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = INCLUDE.match(line)
        if match and "://" not in match["path"] and "$" not in match["path"]:
            found.append((match["path"], Location(path, number, match.start("path") + 1)))
    return found


def check_requirements(root: Path, first: str) -> tuple[list[str], list[Diagnostic]]:
    """Read ``first`` and everything it includes; ``(files read, problems)``."""
    seen: list[str] = []
    problems: list[Diagnostic] = []
    pending = [first]
    while pending and len(seen) < MAX_FILES:
        path = pending.pop(0)
        if path in seen:
            continue
        seen.append(path)
        try:
            text = read_text(root, path)
        except SpecError as error:
            problems += error.diagnostics
            continue
        for target, location in includes(text, path):
            try:
                included = relpath(target, posixpath.dirname(path))
            except ValueError as error:
                problems.append(Diagnostic(f"include: {error}", location))
                continue
            problem = _include_problem(root, target, included)
            if problem:
                problems.append(Diagnostic(problem, location))
            else:
                pending.append(included)
    return seen, problems


def _include_problem(root: Path, target: str, included: str) -> str | None:
    if not exists(root, included):
        return f"include {target!r}: {included!r} does not exist"
    try:
        resolved = inside(root, included)
    except SpecError as error:
        return f"include {target!r}: {error.diagnostics[0].message}"
    if not resolved.is_file():
        return f"include {target!r}: {included!r} is not a file"
    return None
