"""What the API server does with a custom resource's ``openAPIV3Schema`` on every write.

In the real server's order: *pruning* (fields the structural schema does not declare are
dropped, unless ``x-kubernetes-preserve-unknown-fields``; ``apiVersion``, ``kind`` and
``metadata`` of the object and of ``x-kubernetes-embedded-resource`` objects are kept),
*defaulting* (``default`` of an absent property, or of a ``null`` one that is not
``nullable``) and *validation* (OpenAPI v3.0 as JSON Schema draft 4: ``exclusiveMinimum`` is a
boolean; ``nullable`` allows null; a failure is a 422 ``Invalid``). CEL rules
(``x-kubernetes-validations``) and formats are not checked.

This is why, against a CRD without ``x-kubernetes-preserve-unknown-fields`` on ``status``,
kopf's ``status.kopf`` progress and the results handlers return (``status.<handler>``) do
not survive a write, just as on a cluster.
"""

from __future__ import annotations

import copy
import functools
import json
from typing import Any

from jsonschema import Draft4Validator

ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def _properties(schema: dict) -> dict[str, dict]:
    return schema.get("properties") or {}


def _field_schema(schema: dict, key: str) -> dict | None:
    """The schema of ``key`` in an object, or None when the field is unknown."""
    if key in _properties(schema):
        return _properties(schema)[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def prune(value: Any, schema: dict, root: bool = False) -> Any:
    """Drop the fields ``schema`` does not declare (in place; returns ``value``)."""
    if isinstance(value, dict):
        keep_meta = root or schema.get("x-kubernetes-embedded-resource")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or (
            schema.get("additionalProperties") is True
        )
        for key in list(value):
            if keep_meta and key in ROOT_FIELDS:
                continue
            sub = _field_schema(schema, key)
            if sub is not None:
                prune(value[key], sub)
            elif not preserve:
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            prune(item, schema["items"])
    return value


def default(value: Any, schema: dict) -> Any:
    """Fill ``default`` values in (in place; returns ``value``)."""
    if isinstance(value, dict):
        for key, sub in _properties(schema).items():
            if "default" not in sub:
                continue
            if key not in value or (value[key] is None and not sub.get("nullable")):
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            sub = _field_schema(schema, key)
            if sub is not None:
                default(item, sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            default(item, schema["items"])
    return value


def _draft4(schema: Any) -> Any:
    """OpenAPI v3.0 -> JSON Schema draft 4: ``nullable`` becomes a null type."""
    if isinstance(schema, list):
        return [_draft4(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: _draft4(value) for key, value in schema.items()}
    if schema.get("nullable") and "type" in schema:
        converted["type"] = [schema["type"], "null"]
        if "enum" in converted:
            converted["enum"] = [*converted["enum"], None]
    return converted


@functools.cache
def _validator(schema_json: str) -> Draft4Validator:
    return Draft4Validator(_draft4(json.loads(schema_json)))


def problems(obj: dict, schema: dict) -> list[str]:
    validator = _validator(json.dumps(schema, sort_keys=True))
    found = []
    for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "<root>"
        found.append(f"{path}: Invalid value: {error.message}")
    return found


def admit(obj: dict, schema: dict) -> tuple[dict, list[str]]:
    """A pruned and defaulted copy of ``obj``, and its validation problems."""
    obj = default(prune(copy.deepcopy(obj), schema, root=True), schema)
    return obj, problems(obj, schema)
