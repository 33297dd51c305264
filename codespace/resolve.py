"""Repository directory -> one validated :class:`~codespace.spec.model.Codespace`.

The first source present wins (DESIGN.md §3); the order is a list of detector classes,
``sources`` (default :data:`~codespace.sources.DEFAULT_SOURCES`):

1. ``.codespace/codespace.yaml`` (may ``extends:`` a devcontainer.json), then a bare
   ``.codespace/`` directory read like ``binder/``;
2. devcontainer.json (``.devcontainer/devcontainer.json``, ``.devcontainer.json``,
   ``.devcontainer/<name>/devcontainer.json``);
3. ``binder/`` or ``.binder/``, then repo2docker files at the root;
4. the platform default.

``config`` names a devcontainer configuration and makes it win (read by the first
devcontainer detector in ``sources``). ``mode`` ("local" or "kubernetes") decides which
values cannot be honoured; those become warnings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .envhash import environment_hash
from .sources import DEFAULT_SOURCES, Source, load_sources
from .sources.base import Detector, Found, drop_unknown_tool_keys
from .sources.devcontainer import DevcontainerDetector
from .spec.errors import Diagnostic, Location, SpecError
from .spec.files import inside, read_text
from .spec.model import Codespace
from .spec.parse import Document
from .spec.requirements import check_requirements
from .spec.validate import validate

Mode = Literal["local", "kubernetes"]
MODES = ("local", "kubernetes")
DEFAULT_SOURCE = "(default)"

# Values a mode cannot honour: each one set is a warning in that mode (nothing is dropped
# silently). Local mode builds a uv environment on the host and runs the lifecycle commands
# there (postBuild once per workspace): no image, no Dockerfile, no features or apt packages,
# no start script (run by neither mode), no workspaceFolder other than the checkout.
# Kubernetes renders an image from the python/apt/postBuild keys (a devcontainer image or
# Dockerfile is its base) and its pods run the lifecycle commands (codespace.kube.entrypoint),
# but it installs no features yet.
MODE_UNSUPPORTED: dict[str, dict[str, str]] = {
    "local": {
        "image": "a container image",
        "build": "a Dockerfile build",
        "features": "dev container features",
        "apt": "Debian packages",
        "start": "a start script",
        "workspaceFolder": "a workspace folder other than the repository checkout",
    },
    "kubernetes": {
        "features": "dev container features",
        "start": "a start script",
    },
}
LOCAL_UNSUPPORTED = MODE_UNSUPPORTED["local"]


@dataclass
class Resolution:
    """A repository resolved: the model, where it came from, and its environment hash."""

    codespace: Codespace
    source: str
    source_kind: str
    env_hash: str
    env_files: list[str] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    provenance: dict[str, Location] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the model plus source, environment hash, warnings, provenance."""
        return {
            "source": self.source,
            "source_kind": self.source_kind,
            "env_hash": self.env_hash,
            "env_files": list(self.env_files),
            "files": list(self.files),
            "warnings": [str(w) for w in self.warnings],
            "provenance": {key: str(loc) for key, loc in self.provenance.items()},
            "codespace": self.codespace.model_dump(mode="json", exclude_defaults=True),
        }


def resolve(
    root: str | os.PathLike[str],
    *,
    config: str | None = None,
    mode: str = "local",
    sources: Sequence[Source] | None = None,
) -> Resolution:
    """Resolve the repository checked out at ``root``; raises :class:`SpecError`.

    ``sources``: detector classes or their import strings, tried in order (default
    :data:`DEFAULT_SOURCES`); a bad one is a ValueError naming it.
    """
    root = Path(root)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    classes = load_sources(DEFAULT_SOURCES if sources is None else sources)
    if not root.is_dir():
        raise SpecError.at(None, f"{root} is not a directory")
    found = None
    for detector in _detectors(classes, config):
        found = detector.detect(root)
        if found is not None:
            break
    if found is None:
        return default_resolution(root, mode=mode)
    return _finish(root, found, mode)


def _detectors(classes: list[type[Detector]], config: str | None) -> list[Detector]:
    """One detector per class; a named devcontainer ``config`` is the only one tried."""
    if config is None:
        return [cls() for cls in classes]
    named = next((c for c in classes if issubclass(c, DevcontainerDetector)), DevcontainerDetector)
    return [named(config)]


def default_resolution(root: str | os.PathLike[str], *, mode: str = "local") -> Resolution:
    """The platform default (no configuration, or the recovery codespace after an error)."""
    document = Document(DEFAULT_SOURCE, {})
    return _finish(Path(root), Found("default", DEFAULT_SOURCE, document), mode)


def _finish(root: Path, found: Found, mode: str) -> Resolution:
    document = found.document
    warnings = list(found.warnings) + drop_unknown_tool_keys(document)
    codespace = validate(document)
    _check_paths(root, codespace, document)
    _check_files(root, codespace)
    provenance = {
        key: document.locate((key,), key=True) for key in document.data if isinstance(key, str)
    }
    for key, what in MODE_UNSUPPORTED[mode].items():
        if key in codespace.model_fields_set and getattr(codespace, key):
            elsewhere = (
                "it is used on Kubernetes" if key not in MODE_UNSUPPORTED["kubernetes"] else ""
            )
            warnings.append(
                Diagnostic(
                    f"{key}: {what} cannot be honoured in {mode} mode; ignored"
                    + (f" ({elsewhere})" if elsewhere else ""),
                    provenance.get(key),
                    "warning",
                )
            )
    warnings += _deploy_key_warnings(codespace, document)
    extra = [f for f in found.files if f.rsplit("/", 1)[-1] in ("apt.txt", "runtime.txt")]
    env_hash, env_files = environment_hash(root, codespace, extra)
    return Resolution(
        codespace=codespace,
        source=found.source,
        source_kind=found.kind,
        env_hash=env_hash,
        env_files=env_files,
        warnings=warnings,
        provenance=provenance,
        files=list(found.files),
    )


def _deploy_key_warnings(codespace: Codespace, document: Document) -> list[Diagnostic]:
    """Keys of the ``deploy:`` defaults that no deployment reads (they would be ignored)."""
    from codespace.deploy.models import DEFAULT_KEYS

    known = ", ".join(DEFAULT_KEYS)
    return [
        Diagnostic(
            f"deploy.{key}: not a deployment default (known: {known}); ignored",
            document.locate(("deploy", key), key=True),
            "warning",
        )
        for key in codespace.deploy
        if key not in DEFAULT_KEYS
    ]


def _check_paths(root: Path, codespace: Codespace, document: Document) -> None:
    """Files the model names must exist inside the repository."""
    named: list[tuple[tuple[str | int, ...], str]] = [
        (("python", "requirements", i), p) for i, p in enumerate(codespace.python.requirements)
    ]
    if codespace.python.environmentFile:
        named.append((("python", "environmentFile"), codespace.python.environmentFile))
    if codespace.build and codespace.build.dockerfile:
        named.append((("build", "dockerfile"), codespace.build.dockerfile))
    for key in ("postBuild", "start"):
        if value := getattr(codespace, key):
            named.append(((key,), value))
    errors = []
    for path, relative in named:
        candidate = root / relative
        if not (candidate.is_symlink() or candidate.exists()):
            errors.append(Diagnostic(f"{relative!r} does not exist", document.locate(path)))
            continue
        try:
            resolved = inside(root, relative)
        except SpecError as error:
            errors += [Diagnostic(d.message, document.locate(path)) for d in error.diagnostics]
            continue
        if not resolved.is_file():
            errors.append(Diagnostic(f"{relative!r} is not a file", document.locate(path)))
    if errors:
        raise SpecError(errors)


def _check_files(root: Path, codespace: Codespace) -> None:
    """Every text file the model names (requirement files and their ``-r``/``-c`` includes,
    the conda environment file, the Dockerfile, postBuild, start) is at most 1 MiB of
    UTF-8, like the manifests; each problem at its file:line:col."""
    problems: list[Diagnostic] = []
    for requirement in codespace.python.requirements:
        problems += check_requirements(root, requirement)[1]
    others = [codespace.python.environmentFile, codespace.postBuild, codespace.start]
    if codespace.build:
        others.append(codespace.build.dockerfile)
    for path in dict.fromkeys(p for p in others if p):
        try:
            read_text(root, path)
        except SpecError as error:
            problems += error.diagnostics
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
