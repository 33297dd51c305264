"""How the local backend serves a model with MLServer (pure: plain data in, plain data out).

A deployment's directory holds what ``mlserver start DIR`` reads: ``settings.json`` (the
server: loopback only, no metrics server, ``parallel_workers: 0`` -- with MLServer's worker
pool the model fails to load under uvloop 0.22+, FACTS.md) and ``model-settings.json`` (the
model: its name, the runtime of its format, the artifact's URI), and the artifact itself
under ``model/``. MLServer cannot listen on a unix socket, so the server runs in a network
namespace of its own and :mod:`codespace.deploy.launcher` relays a unix socket (in a
directory of the account's that only the hub's deploy service reaches) to its port.

The serving environment is the codespace's environment plus MLServer and the runtime of the
format, with every package the codespace has pinned to the version it has there
(:func:`constraints`), so a model loads with the scikit-learn it was trained with.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from codespace.deploy.formats import ModelFormat

MLSERVER = "mlserver>=1.7.1,<1.8"
KSERVE = "kserve>=0.21,<0.22"  # V1: KServe's own model server (codespace.deploy.v1server)
V1_FORMATS = ("sklearn", "xgboost", "lightgbm")
# In a codespace image: MLServer beside the repository environment (codespace.deploy.image_layer)
IMAGE_SERVING_PREFIX = "/opt/codespace/serving"
HTTP_PORT = 8080  # inside the server's own network namespace
MODEL_DIR = "model"
RUN_DIR = "run"
SOCKET = "http.sock"
LOG_FILE = "server.log"
READY_TIMEOUT = 180.0
V1_MODULE = "codespace.deploy.v1server"  # seconds for a model server to load its model


def serving_requirements(fmt: ModelFormat, protocol: str = "v2") -> list[str]:
    """What the serving environment installs for ``fmt`` (beside the codespace's packages):
    MLServer and the format's runtime for V2, KServe's model server for V1."""
    if protocol == "v1":
        if fmt.name not in V1_FORMATS:
            raise ValueError(
                f"protocol v1 serves {', '.join(V1_FORMATS)} models here; "
                f"deploy {fmt.description} models with protocol v2"
            )
        return [KSERVE]
    if fmt.mlserver_package is None:
        raise ValueError(
            f"{fmt.description} models are served by KServe's runtimes on Kubernetes; "
            "the local backend has no server for them"
        )
    return [MLSERVER, f"{fmt.mlserver_package}>=1.7.1,<1.8"]


def constraints(installed: Mapping[str, str]) -> str:
    """A uv constraints file pinning every distribution of the codespace's environment."""
    lines = []
    for name, version in sorted(installed.items(), key=lambda item: item[0].lower()):
        if name and version and "+" not in version:  # a local version has no index to come from
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def serving_key(python_version: str, constraint_text: str, requirements: list[str]) -> str:
    """The cache key of a serving environment (shared by deployments of the same environment)."""
    text = json.dumps([python_version, constraint_text, sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def server_settings(port: int = HTTP_PORT) -> dict[str, object]:
    return {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": port + 1,
        "metrics_endpoint": None,
        "parallel_workers": 0,
        "debug": False,
        "load_models_at_startup": True,
    }


def model_settings(name: str, fmt: ModelFormat, artifact: str) -> dict[str, object]:
    """``model-settings.json`` for the model ``name`` whose artifact is ``model/<artifact>``."""
    if fmt.mlserver_runtime is None:
        raise ValueError(f"no MLServer runtime serves {fmt.description} models")
    uri = f"./{PurePosixPath(MODEL_DIR) / PurePosixPath(artifact).name}"
    return {"name": name, "implementation": fmt.mlserver_runtime, "parameters": {"uri": uri}}


def server_argv(
    serving_env: Path,
    deployment_dir: Path,
    *,
    protocol: str = "v2",
    model: str = "",
    fmt: str = "",
    artifact: str = "",
    socket: Path | None = None,
    port: int = HTTP_PORT,
) -> list[str]:
    """The launcher (platform Python) relaying ``socket`` to the model server on
    ``port``: MLServer for V2, KServe's ``ModelServer`` (:mod:`codespace.deploy.v1server`)
    for V1."""
    launcher = [sys.executable, "-I", "-m", "codespace.deploy.launcher"]
    socket = socket or deployment_dir / RUN_DIR / SOCKET
    launcher += ["--socket", str(socket), "--port", str(port), "--"]
    if protocol != "v1":
        return [*launcher, str(serving_env / "bin" / "mlserver"), "start", str(deployment_dir)]
    path = deployment_dir / MODEL_DIR / PurePosixPath(artifact).name
    variables = {
        "CODESPACE_MODEL_NAME": model,
        "CODESPACE_MODEL_FORMAT": fmt,
        "CODESPACE_MODEL_PATH": str(path),
        "CODESPACE_MODEL_PORT": str(port),
    }
    python = str(serving_env / "bin" / "python")
    return [*launcher, "env", *(f"{k}={v}" for k, v in variables.items()), python, "-m", V1_MODULE]


def ready_path(model: str) -> str:
    """The path that answers 200 once the model is loaded, for both servers (KServe's serves
    V2 beside V1); not ``/v2/health/ready``, which says 200 even when the model failed to load
    (FACTS.md)."""
    return f"/v2/models/{model}/ready"
