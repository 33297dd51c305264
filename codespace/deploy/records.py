"""What the deploy SDK returns: immutable records built from the REST JSON (stdlib only).

The kernel side runs in the repository's environment, so these are frozen dataclasses, not
the server's pydantic models (:mod:`codespace.deploy.models`); the field names are the REST
fields, the models' names (``record.endpoint.infer``, ``record.spec.idleTimeout``).
Sequences are tuples; times are the ISO 8601 strings the server sends; keys a newer server
adds are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

# The shared JSON-record behaviour (from_json, to_json, a short repr) of the datasets records.
from codespace.datasets.records import _Record

SERVING = ("ready", "idle")  # idle: scaled to zero; the next request starts it again
CREATING = ("creating", "loading")


@dataclasses.dataclass(frozen=True, repr=False)
class DeployResources(_Record):
    """cpu, memory and gpu in the ``.codespace`` spec's words."""

    cpu: float | None = None
    memory: str | None = None
    gpu: Mapping[str, Any] | None = None

    def __hash__(self) -> int:
        return hash((self.cpu, self.memory))


@dataclasses.dataclass(frozen=True, repr=False)
class DeploymentSpec(_Record):
    """A deployment as asked for (with the ``deploy:`` defaults and the detected format)."""

    name: str
    artifact: str
    format: str | None = None
    protocol: str = "v2"
    resources: DeployResources = dataclasses.field(default_factory=DeployResources)
    minReplicas: int = 0
    maxReplicas: int = 1
    idleTimeout: int = 900
    backend: str | None = None

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "resources": DeployResources.from_json(values.get("resources") or {})}

    def __hash__(self) -> int:
        return hash((self.name, self.artifact, self.format, self.protocol, self.backend))


@dataclasses.dataclass(frozen=True, repr=False)
class Endpoint(_Record):
    """Where to call a deployment: its base URL, infer (V2) or predict (V1) URL, readiness."""

    url: str
    infer: str
    ready: str
    protocol: str = "v2"


@dataclasses.dataclass(frozen=True, repr=False)
class DeploymentRecord(_Record):
    """A deployment as its backend knows it: state (with the reason), endpoint, spec."""

    name: str
    owner: str
    backend: str
    format: str
    created: str
    spec: DeploymentSpec
    state: str = "creating"
    reason: str = ""
    protocol: str = "v2"
    lastRequest: str | None = None
    endpoint: Endpoint | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        endpoint = values.get("endpoint")
        return {
            **values,
            "spec": DeploymentSpec.from_json(values.get("spec") or {}),
            "endpoint": None if endpoint is None else Endpoint.from_json(endpoint),
            "warnings": tuple(str(item) for item in values.get("warnings") or ()),
        }

    def __hash__(self) -> int:
        return hash((self.name, self.backend, self.state, self.lastRequest))

    @property
    def serving(self) -> bool:
        """Ready, or scaled to zero (the next request starts it and waits)."""
        return self.state in SERVING

    @property
    def failed(self) -> bool:
        return self.state == "failed"

    @property
    def url(self) -> str | None:
        return None if self.endpoint is None else self.endpoint.url


@dataclasses.dataclass(frozen=True, repr=False)
class ShareToken(_Record):
    """A token that calls one deployment's endpoint (``Authorization: token <token>``)."""

    token: str
    deployment: str
    note: str = ""
    expires: str | None = None

    def __repr__(self) -> str:  # the secret stays out of notebook outputs
        return f"ShareToken(deployment={self.deployment!r}, note={self.note!r}, token=...)"


@dataclasses.dataclass(frozen=True, repr=False)
class Signature(_Record):
    """What the model takes and gives, as far as its library says, and an example request."""

    inputs: tuple[Mapping[str, Any], ...] = ()
    outputs: tuple[Mapping[str, Any], ...] = ()
    example: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {
            **values,
            "inputs": tuple(dict(item) for item in values.get("inputs") or ()),
            "outputs": tuple(dict(item) for item in values.get("outputs") or ()),
            "example": dict(values.get("example") or {}),
        }

    def __hash__(self) -> int:
        return hash(self.note)


__all__ = [
    "DeployResources",
    "DeploymentRecord",
    "DeploymentSpec",
    "Endpoint",
    "ShareToken",
    "Signature",
]
