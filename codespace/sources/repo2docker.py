"""Binder/repo2docker files: ``binder/``, ``.binder/``, a bare ``.codespace/``, or the root.

Follows repo2docker: a configuration directory hides the root's files; a ``Dockerfile``
is used on its own (the other files are then ignored, with a warning); ``setup.py`` or an
installable ``pyproject.toml`` at the root installs the project when no configuration
directory exists. Paths in the resolved model are repository-relative.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..spec.errors import Diagnostic, Location, SpecError
from ..spec.files import exists, inside, read_text
from ..spec.parse import Document
from .base import Detector, Found

ENVIRONMENT_FILES = ("environment.yml", "environment.yaml")
FILES = (
    "environment.yml",
    "environment.yaml",
    "requirements.txt",
    "apt.txt",
    "runtime.txt",
    "postBuild",
    "start",
    "Dockerfile",
)
PROJECT_FILES = ("pyproject.toml", "setup.py")
UNSUPPORTED = ("install.R", "DESCRIPTION", "Project.toml", "REQUIRE", "Pipfile", "default.nix")
RUNTIME = re.compile(r"^python-(3(?:\.\d+){0,2})$")


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


class BinderDirectoryDetector(Detector):
    """``binder/`` or ``.binder/`` (both present is an error)."""

    kind = "binder"

    def detect(self, root: Path) -> Found | None:
        present = [
            d for d in ("binder", ".binder") if (root / d).is_dir() or (root / d).is_symlink()
        ]
        if len(present) == 2:
            raise SpecError.at(
                None, "conflicting sources: both binder/ and .binder/ exist; keep one of them"
            )
        if not present:
            return None
        return read_directory(root, present[0], self.kind)


class CodespaceDirectoryDetector(Detector):
    """A ``.codespace/`` directory without ``codespace.yaml``, read like ``binder/``."""

    kind = "binder"

    def detect(self, root: Path) -> Found | None:
        directory = ".codespace"
        if not (root / directory).is_dir():
            return None
        if not any(exists(root, _join(directory, name)) for name in FILES + UNSUPPORTED):
            return None
        return read_directory(root, directory, self.kind)


class RootFilesDetector(Detector):
    """repo2docker files at the repository root."""

    kind = "repo2docker"

    def detect(self, root: Path) -> Found | None:
        names = FILES + PROJECT_FILES + UNSUPPORTED
        if not any(exists(root, name) for name in names):
            return None
        found = read_directory(root, "", self.kind)
        if found.document.data or found.warnings:
            return found
        return None


def read_directory(root: Path, directory: str, kind: str) -> Found:
    """Translate the repo2docker files in ``directory`` ("" = root) to the model's shape."""
    source = f"{directory}/" if directory else "."
    document = Document(source, {})
    document.values[()] = Location(source)
    data: dict[str, Any] = document.data
    files: list[str] = []
    warnings: list[Diagnostic] = []
    if directory:
        inside(root, directory)  # the directory itself must not leave the repository

    def present(name: str) -> str | None:
        path = _join(directory, name)
        return path if exists(root, path) else None

    for name in UNSUPPORTED:
        if path := present(name):
            warnings.append(
                Diagnostic(
                    f"{name} is not supported by codespaces and is ignored",
                    Location(path),
                    "warning",
                )
            )
    if dockerfile := present("Dockerfile"):
        files.append(dockerfile)
        data["build"] = {"dockerfile": dockerfile, "context": "."}
        document.values[("build",)] = Location(dockerfile, 1, 1)
        ignored = [p for name in FILES if name != "Dockerfile" and (p := present(name))]
        if ignored:
            warnings.append(
                Diagnostic(
                    "a Dockerfile is used on its own; ignoring " + ", ".join(ignored),
                    Location(dockerfile),
                    "warning",
                )
            )
        return Found(kind, source, document, files, warnings)

    python = _python(root, directory, present, document, files, warnings)
    if python:
        data["python"] = python
    if apt := present("apt.txt"):
        files.append(apt)
        data["apt"] = _apt(root, apt, document)
    for name in ("postBuild", "start"):
        if path := present(name):
            files.append(path)
            data[name] = path
            document.values[(name,)] = Location(path)
    return Found(kind, source, document, files, warnings)


def _python(
    root: Path,
    directory: str,
    present: Callable[[str], str | None],
    document: Document,
    files: list[str],
    warnings: list[Diagnostic],
) -> dict[str, Any]:
    """The ``python`` mapping from environment.yml, requirements.txt, runtime.txt and an
    installable project at the root."""
    python: dict[str, Any] = {}
    environment = [p for name in ENVIRONMENT_FILES if (p := present(name))]
    if environment:
        python["manager"] = "conda"
        python["environmentFile"] = environment[0]
        document.values[("python", "environmentFile")] = Location(environment[0])
        files.append(environment[0])
    requirements = present("requirements.txt")
    if requirements and environment:
        # repo2docker picks its conda build pack for an environment.yml, which installs that
        # file only: a requirements.txt (and the project itself) beside it is not installed.
        warnings.append(
            Diagnostic(
                f"{requirements} is ignored: with {environment[0]} only the conda environment "
                "is installed, as repo2docker does (list pip packages under 'pip:' in it)",
                Location(requirements),
                "warning",
            )
        )
    elif requirements:
        python["requirements"] = [requirements]
        document.values[("python", "requirements", 0)] = Location(requirements)
        files.append(requirements)
    if runtime := present("runtime.txt"):
        files.append(runtime)
        version = _runtime(root, runtime, warnings)
        if version:
            python["version"] = version
            document.values[("python", "version")] = Location(runtime, 1, 1)
    if not directory:
        project = _installable_project(root, warnings)
        if project and environment:
            warnings.append(
                Diagnostic(
                    f"the project ({project}) is not installed: with {environment[0]} only the "
                    "conda environment is installed, as repo2docker does (add '-e .' under "
                    "'pip:' in it)",
                    Location(project),
                    "warning",
                )
            )
        elif project:
            python["installProject"] = True
            document.values[("python", "installProject")] = Location(project)
            files.append(project)
    return python


def _runtime(root: Path, path: str, warnings: list[Diagnostic]) -> str | None:
    text = read_text(root, path).strip()
    first = text.splitlines()[0].strip() if text else ""
    match = RUNTIME.match(first)
    if match:
        return match[1]
    if re.fullmatch(r"python-2(\.\d+){0,2}", first):
        warnings.append(
            Diagnostic(
                f"runtime {first!r}: Python 2 is not supported; the platform's Python 3 is "
                "used (the rest of the configuration is kept)",
                Location(path, 1, 1),
                "warning",
            )
        )
        return None
    if first.startswith("r-") or first.startswith("julia"):
        warnings.append(
            Diagnostic(
                f"runtime {first!r} is not supported; using Python", Location(path, 1, 1), "warning"
            )
        )
        return None
    raise SpecError.at(Location(path, 1, 1), f"runtime.txt: expected 'python-3.X', got {first!r}")


def _apt(root: Path, path: str, document: Document) -> list[str]:
    packages: list[str] = []
    for number, line in enumerate(read_text(root, path).splitlines(), start=1):
        content = line.split("#", 1)[0]
        for word in content.split():
            document.values[("apt", len(packages))] = Location(
                path, number, content.index(word) + 1
            )
            packages.append(word)
    document.values[("apt",)] = Location(path)
    return packages


def _installable_project(root: Path, warnings: list[Diagnostic]) -> str | None:
    if exists(root, "setup.py"):
        return "setup.py"
    if not exists(root, "pyproject.toml"):
        return None
    try:
        table = tomllib.loads(read_text(root, "pyproject.toml"))
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        location = (
            Location("pyproject.toml", *map(int, match.groups()))
            if match
            else Location("pyproject.toml")
        )
        raise SpecError.at(location, f"TOML syntax error: {message}") from None
    if "project" in table or "build-system" in table:
        return "pyproject.toml"
    return None
