"""Module-level deploy functions for notebooks: a :class:`Deployment` handle over the REST API.

Kernel side: standard library only (the records are :mod:`codespace.deploy.records`)::

    from codespace import deploy
    endpoint = deploy.deploy("model.joblib")       # waits until it serves
    endpoint.url                                   # the authenticated URL (KServe protocol)
    endpoint.predict([[5.1, 3.5, 1.4, 0.2]])       # [0]: a V2 infer request, its output
    endpoint.logs(tail=20); endpoint.share("for Ana", expires_in=86400).token
    deploy.list(); deploy.get("model").delete()

Everything goes through the codespace server's REST API (``/codespace/api/deployments``,
:class:`DeployApi`), with the server's own credentials (:class:`~codespace.client.CodespaceClient`).
"""

from __future__ import annotations

import builtins
import math
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from codespace.client import ApiError, CodespaceClient
from codespace.deploy.records import CREATING, DeploymentRecord, ShareToken, Signature

# A request that may cold-start a scaled-to-zero model server waits this long for its answer.
CALL_TIMEOUT = 300.0
INPUT_NAME = "input-0"


class DeploymentFailed(RuntimeError):
    """The deployment did not come up; ``record.reason`` says why (with the server's log)."""

    def __init__(self, record: DeploymentRecord) -> None:
        super().__init__(f"deployment {record.name!r} failed: {record.reason or 'no reason given'}")
        self.record = record


class DeployApi:
    """The deployments REST API, as plain JSON (used by the SDK, the CLI and the widget)."""

    def __init__(self, client: CodespaceClient | None = None) -> None:
        self.client = client if client is not None else CodespaceClient(timeout=CALL_TIMEOUT)

    @staticmethod
    def _path(name: str, *rest: str) -> str:
        return "/".join(["deployments", urllib.parse.quote(name, safe=""), *rest])

    def overview(self) -> dict[str, Any]:
        """``{"backends": [...], "deployments": [...]}``"""
        return self.client.request("GET", "deployments")

    def backends(self) -> builtins.list[dict[str, Any]]:
        return self.overview()["backends"]

    def list(self) -> builtins.list[dict[str, Any]]:
        return self.overview()["deployments"]

    def create(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return self.client.request("POST", "deployments", body=dict(spec))

    def detect(self, path: str) -> dict[str, Any]:
        return self.client.request("GET", "deployments/_detect", params={"path": path})

    def get(self, name: str) -> dict[str, Any]:
        return self.client.request("GET", self._path(name))

    def delete(self, name: str) -> None:
        self.client.request("DELETE", self._path(name))

    def logs(self, name: str, tail: int | None = None) -> str:
        return self.client.request("GET", self._path(name, "logs"), params={"tail": tail})["text"]

    def predict(self, name: str, body: Any, path: str = "") -> Any:
        params = {"path": path} if path else None
        return self.client.request("POST", self._path(name, "predict"), params=params, body=body)

    def signature(self, name: str) -> dict[str, Any]:
        return self.client.request("GET", self._path(name, "signature"))

    def share(self, name: str, note: str = "", expires_in: int | str | None = None) -> dict:
        body = {"note": note, "expiresIn": expires_in}
        return self.client.request("POST", self._path(name, "tokens"), body=body)


def _api(client: CodespaceClient | DeployApi | None) -> DeployApi:
    return client if isinstance(client, DeployApi) else DeployApi(client)


# --- requests and answers in the KServe protocols ------------------------------------------


def _plain(data: Any) -> Any:
    """Lists from numpy arrays, pandas frames and tuples (anything with ``tolist``)."""
    if hasattr(data, "to_numpy"):
        data = data.to_numpy()
    if hasattr(data, "tolist"):
        data = data.tolist()
    if isinstance(data, tuple):
        data = builtins.list(data)
    return data


def _tensor(value: Any) -> tuple[builtins.list[int], builtins.list[Any]]:
    """The shape of a (nested) list and its values in row-major order."""
    value = _plain(value)
    if not isinstance(value, builtins.list):
        return [], [value]
    if not value:
        return [0], []
    parts = [_tensor(item) for item in value]
    shapes = {tuple(shape) for shape, _ in parts}
    if len(shapes) != 1:
        raise ValueError("rows of different lengths (a ragged list) are not one tensor")
    return [len(value), *parts[0][0]], [item for _, flat in parts for item in flat]


def _datatype(values: builtins.list[Any]) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    if all(isinstance(v, str) for v in values):
        return "BYTES"
    kinds = sorted({type(v).__name__ for v in values})
    raise TypeError(f"a tensor holds numbers, booleans or strings, not a mix of {kinds}")


def request_body(data: Any, protocol: str = "v2") -> dict[str, Any]:
    """A request body for ``data`` (a list, nested list or array): V2 ``{"inputs": [one
    tensor]}`` or V1 ``{"instances": data}``. A full body (a mapping with ``inputs`` or
    ``instances``) is returned as it is."""
    if isinstance(data, Mapping):
        if "inputs" in data or "instances" in data:
            return dict(data)
        raise TypeError("give a list of rows, an array, or a request body with inputs/instances")
    if protocol == "v1":
        plain = _plain(data)
        return {"instances": plain if isinstance(plain, builtins.list) else [plain]}
    shape, values = _tensor(data)
    if not shape:
        shape = [1]
    return {
        "inputs": [
            {"name": INPUT_NAME, "shape": shape, "datatype": _datatype(values), "data": values}
        ]
    }


def _reshape(data: Any, shape: Any) -> Any:
    """A V2 output's flat data nested by its shape; ``[N, 1]`` gives N values (as sklearn's
    ``predict`` does)."""
    if not isinstance(data, builtins.list) or not isinstance(shape, builtins.list):
        return data
    if len(shape) == 2 and shape[1] == 1:
        shape = shape[:1]
    if len(shape) < 2 or (data and isinstance(data[0], builtins.list)):
        return data
    if math.prod(shape) != len(data):
        return data
    for size in reversed(shape[1:]):
        data = [data[i : i + size] for i in range(0, len(data), size)]
    return data


def response_outputs(response: Any, protocol: str = "v2") -> Any:
    """The predictions in an answer: V1 ``predictions``; V2 the one output's data (nested by
    its shape), or ``{name: data}`` for several outputs."""
    if not isinstance(response, Mapping):
        return response
    if protocol == "v1" or "predictions" in response:
        return response.get("predictions", response)
    outputs = response.get("outputs")
    if not isinstance(outputs, builtins.list):
        return response
    values = {
        str(out.get("name", i)): _reshape(out.get("data"), out.get("shape"))
        for i, out in enumerate(outputs)
    }
    return next(iter(values.values())) if len(values) == 1 else values


# --- the handle ----------------------------------------------------------------------------


class Deployment:
    """A deployed model: ``.name``, ``.url``, ``.status()``, ``.wait()``, ``.predict(...)``,
    ``.logs()``, ``.share()``, ``.delete()``."""

    def __init__(
        self, record: DeploymentRecord, client: CodespaceClient | DeployApi | None = None
    ) -> None:
        self.record = record  # as last seen
        self._api = client if client is None else _api(client)

    @property
    def api(self) -> DeployApi:
        if self._api is None:
            self._api = DeployApi()
        return self._api

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def url(self) -> str | None:
        """The endpoint's base URL (through the hub, authenticated); None until known."""
        return self.record.url

    @property
    def protocol(self) -> str:
        return self.record.protocol

    def status(self) -> DeploymentRecord:
        """The deployment's record, fresh from the server (``.state``, ``.reason``)."""
        self.record = DeploymentRecord.from_json(self.api.get(self.name))
        return self.record

    def wait(self, timeout: float | None = 600, poll: float = 1.0) -> DeploymentRecord:
        """Block until it serves (ready, or idle: scaled to zero); its record.
        DeploymentFailed when it failed, TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.status().state in CREATING:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"deployment {self.name!r} is still {self.record.state} after {timeout}s"
                )
            pause = poll if deadline is None else min(poll, max(deadline - time.monotonic(), 0))
            time.sleep(pause)
        if self.record.failed:
            raise DeploymentFailed(self.record)
        return self.record

    def predict_raw(self, body: Any, path: str = "") -> Any:
        """POST ``body`` (JSON) to the model's infer/predict URL, or to ``path`` under its
        base URL; the model server's JSON answer."""
        return self.api.predict(self.name, body, path)

    def predict(self, data: Any) -> Any:
        """Predictions for ``data`` (rows as a nested list, or a numpy array / DataFrame):
        sent as one V2 tensor (``input-0``, FP64/INT64/BOOL/BYTES) or as V1 instances;
        the output's data comes back as a list (``{name: list}`` for several outputs)."""
        return response_outputs(self.predict_raw(request_body(data, self.protocol)), self.protocol)

    def signature(self) -> Signature:
        """What the model takes, and an ``example`` request body (for ``predict_raw``)."""
        return Signature.from_json(self.api.signature(self.name))

    def logs(self, tail: int | None = None) -> str:
        """The model server's output (the last ``tail`` lines)."""
        return self.api.logs(self.name, tail)

    def share(self, note: str = "", expires_in: int | str | None = None) -> ShareToken:
        """A token for this endpoint only, to give to someone (``expires_in``: seconds)."""
        return ShareToken.from_json(self.api.share(self.name, note, expires_in))

    def delete(self) -> None:
        """Stop serving and remove the deployment."""
        self.api.delete(self.name)

    def __repr__(self) -> str:
        reason = f", reason={self.record.reason!r}" if self.record.reason else ""
        url = f", url={self.url!r}" if self.url else ""
        return f"Deployment(name={self.name!r}, state={self.record.state!r}{url}{reason})"


def deployment_spec(
    artifact: str,
    name: str | None = None,
    *,
    format: str | None = None,
    protocol: str | None = None,
    resources: Mapping[str, Any] | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    idle_timeout: int | str | None = None,
    backend: str | None = None,
) -> dict[str, Any]:
    """The JSON spec ``deploy`` sends (also used by the CLI and the widget); unset keys are
    left out, so the codespace's ``deploy:`` defaults (and the server's) apply to them."""
    if not isinstance(artifact, str) or not artifact:
        raise TypeError("artifact is a path in the workspace (e.g. 'model.joblib') or a URI")
    optional = {
        "name": name,
        "format": format,
        "protocol": protocol,
        "resources": None if resources is None else dict(resources),
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "idleTimeout": idle_timeout,
        "backend": backend,
    }
    return {"artifact": artifact, **{k: v for k, v in optional.items() if v is not None}}


def deploy(
    artifact: str,
    name: str | None = None,
    *,
    format: str | None = None,
    protocol: str | None = None,
    resources: Mapping[str, Any] | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    idle_timeout: int | str | None = None,
    backend: str | None = None,
    wait: bool = True,
    timeout: float | None = 600,
    client: CodespaceClient | DeployApi | None = None,
) -> Deployment:
    """Serve a model file or directory of the workspace (or a URI) over the KServe protocol.

    ``name``: a DNS label (default: from the file's name); ``format``: detected from the
    file when not given; ``protocol``: ``"v2"`` (Open Inference Protocol, the default) or
    ``"v1"``; ``resources``: ``{"cpu": 1, "memory": "2Gi", "gpu": 1}``; ``min_replicas=0``
    (the default) scales to zero after ``idle_timeout`` (seconds or ``"15m"``) without
    requests. With ``wait`` (the default) it returns once the model serves
    (:class:`DeploymentFailed` if it does not come up, TimeoutError after ``timeout``).
    """
    spec = deployment_spec(
        artifact,
        name,
        format=format,
        protocol=protocol,
        resources=resources,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        idle_timeout=idle_timeout,
        backend=backend,
    )
    api = _api(client)
    deployment = Deployment(DeploymentRecord.from_json(api.create(spec)), api)
    if wait:
        deployment.wait(timeout)
    return deployment


def list(*, client: CodespaceClient | DeployApi | None = None) -> builtins.list[Deployment]:
    """Your deployments, newest first."""
    api = _api(client)
    return [Deployment(DeploymentRecord.from_json(item), api) for item in api.list()]


def get(name: str, *, client: CodespaceClient | DeployApi | None = None) -> Deployment:
    """One of your deployments, with a fresh record."""
    api = _api(client)
    return Deployment(DeploymentRecord.from_json(api.get(name)), api)


def delete(name: str, *, client: CodespaceClient | DeployApi | None = None) -> None:
    """Stop serving a deployment and remove it."""
    _api(client).delete(name)


__all__ = [
    "ApiError",
    "DeployApi",
    "Deployment",
    "DeploymentFailed",
    "delete",
    "deploy",
    "deployment_spec",
    "get",
    "list",
    "request_body",
    "response_outputs",
]
