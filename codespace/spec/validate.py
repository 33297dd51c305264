"""Validate model-shaped data into a :class:`Codespace`, with errors at file:line:col.

Pydantic reports each error with a ``loc`` (a path into the data); the
:class:`~codespace.spec.parse.Document` that produced the data maps that path back to
the file position the user wrote. Unknown keys get a "did you mean" from the names the
model accepts at that place.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Diagnostic, SpecError
from .model import Codespace
from .parse import Document, Path_


def validate(document: Document) -> Codespace:
    """Validate ``document.data`` (already in the model's shape) or raise :class:`SpecError`."""
    try:
        return Codespace.model_validate(document.data)
    except ValidationError as error:
        raise SpecError(diagnostics(error, document)) from None


def diagnostics(
    error: ValidationError,
    document: Document,
    *,
    unknown_key: Callable[[Path_], str] | None = None,
    shapes: Mapping[str, str] | None = None,
) -> list[Diagnostic]:
    """One diagnostic per place in ``document`` that pydantic's ``error`` is about, sorted.

    ``unknown_key(path)`` words an unknown key (default: a "did you mean" from the
    :class:`Codespace` model); ``shapes`` words an error type in the file's terms (for
    example ``model_type``), else pydantic's message is used. Used for every YAML file a
    user writes: ``codespace.yaml``, the policy file, the login settings.
    """
    unknown_key = unknown_key or model_unknown_key(Codespace)
    grouped: dict[Path_, list[dict[str, Any]]] = {}
    for item in error.errors(include_url=False):
        path = _data_path(document.data, item["loc"])
        grouped.setdefault(path, []).append(item)
    result = []
    for path, items in grouped.items():
        first = items[0]
        if first["type"] == "extra_forbidden":
            message = unknown_key(path)
            location = document.locate(path, key=True)
        else:
            worded = (shapes or {}).get(first["type"])
            messages = [worded] if worded else list(dict.fromkeys(map(_message, items)))
            message = messages[0] if len(messages) == 1 else " or ".join(messages)
            if first["type"] not in ("missing", "value_error") and is_scalar(first.get("input")):
                message = f"{message} (got {first['input']!r})"
            location = document.locate(path)
        where = dotted(path)
        result.append(Diagnostic(f"{where}: {message}" if where else message, location))
    return sorted(result, key=lambda d: (d.location or (), d.message))  # type: ignore[arg-type,return-value]


def _message(item: dict[str, Any]) -> str:
    message = str(item["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """``loc`` without pydantic's union/function tags: only the steps present in the data."""
    path: list[str | int] = []
    current = data
    for step in loc:
        if isinstance(current, dict) and step in current:
            current = current[step]
            path.append(step)
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            current = current[step]
            path.append(step)
        elif isinstance(current, dict | list):
            if isinstance(current, dict) and isinstance(step, str) and not _is_tag(step):
                path.append(step)  # a missing key: point at its parent, name the key
                break
            continue
        else:
            break
    return tuple(path)


def _is_tag(step: str) -> bool:
    return any(ch in step for ch in "[]()-,") or step in ("str", "int", "float", "bool", "list")


def dotted(path: Path_) -> str:
    """``("ports", 0, "port")`` as ``ports[0].port``."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def model_unknown_key(model: type[BaseModel]) -> Callable[[Path_], str]:
    """``unknown_key`` for :func:`diagnostics` of a file shaped like ``model``."""
    return lambda path: unknown_key_message(
        str(path[-1]) if path else "", allowed_keys(path[:-1], model)
    )


def unknown_key_message(key: str, known: list[str], listing: str = "allowed") -> str:
    """ "unknown key; did you mean 'x'?" (a close or differently-cased name in ``known``),
    else the ``known`` names after ``listing``."""
    message = "unknown key"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        lowered = {name.lower(): name for name in known}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    if close:
        message += f"; did you mean {close[0]!r}?"
    elif known:
        message += f" ({listing}: {', '.join(sorted(known))})"
    return message


def allowed_keys(path: Path_, model: type[BaseModel] = Codespace) -> list[str]:
    """Field names (and aliases) ``model`` accepts at ``path``."""
    annotation: Any = model
    for step in path:
        annotation = _step(annotation, step)
        if annotation is None:
            return []
    model = _model_of(annotation)
    if model is None:
        return []
    names = []
    for name, info in model.model_fields.items():
        names.append(name)
        if info.alias:
            names.append(info.alias)
    return names


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _step(annotation: Any, step: str | int) -> Any:
    model = _model_of(annotation)
    if model is not None and isinstance(step, str):
        for name, info in model.model_fields.items():
            if step in (name, info.alias):
                return info.annotation
        return None
    candidates = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        candidates = list(typing.get_args(annotation))
    for candidate in candidates:
        origin = typing.get_origin(candidate)
        args = typing.get_args(candidate)
        if origin is list and isinstance(step, int) and args:
            return args[0]
        if origin is dict and isinstance(step, str) and len(args) == 2:
            return args[1]
    return None
