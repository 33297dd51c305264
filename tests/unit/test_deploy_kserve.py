"""The KServe deploy backend's InferenceService / ServingRuntime manifests against the real
CRDs (../shared/crds/serving.kserve.io) and its status mapping (the backend against the fake
Kubernetes API: test_deploy_kserve_backend.py)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from codespace.deploy import kserve as ks
from codespace.deploy.formats import FORMATS
from codespace.deploy.models import DEPLOYMENT_NAME, DeploymentSpec
from codespace.kube.config import Profile
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
