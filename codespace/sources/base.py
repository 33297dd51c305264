"""What every detector returns, and the helpers they share.

A detector looks at a repository directory and, when its format is present, returns a
:class:`Found`: the configuration translated into the shape of the resolved
:class:`~codespace.spec.model.Codespace` model (a :class:`~codespace.spec.parse.Document`
whose positions still point at the files the user wrote), plus the files it read and
any warnings. Validation against the model happens once, in :mod:`codespace.resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..spec.errors import Diagnostic, Location, SpecError
from ..spec.files import relpath
from ..spec.model import Codespaces, VSCode
from ..spec.parse import Document, Path_


@dataclass
class Found:
    """A configuration source that is present in the repository."""

    kind: str  # "codespace" | "devcontainer" | "binder" | "repo2docker"
    source: str  # repo-relative file or directory ("binder/"), or "." for root files
    document: Document  # model-shaped data with positions
    files: list[str] = field(default_factory=list)  # configuration files read
    warnings: list[Diagnostic] = field(default_factory=list)


class Detector:
    """Finds one configuration format in a repository; subclasses set ``kind``."""

    kind: str = ""

    def detect(self, root: Path) -> Found | None:  # pragma: no cover - interface
        raise NotImplementedError


def copy_positions(src: Document, src_path: Path_, dst: Document, dst_path: Path_) -> None:
    """Copy the positions of ``src_path`` and everything under it to ``dst_path``."""
    size = len(src_path)
    for table_name in ("values", "keys"):
        src_table: dict[Path_, Location] = getattr(src, table_name)
        dst_table: dict[Path_, Location] = getattr(dst, table_name)
        for path, location in src_table.items():
            if path[:size] == src_path:
                dst_table[(*dst_path, *path[size:])] = location


def place(src: Document, src_path: Path_, dst: Document, dst_path: Path_, value: Any) -> None:
    """Set ``value`` at ``dst_path`` in ``dst.data`` and carry its positions over."""
    target = dst.data
    for step in dst_path[:-1]:
        target = target.setdefault(step, {})
    target[dst_path[-1]] = value
    copy_positions(src, src_path, dst, dst_path)


# Model fields holding repository paths, normalised to repo-relative POSIX paths.
PATH_FIELDS: tuple[Path_, ...] = (
    ("build", "dockerfile"),
    ("build", "context"),
    ("python", "environmentFile"),
    ("postBuild",),
    ("start",),
)


def normalise_paths(document: Document, base_dir: str) -> None:
    """Rewrite path fields relative to ``base_dir`` as repo-relative paths, in place."""
    data = document.data
    targets: list[Path_] = list(PATH_FIELDS)
    requirements = (
        data.get("python", {}).get("requirements") if isinstance(data.get("python"), dict) else None
    )
    if isinstance(requirements, list):
        targets += [("python", "requirements", i) for i in range(len(requirements))]
    for path in targets:
        parent: Any = data
        for step in path[:-1]:
            parent = parent.get(step) if isinstance(parent, dict) else None
        last = path[-1]
        if isinstance(parent, dict) and isinstance(parent.get(last), str):
            container: Any = parent
        elif isinstance(parent, list) and isinstance(last, int) and isinstance(parent[last], str):
            container = parent
        else:
            continue
        try:
            container[last] = relpath(container[last], base_dir)
        except ValueError as error:
            raise SpecError.at(
                document.locate(path), f"{'.'.join(map(str, path))}: {error}"
            ) from None


# Tools whose section of ``customizations`` the model reads; their other keys are the tool's
# own business (VS Code and Codespaces ignore what they do not know): warnings, not errors.
TOOL_SECTIONS: dict[str, type[BaseModel]] = {"vscode": VSCode, "codespaces": Codespaces}


def drop_unknown_tool_keys(document: Document) -> list[Diagnostic]:
    """Remove keys the model does not read from ``customizations.<tool>``; one warning each."""
    customizations = document.data.get("customizations")
    if not isinstance(customizations, dict):
        return []
    warnings = []
    for tool, model in TOOL_SECTIONS.items():
        section = customizations.get(tool)
        if not isinstance(section, dict):
            continue
        for key in [k for k in section if k not in model.model_fields]:
            del section[key]
            warnings.append(
                Diagnostic(
                    f"customizations.{tool}.{key}: not used by codespaces; ignored",
                    document.locate(("customizations", tool, key), key=True),
                    "warning",
                )
            )
    return warnings
