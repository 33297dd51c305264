"""``.codespace/codespace.yaml``: our manifest, optionally extending a devcontainer.json.

Keys are the resolved model's names. Paths are relative to the repository root.
``extends: .devcontainer/devcontainer.json`` reads that file first and merges this
manifest onto it (see :mod:`codespace.sources.merge`).
"""

from __future__ import annotations

from pathlib import Path

from ..spec.errors import Diagnostic, SpecError
from ..spec.files import exists, read_text, relpath
from ..spec.parse import parse_yaml
from . import devcontainer
from .base import Detector, Found, normalise_paths
from .merge import merge

MANIFEST = ".codespace/codespace.yaml"
ALTERNATIVE = ".codespace/codespace.yml"


class CodespaceYamlDetector(Detector):
    """Our manifest at ``.codespace/codespace.yaml`` (or ``.yml``, not both)."""

    kind = "codespace"

    def detect(self, root: Path) -> Found | None:
        present = [p for p in (MANIFEST, ALTERNATIVE) if exists(root, p)]
        if not present:
            return None
        if len(present) == 2:
            raise SpecError.at(
                None, f"conflicting sources: both {MANIFEST} and {ALTERNATIVE} exist; keep one"
            )
        return load(root, present[0])


def load(root: Path, path: str) -> Found:
    document = parse_yaml(read_text(root, path), path)
    if not isinstance(document.data, dict):
        raise SpecError.at(document.locate(()), "codespace.yaml must be a mapping of keys")
    for key in [k for k in document.data if isinstance(k, str) and k.startswith("x-")]:
        del document.data[key]  # extension keys, as in Compose files: a home for anchors
    files = [path]
    warnings: list[Diagnostic] = []
    extends = document.data.pop("extends", None)
    normalise_paths(document, "")
    if extends is not None:
        location = document.locate(("extends",))
        if not isinstance(extends, str):
            raise SpecError.at(location, "extends: must be the path of a devcontainer.json")
        try:
            base_path = relpath(extends)
        except ValueError as error:
            raise SpecError.at(location, f"extends: {error}") from None
        if not exists(root, base_path):
            raise SpecError.at(location, f"extends: {base_path!r} does not exist")
        if not base_path.endswith(".json"):
            raise SpecError.at(location, f"extends: {base_path!r} is not a devcontainer.json")
        base, warnings = devcontainer.load(root, base_path)
        files.append(base_path)
        document = merge(base, document, path)
    return Found(CodespaceYamlDetector.kind, path, document, files, warnings)
