"""The KServe deploy backend: its InferenceService / ServingRuntime manifests against the real
CRDs (../shared/crds/serving.kserve.io), the status mapping, and the create -> Ready -> URL
flow against the fake Kubernetes API, with the test playing KServe's controller
(:class:`tests.fakekube.kserve.KServeController`) and a stub model server on 127.0.0.1
answering the predictions the backend forwards."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
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
from codespace.deploy.formats import FORMATS
from codespace.deploy.kserve_backend import KServeDeployBackend
from codespace.deploy.models import DEPLOYMENT_NAME, DeploymentSpec
from codespace.kube.config import Profile
from tests.fakekube import FakeKube
from tests.fakekube.kserve import KServeController
from tests.helpers.k8s_schema import assert_strictly_valid

NS = "codespaces"
IMAGE = "registry.example/codespace/repo:env-1234"
ENV = "/opt/codespace/env"
HAMI = {
    "name": "shared-gpu",
    "gpu": {"mode": "hami", "memory": "80Gi", "maxCount": 4},
    "nodeSelector": {"gpu": "h100"},
}


def ctx(mode: str = "RawDeployment", **changes) -> ks.KServeContext:
    base = {
        "namespace": NS,
        "owner": "alice@example.org",
        "image": IMAGE,
        "mode": mode,
        "python": f"{ENV}/bin/python",
        "env": {"VIRTUAL_ENV": ENV, "CODESPACE_DATASETS": "iris=/datasets/iris"},
    }
    return ks.KServeContext(**{**base, **changes})


def objects(spec: dict, context: ks.KServeContext, uri: str) -> tuple[dict | None, dict]:
    deployment = DeploymentSpec.model_validate(spec)
    fmt = FORMATS[deployment.format or "sklearn"]
    runtime = None
    if deployment.protocol == "v2":
        runtime = assert_strictly_valid(ks.serving_runtime(deployment, fmt, context))
    isvc = ks.inference_service(deployment, fmt, context, storage_uri=uri)
    return runtime, assert_strictly_valid(isvc)


def env_of(runtime: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in runtime["spec"]["containers"][0]["env"]}


# -- manifests -------------------------------------------------------------------------------


def test_sklearn_v2_raw_deployment_runs_mlserver_in_the_codespace_image() -> None:
    spec = {"name": "iris", "artifact": "models/iris.joblib", "format": "sklearn"}
    uri = ks.storage_uri(spec["artifact"], workspace_claim="claim-alice", workspace_subpath="repo")
    assert uri == "pvc://claim-alice/repo/models/iris.joblib"
    runtime, isvc = objects(spec, ctx(), uri)
    name = ks.kube_name("alice@example.org", "iris")
    assert isvc["metadata"]["name"] == runtime["metadata"]["name"] == name
    labels = isvc["metadata"]["labels"]
    assert labels["codespace.io/deployment"] == "iris"
    assert labels["app.kubernetes.io/managed-by"] == "codespace"
    assert labels["codespace.io/owner"] != "alice@example.org"  # '@' is not label-safe
    annotations = isvc["metadata"]["annotations"]
    assert annotations["codespace.io/owner"] == "alice@example.org"
    assert annotations["serving.kserve.io/deploymentMode"] == "RawDeployment"
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 1 and predictor["maxReplicas"] == 1
    assert predictor["model"] == {
        "modelFormat": {"name": "sklearn"},
        "protocolVersion": "v2",
        "storageUri": uri,
        "runtime": name,
    }
    warnings = json.loads(annotations["codespace.io/warnings"])
    assert any("kserve#4007" in w for w in warnings)
    container = runtime["spec"]["containers"][0]
    assert container["name"] == "kserve-container" and container["image"] == IMAGE
    assert container["command"][:2] == ["sh", "-c"]
    assert container["command"][-2:] == [f"{ENV}/bin/python", "mlserver, mlserver_sklearn"]
    assert container["args"] == ["-m", "mlserver.cli.main", "start", "/mnt/models"]
    env = env_of(runtime)
    assert env["MLSERVER_MODEL_NAME"] == "iris"
    assert env["MLSERVER_MODEL_IMPLEMENTATION"] == "mlserver_sklearn.SKLearnModel"
    assert env["MLSERVER_MODEL_URI"] == "/mnt/models/iris.joblib"
    assert env["MLSERVER_HTTP_PORT"] == "8080" and env["MLSERVER_PARALLEL_WORKERS"] == "0"
    assert env["VIRTUAL_ENV"] == ENV and "CODESPACE_DATASETS" not in env
    assert runtime["spec"]["supportedModelFormats"] == [{"name": "sklearn", "autoSelect": False}]
    assert runtime["spec"]["protocolVersions"] == ["v2"]


def test_xgboost_from_s3_serverless_scales_to_zero_after_the_idle_time() -> None:
    spec = {
        "name": "boost",
        "artifact": "s3://models/boost/model.ubj",
        "format": "xgboost",
        "idleTimeout": "20m",
        "maxReplicas": 3,
        "resources": {"cpu": 2, "memory": "4Gi"},
    }
    runtime, isvc = objects(spec, ctx("Knative", service_account="s3-reader"), spec["artifact"])
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
    assert annotations["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] == "1200s"
    assert "codespace.io/warnings" not in annotations
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (0, 3)
    assert predictor["serviceAccountName"] == "s3-reader"
    assert predictor["model"]["storageUri"] == "s3://models/boost/model.ubj"
    amounts = {"cpu": "2", "memory": "4Gi"}
    assert predictor["model"]["resources"] == {"requests": amounts, "limits": amounts}
    assert env_of(runtime)["MLSERVER_MODEL_URI"] == "/mnt/models/model.ubj"
    assert env_of(runtime)["MLSERVER_MODEL_IMPLEMENTATION"] == "mlserver_xgboost.XGBoostModel"


def test_mlflow_directory_on_a_dataset_pvc_with_a_gpu_share() -> None:
    spec = {
        "name": "forecast",
        "artifact": "datasets/weather/models/forecast",
        "format": "mlflow",
        "resources": {"gpu": {"fraction": 0.25}, "memory": "8gb"},
    }
    uri = ks.storage_uri(spec["artifact"], workspace_claim=None)
    assert uri == "pvc://weather/models/forecast"
    profiles = (Profile.model_validate(HAMI),)
    runtime, isvc = objects(spec, ctx(profiles=profiles), uri)
    predictor = isvc["spec"]["predictor"]
    limits = predictor["model"]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1" and limits["nvidia.com/gpucores"] == "25"
    assert limits["memory"] == "8000000000"  # docker-style 8gb, as a Kubernetes quantity
    assert predictor["nodeSelector"] == {"gpu": "h100"}
    gpu_env = {e["name"]: e["value"] for e in predictor["model"]["env"]}
    assert gpu_env["CODESPACE_GPU_SHARING"] == "hami"
    assert env_of(runtime)["MLSERVER_MODEL_URI"] == "/mnt/models"  # a directory format


def test_whole_gpus_without_profiles() -> None:
    spec = {"name": "big", "artifact": "pvc://models/big.pkl", "resources": {"gpu": 2}}
    runtime, isvc = objects({**spec, "format": "sklearn"}, ctx(), spec["artifact"])
    assert isvc["spec"]["predictor"]["model"]["resources"] == {"limits": {"nvidia.com/gpu": "2"}}
    assert runtime is not None


def test_protocol_v1_uses_kserve_s_own_sklearn_server() -> None:
    spec = {"name": "iris-v1", "artifact": "datasets/iris/model.pkl", "protocol": "v1"}
    uri = ks.storage_uri(spec["artifact"], workspace_claim=None)
    runtime, isvc = objects({**spec, "format": "sklearn"}, ctx("Serverless"), uri)
    assert runtime is None
    model = isvc["spec"]["predictor"]["model"]
    assert "runtime" not in model and model["protocolVersion"] == "v1"
    name = isvc["metadata"]["name"]
    assert isvc["metadata"]["annotations"]["codespace.io/model-name"] == name
    assert "kserve-sklearnserver" in isvc["metadata"]["annotations"]["codespace.io/warnings"]


def test_huggingface_runtime_gets_its_task() -> None:
    spec = DeploymentSpec(name="sentiment", artifact="models/bert", format="huggingface")
    extra = {"MLSERVER_MODEL_HUGGINGFACE_TASK": "text-classification"}
    runtime = ks.serving_runtime(spec, FORMATS["huggingface"], ctx(), extra_env=extra)
    assert_strictly_valid(runtime)
    assert env_of(runtime)["MLSERVER_MODEL_HUGGINGFACE_TASK"] == "text-classification"
    assert ks.hf_task({"architectures": ["BertForSequenceClassification"]}) == (
        "text-classification"
    )
    assert ks.hf_task({"architectures": ["Mystery"]}) is None


@pytest.mark.parametrize("importable", [True, False])
def test_the_runtime_preamble_says_what_the_environment_lacks(tmp_path, importable) -> None:
    """The container's command as a kubelet runs it, with a stand-in for the environment's
    python (no MLServer here): it starts the server, or says which packages are missing."""
    python = tmp_path / "python"
    check = (
        "exit 0"
        if importable
        else "echo \"ModuleNotFoundError: No module named 'mlserver'\"; exit 1"
    )
    script = f'#!/bin/sh\nif [ "$1" = -c ]; then {check}; fi\necho "serving $*"\n'
    python.write_text(script)
    python.chmod(0o755)
    spec = DeploymentSpec(name="iris", artifact="iris.joblib")
    runtime = ks.serving_runtime(spec, FORMATS["sklearn"], ctx(python=str(python)))
    container = runtime["spec"]["containers"][0]
    done = subprocess.run(
        container["command"] + container["args"],
        env={"PATH": os.environ["PATH"], **env_of(runtime)},
        capture_output=True,
        text=True,
        check=False,
    )
    if importable:
        assert done.returncode == 0
        assert done.stdout == "serving -m mlserver.cli.main start /mnt/models\n"
    else:
        assert done.returncode == 3
        assert "No module named 'mlserver'" in done.stderr
        assert "cannot import mlserver, mlserver_sklearn" in done.stderr
        assert "(mlserver mlserver-sklearn)" in done.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"artifact": "m.onnx", "format": "onnx"}, "MLServer has no runtime"),
        ({"artifact": "m", "format": "mlflow", "protocol": "v1"}, "deploy it with protocol v2"),
        ({"artifact": "m.model", "format": "sklearn", "protocol": "v1"}, "rename the model"),
        ({"artifact": "m.pkl", "format": "sklearn", "resources": {"gpu": 32}}, "resources.gpu"),
        ({"artifact": "m.pkl", "format": "sklearn", "resources": {"memory": "lots"}}, "memory"),
    ],
)
def test_specs_no_runtime_serves_are_refused(spec: dict, message: str) -> None:
    deployment = DeploymentSpec.model_validate({"name": "m", **spec})
    with pytest.raises(ks.KServeSpecError, match=message):
        ks.inference_service(deployment, FORMATS[spec["format"]], ctx(), storage_uri="s3://b/m")


def test_names_are_per_owner_dns_labels_within_the_deployment_limit() -> None:
    longest = "a" * 45
    names = {ks.kube_name(owner, longest) for owner in ("alice", "bob", "carol")}
    assert len(names) == 3
    for name in names | {ks.kube_name("alice", "iris")}:
        assert DEPLOYMENT_NAME.match(name), name
    assert ks.kube_name("alice", "iris") == ks.kube_name("alice", "iris")
    assert ks.kube_name("alice", "iris").startswith("iris-")


def test_storage_uris() -> None:
    claim = {"workspace_claim": "claim-bob", "workspace_subpath": "repo"}
    assert ks.storage_uri("gs://b/m.joblib", **claim) == "gs://b/m.joblib"
    assert ks.storage_uri("pvc://other/m.joblib", **claim) == "pvc://other/m.joblib"
    assert ks.storage_uri("model.joblib", **claim) == "pvc://claim-bob/repo/model.joblib"
    assert ks.storage_uri("datasets/iris", **claim) == "pvc://iris"
    assert ks.storage_uri("datasets/iris/a/m.pkl", **claim) == "pvc://iris/a/m.pkl"
    with pytest.raises(ks.KServeSpecError, match="workspace_claim"):
        ks.storage_uri("model.joblib", workspace_claim=None)


# -- status mapping --------------------------------------------------------------------------


def isvc_with(status: dict, mode: str = "RawDeployment") -> dict:
    return {"metadata": {"annotations": {ks.MODE_ANNOTATION: mode}}, "status": status}


def ready(state: str, reason: str = "", message: str = "", **status) -> dict:
    condition = {"type": "Ready", "status": state, "reason": reason, "message": message}
    return {"conditions": [condition], **status}


LOADING = {
    "transitionStatus": "InProgress",
    "states": {"activeModelState": "Pending", "targetModelState": "Loading"},
}
NO_COPIES = {"transitionStatus": "UpToDate", "copies": {"failedCopies": 0, "totalCopies": 0}}
LOAD_FAILED = {
    "transitionStatus": "BlockedByFailedLoad",
    "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
    "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "bad pickle"},
}
URL, RAW, KNATIVE = "http://m.example", "RawDeployment", "Serverless"
SCALED = "scaled to zero: the next request starts it (a cold start)"


@pytest.mark.parametrize(
    ("status", "mode", "state", "reason"),
    [
        ({}, RAW, "creating", "waiting for the KServe controller"),
        (ready("Unknown", "RevisionMissing", "w"), "Knative", "creating", "RevisionMissing: w"),
        (ready("Unknown", modelStatus=LOADING), RAW, "loading", "loading the model"),
        (ready("False", "Deploying", "up"), "Standard", "loading", "Deploying: up"),
        (ready("True", url=URL), RAW, "ready", ""),
        (ready("True", url=URL, modelStatus=NO_COPIES), RAW, "ready", ""),
        (ready("True", url=URL, modelStatus=NO_COPIES), KNATIVE, "idle", SCALED),
        (ready("True"), RAW, "loading", "ready, waiting for its URL"),
        (ready("False", "RevisionFailed", "it died"), KNATIVE, "failed", "RevisionFailed: it died"),
        (ready("False", "Stopped"), KNATIVE, "failed", "stopped (serving.kserve.io/stop)"),
        (ready("Unknown", modelStatus=LOAD_FAILED), RAW, "failed", "ModelLoadFailed: bad pickle"),
    ],
)  # fmt: skip
def test_status_mapping(status: dict, mode: str, state: str, reason: str) -> None:
    assert ks.deployment_state(isvc_with(status, mode)) == (state, reason)


# -- against the fake API server -------------------------------------------------------------


@pytest.fixture
def kube():
    with FakeKube() as fake:
        fake.create(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "claim-alice", "namespace": NS},
                "spec": {"accessModes": ["ReadWriteOnce"]},
            },
            "persistentvolumeclaims",
        )
        fake.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "jupyter-alice",
                    "namespace": NS,
                    "labels": {
                        "component": "singleuser-server",
                        "hub.jupyter.org/username": "alice",
                    },
                },
                "spec": {"schedulerName": "not-here", "containers": [{"name": "notebook"}]},
            },
            "pods",
        )
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
