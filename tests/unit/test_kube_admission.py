"""config/helm/admission.yaml: a codespace may write only its own pending-mounts ConfigMap.

The ValidatingAdmissionPolicy is schema-checked (strict, Kubernetes 1.30) and its CEL is
evaluated, with a real CEL interpreter (``common-expression-language``), against admission
requests shaped like the ones kube-apiserver builds: the codespace's own record (exactly the
object the codespace side writes, with the name and labels the spawner passes) is allowed;
the chart's ``hub`` ConfigMap, another pod's record, an unlabelled record and a token bound
to no pod are denied; other users (the hub) are not matched at all.

:func:`admit` follows the apiserver's rules for one policy with ``failurePolicy``: the
resource rules, then every ``matchCondition`` (all true, or the policy does not apply), then
``variables`` (an error surfaces only where one is used) and every validation (false denies;
an error, or a non-bool, applies the failure policy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cel
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from kubernetes_asyncio.client import ApiClient, Configuration

from codespace.datasets.backend import DatasetError
from codespace.datasets.fluid_pending import ConfigMapPending, pending_store
from codespace.kube.pending import (
    PENDING_COMPONENT,
    pending_configmap,
    pending_data,
    pending_env,
)
from codespace.kube.plan import COMPONENT_LABEL
from tests.conftest import REPO_ROOT
from tests.helpers.k8s_schema import assert_valid

HELM = REPO_ROOT / "config" / "helm"
DOCUMENTS = list(yaml.safe_load_all((HELM / "admission.yaml").read_text()))
BY_KIND = {doc["kind"]: doc for doc in DOCUMENTS}
POLICY = BY_KIND["ValidatingAdmissionPolicy"]
# the codespaces' ServiceAccount, as the chart values set it (rbac.yaml creates it)
CODESPACE_SA = yaml.safe_load((HELM / "values.yaml").read_text())["singleuser"][
    "serviceAccountName"
]

NAMESPACE = "codespaces"
POD = "jupyter-ada--ml"
OTHER_POD = "jupyter-bob"
SERVER_LABELS = {"hub.jupyter.org/username": "ada", "hub.jupyter.org/servername": "ml"}
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"

# what CEL errors surface as in the interpreter (missing key, wrong type, null field...)
CEL_ERRORS = (KeyError, TypeError, ValueError, IndexError, RuntimeError)


# -- an admission evaluator for one ValidatingAdmissionPolicy -------------------------------


@dataclass
class Decision:
    allowed: bool
    matched: bool
    messages: list[str] = field(default_factory=list)


def _listed(values: list[str], value: str) -> bool:
    return "*" in values or value in values


def _in_constraints(spec: dict, request: dict) -> bool:
    resource = request["resource"]
    return any(
        _listed(rule["apiGroups"], resource["group"])
        and _listed(rule["apiVersions"], resource["version"])
        and _listed(rule["resources"], resource["resource"])
        and _listed(rule["operations"], request["operation"])
        for rule in spec["matchConstraints"]["resourceRules"]
    )


def _failure(spec: dict, what: str, error: Exception) -> Decision:
    allowed = spec.get("failurePolicy", "Fail") == "Ignore"
    return Decision(allowed, True, [f"{what} failed: {type(error).__name__}: {error}"])


def admit(policy: dict, request: dict, obj: dict | None, old: dict | None) -> Decision:
    spec = policy["spec"]
    if not _in_constraints(spec, request):
        return Decision(True, False)
    context: dict[str, Any] = {"request": request, "object": obj, "oldObject": old}
    for condition in spec.get("matchConditions", []):
        try:
            if cel.evaluate(condition["expression"], context) is not True:
                return Decision(True, False)
        except CEL_ERRORS as error:
            return _failure(spec, f"matchCondition {condition['name']}", error)
    variables: dict[str, Any] = {}
    for variable in spec.get("variables", []):
        try:  # lazy in the apiserver: a failed variable is an error only where it is read
            variables[variable["name"]] = cel.evaluate(
                variable["expression"], {**context, "variables": variables}
            )
        except CEL_ERRORS:
            continue
    context["variables"] = variables
    denied = []
    for validation in spec["validations"]:
        try:
            result = cel.evaluate(validation["expression"], context)
        except CEL_ERRORS as error:
            return _failure(spec, "validation", error)
        if not isinstance(result, bool):
            return _failure(spec, "validation", TypeError(f"not a bool: {result!r}"))
        if not result:
            denied.append(_message(validation, context))
    return Decision(not denied, True, denied)


def _message(validation: dict, context: dict) -> str:
    if "messageExpression" in validation:
        try:
            message = cel.evaluate(validation["messageExpression"], context)
        except CEL_ERRORS:
            message = None
        if isinstance(message, str) and message.strip():
            return message
    return validation.get("message") or validation["expression"]


# -- admission requests ---------------------------------------------------------------------


def service_account(name: str, namespace: str = NAMESPACE, pod: str | None = None) -> dict:
    """The userInfo of a request made with a ServiceAccount token (bound to ``pod``)."""
    extra = {}
    if pod is not None:  # what a pod-bound token carries (node-name/uid since 1.30 too)
        extra = {
            POD_NAME_KEY: [pod],
            "authentication.kubernetes.io/pod-uid": ["0f4b7a2e-uid"],
            "authentication.kubernetes.io/node-name": ["node-1"],
        }
    return {
        "username": f"system:serviceaccount:{namespace}:{name}",
        "uid": f"{name}-uid",
        "groups": [
            "system:serviceaccounts",
            f"system:serviceaccounts:{namespace}",
            "system:authenticated",
        ],
        "extra": extra,
    }


def codespace(pod: str = POD, namespace: str = NAMESPACE) -> dict:
    return service_account(CODESPACE_SA, namespace, pod)


def request(user: dict, operation: str, obj: dict | None, old: dict | None) -> dict:
    target = obj if obj is not None else old
    return {
        "uid": "req-1",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "name": target["metadata"]["name"],
        "namespace": target["metadata"]["namespace"],
        "operation": operation,
        "userInfo": user,
    }


def check(user: dict, operation: str, obj: dict | None = None, old: dict | None = None):
    return admit(POLICY, request(user, operation, obj, old), obj, old)


def own_record(
    pod: str = POD, names: tuple[str, ...] = ("mnist",), env_labels: dict | None = None
) -> dict:
    """What the codespace in ``pod`` creates: the name and labels come from the environment
    the spawner gives it (:func:`pending_env`), read by the codespace side's own code."""
    environ = pending_env(pod, SERVER_LABELS if env_labels is None else env_labels)
    store = pending_store(NAMESPACE, Path("/nonexistent"), environ)
    assert isinstance(store, ConfigMapPending)
    return pending_configmap(store.name, store.namespace, store.labels, names)


def patched(configmap: dict, **changes: Any) -> dict:
    """The object admission sees for a patch: the stored one with the patch applied."""
    return {**configmap, **changes}


def configmap(name: str, labels: dict | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"k": "v"}}


HUB_CONFIGMAP = configmap("hub", {"app": "jupyterhub", "component": "hub"})


# -- the file -------------------------------------------------------------------------------


def test_policy_and_binding_are_schema_valid_for_kubernetes_1_30():
    assert [doc["kind"] for doc in DOCUMENTS] == [
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    for document in DOCUMENTS:
        assert_valid(document)
    binding = BY_KIND["ValidatingAdmissionPolicyBinding"]
    assert binding["spec"]["policyName"] == POLICY["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert POLICY["spec"]["failurePolicy"] == "Fail"
    rbac = list(yaml.safe_load_all((HELM / "rbac.yaml").read_text()))
    assert ("ServiceAccount", CODESPACE_SA) in {(d["kind"], d["metadata"]["name"]) for d in rbac}


def test_every_expression_parses():
    spec = POLICY["spec"]
    expressions = [c["expression"] for c in spec["matchConditions"]]
    expressions += [v["expression"] for v in spec["variables"]]
    for validation in spec["validations"]:
        expressions += [validation["expression"], validation.get("messageExpression", "true")]
    for expression in expressions:
        cel.compile(expression)  # raises ValueError on a syntax error


# -- the codespace's own record -------------------------------------------------------------


def test_the_codespace_may_create_patch_and_delete_its_own_record():
    created = own_record()
    assert created["metadata"]["name"] == f"codespace-pending-{POD}"
    decision = check(codespace(), "CREATE", created)
    assert decision.matched and decision.allowed, decision.messages

    updated = patched(created, data=pending_data(["mnist", "laion"]))
    decision = check(codespace(), "UPDATE", updated, created)
    assert decision.allowed, decision.messages

    decision = check(codespace(), "DELETE", None, updated)  # DELETE: object is null
    assert decision.matched and decision.allowed, decision.messages


def test_the_record_keeps_the_component_label_whatever_the_environment_says():
    forged = {**SERVER_LABELS, COMPONENT_LABEL: "hub"}
    created = own_record(env_labels=forged)
    assert created["metadata"]["labels"][COMPONENT_LABEL] == PENDING_COMPONENT
    assert check(codespace(), "CREATE", created).allowed


def test_codespaces_in_any_namespace_get_the_same_rule():
    record = own_record()
    record["metadata"]["namespace"] = "team-a"
    assert check(codespace(namespace="team-a"), "CREATE", record).allowed
    hub = patched(HUB_CONFIGMAP, metadata={**HUB_CONFIGMAP["metadata"], "namespace": "team-a"})
    assert not check(codespace(namespace="team-a"), "DELETE", None, hub).allowed


# -- what it may not do ---------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
def test_the_hub_configmap_is_out_of_reach(operation):
    rewritten = patched(HUB_CONFIGMAP, data={"values.yaml": "hub: {config: {}}"})
    obj, old = {
        "CREATE": (HUB_CONFIGMAP, None),
        "UPDATE": (rewritten, HUB_CONFIGMAP),
        "DELETE": (None, HUB_CONFIGMAP),
    }[operation]
    decision = check(codespace(), operation, obj, old)
    assert decision.matched and not decision.allowed
    assert f"codespace-pending-{POD}" in decision.messages[0]
    assert "not hub" in decision.messages[0]


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE", "DELETE"])
def test_another_pods_record_is_out_of_reach(operation):
    theirs = own_record(OTHER_POD)
    obj, old = {
        "CREATE": (theirs, None),
        "UPDATE": (patched(theirs, data=pending_data(["evil"])), theirs),
        "DELETE": (None, theirs),
    }[operation]
    decision = check(codespace(), operation, obj, old)
    assert not decision.allowed
    assert f"not codespace-pending-{OTHER_POD}" in decision.messages[0]


def test_a_record_without_the_component_label_is_denied():
    unlabelled = configmap(f"codespace-pending-{POD}", dict(SERVER_LABELS))
    decision = check(codespace(), "CREATE", unlabelled)
    assert not decision.allowed
    assert "app.kubernetes.io/component=codespace-pending-mounts" in decision.messages[0]
    assert not check(codespace(), "CREATE", configmap(f"codespace-pending-{POD}")).allowed

    created = own_record()
    relabelled = patched(
        created, metadata={**created["metadata"], "labels": {COMPONENT_LABEL: "other"}}
    )
    assert not check(codespace(), "UPDATE", relabelled, created).allowed
    stripped = patched(created, metadata={"name": created["metadata"]["name"]})
    stripped["metadata"]["namespace"] = NAMESPACE
    assert not check(codespace(), "UPDATE", stripped, created).allowed


def test_a_token_bound_to_no_pod_writes_nothing():
    legacy = service_account(CODESPACE_SA)  # a Secret token: no pod-name extra
    decision = check(legacy, "CREATE", own_record())
    assert decision.matched and not decision.allowed
    assert "bound to no pod" in decision.messages[0]
    del legacy["extra"]  # no extra at all
    assert not check(legacy, "CREATE", own_record()).allowed


# -- who it does not concern ----------------------------------------------------------------


@pytest.mark.parametrize(
    "user",
    [
        service_account("hub", pod="hub-5d8f7c9b4-x2k8q"),  # the hub deletes records
        service_account(f"{CODESPACE_SA}-admin", pod="x"),
        {"username": "kubernetes-admin", "groups": ["system:masters"]},
    ],
    ids=["hub", "similar-name", "admin"],
)
def test_other_users_are_not_matched(user):
    for operation, obj, old in [
        ("UPDATE", patched(HUB_CONFIGMAP, data={}), HUB_CONFIGMAP),
        ("DELETE", None, own_record(OTHER_POD)),
        ("CREATE", configmap("anything"), None),
    ]:
        decision = check(user, operation, obj, old)
        assert decision.allowed and not decision.matched, (operation, decision)


def test_other_resources_are_not_matched():
    secret = request(codespace(), "CREATE", HUB_CONFIGMAP, None)
    secret["resource"] = {"group": "", "version": "v1", "resource": "secrets"}
    assert not admit(POLICY, secret, HUB_CONFIGMAP, None).matched


def test_the_evaluator_applies_the_failure_policy_to_an_error():
    broken = json.loads(json.dumps(POLICY))
    broken["spec"]["validations"][0]["expression"] = "object.metadata.nope == 'x'"
    decision = admit(broken, request(codespace(), "CREATE", own_record(), None), own_record(), None)
    assert decision.matched and not decision.allowed
    assert "failed" in decision.messages[0]


# -- what the user sees when the policy denies a write --------------------------------------


async def test_a_denied_write_tells_the_user_the_policys_reason():
    denial = (
        'configmaps "codespace-pending-x" is forbidden: ValidatingAdmissionPolicy '
        "'codespace-pending-configmaps' with binding 'codespace-pending-configmaps' denied "
        "request: a codespace may write only its own ConfigMap codespace-pending-<its pod name>"
    )

    async def read(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "reason": "NotFound", "code": 404}, status=404)

    async def create(request: web.Request) -> web.Response:
        status = {"kind": "Status", "reason": "Forbidden", "message": denial, "code": 403}
        return web.json_response(status, status=403)

    app = web.Application()
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", read)
    app.router.add_post("/api/v1/namespaces/{ns}/configmaps", create)
    async with TestServer(app) as server:
        async with ApiClient(Configuration(host=str(server.make_url("")).rstrip("/"))) as api:
            store = ConfigMapPending(NAMESPACE, "codespace-pending-x", api_client=api)
            with pytest.raises(DatasetError) as raised:
                await store.add("mnist")
    message = str(raised.value)
    assert "could not write ConfigMap codespaces/codespace-pending-x" in message
    assert "403 Forbidden: " + denial in message
