"""JSON Schema of ``.codespace/codespace.yaml``, for editors (``codespace schema``).

The resolved model's schema plus what only the manifest accepts: ``extends`` and the
shorthands the model's validators expand (``gpu: true`` or a number, ``secrets`` as a
list of names, ``idleTimeout: "30m"``), and the shape of ``portsAttributes`` keys.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from .model import Codespace

SCHEMA_ID = "https://codespace-hub.invalid/schemas/codespace.schema.json"


@functools.cache
def _schema() -> dict[str, Any]:
    schema = Codespace.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "codespace.yaml"
    schema["description"] = (
        "A repository's codespace: a superset of devcontainer.json. Paths are relative to "
        "the repository root."
    )
    properties = schema["properties"]
    properties["extends"] = {
        "type": "string",
        "description": "A devcontainer.json to start from (repository-relative path)",
    }
    defs = schema["$defs"]
    gpu = defs["Resources"]["properties"]["gpu"]
    gpu["anyOf"] = [
        {"type": "boolean"},
        {"type": "integer", "minimum": 0},
        {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        *gpu["anyOf"],
    ]
    secrets = properties["secrets"]
    properties["secrets"] = {
        "description": secrets.get("description", ""),
        "anyOf": [
            {"type": "array", "items": {"type": "string"}},
            {k: v for k, v in secrets.items() if k != "description"},
        ],
    }
    properties["portsAttributes"]["propertyNames"] = {"pattern": r"^\d{1,5}(-\d{1,5})?$"}
    idle = defs["Lifetime"]["properties"]["idleTimeout"]
    idle["anyOf"] = [{"type": "string", "pattern": r"^\s*\d+\s*[smhd]?\s*$"}, *idle["anyOf"]]
    return schema


def manifest_schema() -> dict[str, Any]:
    """A fresh copy of the manifest's JSON Schema."""
    return copy.deepcopy(_schema())
