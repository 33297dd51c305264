"""Fluid datasets on Kubernetes, end to end against the fake API server.

- ``mount()`` in a running codespace records the dataset in a ConfigMap of the namespace
  (``codespace-pending-<pod>``, validated strict); the next start mounts it from the PVC
  Fluid made, or says why not (a dataset that is not Bound never blocks the start).
- The spawn form lists the namespace's Fluid Datasets: Bound ones selectable, the others
  disabled with their phase.

The codespace's server is the real ``jupyterhub-singleuser`` with our server extension, run
by the fake kubelet; its Fluid backend talks to the fake API through a kubeconfig.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
import requests

from codespace.datasets.fluid import FluidBackend
from codespace.datasets.fluid_objects import API_VERSION, dataset_manifest
from codespace.datasets.fluid_pending import ConfigMapPending, FilePending, pending_store
from codespace.kube.pending import DATA_KEY, ENV_LABELS, ENV_NAME, pending_datasets
from tests.fakekube import FakeKube
from tests.helpers.hub import running_hub
from tests.helpers.k8s_schema import assert_valid
from tests.helpers.repos import make_repo

pytestmark = pytest.mark.integration

NAMESPACE = "codespaces"
VENV_BIN = str(Path(sys.executable).parent)
LABELS = {"hub.jupyter.org/username": "ada", "hub.jupyter.org/servername": "ml"}


def add_dataset(kube: FakeKube, name: str, phase: str, *, pvc: bool = False) -> None:
    kube.create(assert_valid(dataset_manifest(name, NAMESPACE, f"s3://bucket/{name}")))
    kube.set_status(API_VERSION, "datasets", NAMESPACE, name, {"phase": phase})
    if pvc:  # what Fluid creates for a Bound dataset
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        kube.create(assert_valid(claim), plural="persistentvolumeclaims")


# -- the record, without a hub -------------------------------------------------------------


@pytest.fixture
def kube():
    with FakeKube() as fake:
        yield fake


@pytest.fixture
async def api_client(kube: FakeKube):
    from kubernetes_asyncio.client import ApiClient, Configuration

    client = ApiClient(configuration=Configuration(host=kube.url))
    yield client
    await client.close()


async def test_mount_records_a_valid_configmap_and_unmount_removes_it(
    kube: FakeKube, api_client, tmp_path: Path
) -> None:
    add_dataset(kube, "mnist", "Bound")
    add_dataset(kube, "laion", "NotBound")
    record = ConfigMapPending(NAMESPACE, "codespace-pending-jupyter-ada--ml", LABELS)
    record._api_client = api_client  # share the test's client (not owned: not closed)
    record._owns_client = False
    backend = FluidBackend(NAMESPACE, api_client=api_client, pending=record)

    result = await backend.mount("mnist")
    assert result.pendingRestart and not result.mounted
    assert "next starts" in result.message
    assert "ConfigMap codespaces/codespace-pending-jupyter-ada--ml" in result.message
    laion = await backend.mount("laion")
    assert "NotBound now: mounted once Bound" in laion.message
    await backend.mount("mnist")  # twice: recorded once

    configmap = kube.get("v1", "configmaps", NAMESPACE, "codespace-pending-jupyter-ada--ml")
    assert_valid({k: configmap[k] for k in ("apiVersion", "kind", "metadata", "data")})
    assert configmap["metadata"]["labels"] == {
        **LABELS,
        "app.kubernetes.io/component": "codespace-pending-mounts",
    }
    assert pending_datasets(configmap) == ["mnist", "laion"]

    assert (await backend.unmount("mnist")).message == "no longer pending"
    assert await record.names() == ["laion"]
    await backend.unmount("laion")  # the last one: the ConfigMap goes
    assert kube.get("v1", "configmaps", NAMESPACE, "codespace-pending-jupyter-ada--ml") is None
    assert (await backend.unmount("laion")).message == "not mounted"


def test_the_record_is_untrusted_input_and_the_store_follows_the_environment(
    tmp_path: Path,
) -> None:
    forged = {"data": {DATA_KEY: json.dumps({"datasets": ["ok", "../etc", {"x": 1}, "ok"]})}}
    assert pending_datasets(forged) == ["ok"]
    assert pending_datasets({"data": {DATA_KEY: "not json"}}) == []
    environ = {ENV_NAME: "codespace-pending-p", ENV_LABELS: json.dumps(LABELS)}
    store = pending_store(NAMESPACE, tmp_path, environ)
    assert isinstance(store, ConfigMapPending)
    assert (store.name, store.labels) == ("codespace-pending-p", LABELS)
    assert isinstance(pending_store(NAMESPACE, tmp_path, {}), FilePending)


# -- end to end with a hub ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    with FakeKube() as fake:
        fake.namespaces.add(NAMESPACE)
        yield fake


@pytest.fixture(scope="module")
def hub(cluster: FakeKube, tmp_path_factory):
    data = tmp_path_factory.mktemp("kubedatasets")
    kubeconfig = cluster.kubeconfig(data / "kubeconfig", namespace=NAMESPACE)
    # the codespace's server reaches the API through the same kubeconfig
    cluster.kubelet.base_env = {
        "PATH": f"{VENV_BIN}:/usr/bin:/bin",
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(data / "home"),
    }
    document = {"profiles": [{"name": "small", "default": True, "cpu": 2, "memory": "4Gi"}]}
    extra = f"""
c.JupyterHub.spawner_class = "spawner.kubernetes.KubeCodespaceSpawner"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.KubeCodespaceSpawner.namespace = {NAMESPACE!r}
c.KubeCodespaceSpawner.codespace_config = {document!r}
c.KubeCodespaceSpawner.args = ["--ServerApp.allow_root=True"]
c.KubeCodespaceSpawner.start_timeout = 120
c.KubeCodespaceSpawner.http_timeout = 60
"""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with running_hub(data / "hub", extra_config=extra, base_config=None, env=env) as running:
        yield running


def pod(kube: FakeKube, name: str) -> dict:
    found = kube.get("v1", "pods", NAMESPACE, name)
    assert found is not None, f"no pod {name}"
    return found


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def test_mount_from_a_running_codespace_is_mounted_at_the_next_start(cluster, hub, tmp_path):
    add_dataset(cluster, "mnist", "Bound", pvc=True)
    add_dataset(cluster, "laion", "NotBound")
    repo = make_repo(
        tmp_path / "ml",
        {".codespace/codespace.yaml": "containerEnv: {PROJECT: ml}\n"},  # no image build
    )
    events = hub.spawn("ada", "ml", {"repo": str(repo)}, timeout=120)
    assert events[-1].get("ready"), messages(events) + hub.log_text()[-3000:]
    first = pod(cluster, "jupyter-ada--ml")
    env = {e["name"]: e.get("value") for e in first["spec"]["containers"][0]["env"]}
    assert env["CODESPACE_PENDING_CONFIGMAP"] == "codespace-pending-jupyter-ada--ml"
    assert (
        "--CodespaceExtension.dataset_backend_class=codespace.datasets.fluid.FluidBackend"
        in first["spec"]["containers"][0]["args"]
    )
    assert not any(v["name"].startswith("dataset-") for v in first["spec"]["volumes"])
    # deployments from this codespace go to KServe (InferenceServices in its namespace)
    deploys = hub.server_request("ada", "ml", "codespace/api/deployments")
    assert deploys.status_code == 200, deploys.text
    backends = deploys.json()["backends"]
    assert [(b["name"], b["default"], b.get("error")) for b in backends] == [
        ("kserve", True, None)
    ], backends

    # from inside the codespace: the REST API the SDK, the widget and the lab panel use
    listed = hub.server_request("ada", "ml", "codespace/api/datasets")
    assert listed.status_code == 200, listed.text
    assert {d["name"] for d in listed.json()["datasets"]} >= {"mnist", "laion"}
    for name in ("mnist", "laion"):
        response = hub.server_request("ada", "ml", f"codespace/api/datasets/{name}/mount", "POST")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["pendingRestart"] and not result["mounted"]
        assert "when this codespace next starts" in result["message"]

    configmap = cluster.get("v1", "configmaps", NAMESPACE, "codespace-pending-jupyter-ada--ml")
    assert configmap is not None
    assert_valid({k: configmap[k] for k in ("apiVersion", "kind", "metadata", "data")})
    labels = configmap["metadata"]["labels"]
    assert labels["hub.jupyter.org/username"] == "ada"
    assert labels["hub.jupyter.org/servername"] == "ml"
    assert labels["app.kubernetes.io/component"] == "codespace-pending-mounts"
    assert pending_datasets(configmap) == ["mnist", "laion"]

    hub.stop("ada", "ml")
    events = hub.spawn("ada", "ml", {"repo": str(repo)}, timeout=120)
    text = messages(events)
    assert events[-1].get("ready"), text
    assert "recorded by mount()" in text
    assert "not mounting 'laion'" in text and "NotBound" in text  # said, not a failure
    second = pod(cluster, "jupyter-ada--ml")
    assert_valid({k: v for k, v in second.items() if k != "status"})
    volumes = {v["name"]: v for v in second["spec"]["volumes"]}
    assert volumes["dataset-mnist"]["persistentVolumeClaim"] == {
        "claimName": "mnist",
        "readOnly": True,
    }
    assert "dataset-laion" not in volumes
    mounts = {m["name"]: m for m in second["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["dataset-mnist"]["mountPath"] == "/datasets/mnist"
    assert second["metadata"]["labels"]["fuse.serverful.fluid.io/inject"] == "true"
    # kept for the following starts (a pod's volumes are made anew each time)
    assert cluster.get("v1", "configmaps", NAMESPACE, "codespace-pending-jupyter-ada--ml")

    hub.stop("ada", "ml", remove=True)  # deleting the server deletes its record
    deadline = time.monotonic() + 30  # the hub calls delete_forever after answering
    while cluster.get("v1", "configmaps", NAMESPACE, "codespace-pending-jupyter-ada--ml"):
        assert time.monotonic() < deadline, "the record outlived its server"
        time.sleep(0.2)


def test_the_spawn_form_offers_bound_datasets_and_shows_the_others_disabled(cluster, hub):
    add_dataset(cluster, "coco", "Bound")
    add_dataset(cluster, "wiki", "Pending")
    browser = requests.Session()  # the spawn page needs a logged-in user (cookie)
    browser.get(f"{hub.url}hub/login", timeout=60).raise_for_status()
    browser.post(
        f"{hub.url}hub/login",
        data={"username": "bea", "password": "any", "_xsrf": browser.cookies["_xsrf"]},
        timeout=60,
    ).raise_for_status()
    page = browser.get(f"{hub.url}hub/spawn/bea/form", timeout=60)
    assert page.status_code == 200, page.text[-2000:]
    html = page.text
    assert '<option value="coco">coco</option>' in html
    assert '<option value="wiki" disabled>wiki (Pending, not Bound yet)</option>' in html
    assert "only Bound datasets can be picked" in html
