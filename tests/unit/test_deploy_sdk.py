"""The kernel-side deploy SDK, the ``codespace deploy`` CLI and the DeployButton widget
against a running jupyter_server with the codespace extension (pytest-jupyter) over the
test-only in-memory deploy backend (tests/helpers/deploy_backend.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from codespace.client import ApiError
from codespace.deploy import models, records
from codespace.deploy.sdk import request_body, response_outputs
from tests.helpers.deploy_backend import IMPORT, MemoryDeployBackend

pytest_plugins = ["pytest_jupyter.jupyter_server"]

PY = sys.executable


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "state_dir": str(tmp_path / "state"),
            "deploy_backends": {"memory": IMPORT, "slow": IMPORT},
            "default_deploy_backend": "memory",
            "deploy_backend_options": {
                "memory": {"space": "memory", "ready_after": 0.2},
                "slow": {"space": "slow", "ready_after": 3600},
            },
        },
    }


@pytest.fixture(autouse=True)
def empty_store():
    MemoryDeployBackend.reset()
    yield
    MemoryDeployBackend.reset()


@pytest.fixture
def server(jp_fetch, jp_serverapp, jp_http_port, jp_base_url, jp_root_dir, monkeypatch) -> dict:
    """What a kernel of this server sees (its URL and token), and a model file."""
    (jp_root_dir / "iris.joblib").write_bytes(pickle.dumps({"coef": [1, 1]}, protocol=4))
    (jp_root_dir / "crash.pkl").write_bytes(pickle.dumps([], protocol=4))
    (jp_root_dir / "bad.joblib").write_bytes(b"not a pickle")
    env = {
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
        "JUPYTERHUB_API_TOKEN": jp_serverapp.identity_provider.token,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def received(name: str) -> list:
    """The request bodies the deployment's model server got."""
    [entry] = [e for e in MemoryDeployBackend.store.values() if e.record.name == name]
    return [body for _, body in entry.requests]


class Array:
    """Something numpy-like: ``tolist()`` gives the nested lists."""

    def __init__(self, rows):
        self.rows = rows

    def tolist(self):
        return self.rows


# --- the SDK -----------------------------------------------------------------------------------


def test_the_sdk_deploys_waits_and_predicts(server, in_thread) -> None:
    from codespace import deploy

    endpoint = in_thread(deploy.deploy, "iris.joblib")
    assert endpoint.name == "iris" and endpoint.record.state == "ready"
    assert endpoint.url.endswith("/iris/") and endpoint.protocol == "v2"
    assert isinstance(endpoint.record, records.DeploymentRecord) and endpoint.record.serving
    assert endpoint.record.spec.format == "sklearn" and endpoint.record.spec.backend == "memory"
    assert repr(endpoint).startswith("Deployment(name='iris', state='ready', url=")

    assert in_thread(endpoint.predict, [[1, 2], [3, 4]]) == [3, 7]
    assert received("iris")[-1] == {
        "inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "INT64", "data": [1, 2, 3, 4]}]
    }
    assert in_thread(endpoint.predict, Array([[0.5, 1.5]])) == [2.0]
    assert received("iris")[-1]["inputs"][0]["datatype"] == "FP64"
    raw = in_thread(endpoint.predict_raw, request_body([[1, 1]]))
    assert raw["outputs"][0] == {
        "name": "predict",
        "shape": [1, 1],
        "datatype": "FP64",
        "data": [2],
    }
    with pytest.raises(ApiError, match=r"^400: expected one input tensor$"):  # the model's error
        in_thread(endpoint.predict_raw, {"inputs": []})

    signature = in_thread(endpoint.signature)
    assert signature.inputs[0]["shape"] == [-1, 2]
    assert in_thread(endpoint.predict_raw, signature.example)["outputs"][0]["data"] == [3]
    assert in_thread(endpoint.logs, 1) == "request 5\n"
    token = in_thread(endpoint.share, "for Ana", 3600)
    assert token.deployment == "iris" and token.expires and token.token not in repr(token)

    v1 = in_thread(deploy.deploy, "iris.joblib", "iris-v1", protocol="v1", idle_timeout="5m")
    assert v1.record.spec.idleTimeout == 300
    assert in_thread(v1.predict, [[1, 2]]) == [3]
    assert received("iris-v1")[-1] == {"instances": [[1, 2]]}

    assert [d.name for d in in_thread(deploy.list)] == ["iris-v1", "iris"]
    assert in_thread(deploy.get, "iris").record.state == "ready"
    in_thread(deploy.delete, "iris-v1")
    in_thread(endpoint.delete)
    with pytest.raises(ApiError, match=r"^404: no deployment 'iris'$"):
        in_thread(deploy.get, "iris")


def test_the_sdk_reports_failures(server, in_thread) -> None:
    from codespace import deploy

    with pytest.raises(deploy.DeploymentFailed, match="'crash' failed: the model server exited"):
        in_thread(deploy.deploy, "crash.pkl")
    with pytest.raises(ApiError, match=r"^400: bad\.joblib is not a joblib or pickle file"):
        in_thread(deploy.deploy, "bad.joblib")
    with pytest.raises(ApiError, match=r"^400: name: deployment name 'Iris'"):
        in_thread(deploy.deploy, "iris.joblib", "Iris")
    slow = in_thread(deploy.deploy, "iris.joblib", backend="slow", wait=False)
    assert slow.record.state == "creating" and slow.record.backend == "slow"
    with pytest.raises(TimeoutError, match=r"'iris' is still creating after 0\.1s"):
        in_thread(slow.wait, timeout=0.1, poll=0.02)
    with pytest.raises(ApiError, match=r"^409: a deployment named 'iris' exists already"):
        in_thread(deploy.deploy, "iris.joblib")
    with pytest.raises(TypeError, match="artifact is a path"):
        deploy.deploy(None)


def test_requests_are_built_for_the_protocol() -> None:
    def tensor(data):
        [one] = request_body(data)["inputs"]
        return one["shape"], one["datatype"], one["data"]

    assert tensor([[1, 2, 3]]) == ([1, 3], "INT64", [1, 2, 3])
    assert tensor([1.5, 2]) == ([2], "FP64", [1.5, 2])
    assert tensor([[[1], [2]], [[3], [4]]]) == ([2, 2, 1], "INT64", [1, 2, 3, 4])
    assert tensor((True, False)) == ([2], "BOOL", [True, False])
    assert tensor([["a b"], ["c"]]) == ([2, 1], "BYTES", ["a b", "c"])
    assert tensor(7) == ([1], "INT64", [7])
    assert tensor([]) == ([0], "FP64", [])
    assert tensor(Array([[1.0, 2.0]])) == ([1, 2], "FP64", [1.0, 2.0])
    with pytest.raises(ValueError, match="ragged"):
        request_body([[1, 2], [3]])
    with pytest.raises(TypeError, match="not a mix"):
        request_body([1, "a"])
    assert request_body([[1, 2]], "v1") == {"instances": [[1, 2]]}
    assert request_body(Array([[1]]), "v1") == {"instances": [[1]]}
    full = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    assert request_body(full) == full and request_body({"instances": [1]}) == {"instances": [1]}
    with pytest.raises(TypeError, match="request body"):
        request_body({"sepal": 1})


def test_answers_are_read_for_the_protocol() -> None:
    def out(name, shape, data):
        return {"name": name, "shape": shape, "datatype": "FP64", "data": data}

    assert response_outputs({"outputs": [out("p", [2, 1], [0, 1])]}) == [0, 1]  # sklearn's
    assert response_outputs({"outputs": [out("p", [2], [0, 1])]}) == [0, 1]
    proba = out("p", [2, 3], [0.1, 0.2, 0.7, 0.3, 0.3, 0.4])
    assert response_outputs({"outputs": [proba]}) == [[0.1, 0.2, 0.7], [0.3, 0.3, 0.4]]
    two = {"outputs": [out("a", [1], [1]), out("b", [1, 2], [[1, 2]])]}
    assert response_outputs(two) == {"a": [1], "b": [[1, 2]]}
    assert response_outputs({"predictions": [1, 0]}, "v1") == [1, 0]
    assert response_outputs({"predictions": [1]}) == [1]
    assert response_outputs({"something": "else"}) == {"something": "else"}


# --- the CLI -----------------------------------------------------------------------------------


def test_the_cli(server, in_thread, capsys, jp_root_dir) -> None:
    from codespace.cli import main

    assert in_thread(main, ["deploy", "create", "iris.joblib", "--poll", "0.05"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("iris  ready  http://") and "v2 requests: POST http://" in out
    argv = ["deploy", "create", "iris.joblib", "--name", "v1", "--protocol", "v1", "--json"]
    assert in_thread(main, [*argv, "--idle-timeout", "15m", "--min-replicas", "0"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["state"] == "ready" and made["protocol"] == "v1"
    assert made["spec"]["idleTimeout"] == 900 and made["spec"]["minReplicas"] == 0

    assert in_thread(main, ["deploy", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "STATE", "FORMAT", "PROTOCOL", "BACKEND", "URL"]
    assert table[1].split()[:5] == ["v1", "ready", "sklearn", "v1", "memory"]
    assert in_thread(main, ["deploy", "list", "--json"]) == 0
    assert [d["name"] for d in json.loads(capsys.readouterr().out)] == ["v1", "iris"]
    assert in_thread(main, ["deploy", "show", "iris"]) == 0
    shown = capsys.readouterr().out
    assert "state:         ready" in shown and "infer:" in shown and '"artifact":' in shown
    assert in_thread(main, ["deploy", "show", "iris", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "sklearn"

    assert in_thread(main, ["deploy", "predict", "iris", "--data", "[[1, 2], [3, 4.5]]"]) == 0
    assert capsys.readouterr().out == "[3, 7.5]\n"
    assert received("iris")[-1]["inputs"][0]["datatype"] == "FP64"
    assert in_thread(main, ["deploy", "predict", "v1", "--data", "[[1, 2]]", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"predictions": [3]}
    (jp_root_dir / "request.json").write_text(json.dumps({"instances": [[5, 5]]}))
    request_file = str(jp_root_dir / "request.json")
    assert in_thread(main, ["deploy", "predict", "v1", "--file", request_file]) == 0
    assert capsys.readouterr().out == "[10]\n"

    assert in_thread(main, ["deploy", "logs", "iris", "--tail", "1"]) == 0
    assert capsys.readouterr().out == "request 1\n"
    assert in_thread(main, ["deploy", "logs", "iris", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"].startswith("serving iris.joblib\n")
    argv = ["deploy", "token", "iris", "--note", "demo", "--expires-in", "3600"]
    assert in_thread(main, argv) == 0
    captured = capsys.readouterr()
    assert len(captured.out.strip()) == 16 and "for iris only; expires" in captured.err
    assert in_thread(main, ["deploy", "token", "iris", "--expires-in", "7d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["expires"]

    assert in_thread(main, ["deploy", "delete", "v1"]) == 0
    assert capsys.readouterr().out == "deleted v1\n"
    assert in_thread(main, ["deploy", "delete", "iris", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "iris", "deleted": True}


def test_the_cli_reports_errors_with_exit_code_1(server, in_thread, capsys) -> None:
    from codespace.cli import main

    def fails(*argv: str) -> str:
        assert in_thread(main, ["deploy", *argv]) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith("codespace deploy: "), captured
        return captured.err

    assert (
        in_thread(main, ["deploy", "create", "iris.joblib", "--name", "ok", "--poll", "0.05"]) == 0
    )
    capsys.readouterr()
    assert fails("show", "nope") == "codespace deploy: 404: no deployment 'nope'\n"
    assert "bad.joblib is not a joblib or pickle file" in fails("create", "bad.joblib")
    assert "configured: memory, slow" in fails("create", "iris.joblib", "--backend", "kserve")
    assert "'crash' failed" in fails("create", "crash.pkl", "--poll", "0.05")
    assert "is still creating after 0.2s" in fails(
        "create", "iris.joblib", "--backend", "slow", "--timeout", "0.2", "--poll", "0.05"
    )
    assert "not JSON" in fails("predict", "iris", "--data", "[[1,")
    assert "400: expected one input tensor" in fails("predict", "ok", "--data", '{"inputs": 1}')
    assert "503: the model is creating" in fails("predict", "iris", "--data", "[[1]]")
    assert "No such file" in fails("predict", "ok", "--file", "/nonexistent/request.json")
    assert "404" in fails("logs", "nope")
    assert "expiresIn" in fails("token", "ok", "--expires-in", "soon")
    assert "404" in fails("delete", "nope")
    assert in_thread(main, ["deploy", "create", "crash.pkl", "--name", "c2", "--no-wait"]) == 0
    assert capsys.readouterr().out.startswith("c2  creating")


# --- the widget --------------------------------------------------------------------------------


def test_the_deploy_button_deploys_and_sends_a_test_request(server, in_thread) -> None:
    from codespace.widgets import DeployButton

    button = DeployButton("iris.joblib", poll=0.05)
    assert button.button.description == "Deploy iris.joblib"
    assert button.test_button.layout.display == "none" and not button.state.value
    made = in_thread(button.deploy)
    assert made["name"] == "iris" and button.button.disabled
    in_thread(button.wait, 10)
    assert "ready" in button.state.value and button.record["state"] == "ready"
    assert "/iris/v2/models/iris/infer" in button.url.value
    assert button.test_button.layout.display is None
    answer = in_thread(button.test)
    assert answer["outputs"][0]["data"] == [3]
    assert "<b>answer</b>" in button.result.value and "predict" in button.result.value

    again = DeployButton("iris.joblib", poll=0.05)
    assert in_thread(again.deploy) is None and not again.button.disabled
    assert "409" in again.message.value and "exists already" in again.message.value

    crash = DeployButton("crash.pkl", "crashing", poll=0.05, protocol="v1")
    assert crash.spec == {"artifact": "crash.pkl", "name": "crashing", "protocol": "v1"}
    in_thread(crash.deploy)
    in_thread(crash.wait, 10)
    assert "failed" in crash.state.value and "the model server exited" in crash.state.value
    assert not crash.button.disabled and crash.test_button.layout.display == "none"


# --- the kernel side needs no server packages -------------------------------------------------

# Runs in a fresh interpreter: block the server-only packages, then do what a notebook does.
KERNEL_SCRIPT = """
import json, sys

BLOCKED = {"pydantic", "pydantic_core", "yaml", "jupyter_server", "tornado"}

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError("%s is not in this repository environment" % name)

sys.meta_path.insert(0, Block())
from codespace import deploy
from codespace.widgets import DeployButton

endpoint = deploy.deploy("iris.joblib", name="kernel", protocol="v1")
print(json.dumps({
    "state": endpoint.record.state,
    "predicted": endpoint.predict([[2, 3]]),
    "listed": [d.name for d in deploy.list()],
    "record": repr(endpoint.record)[:17],
    "loaded": sorted({m.partition(".")[0] for m in sys.modules} & BLOCKED),
}))
"""


def test_the_sdk_needs_no_pydantic(server, jp_asyncio_loop) -> None:
    command = [PY, "-c", KERNEL_SCRIPT]
    kernel = asyncio.to_thread(
        subprocess.run, command, env={**os.environ, **server}, capture_output=True, text=True
    )
    done = jp_asyncio_loop.run_until_complete(kernel)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "state": "ready",
        "predicted": [5],
        "listed": ["kernel"],
        "record": "DeploymentRecord(",
        "loaded": [],
    }


# --- the records -------------------------------------------------------------------------------

RECORDS = {
    records.DeploymentRecord: models.DeploymentRecord,
    records.DeploymentSpec: models.DeploymentSpec,
    records.DeployResources: models.DeployResources,
    records.Endpoint: models.Endpoint,
    records.ShareToken: models.ShareToken,
    records.Signature: models.Signature,
}


@pytest.mark.parametrize("record", list(RECORDS), ids=lambda record: record.__name__)
def test_records_have_the_server_models_fields(record: type) -> None:
    """A field added to a server model must reach notebooks too."""
    assert {field.name for field in dataclasses.fields(record)} == set(RECORDS[record].model_fields)


def test_records_read_the_json_the_server_writes() -> None:
    spec = models.DeploymentSpec(
        name="iris", artifact="iris.joblib", format="sklearn", resources={"gpu": 1, "cpu": 2}
    )
    served = models.DeploymentRecord(
        name="iris",
        owner="alice",
        backend="local",
        state="ready",
        format="sklearn",
        created="2024-01-01T00:00:00Z",
        endpoint=models.endpoint("https://hub/services/deploy/alice/iris", "iris", "v2"),
        warnings=["no GPU here"],
        spec=spec,
    )
    data = served.model_dump(mode="json")
    record = records.DeploymentRecord.from_json({**data, "addedLater": 1})
    assert record.spec.resources.gpu["count"] == 1 and record.spec.resources.cpu == 2
    assert record.url == "https://hub/services/deploy/alice/iris/" and record.serving
    assert record.endpoint.infer.endswith("/iris/v2/models/iris/infer")
    assert record.warnings == ("no GPU here",) and not record.failed
    assert record.to_json() == data
    assert hash(record) == hash(records.DeploymentRecord.from_json(data))
    signature = models.Signature(inputs=[{"name": "x", "shape": [-1, 4]}], example={"a": 1})
    plain = records.Signature.from_json(signature.model_dump(mode="json"))
    assert plain.to_json() == signature.model_dump(mode="json") and hash(plain) is not None
