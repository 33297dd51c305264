"""The one interface every deploy backend implements (the hub's local model servers, KServe).

Backends are async (the server extension awaits them on Jupyter's event loop) and built by
the server extension from one plain :class:`DeploySettings` (``from_settings``), like the job
backends. Every backend:

- serves the model in the codespace's own environment (locally: the same library versions;
  on Kubernetes: the codespace's image, ``CODESPACE_IMAGE``);
- checks the artifact before anything is created (:mod:`codespace.deploy.formats`): a
  corrupt or unsupported model is a :class:`DeployError` and leaves nothing behind;
- scopes everything to ``settings.owner``: another user's deployment is
  :class:`DeploymentNotFound`;
- answers the KServe protocol at ``record.endpoint`` (``predict`` forwards a request body to
  it with the server's credentials).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from codespace.deploy.models import DeploymentRecord, DeploymentSpec, ShareToken, Signature


class DeployError(Exception):
    """A deployment request that cannot be honoured; the message says why (HTTP 400)."""


class DeploymentNotFound(DeployError):
    """No deployment with that name for this user (HTTP 404, whoever owns it)."""


class DeploymentExists(DeployError):
    """The user already has a deployment with that name (HTTP 409)."""


class BackendUnavailable(DeployError):
    """A configured backend could not be built or reached (HTTP 503)."""


@dataclass(frozen=True)
class DeploySettings:
    """What the server extension knows that a deploy backend may need (plain data)."""

    workspace: Path  # artifacts are paths relative to it
    owner: str  # the hub user the deployments belong to
    environment: Mapping[str, str] = field(default_factory=dict)  # the server's env
    defaults: Mapping[str, Any] = field(default_factory=dict)  # the spec's ``deploy:`` key
    options: Mapping[str, Any] = field(default_factory=dict)  # the backend's own settings


@dataclass(frozen=True)
class Response:
    """A model server's answer, passed on as it is."""

    status: int
    body: bytes
    content_type: str = "application/json"


class DeployBackend(ABC):
    """Create, list, inspect, call, read the logs of and delete deployments."""

    kind: str = "abstract"

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: DeploySettings) -> Self:
        """The backend as the server extension configured it."""

    @abstractmethod
    async def create(self, spec: DeploymentSpec) -> DeploymentRecord:
        """Start serving ``spec`` (returns at once; the record's state says how it goes)."""

    @abstractmethod
    async def list(self) -> list[DeploymentRecord]:
        """The owner's deployments, newest first, with fresh states."""

    @abstractmethod
    async def get(self, name: str) -> DeploymentRecord:
        """One of the owner's deployments with a fresh state; DeploymentNotFound otherwise."""

    @abstractmethod
    async def logs(self, name: str, tail: int | None = None) -> str:
        """The model server's output (the last ``tail`` lines when given)."""

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Stop serving and remove everything the deployment made."""

    @abstractmethod
    async def predict(self, name: str, body: bytes, path: str = "") -> Response:
        """Send ``body`` to the deployment's infer (V2) or predict (V1) URL, or to ``path``
        under its base URL; a scaled-to-zero deployment is started first."""

    async def signature(self, name: str) -> Signature:
        """What the model takes and an example request (empty when the backend cannot say)."""
        await self.get(name)
        return Signature(note="this backend cannot read the model's signature")

    async def share(self, name: str, note: str = "", expires_in: int | None = None) -> ShareToken:
        """A token for this deployment's endpoint only (to give to someone else)."""
        raise DeployError(f"the {self.kind} backend cannot mint tokens for an endpoint")

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and tasks (the server is stopping)."""
