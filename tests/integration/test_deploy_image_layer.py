"""The serving layer a codespace image gets, and the KServe runtime's command run on it.

No image can be built here, so the builder's own steps run on this machine: an environment
made as the image makes ``/opt/codespace/env`` (a uv venv with the repository's scikit-learn),
then the image's ``RUN`` of :mod:`codespace.deploy.image_layer`, then the exact command and
environment of the ``ServingRuntime`` container (:func:`codespace.deploy.kserve.serving_runtime`)
with the layer's Python, against a model trained in that environment: it answers V2 infer.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from codespace.deploy import kserve
from codespace.deploy.formats import FORMATS
from codespace.deploy.image_layer import build, layer_requirements
from codespace.deploy.models import DeploymentSpec
from codespace.local.envbuild.uv import find_uv
from tests.helpers.hub import free_port

pytestmark = pytest.mark.integration

TRAIN = (
    "import joblib; from sklearn.linear_model import LogisticRegression; "
    "joblib.dump(LogisticRegression().fit([[0, 0], [1, 1], [0.1, 0.2], [0.9, 0.8]], "
    "[0, 1, 0, 1]), 'model.joblib')"
)


def test_no_layer_for_an_environment_without_a_model_library() -> None:
    assert layer_requirements({"numpy": "2.0.0", "requests": "2.32.0"}) == []
    wanted = layer_requirements({"scikit_learn": "1.5.0", "XGBoost": "2.1.0"})
    assert [r.split(">=")[0] for r in wanted] == [
        "mlserver",
        "mlserver-sklearn",
        "mlserver-xgboost",
    ]


def test_the_runtime_command_serves_a_model_from_the_images_serving_layer(tmp_path: Path) -> None:
    uv = find_uv()
    env, target = tmp_path / "env", tmp_path / "serving"
    subprocess.run([uv, "venv", "--quiet", str(env)], check=True)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(env / "bin/python"), "scikit-learn"],
        check=True,
    )
    models = tmp_path / "mnt" / "models"
    models.mkdir(parents=True)
    subprocess.run([str(env / "bin/python"), "-c", TRAIN], cwd=models, check=True)

    said = build(env, target, uv)
    assert said.startswith("serving layer: mlserver"), said
    version = subprocess.run(
        [str(env / "bin/python"), "-c", "import sklearn; print(sklearn.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    layer = subprocess.run(
        [str(target / "bin/python"), "-c", "import mlserver, sklearn; print(sklearn.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert layer == version  # the notebook's scikit-learn, not the one MLServer would pick

    spec = DeploymentSpec(name="iris", artifact="model.joblib")
    ctx = kserve.KServeContext(
        namespace="ns", owner="ada", image="codespace:1", python=str(env / "bin/python")
    )
    container = kserve.serving_runtime(spec, FORMATS["sklearn"], ctx)["spec"]["containers"][0]
    variables = {item["name"]: item["value"] for item in container["env"]}
    port = free_port()
    variables.update(
        CODESPACE_SERVING_PYTHON=str(target / "bin/python"),
        MLSERVER_MODEL_URI=str(models / "model.joblib"),
        MLSERVER_HTTP_PORT=str(port),
        MLSERVER_GRPC_PORT=str(free_port()),
        MLSERVER_HOST="127.0.0.1",
        MLSERVER_METRICS_ENDPOINT="",
        PATH=os.environ["PATH"],
    )
    args = [a if a != kserve.MODEL_DIR else str(models) for a in container["args"]]
    server = subprocess.Popen([*container["command"], *args], env=variables, cwd=tmp_path)
    try:
        body = {
            "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [0, 0, 1, 1]}]
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v2/models/iris/infer",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "the model server exited"
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    assert json.load(answer)["outputs"][0]["data"] == [0, 1]
                    break
            except OSError:
                assert time.monotonic() < deadline, "no answer from the model server"
                time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(30)
