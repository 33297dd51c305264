"""The REST API under /codespace/api/deployments, served by a real jupyter_server
(pytest-jupyter) with the codespace extension over a test-only in-memory deploy backend
(tests/helpers/deploy_backend.py); and the pure parts of the deploy service."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from codespace.deploy.backend import (
    BackendUnavailable,
    DeployError,
    DeploymentNotFound,
    DeploySettings,
)
from codespace.deploy.formats import FORMATS, supported
from codespace.deploy.models import DeploymentRecord, DeploymentSpec, ShareToken, Signature
from codespace.deploy.service import DeployService, parse_spec
from tests.helpers.deploy_backend import IMPORT, MemoryDeployBackend

pytest_plugins = ["pytest_jupyter.jupyter_server"]

PY = sys.executable


def options(space: str, ready_after: float = 0.2) -> dict:
    return {"space": space, "ready_after": ready_after}


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "state_dir": str(tmp_path / "state"),
            "deploy_backends": {"memory": IMPORT, "second": IMPORT},
            "default_deploy_backend": "memory",
            "deploy_backend_options": {
                "memory": options("memory"),
                "second": options("second"),
            },
        },
    }


@pytest.fixture(autouse=True)
def empty_store():
    MemoryDeployBackend.reset()
    yield
    MemoryDeployBackend.reset()


def write_models(root: Path) -> None:
    """Real model files: a scikit-learn-style pickle (what joblib and pickle write), a corrupt
    .joblib, an XGBoost JSON model, an ONNX file and an MLflow directory."""
    (root / "models").mkdir(exist_ok=True)
    (root / "models" / "iris.joblib").write_bytes(pickle.dumps({"coef": [0.5, 1.5]}, protocol=4))
    (root / "models" / "bad.joblib").write_bytes(b"this is not a pickle")
    (root / "booster.json").write_text(json.dumps({"learner": {}, "version": [2, 0, 0]}))
    (root / "net.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    (root / "notes.txt").write_text("not a model\n")
    (root / "mlflow-model").mkdir(exist_ok=True)
    (root / "mlflow-model" / "MLmodel").write_text("flavors: {}\n")


async def call(jp_fetch, *parts, **kwargs):
    response = await jp_fetch("codespace", "api", "deployments", *parts, **kwargs)
    return response.code, (json.loads(response.body) if response.body else None)


async def refused(jp_fetch, code: int, *parts, **kwargs) -> dict:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("codespace", "api", "deployments", *parts, **kwargs)
    assert info.value.code == code, info.value.response.body
    return json.loads(info.value.response.body)


async def message(jp_fetch, code: int, *parts, **kwargs) -> str:
    return (await refused(jp_fetch, code, *parts, **kwargs))["message"]


async def post(jp_fetch, *parts, body: object, **kwargs):
    return await call(jp_fetch, *parts, method="POST", body=json.dumps(body), **kwargs)


async def serving(jp_fetch, name: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, record = await call(jp_fetch, name)
        if record["state"] not in ("creating", "loading"):
            return record
        assert time.monotonic() < deadline, record
        await asyncio.sleep(0.05)


# --- the REST API ------------------------------------------------------------------------------


def test_create_list_get_logs_share_delete(jp_fetch, run, extension, jp_root_dir) -> None:
    assert extension.deployments._built == {}  # no backend built before the first request
    write_models(jp_root_dir)
    run(_lifecycle(jp_fetch))
    assert set(extension.deployments._built) == {"memory", "second"}


async def _lifecycle(jp_fetch) -> None:
    code, body = await call(jp_fetch)
    assert code == 200 and body == {
        "backends": [{"name": "memory", "default": True}, {"name": "second", "default": False}],
        "deployments": [],
    }
    code, made = await post(jp_fetch, body={"artifact": "models/iris.joblib"})
    assert code == 201
    assert set(made) == set(DeploymentRecord.model_fields)  # the record's camelCase names
    assert made["name"] == "iris" and made["format"] == "sklearn"  # named and detected
    assert made["backend"] == "memory" and made["spec"]["backend"] == "memory"
    assert made["state"] == "creating" and made["spec"]["format"] == "sklearn"
    assert made["spec"]["idleTimeout"] == 900 and made["spec"]["minReplicas"] == 0
    assert made["endpoint"]["infer"].endswith("/iris/v2/models/iris/infer")

    again = {"artifact": "models/iris.joblib"}
    assert "exists" in await message(jp_fetch, 409, method="POST", body=json.dumps(again))
    elsewhere = {"artifact": "models/iris.joblib", "backend": "second"}
    text = await message(jp_fetch, 409, method="POST", body=json.dumps(elsewhere))
    assert text == "a deployment named 'iris' exists already (backend 'memory')"

    ready = await serving(jp_fetch, "iris")
    assert ready["state"] == "ready" and ready["reason"] == ""
    code, other = await post(
        jp_fetch,
        body={"artifact": "models/iris.joblib", "name": "iris-v1", "protocol": "v1",
              "backend": "second", "format": "sklearn", "idleTimeout": "1m"},
    )  # fmt: skip
    assert code == 201 and other["backend"] == "second" and other["spec"]["idleTimeout"] == 60
    assert other["endpoint"]["infer"].endswith("/v1/models/iris-v1:predict")
    _, body = await call(jp_fetch)
    assert [d["name"] for d in body["deployments"]] == ["iris-v1", "iris"]  # newest first

    _, logs = await call(jp_fetch, "iris", "logs")
    assert logs == {"text": "serving models/iris.joblib\n"}
    _, logs = await call(jp_fetch, "iris", "logs", params={"tail": 0})
    assert logs == {"text": ""}
    assert "tail" in await message(jp_fetch, 400, "iris", "logs", params={"tail": "x"})
    assert "tail" in await message(jp_fetch, 400, "iris", "logs", params={"tail": "-1"})

    _, signature = await call(jp_fetch, "iris", "signature")
    assert set(signature) == set(Signature.model_fields) and signature["example"]["inputs"]

    code, token = await post(jp_fetch, "iris", "tokens", body={"note": "for Ana", "expiresIn": 60})
    assert code == 201 and set(token) == set(ShareToken.model_fields)
    assert token["deployment"] == "iris" and token["note"] == "for Ana" and token["expires"]
    _, forever = await post(jp_fetch, "iris", "tokens", body={"expiresIn": None})
    assert forever["expires"] is None and forever["note"] == ""
    _, daily = await post(jp_fetch, "iris", "tokens", body={"expiresIn": "1d"})
    assert daily["expires"]
    for bad in ({"expiresIn": 0}, {"expiresIn": "soon"}, {"expiresIn": True}, {"note": 3}):
        assert await message(jp_fetch, 400, "iris", "tokens", method="POST", body=json.dumps(bad))

    code, gone = await call(jp_fetch, "iris", method="DELETE")
    assert code == 204 and gone is None
    assert await message(jp_fetch, 404, "iris") == "no deployment 'iris'"
    await refused(jp_fetch, 404, "iris", method="DELETE")
    _, body = await call(jp_fetch)
    assert [d["name"] for d in body["deployments"]] == ["iris-v1"]


def test_predict_passes_the_model_servers_answer_through(jp_fetch, run, jp_root_dir) -> None:
    write_models(jp_root_dir)
    run(_predict(jp_fetch))
    [entry] = [e for e in MemoryDeployBackend.store.values() if e.record.name == "iris"]
    assert entry.requests[0] == ("", V2)  # the body reached the model server as it was sent
    assert entry.requests[-1][0] == "v2/models/iris/ready"


V2 = {"inputs": [{"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}]}


async def _predict(jp_fetch) -> None:
    await post(jp_fetch, body={"artifact": "models/iris.joblib"})
    # not ready yet: the model server's own 503 comes back (not an error of the API)
    early = await refused(jp_fetch, 503, "iris", "predict", method="POST", body=json.dumps(V2))
    assert early == {"error": "the model is creating"}
    await serving(jp_fetch, "iris")
    code, answer = await post(jp_fetch, "iris", "predict", body=V2)
    assert code == 200 and answer["outputs"][0]["data"] == [3, 7]
    bad = await refused(jp_fetch, 400, "iris", "predict", method="POST", body=json.dumps({"x": 1}))
    assert bad == {"error": "expected one input tensor"}  # the model server's answer, as it is
    path = "/v2/models/iris/ready"
    code, answer = await post(jp_fetch, "iris", "predict", params={"path": path}, body={})
    assert code == 200 and answer == {"path": "v2/models/iris/ready"}
    text = await message(
        jp_fetch, 400, "iris", "predict", method="POST", body="{}", params={"path": "../x"}
    )
    assert text == "path '../x' is not a path under the deployment's URL"
    await refused(jp_fetch, 404, "nope", "predict", method="POST", body="{}")

    await post(jp_fetch, body={"artifact": "models/iris.joblib", "name": "v1", "protocol": "v1"})
    await serving(jp_fetch, "v1")
    _, answer = await post(jp_fetch, "v1", "predict", body={"instances": [[1, 2], [3, 4]]})
    assert answer == {"predictions": [3, 7]}


def test_bad_specs_and_models_are_refused_naming_the_field_or_file(
    jp_fetch, run, extension, jp_root_dir
) -> None:
    write_models(jp_root_dir)
    run(_bad_specs(jp_fetch))
    records, _ = run(extension.deployments.list())
    assert [r.name for r in records] == ["weights"]  # only the one good request made one


BAD_SPECS = [
    ({"artifact": "models/iris.joblib", "name": "Bad_Name"}, "name: deployment name 'Bad_Name'"),
    ({"artifact": "../iris.joblib"}, "artifact: artifact '../iris.joblib' is not a path inside"),
    ({"artifact": "/etc/passwd"}, "artifact: artifact '/etc/passwd' is not a path inside"),
    ({"name": "x"}, "artifact: Field required"),
    ({"artifact": "models/iris.joblib", "resources": {"cpu": -1}}, "resources.cpu: "),
    ({"artifact": "models/iris.joblib", "protocol": "v3"}, "protocol: Input should be 'v1'"),
    ({"artifact": "models/iris.joblib", "idleTimeout": "soon"}, "idleTimeout: time limit 'soon'"),
    ({"artifact": "models/iris.joblib", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"artifact": "models/iris.joblib", "minReplicas": 2}, "maxReplicas must be at least"),
    (
        {"artifact": "models/iris.joblib", "backend": "kserve"},
        "backend 'kserve' is not configured here (configured: memory, second)",
    ),
    ({"artifact": "missing.joblib"}, "missing.joblib: no such file or directory"),
    (
        {"artifact": "models/bad.joblib"},
        "models/bad.joblib is not a joblib or pickle file (corrupt or truncated)",
    ),
    (
        {"artifact": "notes.txt"},
        f"notes.txt: not a model this platform can serve; supported: {supported()}",
    ),
    (
        {"artifact": "models/iris.joblib", "format": "onnx"},
        "models/iris.joblib is a scikit-learn (joblib or pickle) model, not onnx",
    ),
    ({"artifact": "models/iris.joblib", "format": "pytorch"}, "format 'pytorch' is not supported"),
    ({"artifact": "s3://bucket/model"}, "the format of s3://bucket/model cannot be told"),
    ({"artifact": "s3://bucket/m.pt", "format": "torch"}, "format 'torch' is not supported"),
]


async def _bad_specs(jp_fetch) -> None:
    for spec, start in BAD_SPECS:
        text = await message(jp_fetch, 400, method="POST", body=json.dumps(spec))
        assert text.startswith(start), (spec, text)
    assert "not JSON" in await message(jp_fetch, 400, method="POST", body="{nope")
    assert "JSON object" in await message(jp_fetch, 400, method="POST", body="[1]")
    # a URI is not read here: its format is the declared one, or the one its suffix names
    code, made = await post(jp_fetch, body={"artifact": "s3://bucket/models/weights.ubj"})
    assert code == 201 and made["name"] == "weights" and made["format"] == "xgboost"


def test_detect_reads_the_file(jp_fetch, run, jp_root_dir) -> None:
    write_models(jp_root_dir)
    run(_detect(jp_fetch))


async def _detect(jp_fetch) -> None:
    _, found = await call(jp_fetch, "_detect", params={"path": "models/iris.joblib"})
    assert found == {
        "path": "models/iris.joblib",
        "format": "sklearn",
        "description": FORMATS["sklearn"].description,
        "name": "iris",
        "protocols": ["v2", "v1"],
    }
    _, found = await call(jp_fetch, "_detect", params={"path": "booster.json"})
    assert found["format"] == "xgboost" and found["protocols"] == ["v2", "v1"]
    _, found = await call(jp_fetch, "_detect", params={"path": "net.onnx"})
    assert found["format"] == "onnx" and found["protocols"] == ["v2"]
    _, found = await call(jp_fetch, "_detect", params={"path": "mlflow-model"})
    assert found["format"] == "mlflow" and found["name"] == "mlflow-model"
    for path, text in (
        ("models/bad.joblib", "models/bad.joblib is not a joblib or pickle file"),
        ("notes.txt", "notes.txt: not a model this platform can serve; supported: "),
        ("nothing.pkl", "nothing.pkl: no such file or directory"),
        ("../outside.pkl", "'../outside.pkl' is not a path inside the workspace"),
        ("", "give the path of a model file or directory"),
    ):
        assert (await message(jp_fetch, 400, "_detect", params={"path": path})).startswith(text)


def test_another_users_deployment_is_404(jp_fetch, run, extension, jp_root_dir) -> None:
    """The same store holds another owner's deployment: this server never shows it."""
    write_models(jp_root_dir)
    settings = extension.deploy_settings("memory")
    theirs = MemoryDeployBackend(
        DeploySettings(workspace=jp_root_dir, owner="someone-else", options=options("memory"))
    )
    spec = DeploymentSpec(name="theirs", artifact="models/iris.joblib", format="sklearn")
    run(theirs.create(spec))
    assert settings.owner != "someone-else"
    run(_not_found(jp_fetch))


async def _not_found(jp_fetch) -> None:
    assert await message(jp_fetch, 404, "theirs") == "no deployment 'theirs'"
    await refused(jp_fetch, 404, "theirs", "logs")
    await refused(jp_fetch, 404, "theirs", "signature")
    await refused(jp_fetch, 404, "theirs", "predict", method="POST", body="{}")
    await refused(jp_fetch, 404, "theirs", "tokens", method="POST", body="{}")
    await refused(jp_fetch, 404, "theirs", method="DELETE")
    _, body = await call(jp_fetch)
    assert body["deployments"] == []
    # the name is the user's own to take
    code, mine = await post(jp_fetch, body={"artifact": "models/iris.joblib", "name": "theirs"})
    assert code == 201 and mine["owner"] != "someone-else"


def test_a_failing_model_server_is_reported_with_its_reason(jp_fetch, run, jp_root_dir) -> None:
    (jp_root_dir / "crash.pkl").write_bytes(pickle.dumps([1, 2], protocol=4))

    async def crash() -> None:
        await post(jp_fetch, body={"artifact": "crash.pkl"})
        failed = await serving(jp_fetch, "crash")
        assert failed["state"] == "failed" and failed["reason"] == "the model server exited: boom"

    run(crash())


def test_the_codespace_deploy_key_gives_defaults(jp_fetch, run, jp_root_dir) -> None:
    write_models(jp_root_dir)
    (jp_root_dir / ".codespace").mkdir()
    (jp_root_dir / ".codespace" / "codespace.yaml").write_text(
        "deploy:\n"
        "  backend: second\n"
        "  protocol: v1\n"
        "  idleTimeout: 5m\n"
        "  resources: {cpu: 1, memory: 1Gi}\n"
    )
    run(_defaults(jp_fetch))


async def _defaults(jp_fetch) -> None:
    _, body = await call(jp_fetch)
    assert body["backends"] == [
        {"name": "memory", "default": False},
        {"name": "second", "default": True},  # the deploy: key's backend
    ]
    spec = {"artifact": "models/iris.joblib", "resources": {"cpu": 2}}
    _, made = await post(jp_fetch, body=spec)
    assert made["backend"] == "second" and made["protocol"] == "v1"
    assert made["spec"]["idleTimeout"] == 300
    assert made["spec"]["resources"] == {"cpu": 2.0, "memory": "1Gi", "gpu": None}
    own = {"artifact": "models/iris.joblib", "name": "own", "protocol": "v2", "backend": "memory"}
    _, made = await post(jp_fetch, body=own)
    assert made["backend"] == "memory" and made["protocol"] == "v2"


def test_anonymous_requests_are_refused(jp_fetch, run) -> None:
    async def anonymous() -> None:
        for parts, method in (
            ((), "GET"),
            ((), "POST"),
            (("_detect",), "GET"),
            (("x",), "DELETE"),
            (("x", "predict"), "POST"),
            (("x", "tokens"), "POST"),
        ):
            body = "{}" if method == "POST" else None
            await refused(
                jp_fetch, 403, *parts, method=method, body=body, headers={"Authorization": ""}
            )

    run(anonymous())


def test_a_server_start_imports_no_deploy_backend(tmp_path: Path) -> None:
    """Backends are built on first use: the extension's start loads no local or KServe
    backend (their model servers' and engines' clients)."""
    code = (
        "import sys\n"
        "from traitlets.config import Config\n"
        "from extensions.app import CodespaceExtension\n"
        f"config = Config({{'CodespaceExtension': {{'workspace': {str(tmp_path)!r},"
        f" 'state_dir': {str(tmp_path / 'state')!r}}}}})\n"
        "app = CodespaceExtension(config=config)\n"
        "app.initialize_settings(); app.initialize_handlers()\n"
        "assert list(app.deployments.factories) == ['local'], app.deployments.factories\n"
        "print(sorted(m for m in sys.modules if m.startswith('codespace.deploy.')))\n"
    )
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().replace("'", '"')))
    assert not {"codespace.deploy.local", "codespace.deploy.kserve"} & loaded


# --- the pure part of the service ------------------------------------------------------------


def test_a_spec_is_named_after_its_artifact(tmp_path: Path) -> None:
    (tmp_path / "My Model v2.joblib").write_bytes(b"\x80\x04")
    (tmp_path / "hf.model").mkdir()
    assert parse_spec({"artifact": "My Model v2.joblib"}, tmp_path).name == "my-model-v2"
    assert parse_spec({"artifact": "hf.model"}, tmp_path).name == "hf-model"  # a directory
    assert parse_spec({"artifact": "pvc://data/models/2024.onnx"}, tmp_path).name == "model-2024"
    named = parse_spec({"artifact": "x.pkl", "name": None, "format": ""}, tmp_path)
    assert named.name == "x" and named.format is None
    defaults = {"protocol": "v1", "idleTimeout": "2m", "unknown": 1}
    spec = parse_spec({"artifact": "x.pkl", "protocol": "v2"}, tmp_path, defaults)
    assert spec.protocol == "v2" and spec.idleTimeout == 120
    with pytest.raises(DeployError, match=r"^artifact: artifact '/x.pkl' is not a path"):
        parse_spec({"artifact": "/x.pkl"}, tmp_path)  # no "name: Field required" beside it


class Broken:
    def __call__(self) -> MemoryDeployBackend:
        raise ConnectionError("the engine is not reachable")


def test_an_unavailable_backend_is_503_and_the_others_still_answer(tmp_path: Path) -> None:
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(1, protocol=4))
    settings = DeploySettings(workspace=tmp_path, owner="me", options=options("pure", 0))
    service = DeployService(
        {"memory": lambda: MemoryDeployBackend(settings), "broken": Broken()},
        "memory",
        tmp_path,
    )

    async def scenario() -> None:
        with pytest.raises(BackendUnavailable, match="backend 'broken' is unavailable: the engine"):
            await service.create({"artifact": "m.pkl", "backend": "broken"})
        record = await service.create({"artifact": "m.pkl"})  # the broken one cannot hold "m"
        assert record.backend == "memory"
        records, problems = await service.list()
        assert [r.name for r in records] == ["m"] and set(problems) == {"broken"}
        assert (await service.get("m")).state == "ready"
        with pytest.raises(BackendUnavailable, match=r"no deployment 'x' .*broken: unavailable"):
            await service.get("x")
        await service.delete("m")
        with pytest.raises(BackendUnavailable, match="no deployment 'm'"):  # maybe in "broken"
            await service.logs("m")
        await service.close()

    asyncio.run(scenario())
    alone = DeployService({"memory": lambda: MemoryDeployBackend(settings)}, "memory", tmp_path)
    with pytest.raises(DeploymentNotFound, match="no deployment 'm'"):
        asyncio.run(alone.logs("m"))
    with pytest.raises(ValueError, match="default deploy backend 'x' is not configured"):
        DeployService({"memory": Broken()}, "x", tmp_path)
