"""Merging two model-shaped documents with the devcontainer merge rules.

Used when ``codespace.yaml`` ``extends:`` a devcontainer.json (and when a
devcontainer.json's ``customizations.codespace`` adds to the keys it maps itself):

- scalars: the later (extending) document wins;
- mappings (``containerEnv``, ``resources``, ``python``, ...): merged key by key;
- lists: unioned, keeping order; ``ports`` by port number and ``datasets`` by name,
  where the later entry replaces the earlier one;
- lifecycle commands and ``resources.gpu``: the extending document's value replaces the
  base's.
"""

from __future__ import annotations

from typing import Any

from ..spec.model import LIFECYCLE_COMMANDS
from ..spec.parse import Document, Path_
from .base import copy_positions

# Lists of mappings merged by an identifying key instead of by equality.
KEYED_LISTS: dict[Path_, str] = {("ports",): "port", ("datasets",): "name"}
# Values replaced as a whole: commands, and a GPU request (count/fraction/memory exclude
# each other, so merging two requests key by key could ask for both).
REPLACED: set[Path_] = {(key,) for key in LIFECYCLE_COMMANDS} | {("resources", "gpu")}


def merge(base: Document, over: Document, file: str | None = None) -> Document:
    """A new document: ``over`` merged onto ``base`` (neither is modified)."""
    result = Document(file or over.file, None)
    result.values[()] = over.values.get((), base.values.get(()))  # type: ignore[assignment]
    result.data = _merge(base, over, result, ())
    return result


def _merge(base: Document, over: Document, out: Document, path: Path_) -> Any:
    a = _get(base.data, path)
    b = _get(over.data, path)
    if isinstance(a, dict) and isinstance(b, dict) and path not in REPLACED:
        merged: dict[str, Any] = {}
        for key in list(a) + [k for k in b if k not in a]:
            if key in a and key in b:
                merged[key] = _merge(base, over, out, (*path, key))
                for doc in (base, over):
                    if (*path, key) in doc.keys:
                        out.keys[(*path, key)] = doc.keys[(*path, key)]
            else:
                source = over if key in b else base
                merged[key] = _get(source.data, (*path, key))
                copy_positions(source, (*path, key), out, (*path, key))
        out.values.setdefault(path, (over.values.get(path) or base.values.get(path)))  # type: ignore[arg-type]
        return merged
    if isinstance(a, list) and isinstance(b, list) and path not in REPLACED:
        return _merge_lists(base, over, out, path, a, b)
    copy_positions(over, path, out, path)
    return b


def _merge_lists(
    base: Document, over: Document, out: Document, path: Path_, a: list[Any], b: list[Any]
) -> list[Any]:
    key = KEYED_LISTS.get(path)

    def identity(item: Any) -> Any:
        if key and isinstance(item, dict) and key in item:
            return ("key", repr(item[key]))
        return ("value", repr(item))

    merged: list[Any] = []
    index: dict[Any, int] = {}
    for doc, items in ((base, a), (over, b)):
        for i, item in enumerate(items):
            ident = identity(item)
            if ident in index:
                position = index[ident]
                merged[position] = item
            else:
                position = index[ident] = len(merged)
                merged.append(item)
            copy_positions(doc, (*path, i), out, (*path, position))
    out.values[path] = over.values.get(path) or base.values.get(path)  # type: ignore[assignment]
    return merged


def _get(data: Any, path: Path_) -> Any:
    for step in path:
        data = data[step]
    return data
