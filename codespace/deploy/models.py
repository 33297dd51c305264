"""Deployments, server side: the spec a user asks for and the record a backend keeps.

One vocabulary for every backend (the local model servers behind the hub, KServe): a
deployment serves one model ``artifact`` (a file or directory of the workspace, or on
Kubernetes a ``pvc://`` / ``s3://`` / ``gs://`` URI) of a ``format`` (detected from the
artifact when not given, :mod:`codespace.deploy.formats`) over the KServe ``protocol``
(``v2``: the Open Inference Protocol, ``/v2/models/<name>/infer``; ``v1``:
``/v1/models/<name>:predict``), with ``resources`` in the ``.codespace`` spec's words and
scale to zero: ``minReplicas: 0`` (the default) stops the server after ``idleTimeout`` without
requests, and the next request starts it again and waits for it.

Defaults come from the ``.codespace`` ``deploy:`` key (:func:`with_defaults`). The kernel-side
SDK never imports this module (no pydantic there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from codespace.jobs.models import seconds
from codespace.spec.model import GpuRequest

DeploymentState = Literal["creating", "loading", "ready", "idle", "failed"]
Protocol = Literal["v1", "v2"]
# A DNS-1035 label short enough for KServe's generated names (<name>-predictor-...).
DEPLOYMENT_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,43}[a-z0-9])?$")
URI_SCHEMES = ("pvc://", "s3://", "gs://", "https://")
DEFAULT_IDLE = 900  # seconds without a request before a scale-to-zero deployment stops
# Keys of the ``.codespace`` ``deploy:`` key that are defaults for every deployment.
DEFAULT_KEYS = ("protocol", "resources", "minReplicas", "maxReplicas", "idleTimeout", "backend")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DeployResources(_Model):
    cpu: float | None = Field(None, gt=0, description="CPU cores")
    memory: str | None = Field(None, description="Memory, e.g. '2Gi'")
    gpu: GpuRequest | None = Field(None, description="As resources.gpu of the .codespace spec")

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value} if value else None
        return value


def _artifact(value: str) -> str:
    if value.startswith(URI_SCHEMES):
        return value
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(
            f"artifact {value!r} is not a path inside the workspace (such as model.joblib) "
            f"or a {'/'.join(s.rstrip(':/') for s in URI_SCHEMES)} URI"
        )
    return str(path)


class DeploymentSpec(_Model):
    """What a user deploys."""

    name: str = Field(..., description="DNS label: a-z, 0-9 and '-', at most 45, a letter first")
    artifact: str = Field(..., description="the model file or directory (workspace path or URI)")
    format: str | None = Field(None, description="sklearn, xgboost, ...; detected when absent")
    protocol: Protocol = Field("v2", description="v2: Open Inference Protocol; v1: KServe V1")
    resources: DeployResources = Field(default_factory=DeployResources)
    minReplicas: int = Field(0, ge=0, le=100, description="0: scale to zero when idle")
    maxReplicas: int = Field(1, ge=1, le=100)
    idleTimeout: int = Field(DEFAULT_IDLE, ge=10, description="seconds ('15m' accepted)")
    backend: str | None = Field(None, description="a configured backend; default: the site's")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not DEPLOYMENT_NAME.match(value):
            raise ValueError(
                f"deployment name {value!r} must be a DNS label of at most 45 characters "
                "(a-z, 0-9, '-', starting with a letter)"
            )
        return value

    @field_validator("artifact")
    @classmethod
    def _artifact(cls, value: str) -> str:
        return _artifact(value)

    @field_validator("idleTimeout", mode="before")
    @classmethod
    def _idle(cls, value: Any) -> Any:
        return seconds(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _replicas(self) -> DeploymentSpec:
        if self.maxReplicas < self.minReplicas:
            raise ValueError("maxReplicas must be at least minReplicas")
        return self

    @property
    def scale_to_zero(self) -> bool:
        return self.minReplicas == 0


def with_defaults(request: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The request with the ``.codespace`` ``deploy:`` defaults under it (the request wins;
    ``resources`` merge key by key). Unknown default keys are ignored here; ``codespace
    validate`` names them."""
    merged = {key: defaults[key] for key in DEFAULT_KEYS if key in defaults}
    if isinstance(merged.get("resources"), Mapping) and isinstance(
        request.get("resources"), Mapping
    ):
        merged["resources"] = {**merged["resources"], **request["resources"]}
        return {**merged, **{k: v for k, v in request.items() if k != "resources"}}
    return {**merged, **request}


class Endpoint(_Model):
    """Where to call a deployment (URLs of the backend's public endpoint)."""

    url: str = Field(..., description="the deployment's base URL")
    infer: str = Field(..., description="V2 infer URL, or V1 predict URL")
    ready: str = Field(..., description="the model's readiness URL")
    protocol: Protocol


def endpoint(base: str, model: str, protocol: Protocol) -> Endpoint:
    base = base.rstrip("/") + "/"
    if protocol == "v1":
        return Endpoint(
            url=base,
            infer=f"{base}v1/models/{model}:predict",
            ready=f"{base}v1/models/{model}",
            protocol=protocol,
        )
    return Endpoint(
        url=base,
        infer=f"{base}v2/models/{model}/infer",
        ready=f"{base}v2/models/{model}/ready",
        protocol=protocol,
    )


class DeploymentRecord(_Model):
    """A deployment as a backend knows it."""

    name: str
    owner: str
    backend: str
    state: DeploymentState = "creating"
    reason: str = ""
    format: str
    protocol: Protocol = "v2"
    created: datetime
    lastRequest: datetime | None = None
    endpoint: Endpoint | None = None
    warnings: list[str] = Field(default_factory=list, description="what could not be honoured")
    spec: DeploymentSpec


class ShareToken(_Model):
    """A token that calls one deployment's endpoint (and nothing else)."""

    token: str
    deployment: str
    note: str = ""
    expires: datetime | None = None


class Signature(_Model):
    """What the model takes, as far as its library says, and a test request built from it."""

    inputs: list[dict[str, Any]] = Field(default_factory=list)
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    example: dict[str, Any] = Field(default_factory=dict, description="a request body to send")
    note: str = ""
