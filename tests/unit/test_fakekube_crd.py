"""The fake Kubernetes API (tests/fakekube) serves custom resources as the real API server does,
so a kopf operator runs against it unchanged.

Through plain HTTP: discovery (``/api/v1``, ``/apis``, ``/apis/<group>/<version>``) lists the
built-in resources and those of every CustomResourceDefinition (cluster-scoped, created
through the API or ``FakeKube.register_crd``); ``DELETE`` of an object with finalizers only
marks it, and the update that removes the last finalizer deletes it; the ``status``
subresource splits writes between the object and ``/status``; ``generation`` and
``resourceVersion`` move as on a real server. Then a real kopf operator (create / update /
finalizer-backed delete handlers) runs against the fake in a thread.
"""

from __future__ import annotations

import copy
import json
import time

import kopf
import pytest
import requests

from tests.fakekube import FakeKube
from tests.fakekube import store as fakestore
from tests.fakekube.kopf_operator import KopfOperator
from tests.fakekube.resources import VERBS

GROUP, VERSION, PLURAL = "codespace.io", "v1alpha1", "codespaces"
API_VERSION = f"{GROUP}/{VERSION}"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": PLURAL,
            "singular": "codespace",
            "kind": "Codespace",
            "shortNames": ["cs"],
        },
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
                "subresources": {"status": {}},
            }
        ],
    },
}
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}


def codespace(name: str = "cs1", **metadata) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "Codespace",
        "metadata": {"name": name, **metadata},
        "spec": {"image": "a"},
    }


@pytest.fixture
def kube():
    with FakeKube() as fake:
        yield fake


@pytest.fixture
def crd_kube(kube):
    kube.register_crd(CRD)
    return kube


def items_url(kube: FakeKube, namespace: str = "default") -> str:
    return f"{kube.url}/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}"


def watch(kube: FakeKube, path: str, **params) -> list[dict]:
    """The events of a watch that the server closes after one second."""
    query = {"watch": "true", "timeoutSeconds": "1", **params}
    with requests.get(kube.url + path, params=query, stream=True, timeout=10) as response:
        assert response.status_code == 200
        return [json.loads(line) for line in response.iter_lines() if line]


# -- discovery --------------------------------------------------------------------------------


def test_discovery_lists_core_builtin_and_crd_resources(crd_kube):
    base = crd_kube.url
    core = requests.get(f"{base}/api/v1", timeout=5).json()
    assert core["kind"] == "APIResourceList" and core["groupVersion"] == "v1"
    by_name = {r["name"]: r for r in core["resources"]}
    for plural in (
        "pods",
        "services",
        "persistentvolumeclaims",
        "configmaps",
        "secrets",
        "events",
        "namespaces",
    ):
        assert plural in by_name, plural
    assert by_name["pods"]["kind"] == "Pod" and by_name["pods"]["namespaced"] is True
    assert by_name["namespaces"]["namespaced"] is False
    assert {"pods/status", "pods/log"} <= set(by_name)

    groups = requests.get(f"{base}/apis", timeout=5).json()
    assert groups["kind"] == "APIGroupList"
    names = {g["name"]: g for g in groups["groups"]}
    assert {"apiextensions.k8s.io", "batch", GROUP} <= set(names)
    assert names[GROUP]["preferredVersion"] == {"groupVersion": API_VERSION, "version": VERSION}
    assert requests.get(f"{base}/apis/{GROUP}", timeout=5).json()["name"] == GROUP

    resources = requests.get(f"{base}/apis/{API_VERSION}", timeout=5).json()
    assert resources["groupVersion"] == API_VERSION
    main, status = resources["resources"]
    assert main == {
        "name": PLURAL,
        "singularName": "codespace",
        "namespaced": True,
        "kind": "Codespace",
        "verbs": list(VERBS),
        "shortNames": ["cs"],
    }
    assert status["name"] == f"{PLURAL}/status" and set(status["verbs"]) == {
        "get",
        "patch",
        "update",
    }
    crds = requests.get(f"{base}/apis/apiextensions.k8s.io/v1", timeout=5).json()
    assert [r["name"] for r in crds["resources"]] == [
        "customresourcedefinitions",
        "customresourcedefinitions/status",
    ]
    assert requests.get(f"{base}/apis/nope.io/v1", timeout=5).status_code == 404
    assert requests.get(f"{base}/apis/nope.io", timeout=5).status_code == 404


def test_crd_through_the_api_is_cluster_scoped_and_established(kube):
    base = kube.url
    namespaced = requests.post(
        f"{base}/apis/apiextensions.k8s.io/v1/namespaces/default/customresourcedefinitions",
        json=CRD,
        timeout=5,
    )
    assert namespaced.status_code == 404
    bad = copy.deepcopy(CRD)
    bad["metadata"]["name"] = "wrong.name"
    assert requests.post(base + CRDS, json=bad, timeout=5).status_code == 422
    assert requests.get(f"{base}/apis/{API_VERSION}", timeout=5).status_code == 404

    created = requests.post(base + CRDS, json=CRD, timeout=5)
    assert created.status_code == 201
    body = created.json()
    assert "namespace" not in body["metadata"]
    conditions = {c["type"]: c["status"] for c in body["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert body["status"]["acceptedNames"]["listKind"] == "CodespaceList"
    assert requests.post(base + CRDS, json=CRD, timeout=5).status_code == 409
    got = requests.get(f"{base}{CRDS}/{PLURAL}.{GROUP}", timeout=5).json()
    assert got["metadata"]["uid"] == body["metadata"]["uid"]
    listed = requests.get(base + CRDS, timeout=5).json()
    assert listed["kind"] == "CustomResourceDefinitionList"
    assert [c["metadata"]["name"] for c in listed["items"]] == [f"{PLURAL}.{GROUP}"]
    assert requests.get(f"{base}/apis/{API_VERSION}", timeout=5).status_code == 200

    # the resource is namespaced: its objects live under namespaces/<ns>/ only
    assert requests.post(items_url(kube), json=codespace(), timeout=5).status_code == 201
    cluster = requests.post(f"{base}/apis/{API_VERSION}/{PLURAL}", json=codespace(), timeout=5)
    assert cluster.status_code == 404
    everywhere = requests.get(f"{base}/apis/{API_VERSION}/{PLURAL}", timeout=5).json()
    assert everywhere["kind"] == "CodespaceList" and len(everywhere["items"]) == 1
    version = everywhere["metadata"]["resourceVersion"]

    # deleting the CRD deletes its objects and the resource leaves discovery
    assert requests.delete(f"{base}{CRDS}/{PLURAL}.{GROUP}", timeout=5).status_code == 200
    events = watch(kube, f"/apis/{API_VERSION}/{PLURAL}", resourceVersion=version)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "cs1")]
    assert requests.get(f"{base}/apis/{API_VERSION}", timeout=5).status_code == 404
    groups = requests.get(f"{base}/apis", timeout=5).json()["groups"]
    assert GROUP not in {g["name"] for g in groups}


def test_crd_versions_scope_and_watch_of_crds(kube):
    base = kube.url
    initial = watch(kube, CRDS, sendInitialEvents="true")
    assert [e["type"] for e in initial] == ["BOOKMARK"]
    crd = copy.deepcopy(CRD)
    crd["metadata"]["name"] = f"clusterthings.{GROUP}"
    crd["spec"]["scope"] = "Cluster"
    crd["spec"]["names"] = {"plural": "clusterthings", "kind": "ClusterThing"}
    v1 = {**crd["spec"]["versions"][0], "name": "v1", "storage": False}
    crd["spec"]["versions"] = [
        {**v1, "name": "v1beta1", "subresources": {}},
        v1,
        {**v1, "name": "v2alpha1"},
    ]
    crd["spec"]["versions"][1]["storage"] = True
    kube.register_crd(crd)
    events = watch(kube, CRDS)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", f"clusterthings.{GROUP}")
    ]
    group = requests.get(f"{base}/apis/{GROUP}", timeout=5).json()
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1", "v2alpha1"]
    assert group["preferredVersion"]["version"] == "v1"
    v1beta1 = requests.get(f"{base}/apis/{GROUP}/v1beta1", timeout=5).json()["resources"]
    assert [(r["name"], r["namespaced"]) for r in v1beta1] == [("clusterthings", False)]

    thing = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterThing", "metadata": {"name": "t"}}
    url = f"{base}/apis/{GROUP}/v1/clusterthings"
    assert requests.post(url, json=thing, timeout=5).status_code == 201
    assert requests.get(f"{url}/t", timeout=5).json()["metadata"].get("namespace") is None
    assert kube.get(f"{GROUP}/v1", "clusterthings", None, "t") is not None
    namespaced = f"{base}/apis/{GROUP}/v1/namespaces/default/clusterthings"
    assert requests.post(namespaced, json=thing, timeout=5).status_code == 404
    # no status subresource in v1beta1: /status is not there
    patch = requests.patch(
        f"{base}/apis/{GROUP}/v1beta1/clusterthings/t/status",
        data=json.dumps({"status": {"a": 1}}),
        headers=MERGE,
        timeout=5,
    )
    assert patch.status_code == 404


# -- finalizers and deletion ------------------------------------------------------------------


def test_delete_with_finalizers_marks_then_the_last_finalizer_removal_deletes(crd_kube):
    url = items_url(crd_kube)
    created = requests.post(url, json=codespace(finalizers=["x/a", "x/b"]), timeout=5).json()
    start = created["metadata"]["resourceVersion"]

    deleting = requests.delete(f"{url}/cs1", timeout=5)
    assert deleting.status_code == 202
    meta = deleting.json()["metadata"]
    assert meta["deletionTimestamp"] and meta["deletionGracePeriodSeconds"] == 0
    assert requests.get(f"{url}/cs1", timeout=5).status_code == 200
    again = requests.delete(f"{url}/cs1", timeout=5)  # idempotent while finalizers remain
    assert again.status_code == 202
    assert again.json()["metadata"]["resourceVersion"] == meta["resourceVersion"]

    # a finalizer cannot be added while deleting; one can be removed (a MODIFIED event)
    add = {"metadata": {"finalizers": ["x/a", "x/b", "x/c"]}}
    added = requests.patch(f"{url}/cs1", data=json.dumps(add), headers=MERGE, timeout=5)
    assert added.status_code == 422
    one = {"metadata": {"finalizers": ["x/b"]}}
    assert requests.patch(f"{url}/cs1", data=json.dumps(one), headers=MERGE, timeout=5).ok
    # a client cannot take the deletionTimestamp back
    undo = {"metadata": {"deletionTimestamp": None}}
    kept = requests.patch(f"{url}/cs1", data=json.dumps(undo), headers=MERGE, timeout=5).json()
    assert kept["metadata"]["deletionTimestamp"] == meta["deletionTimestamp"]

    # the last one goes through a JSON patch guarded by a resourceVersion test, as kopf does
    current = requests.get(f"{url}/cs1", timeout=5).json()["metadata"]["resourceVersion"]
    stale = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": start},
        {"op": "remove", "path": "/metadata/finalizers"},
    ]
    refused = requests.patch(f"{url}/cs1", data=json.dumps(stale), headers=JSON_PATCH, timeout=5)
    assert refused.status_code == 422 and refused.json()["reason"] == "Invalid"
    fresh = [{**stale[0], "value": current}, stale[1]]
    done = requests.patch(f"{url}/cs1", data=json.dumps(fresh), headers=JSON_PATCH, timeout=5)
    assert done.status_code == 200
    assert requests.get(f"{url}/cs1", timeout=5).status_code == 404

    events = watch(
        crd_kube, f"/apis/{API_VERSION}/namespaces/default/{PLURAL}", resourceVersion=start
    )
    assert [(e["type"], e["object"]["metadata"].get("finalizers")) for e in events] == [
        ("MODIFIED", ["x/a", "x/b"]),  # deletionTimestamp set
        ("MODIFIED", ["x/b"]),
        ("DELETED", None),
    ]
    assert all(e["object"]["metadata"]["deletionTimestamp"] for e in events)


def test_delete_without_finalizers_is_immediate_and_pods_follow_finalizers(kube):
    kube.register_crd(CRD)
    url = items_url(kube)
    requests.post(url, json=codespace(), timeout=5)
    gone = requests.delete(f"{url}/cs1", timeout=5)
    assert gone.status_code == 200
    assert requests.get(f"{url}/cs1", timeout=5).status_code == 404
    assert requests.delete(f"{url}/cs1", timeout=5).status_code == 404

    # deletecollection: every match, finalizers still hold
    requests.post(url, json=codespace("a", labels={"app": "x"}), timeout=5)
    requests.post(url, json=codespace("b", labels={"app": "x"}, finalizers=["x/f"]), timeout=5)
    requests.post(url, json=codespace("c"), timeout=5)
    assert requests.delete(url, params={"labelSelector": "app=x"}, timeout=5).ok
    left = {o["metadata"]["name"]: o["metadata"] for o in kube.list(API_VERSION, PLURAL)}
    assert set(left) == {"b", "c"} and "deletionTimestamp" in left["b"]

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "finalizers": ["x/keep"]},
        "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "i"}]},
    }
    pods = f"{kube.url}/api/v1/namespaces/default/pods"
    assert requests.post(pods, json=pod, timeout=5).status_code == 201
    held = requests.delete(f"{pods}/p", timeout=5)
    assert held.status_code == 202
    assert held.json()["metadata"]["deletionGracePeriodSeconds"] == 0
    release = {"metadata": {"finalizers": None}}
    requests.patch(f"{pods}/p", data=json.dumps(release), headers=MERGE, timeout=5)
    assert kube.get("v1", "pods", "default", "p") is None


# -- status subresource, generation, resourceVersion -------------------------------------------


def test_status_subresource_splits_writes_and_generation_follows_spec(crd_kube):
    url = items_url(crd_kube)
    body = {**codespace(), "status": {"phase": "Sneaky"}}
    created = requests.post(url, json=body, timeout=5).json()
    assert "status" not in created  # status is written through /status only
    assert created["metadata"]["generation"] == 1

    both = {"spec": {"image": "b"}, "status": {"phase": "Ignored"}}
    patched = requests.patch(f"{url}/cs1", data=json.dumps(both), headers=MERGE, timeout=5)
    patched = patched.json()
    assert patched["spec"] == {"image": "b"} and "status" not in patched
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    on_status = {"spec": {"image": "ignored"}, "status": {"phase": "Ready"}}
    status = requests.patch(
        f"{url}/cs1/status", data=json.dumps(on_status), headers=MERGE, timeout=5
    ).json()
    assert status["status"] == {"phase": "Ready"} and status["spec"] == {"image": "b"}
    assert status["metadata"]["generation"] == 2
    assert int(status["metadata"]["resourceVersion"]) > int(patched["metadata"]["resourceVersion"])

    # metadata-only changes keep the generation; a no-op patch keeps the resourceVersion
    labels = {"metadata": {"labels": {"a": "b"}}}
    labelled = requests.patch(f"{url}/cs1", data=json.dumps(labels), headers=MERGE, timeout=5)
    assert labelled.json()["metadata"]["generation"] == 2
    same = requests.patch(f"{url}/cs1", data=json.dumps(labels), headers=MERGE, timeout=5)
    assert (
        same.json()["metadata"]["resourceVersion"] == labelled.json()["metadata"]["resourceVersion"]
    )

    # PUT: the main resource keeps the status; /status takes only the status; stale is a 409
    current = requests.get(f"{url}/cs1", timeout=5).json()
    put = {**current, "spec": {"image": "c"}, "status": {"phase": "Ignored"}}
    replaced = requests.put(f"{url}/cs1", json=put, timeout=5).json()
    assert replaced["spec"] == {"image": "c"} and replaced["status"] == {"phase": "Ready"}
    assert replaced["metadata"]["generation"] == 3
    assert requests.put(f"{url}/cs1", json=put, timeout=5).status_code == 409
    put_status = {**replaced, "spec": {"image": "ignored"}, "status": {"phase": "Done"}}
    done = requests.put(f"{url}/cs1/status", json=put_status, timeout=5).json()
    assert done["status"] == {"phase": "Done"} and done["spec"] == {"image": "c"}
    json_status = [{"op": "add", "path": "/status/ready", "value": True}]
    with_json = requests.patch(
        f"{url}/cs1/status", data=json.dumps(json_status), headers=JSON_PATCH, timeout=5
    ).json()
    assert with_json["status"] == {"phase": "Done", "ready": True}


def test_crd_without_status_subresource_keeps_status_in_the_object(kube):
    crd = copy.deepcopy(CRD)
    del crd["spec"]["versions"][0]["subresources"]
    kube.register_crd(crd)
    url = items_url(kube)
    resources = requests.get(f"{kube.url}/apis/{API_VERSION}", timeout=5).json()["resources"]
    assert [r["name"] for r in resources] == [PLURAL]
    created = requests.post(url, json={**codespace(), "status": {"phase": "New"}}, timeout=5)
    assert created.json()["status"] == {"phase": "New"}
    status = {"status": {"phase": "Ready"}}
    patched = requests.patch(f"{url}/cs1", data=json.dumps(status), headers=MERGE, timeout=5)
    assert patched.json()["status"] == {"phase": "Ready"}
    assert patched.json()["metadata"]["generation"] == 2  # only metadata is exempt here
    sub = requests.patch(f"{url}/cs1/status", data=json.dumps(status), headers=MERGE, timeout=5)
    assert sub.status_code == 404


def test_watch_from_a_compacted_version_is_410_gone(crd_kube, monkeypatch):
    monkeypatch.setattr(fakestore, "HISTORY", 2)
    url = items_url(crd_kube)
    first = requests.post(url, json=codespace(), timeout=5).json()
    for image in "bcd":
        spec = {"spec": {"image": image}}
        requests.patch(f"{url}/cs1", data=json.dumps(spec), headers=MERGE, timeout=5)
    path = f"/apis/{API_VERSION}/namespaces/default/{PLURAL}"
    events = watch(crd_kube, path, resourceVersion=first["metadata"]["resourceVersion"])
    assert [(e["type"], e["object"].get("code")) for e in events] == [("ERROR", 410)]


def test_schema_prunes_defaults_and_validates(kube):
    crd = copy.deepcopy(CRD)
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string"},
                    "size": {"type": "string", "enum": ["small", "large"], "default": "small"},
                    "gpus": {"type": "integer", "minimum": 0, "exclusiveMinimum": False},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                    "note": {"type": "string", "nullable": True},
                },
            },
            "status": {
                "type": "object",
                "properties": {"phase": {"type": "string", "enum": ["Pending", "Ready"]}},
            },
        },
    }
    kube.register_crd(crd)
    url = items_url(kube)
    body = codespace()
    body["spec"].update(unknown=1, env={"A": "1"}, extra={"anything": {"goes": True}}, note=None)
    body["metadata"]["labels"] = {"kept": "yes"}
    created = requests.post(url, json=body, timeout=5).json()
    assert created["spec"] == {
        "image": "a",
        "size": "small",
        "env": {"A": "1"},
        "extra": {"anything": {"goes": True}},
        "note": None,
    }
    assert created["metadata"]["labels"] == {"kept": "yes"}

    # the status gets the same treatment: kopf's own fields do not survive a strict schema
    status = {"status": {"phase": "Ready", "kopf": {"progress": {}}, "created": {"x": 1}}}
    written = requests.patch(f"{url}/cs1/status", data=json.dumps(status), headers=MERGE, timeout=5)
    assert written.json()["status"] == {"phase": "Ready"}
    bad_status = {"status": {"phase": "Updated"}}
    refused = requests.patch(
        f"{url}/cs1/status", data=json.dumps(bad_status), headers=MERGE, timeout=5
    )
    assert refused.status_code == 422 and "status.phase" in refused.json()["message"]

    for spec in ({"size": "huge"}, {"gpus": -1}, {"image": None}, {"env": {"A": 1}}):
        patch = json.dumps({"spec": spec})
        answer = requests.patch(f"{url}/cs1", data=patch, headers=MERGE, timeout=5)
        assert answer.status_code == 422, spec
        assert answer.json()["reason"] == "Invalid"
    assert requests.post(url, json={**codespace("x"), "spec": {}}, timeout=5).status_code == 422
    # a pruned-away change is no change at all
    before = requests.get(f"{url}/cs1", timeout=5).json()["metadata"]["resourceVersion"]
    noop = json.dumps({"spec": {"unknown": 2}})
    after = requests.patch(f"{url}/cs1", data=noop, headers=MERGE, timeout=5).json()
    assert after["metadata"]["resourceVersion"] == before


# -- a real kopf operator -----------------------------------------------------------------------


def _wait(predicate, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_kopf_operator_runs_create_update_and_finalizer_delete(crd_kube):
    registry = kopf.OperatorRegistry()
    seen: list[tuple] = []

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    def created(spec, name, patch, body, **_):
        seen.append(("create", name, spec["image"]))
        kopf.info(body, reason="Provisioned", message=f"{name} is ready")
        patch.status["phase"] = "Ready"

    @kopf.on.update(GROUP, VERSION, PLURAL, registry=registry)
    def updated(spec, name, patch, **_):
        seen.append(("update", name, spec["image"]))
        patch.status["phase"] = "Updated"

    @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry, optional=False)
    def deleted(name, **_):
        seen.append(("delete", name))

    def phase() -> str | None:
        obj = crd_kube.get(API_VERSION, PLURAL, "default", "cs1") or {}
        return (obj.get("status") or {}).get("phase")

    url = items_url(crd_kube)
    with KopfOperator(crd_kube, registry):
        assert requests.post(url, json=codespace(), timeout=5).status_code == 201
        _wait(lambda: phase() == "Ready", "the create handler's status")
        obj = crd_kube.get(API_VERSION, PLURAL, "default", "cs1")
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]

        spec = {"spec": {"image": "b"}}
        requests.patch(f"{url}/cs1", data=json.dumps(spec), headers=MERGE, timeout=5)
        _wait(lambda: phase() == "Updated", "the update handler's status")

        assert requests.delete(f"{url}/cs1", timeout=5).status_code == 202
        _wait(lambda: crd_kube.get(API_VERSION, PLURAL, "default", "cs1") is None, "deletion")
        _wait(lambda: crd_kube.list("v1", "events", "default"), "kopf's event")

    assert seen == [("create", "cs1", "a"), ("update", "cs1", "b"), ("delete", "cs1")]
    events = crd_kube.list("v1", "events", "default")
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events] == [("Provisioned", "cs1")]
