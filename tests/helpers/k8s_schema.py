"""Validate any Kubernetes object against the real schema for its apiVersion/kind.

Core kinds go through ``kubernetes_validate`` (strict: unknown fields are errors) for one
supported Kubernetes version; custom resources go through the ``openAPIV3Schema`` of their
CRD, found in ``$CODESPACE_CRDS`` (default: ``../shared/crds`` next to the checkout) and in
``config/crds``. A kind that neither knows is an error, so a test can never pass by
validating nothing.

    from tests.helpers.k8s_schema import assert_valid
    assert_valid(obj)            # raises AssertionError naming the object and every problem
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import kubernetes_validate
import yaml
from jsonschema import Draft7Validator

KUBERNETES_VERSION = "1.30.0"
_REPO = Path(__file__).resolve().parents[2]
CRD_DIR = Path(os.environ.get("CODESPACE_CRDS", _REPO.parent / "shared" / "crds"))
_REPO_CRDS = _REPO / "config" / "crds"


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema for every CRD file found."""
    schemas: dict[tuple[str, str], dict] = {}
    for root in (CRD_DIR, _REPO_CRDS):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for version in doc["spec"]["versions"]:
                    schema = version["schema"]["openAPIV3Schema"]
                    schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def crd_kinds() -> set[tuple[str, str]]:
    return set(_crd_schemas())


def problems(obj: dict) -> list[str]:
    """Every schema problem of ``obj`` (empty when valid)."""
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not api_version or not kind:
        return ["object has no apiVersion/kind"]
    schema = _crd_schemas().get((api_version, kind))
    if schema is not None:
        validator = Draft7Validator(schema)
        return [
            f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
            for error in validator.iter_errors(obj)
        ]
    group = api_version.rpartition("/")[0]
    if "." in group and not group.endswith(".k8s.io"):
        return [f"no CRD schema for {api_version} {kind} (looked in {CRD_DIR})"]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = ".".join(str(p) for p in error.path) or "(root)"
        return [f"{where}: {str(error).splitlines()[0]}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {api_version} {kind} in Kubernetes {KUBERNETES_VERSION}"]
    return []


def assert_valid(obj: dict) -> dict:
    found = problems(obj)
    name = (obj.get("metadata") or {}).get("name", "?")
    assert not found, f"{obj.get('kind')} {name} is invalid:\n" + "\n".join(found)
    return obj


def assert_all_valid(objects: list[dict]) -> list[dict]:
    for obj in objects:
        assert_valid(obj)
    return objects


def _unknown(obj: object, schema: dict, path: str, found: list[str]) -> None:
    if not isinstance(schema, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(obj, dict):
        known = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            where = f"{path}.{key}" if path else str(key)
            if known is not None and key in known:
                _unknown(value, known[key], where, found)
            elif isinstance(extra, dict):
                _unknown(value, extra, where, found)
            elif known is not None and not extra:
                found.append(f"{where}: unknown field")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            _unknown(item, schema["items"], f"{path}.{index}", found)


def unknown_fields(obj: dict) -> list[str]:
    """Fields of a custom resource its CRD does not define (CRD schemas rarely say
    ``additionalProperties: false``, so the validator alone accepts a misspelt field)."""
    schema = _crd_schemas().get((obj.get("apiVersion"), obj.get("kind")))
    if schema is None:
        return [f"no CRD schema for {obj.get('apiVersion')} {obj.get('kind')}"]
    found: list[str] = []
    for key in ("spec", "status"):
        if key in obj and key in (schema.get("properties") or {}):
            _unknown(obj[key], schema["properties"][key], key, found)
    return found


def assert_strictly_valid(obj: dict) -> dict:
    """:func:`assert_valid`, and no field the CRD does not define (custom resources)."""
    assert_valid(obj)
    found = unknown_fields(obj)
    name = (obj.get("metadata") or {}).get("name", "?")
    assert not found, f"{obj.get('kind')} {name} has fields its CRD lacks:\n" + "\n".join(found)
    return obj
