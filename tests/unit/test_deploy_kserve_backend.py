"""The KServe deploy backend's create -> Ready -> URL flow against the fake Kubernetes API,
with the test playing KServe's controller (:class:`tests.fakekube.kserve.KServeController`)
and a stub model server on 127.0.0.1 answering the predictions the backend forwards (the
manifests and the status mapping: test_deploy_kserve.py)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from aiohttp import web

from codespace.deploy import kserve as ks
from codespace.deploy.backend import (
    DeployError,
    DeploymentExists,
    DeploymentNotFound,
    DeploySettings,
)
from codespace.deploy.kserve_backend import KServeDeployBackend
from codespace.deploy.models import DeploymentSpec
from tests.fakekube import FakeKube
from tests.fakekube.codespace import add_running_codespace
from tests.fakekube.kserve import KServeController
from tests.helpers.k8s_schema import assert_strictly_valid
from tests.unit.test_deploy_kserve import ENV, IMAGE, NS, env_of

# -- against the fake API server -------------------------------------------------------------


@pytest.fixture
def kube():
    with FakeKube() as fake:
        add_running_codespace(fake, NS, "alice", IMAGE)
        yield fake


@pytest.fixture
def controller(kube: FakeKube) -> KServeController:
    return KServeController(kube)


def settings(kube: FakeKube, tmp_path: Path, owner: str = "alice", **options) -> DeploySettings:
    workspace = tmp_path / owner / "repo"
    workspace.mkdir(parents=True, exist_ok=True)
    environment = {
        "CODESPACE_IMAGE": IMAGE,
        "POD_NAMESPACE": NS,
        "HOSTNAME": f"jupyter-{owner}",
        "CODESPACE_WORKSPACE": "/workspaces/repo",
        "CODESPACE_WORKSPACE_CLAIM": f"claim-{owner}",
        "CODESPACE_DATASETS": f"iris={tmp_path / 'data' / 'iris'}",
        "VIRTUAL_ENV": ENV,
        "JUPYTERHUB_API_TOKEN": "never-in-a-model-server",
    }
    return DeploySettings(
        workspace=workspace,
        owner=owner,
        environment=environment,
        options={"api_url": kube.url, **options},
    )


def write_model(workspace: Path, name: str = "iris.joblib") -> Path:
    path = workspace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"coef": [0.1, 0.2]}, protocol=4))
    return path


@pytest.fixture
async def alice(kube: FakeKube, tmp_path: Path):
    backend = KServeDeployBackend.from_settings(settings(kube, tmp_path))
    yield backend
    await backend.close()


@pytest.fixture
async def bob(kube: FakeKube, tmp_path: Path):
    backend = KServeDeployBackend.from_settings(settings(kube, tmp_path, "bob"))
    yield backend
    await backend.close()


@pytest.fixture
async def model_server():
    """A stand-in for the predictor (KServe's URL): answers V2 infer with what it got."""
    seen: list[tuple[str, dict]] = []

    async def infer(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, body))
        data = [sum(row) for row in body["inputs"][0]["data"]]
        return web.json_response(
            {
                "model_name": request.match_info["model"],
                "outputs": [
                    {"name": "predict", "shape": [len(data)], "datatype": "FP64", "data": data}
                ],
            }
        )

    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": "model not loaded"}, status=503)

    app = web.Application()
    app.add_routes([web.post("/v2/models/{model}/infer", infer), web.get("/v2/broken", broken)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def isvcs(kube: FakeKube) -> list[dict]:
    return kube.list(ks.ISVC_API, ks.ISVC_PLURAL, NS)


def runtimes(kube: FakeKube) -> list[dict]:
    return kube.list(ks.RUNTIME_API, ks.RUNTIME_PLURAL, NS)


async def test_create_ready_url_predict_logs_delete(kube, controller, alice, model_server) -> None:
    url, seen = model_server
    write_model(alice.workspace / "models")
    record = await alice.create(DeploymentSpec(name="iris", artifact="models/iris.joblib"))
    assert (record.name, record.owner, record.backend) == ("iris", "alice", "kserve")
    assert (record.state, record.reason, record.format) == (
        "creating",
        "waiting for the KServe controller",
        "sklearn",
    )
    assert record.endpoint is None
    [isvc], [runtime] = isvcs(kube), runtimes(kube)
    assert_strictly_valid(isvc), assert_strictly_valid(runtime)
    name = isvc["metadata"]["name"]
    assert name == ks.kube_name("alice", "iris")
    model = isvc["spec"]["predictor"]["model"]
    assert model["storageUri"] == "pvc://claim-alice/repo/models/iris.joblib"
    # the workspace is ReadWriteOnce: prefer the codespace's node, and say so
    affinity = isvc["spec"]["predictor"]["affinity"]["podAffinity"]
    term = affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["labelSelector"]["matchLabels"]["hub.jupyter.org/username"] == "alice"
    assert any("ReadWriteOnce" in warning for warning in record.warnings)
    assert runtime["metadata"]["ownerReferences"][0]["uid"] == isvc["metadata"]["uid"]
    assert "JUPYTERHUB_API_TOKEN" not in json.dumps(runtime)

    controller.creating(NS, name)
    assert (await alice.get("iris")).state == "creating"
    controller.loading(NS, name)
    controller.pod(NS, name, log="loading model\n")
    assert (await alice.get("iris")).state == "loading"
    controller.ready(NS, name, url="http://iris.codespaces.example.com", address=url)
    assert_strictly_valid(controller.service(NS, name))
    ready = await alice.get("iris")
    assert (ready.state, ready.reason) == ("ready", "")
    assert ready.endpoint is not None
    assert ready.endpoint.url == "http://iris.codespaces.example.com/"
    assert ready.endpoint.infer == "http://iris.codespaces.example.com/v2/models/iris/infer"

    body = {
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]}]
    }
    answer = await alice.predict("iris", json.dumps(body).encode())
    assert answer.status == 200
    assert json.loads(answer.body)["outputs"][0]["data"] == [3, 7]
    assert seen[-1][0] == "/v2/models/iris/infer"  # called at the in-cluster address
    passed_on = await alice.predict("iris", b"", "v2/broken")
    assert passed_on.status == 503

    kube.pod_logs[(NS, f"{name}-predictor-00000-deployment-abcde")] = "a\nb\nc\n"
    assert await alice.logs("iris") == "a\nb\nc\n"
    assert await alice.logs("iris", tail=2) == "b\nc\n"

    await alice.delete("iris")
    assert isvcs(kube) == [] and runtimes(kube) == []
    with pytest.raises(DeploymentNotFound):
        await alice.get("iris")


async def test_serverless_idle_and_its_logs(kube, controller, tmp_path) -> None:
    backend = KServeDeployBackend.from_settings(settings(kube, tmp_path, mode="Serverless"))
    try:
        write_model(backend.workspace)
        record = await backend.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
        assert not any("4007" in warning for warning in record.warnings)
        name = ks.kube_name("alice", "iris")
        isvc = controller.service(NS, name)
        assert isvc["spec"]["predictor"]["minReplicas"] == 0
        controller.ready(NS, name, url="http://iris.example", copies=0)
        idle = await backend.get("iris")
        assert idle.state == "idle" and idle.endpoint is not None
        assert "scaled to zero" in await backend.logs("iris")
    finally:
        await backend.close()


async def test_failed_condition_and_crash_loop_show_why(kube, controller, alice) -> None:
    write_model(alice.workspace)
    await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    name = ks.kube_name("alice", "iris")
    controller.fail(NS, name, "RevisionFailed", "Container failed with: ModuleNotFoundError")
    failed = await alice.get("iris")
    assert failed.state == "failed"
    assert failed.reason == "RevisionFailed: Container failed with: ModuleNotFoundError"

    controller.fail(NS, name, "MinimumReplicasUnavailable", "Deployment does not have minimum")
    log = "codespace: python cannot import mlserver, mlserver_sklearn\n"
    controller.pod(NS, name, log="line 1\n" + log, waiting="CrashLoopBackOff", restarts=4)
    crashed = await alice.get("iris")
    assert crashed.state == "failed"
    assert crashed.reason.startswith("container kserve-container: CrashLoopBackOff")
    assert crashed.reason.endswith(log.strip())
    [listed] = await alice.list()
    assert listed.state == "failed"

    controller.fail(NS, name, "MinimumReplicasUnavailable", "x", model_failed=True)
    assert (await alice.get("iris")).reason == "ModelLoadFailed: x"


async def test_each_owner_sees_only_their_own(kube, controller, alice, bob) -> None:
    write_model(alice.workspace)
    write_model(bob.workspace)
    await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    await bob.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    await bob.create(DeploymentSpec(name="other", artifact="iris.joblib", maxReplicas=2))
    assert len(isvcs(kube)) == 3 and len(runtimes(kube)) == 3
    assert [r.name for r in await alice.list()] == ["iris"]
    assert sorted(r.name for r in await bob.list()) == ["iris", "other"]
    with pytest.raises(DeploymentNotFound):
        await alice.get("other")
    with pytest.raises(DeploymentNotFound):
        await alice.delete("other")
    await alice.delete("iris")
    assert sorted(r.name for r in await bob.list()) == ["iris", "other"]
    assert len(isvcs(kube)) == 2 and len(runtimes(kube)) == 2


async def test_bad_specs_create_nothing(kube, alice, tmp_path) -> None:
    (alice.workspace / "corrupt.joblib").write_bytes(b"not a pickle at all")
    (alice.workspace / "model.onnx").write_bytes(b"\x08\x07onnx")
    write_model(alice.workspace)
    bad = [
        ({"artifact": "corrupt.joblib"}, "not a joblib or pickle file"),
        ({"artifact": "missing.joblib"}, "no such file"),
        ({"artifact": "model.onnx"}, "MLServer has no runtime"),
        ({"artifact": "iris.joblib", "format": "xgboost"}, "not xgboost"),
        ({"artifact": "iris.joblib", "resources": {"gpu": 64}}, "resources.gpu"),
        ({"artifact": "s3://bucket/model"}, "give format"),
        ({"artifact": "datasets/iris/nothing.bin"}, "give format"),
    ]
    for spec, message in bad:
        with pytest.raises(DeployError, match=message):
            await alice.create(DeploymentSpec.model_validate({"name": "bad", **spec}))
    no_image = KServeDeployBackend.from_settings(settings(kube, tmp_path, image=""))
    no_image.environment.pop("CODESPACE_IMAGE")
    try:
        with pytest.raises(DeployError, match="no image"):
            await no_image.create(DeploymentSpec(name="bad", artifact="iris.joblib"))
    finally:
        await no_image.close()
    assert isvcs(kube) == [] and runtimes(kube) == []


async def test_dataset_artifact_is_read_from_its_mount(kube, alice, tmp_path) -> None:
    write_model(tmp_path / "data" / "iris", "model.pkl")
    record = await alice.create(DeploymentSpec(name="iris", artifact="datasets/iris/model.pkl"))
    assert record.format == "sklearn"
    [isvc] = isvcs(kube)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "pvc://iris/model.pkl"
    assert "affinity" not in isvc["spec"]["predictor"]  # not on the workspace volume


async def test_a_failed_inference_service_leaves_no_runtime(kube, alice, monkeypatch) -> None:
    write_model(alice.workspace)
    create = alice.api.create

    async def refuse_services(api_version: str, plural: str, body: dict) -> dict:
        if plural == ks.ISVC_PLURAL:
            raise DeployError("Kubernetes API: 422 Unprocessable Entity: admission webhook")
        return await create(api_version, plural, body)

    monkeypatch.setattr(alice.api, "create", refuse_services)
    with pytest.raises(DeployError, match="admission webhook"):
        await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    assert isvcs(kube) == [] and runtimes(kube) == []


async def test_a_name_is_taken_once(kube, alice) -> None:
    write_model(alice.workspace)
    await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    with pytest.raises(DeploymentExists):
        await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    assert len(isvcs(kube)) == 1 and len(runtimes(kube)) == 1


async def test_a_runtime_left_behind_is_taken_over(kube, alice) -> None:
    write_model(alice.workspace)
    spec = DeploymentSpec(name="iris", artifact="iris.joblib")
    await alice.create(spec)
    kube.delete(ks.ISVC_API, ks.ISVC_PLURAL, NS, ks.kube_name("alice", "iris"))
    record = await alice.create(spec)
    assert record.name == "iris" and len(isvcs(kube)) == 1 and len(runtimes(kube)) == 1


async def test_predict_before_ready_is_an_error(kube, alice) -> None:
    write_model(alice.workspace)
    await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    with pytest.raises(DeployError, match="no URL yet"):
        await alice.predict("iris", b"{}")


async def test_unreachable_model_server_is_an_error(kube, controller, alice) -> None:
    write_model(alice.workspace)
    await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    controller.ready(NS, ks.kube_name("alice", "iris"), url="http://127.0.0.1:9")
    with pytest.raises(DeployError, match="iris"):
        await alice.predict("iris", b"{}")


@pytest.mark.parametrize(
    ("options", "message"),
    [({"mdoe": "Serverless"}, "unknown option"), ({"mode": "Fast"}, "Serverless")],
)
def test_options_are_checked(tmp_path: Path, options: dict, message: str) -> None:
    config = DeploySettings(workspace=tmp_path, owner="alice", options=options)
    with pytest.raises(DeployError, match=message):
        KServeDeployBackend.from_settings(config)


async def test_the_fake_controller_writes_statuses_the_crd_accepts(kube, controller, alice):
    write_model(alice.workspace)
    await alice.create(DeploymentSpec(name="iris", artifact="iris.joblib"))
    name = ks.kube_name("alice", "iris")
    for step in (
        lambda: controller.creating(NS, name),
        lambda: controller.loading(NS, name),
        lambda: controller.fail(NS, name, "RevisionFailed", "boom", model_failed=True),
        lambda: controller.ready(NS, name, url="http://iris.example", address="http://a"),
    ):
        assert_strictly_valid(step())


async def test_a_kubeconfig_reaches_the_api_too(kube, tmp_path) -> None:
    config = kube.kubeconfig(tmp_path / "kubeconfig")
    options = {"kubeconfig": str(config), "namespace": NS}
    backend = KServeDeployBackend.from_settings(
        DeploySettings(workspace=tmp_path, owner="carol", options=options)
    )
    try:
        assert await backend.list() == []
        with pytest.raises(DeploymentNotFound):
            await backend.logs("nothing")
    finally:
        await backend.close()


async def test_huggingface_task_comes_from_config_json(kube, alice) -> None:
    for name, architecture in (("bert", "BertForSequenceClassification"), ("odd", "Odd")):
        folder = alice.workspace / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"architectures": [architecture]}))
    await alice.create(DeploymentSpec(name="bert", artifact="bert"))
    [runtime] = runtimes(kube)
    assert env_of(runtime)["MLSERVER_MODEL_HUGGINGFACE_TASK"] == "text-classification"
    assert env_of(runtime)["MLSERVER_MODEL_URI"] == "/mnt/models"
    with pytest.raises(DeployError, match="pipeline task"):
        await alice.create(DeploymentSpec(name="odd", artifact="odd"))
    assert len(runtimes(kube)) == 1
