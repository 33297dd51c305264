"""GitOps manifests: the Codespace CRD (the operator's objects: test_operator_manifests.py).

- ``config/helm/codespace-crd.yaml`` is a valid ``apiextensions.k8s.io/v1``
  CustomResourceDefinition (``kubernetes-validate``, strict, Kubernetes 1.30), its schema is
  *structural* (:func:`structural_problems`: the rules kube-apiserver applies before it
  accepts a v1 CRD, so pruning and defaulting work), sample Codespaces are accepted or
  refused by the schema (jsonschema) and its CEL rule is evaluated with a real CEL
  interpreter (``common-expression-language``, not the apiserver's cel-go).

The schema is OpenAPI v3.0, whose ``exclusiveMinimum`` is a boolean beside ``minimum`` (as in
JSON Schema draft 4, not draft 7's number): samples go through :class:`Draft4Validator`.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import cel
import pytest
import yaml
from jsonschema import Draft4Validator

from codespace.spec.model import MEMORY_QUANTITY
from hub.codespaces import NAME_MAX, pick_name
from tests.conftest import REPO_ROOT
from tests.helpers.k8s_schema import assert_valid

HELM = REPO_ROOT / "config" / "helm"
CRD = yaml.safe_load((HELM / "codespace-crd.yaml").read_text(encoding="utf-8"))
VERSION = CRD["spec"]["versions"][0]
SCHEMA = VERSION["schema"]["openAPIV3Schema"]
SPEC = SCHEMA["properties"]["spec"]
STATUS = SCHEMA["properties"]["status"]


# -- the structural-schema rules ------------------------------------------------------------

_SCALARS = {"string", "integer", "number", "boolean"}
# keywords a v1 CRD schema may not use at all
_FORBIDDEN = {
    "$ref",
    "$schema",
    "id",
    "definitions",
    "patternProperties",
    "dependencies",
    "additionalItems",
}
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# what a junctor (allOf/anyOf/oneOf/not) may not set: it validates, never describes
_NOT_IN_JUNCTORS = {"description", "type", "default", "additionalProperties", "nullable"}


def structural_problems(schema: dict, path: str = "") -> list[str]:
    """Why ``schema`` (a CRD's openAPIV3Schema) is not structural, as Kubernetes means it
    (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/
    custom-resource-definitions/#specifying-a-structural-schema); empty when it is."""
    found: list[str] = []
    _node(schema, path or "(root)", found, root=True)
    return found


def _node(node: Any, path: str, found: list[str], *, root: bool = False) -> None:
    if not isinstance(node, dict):
        found.append(f"{path}: a schema must be an object")
        return
    for key in sorted(_FORBIDDEN & node.keys()):
        found.append(f"{path}: {key} is not allowed")
    if node.get("uniqueItems") is True:
        found.append(f"{path}: uniqueItems: true is not allowed")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    kind = node.get("type")
    if preserve is not None and preserve is not True:
        found.append(f"{path}: x-kubernetes-preserve-unknown-fields must be true or absent")
    if int_or_string:
        if kind:
            found.append(f"{path}: x-kubernetes-int-or-string must not have a type")
    elif not kind and not preserve:
        found.append(f"{path}: no type")
    if preserve and kind and kind != "object":
        found.append(f"{path}: x-kubernetes-preserve-unknown-fields on a {kind}")
    if node.get("nullable") and not kind:
        found.append(f"{path}: nullable without a type")
    if root and kind != "object":
        found.append(f"{path}: the root must be an object")

    properties = node.get("properties")
    extra = node.get("additionalProperties")
    if properties is not None and extra is not None:
        found.append(f"{path}: properties and additionalProperties together")
    if extra is False:
        found.append(f"{path}: additionalProperties: false is not allowed")
    if (properties is not None or isinstance(extra, dict)) and kind not in (None, "object"):
        found.append(f"{path}: properties on a {kind}")
    for name, child in (properties or {}).items():
        where = f"{path}.{name}" if path != "(root)" else name
        if root and name == "metadata":
            _metadata(child, where, found)
        elif root and name in ("apiVersion", "kind") and child != {"type": "string"}:
            found.append(f"{where}: only type: string is allowed")
        else:
            _node(child, where, found)
    if isinstance(extra, dict):
        _node(extra, f"{path}.*", found)

    items = node.get("items")
    if isinstance(items, list):
        found.append(f"{path}: items must be one schema, not a list")
    elif items is not None:
        _node(items, f"{path}[]", found)
    if kind == "array" and items is None:
        found.append(f"{path}: an array without items")
    if items is not None and kind not in (None, "array"):
        found.append(f"{path}: items on a {kind}")
    _list_type(node, path, found)

    for junctor in _JUNCTORS:
        branches = node.get(junctor)
        if branches is None:
            continue
        for index, branch in enumerate(branches if junctor != "not" else [branches]):
            _junctor(branch, node, f"{path}.{junctor}[{index}]", found)


def _metadata(node: Any, path: str, found: list[str]) -> None:
    """Only restrictions on metadata.name and metadata.generateName are allowed."""
    if not isinstance(node, dict) or node.get("type") != "object":
        found.append(f"{path}: must be type: object")
        return
    for key in sorted(node.keys() - {"type", "properties", "description"}):
        found.append(f"{path}: {key} is not allowed on metadata")
    for name, child in (node.get("properties") or {}).items():
        if name not in ("name", "generateName"):
            found.append(f"{path}.{name}: only name and generateName may be restricted")
        elif not isinstance(child, dict) or child.get("type") != "string":
            found.append(f"{path}.{name}: must be type: string")
        elif "default" in child:
            found.append(f"{path}.{name}: no default")


def _list_type(node: dict, path: str, found: list[str]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    if keys is not None and list_type != "map":
        found.append(f"{path}: x-kubernetes-list-map-keys needs x-kubernetes-list-type: map")
    if list_type is None:
        return
    if node.get("type") != "array":
        found.append(f"{path}: x-kubernetes-list-type on a non-array")
        return
    items = node.get("items") or {}
    if list_type == "set":
        if items.get("type") not in _SCALARS:
            found.append(f"{path}: a set's items must be scalars")
    elif list_type == "map":
        if items.get("type") != "object" or not keys:
            found.append(f"{path}: a map list needs object items and x-kubernetes-list-map-keys")
            return
        for key in keys:
            field = (items.get("properties") or {}).get(key)
            if field is None or field.get("type") not in _SCALARS:
                found.append(f"{path}: map key {key} is not a scalar property of the items")
            elif key not in items.get("required", []) and "default" not in field:
                found.append(f"{path}: map key {key} must be required or defaulted")
    elif list_type != "atomic":
        found.append(f"{path}: unknown x-kubernetes-list-type {list_type}")


def _junctor(branch: Any, outer: dict, path: str, found: list[str]) -> None:
    """Inside allOf/anyOf/oneOf/not: validation only, on fields the outer node specifies."""
    if not isinstance(branch, dict):
        found.append(f"{path}: a schema must be an object")
        return
    for key in sorted(_NOT_IN_JUNCTORS & branch.keys()):
        found.append(f"{path}: {key} is not allowed inside a logical junctor")
    outer_properties = outer.get("properties") or {}
    for name, child in (branch.get("properties") or {}).items():
        if name not in outer_properties:
            found.append(f"{path}.{name}: not specified outside the junctor")
        else:
            _junctor(child, outer_properties[name], f"{path}.{name}", found)
    if "items" in branch:
        if "items" not in outer:
            found.append(f"{path}[]: items not specified outside the junctor")
        else:
            _junctor(branch["items"], outer["items"], f"{path}[]", found)


def pruned(obj: Any, schema: dict, path: str = "") -> list[str]:
    """The fields kube-apiserver would drop from ``obj`` (structural pruning)."""
    found: list[str] = []
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return found
    if isinstance(obj, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, value in obj.items():
            where = f"{path}.{key}" if path else key
            if not path and key == "metadata":
                continue  # ObjectMeta is the apiserver's own
            if key in properties:
                found += pruned(value, properties[key], where)
            elif isinstance(extra, dict):
                found += pruned(value, extra, where)
            elif extra is not True:
                found.append(where)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            found += pruned(item, schema["items"], f"{path}[{index}]")
    return found


# -- (a) the CRD is a valid v1 CustomResourceDefinition --------------------------------------


def test_crd_is_a_valid_v1_custom_resource_definition():
    assert_valid(CRD)  # kubernetes-validate, strict: unknown fields are errors
    assert CRD["apiVersion"] == "apiextensions.k8s.io/v1"
    assert CRD["metadata"]["name"] == "codespaces.codespace.io"
    spec = CRD["spec"]
    assert (spec["group"], spec["scope"]) == ("codespace.io", "Namespaced")
    assert spec["names"] == {
        "kind": "Codespace",
        "listKind": "CodespaceList",
        "plural": "codespaces",
        "singular": "codespace",
        "shortNames": ["cs"],
    }
    assert [(v["name"], v["served"], v["storage"]) for v in spec["versions"]] == [
        ("v1alpha1", True, True)
    ]
    assert VERSION["subresources"] == {"status": {}}


def test_printer_columns():
    columns = {c["name"]: c for c in VERSION["additionalPrinterColumns"]}
    assert list(columns) == ["Owner", "Repository", "Ref", "Phase", "URL", "Age"]
    assert {name: c["jsonPath"] for name, c in columns.items()} == {
        "Owner": ".spec.owner",
        "Repository": ".spec.repository",
        "Ref": ".spec.ref",
        "Phase": ".status.phase",
        "URL": ".status.url",
        "Age": ".metadata.creationTimestamp",
    }
    assert columns["URL"]["priority"] == 1
    assert columns["Age"]["type"] == "date"
    assert all(c.get("priority", 0) == 0 for n, c in columns.items() if n != "URL")


# -- (b) the schema is structural -------------------------------------------------------------


def test_schema_is_structural():
    assert structural_problems(SCHEMA) == []


def _break(mutate) -> list[str]:
    broken = copy.deepcopy(SCHEMA)
    mutate(broken)
    return structural_problems(broken)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s["properties"]["spec"]["properties"]["name"].pop("type"), "spec.name: no type"),
        (
            lambda s: s["properties"]["spec"]["properties"]["gpu"].update(
                additionalProperties={"type": "string"}
            ),
            "spec.gpu: properties and additionalProperties together",
        ),
        (
            lambda s: s["properties"]["spec"]["properties"].update(
                ref={"$ref": "#/definitions/ref"}
            ),
            "spec.ref: $ref is not allowed",
        ),
        (
            lambda s: s["properties"]["metadata"].update(properties={"labels": {"type": "object"}}),
            "metadata.labels: only name and generateName may be restricted",
        ),
        (
            lambda s: s["properties"]["status"]["properties"].update(url={"nullable": True}),
            "status.url: nullable without a type",
        ),
        (
            lambda s: s["properties"]["spec"].update(
                anyOf=[{"type": "object", "required": ["ref"]}]
            ),
            "spec.anyOf[0]: type is not allowed inside a logical junctor",
        ),
        (
            lambda s: s["properties"]["spec"].update(
                oneOf=[{"properties": {"branch": {"minLength": 1}}}]
            ),
            "spec.oneOf[0].branch: not specified outside the junctor",
        ),
        (
            lambda s: s["properties"]["status"]["properties"]["conditions"]["items"][
                "required"
            ].remove("type"),
            "status.conditions: map key type must be required or defaulted",
        ),
        (
            lambda s: s["properties"]["status"]["properties"]["kopf"].update(
                {"x-kubernetes-preserve-unknown-fields": False}
            ),
            "status.kopf: x-kubernetes-preserve-unknown-fields must be true or absent",
        ),
    ],
    ids=[
        "no-type",
        "properties+additionalProperties",
        "ref",
        "metadata",
        "nullable",
        "junctor-type",
        "junctor-field",
        "map-key",
        "preserve-false",
    ],
)
def test_structural_checker_catches_each_rule(mutate, expected):
    assert expected in _break(mutate)


def test_status_is_structural_but_keeps_kopf_bookkeeping():
    """kopf's progress (status.kopf) survives pruning; anything else unknown does not,
    including a kopf handler's return value (status.<handler id>)."""
    assert not STATUS.get("x-kubernetes-preserve-unknown-fields")
    assert STATUS["properties"]["kopf"] == {
        "type": "object",
        "description": STATUS["properties"]["kopf"]["description"],
        "x-kubernetes-preserve-unknown-fields": True,
    }
    obj = _codespace(
        status={
            "phase": "Ready",
            "kopf": {"progress": {"reconcile": {"started": "2025-01-01T00:00:00Z", "retries": 0}}},
            "reconcile": {"ok": True},
        }
    )
    assert pruned(obj, SCHEMA) == ["status.reconcile"]


# -- (c) sample Codespaces against the schema -------------------------------------------------

VALIDATOR = Draft4Validator(SCHEMA)


def _codespace(spec: dict | None = None, status: dict | None = None) -> dict:
    obj: dict[str, Any] = {
        "apiVersion": "codespace.io/v1alpha1",
        "kind": "Codespace",
        "metadata": {"name": "ml", "namespace": "codespaces"},
        "spec": {"owner": "ada", "repository": "https://github.com/org/proj.git"}
        if spec is None
        else spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def _errors(obj: dict) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in VALIDATOR.iter_errors(obj)
    ]


GOOD = _codespace(
    spec={
        "owner": "ada@example.org",
        "name": "ml-training-2",
        "repository": "https://github.com/org/proj.git",
        "ref": "main",
        "profile": "gpu-mig",
        "datasets": ["imagenet", "coco-2017"],
        "gpu": {"fraction": 0.25, "memory": "10Gi", "optional": True},
        "running": True,
    },
    status={
        "phase": "Ready",
        "url": "/user/ada@example.org/ml-training-2/",
        "envHash": "e" * 64,
        "message": "",
        "ref": "main",
        "observedGeneration": 3,
        "lastActivity": "2025-01-01T12:00:00Z",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "ServerReady",
                "message": "the server answers",
                "lastTransitionTime": "2025-01-01T12:00:00Z",
                "observedGeneration": 3,
            }
        ],
    },
)


def test_a_complete_codespace_is_valid_and_nothing_is_pruned():
    assert _errors(GOOD) == []
    assert pruned(GOOD, SCHEMA) == []


def test_the_smallest_codespace_is_valid_and_running_defaults_to_true():
    assert _errors(_codespace()) == []
    assert SPEC["properties"]["running"] == {
        "type": "boolean",
        "description": SPEC["properties"]["running"]["description"],
        "default": True,
    }


def _with(path: str, value: Any) -> dict:
    obj = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target = obj
    for key in parents:
        target = target[key]
    if value is _DROP:
        del target[last]
    else:
        target[last] = value
    return obj


_DROP = object()


@pytest.mark.parametrize(
    ("path", "value", "complaint"),
    [
        ("spec.repository", _DROP, "'repository' is a required property"),
        ("spec.owner", _DROP, "'owner' is a required property"),
        ("spec.owner", "", "spec.owner: '' should be non-empty"),
        ("spec.repository", "", "spec.repository: '' should be non-empty"),
        ("spec.name", "ML", "spec.name: 'ML' does not match"),
        ("spec.name", "1st", "spec.name: '1st' does not match"),
        ("spec.name", "a--b", "spec.name: 'a--b' does not match"),
        ("spec.name", "ends-", "spec.name: 'ends-' does not match"),
        ("spec.name", "a" * 31, "is too long"),
        ("spec.datasets", ["ImageNet"], "spec.datasets.0: 'ImageNet' does not match"),
        ("spec.datasets", ["a" * 64], "is too long"),
        ("spec.gpu.count", 0, "spec.gpu.count: 0 is less than the minimum of 1"),
        ("spec.gpu.count", 1.5, "spec.gpu.count: 1.5 is not of type 'integer'"),
        ("spec.gpu.fraction", 0, "spec.gpu.fraction: 0 is less than or equal to the minimum"),
        ("spec.gpu.fraction", 1.5, "spec.gpu.fraction: 1.5 is greater than the maximum of 1"),
        ("spec.gpu.memory", "ten gigs", "spec.gpu.memory: 'ten gigs' does not match"),
        ("spec.running", "yes", "spec.running: 'yes' is not of type 'boolean'"),
        ("spec", _DROP, "'spec' is a required property"),
        ("status.phase", "Running", "status.phase: 'Running' is not one of"),
        ("status.observedGeneration", -1, "is less than the minimum of 0"),
    ],
)
def test_a_bad_codespace_is_refused(path, value, complaint):
    errors = _errors(_with(path, value))
    assert any(complaint in error for error in errors), errors


def test_fraction_of_one_and_a_whole_gpu_are_valid():
    assert _errors(_with("spec.gpu", {"fraction": 1})) == []
    assert _errors(_with("spec.gpu", {"count": 2, "memory": "80Gi"})) == []


def test_conditions_have_the_metav1_condition_shape():
    conditions = STATUS["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
        "observedGeneration",
    }
    assert set(item["required"]) == {"type", "status", "reason", "message", "lastTransitionTime"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    bad = copy.deepcopy(GOOD)
    bad["status"]["conditions"][0]["status"] = "Yes"
    del bad["status"]["conditions"][0]["reason"]
    errors = _errors(bad)
    assert any("'Yes' is not one of" in e for e in errors), errors
    assert any("'reason' is a required property" in e for e in errors), errors


def test_status_fields_and_phases():
    assert set(STATUS["properties"]) == {
        "phase",
        "url",
        "envHash",
        "message",
        "ref",
        "observedGeneration",
        "lastActivity",
        "conditions",
        "kopf",
    }
    assert STATUS["properties"]["phase"]["enum"] == [
        "Pending",
        "Starting",
        "Ready",
        "Stopping",
        "Stopped",
        "Failed",
        "Deleting",
    ]
    assert STATUS["properties"]["lastActivity"]["format"] == "date-time"


GPU_RULES = SPEC["properties"]["gpu"]["x-kubernetes-validations"]


def test_gpu_count_and_fraction_are_exclusive_by_a_cel_rule():
    """jsonschema cannot run CEL: the rule is present with its message, and a CEL
    interpreter gives the answers kube-apiserver would."""
    assert GPU_RULES == [
        {
            "rule": "!(has(self.count) && has(self.fraction))",
            "message": "gpu.count and gpu.fraction are mutually exclusive: give one of them",
        }
    ]
    rule = GPU_RULES[0]["rule"]
    cel.compile(rule)
    assert cel.evaluate(rule, {"self": {"count": 2}}) is True
    assert cel.evaluate(rule, {"self": {"fraction": 0.5, "memory": "10Gi"}}) is True
    assert cel.evaluate(rule, {"self": {}}) is True
    assert cel.evaluate(rule, {"self": {"count": 1, "fraction": 0.5}}) is False
    # the structural schema alone accepts both: only the rule refuses them
    assert _errors(_with("spec.gpu", {"count": 1, "fraction": 0.5})) == []


def test_spec_matches_the_hub_and_the_codespace_spec():
    """The same rules as the hub's server names and the .codespace GPU request."""
    gpu = SPEC["properties"]["gpu"]["properties"]
    assert gpu["memory"]["pattern"] == MEMORY_QUANTITY.pattern
    name = SPEC["properties"]["name"]
    assert name["maxLength"] == NAME_MAX
    for repo, ref in [
        ("https://github.com/Org/My_Big.Project.git", "feature/X"),
        ("https://example.org/2048.git", ""),
        ("https://example.org/" + "very-long-name" * 4, "release-2025"),
    ]:
        picked = pick_name(repo, ref, taken=[])
        assert re.fullmatch(name["pattern"], picked) and len(picked) <= NAME_MAX, picked
    assert SPEC["required"] == ["owner", "repository"]
    assert SPEC["properties"]["owner"]["minLength"] == 1
    assert SPEC["properties"]["owner"]["maxLength"] == 255
    assert SPEC["properties"]["datasets"]["x-kubernetes-list-type"] == "set"
