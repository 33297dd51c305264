"""One detector per configuration format; the order they are tried in is a list.

:data:`DEFAULT_SOURCES` is the precedence of DESIGN.md §3. A site changes it with a list of
detector classes or their import strings (the spawners' ``codespace_sources`` setting,
``codespace validate --sources``): each is a :class:`~codespace.sources.base.Detector`
subclass, built with no arguments, whose ``detect(root)`` returns a ``Found`` or None.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from .base import Detector

# The detectors in precedence order (DESIGN.md §3): our manifest, then a bare ``.codespace/``
# directory read like ``binder/``, devcontainer.json, ``binder/``, repo2docker root files.
DEFAULT_SOURCES: tuple[str, ...] = (
    "codespace.sources.codespace_yaml.CodespaceYamlDetector",
    "codespace.sources.repo2docker.CodespaceDirectoryDetector",
    "codespace.sources.devcontainer.DevcontainerDetector",
    "codespace.sources.repo2docker.BinderDirectoryDetector",
    "codespace.sources.repo2docker.RootFilesDetector",
)

Source = str | type[Detector]


def load_source(source: Source) -> type[Detector]:
    """A detector class from itself or its import string (``package.module.Class``)."""
    if isinstance(source, str):
        module_name, _, attribute = source.strip().rpartition(".")
        if not module_name:
            raise ValueError(
                f"spec source {source!r} is not an import string (package.module.Class)"
            )
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(
                f"spec source {source!r}: cannot import {module_name}: {error}"
            ) from error
        loaded = getattr(module, attribute, None)
        if loaded is None:
            raise ValueError(f"spec source {source!r}: {module_name} has no {attribute!r}")
    else:
        loaded = source
    if not (isinstance(loaded, type) and issubclass(loaded, Detector)):
        raise ValueError(
            f"spec source {source!r} is not a detector class (a codespace.sources.base.Detector "
            "subclass)"
        )
    return loaded


def load_sources(names: Sequence[Source]) -> list[type[Detector]]:
    """Detector classes, in order, from classes or import strings; ValueError names a bad one."""
    if isinstance(names, str):
        raise ValueError(f"spec sources must be a list, not the string {names!r}")
    return [load_source(name) for name in names]


__all__ = ["DEFAULT_SOURCES", "Detector", "Source", "load_source", "load_sources"]
