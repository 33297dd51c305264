"""What a ``Codespace`` resource asks for, what the hub says, and what to do: plain data.

- :class:`CodespaceSpec` is the resource's ``spec`` (``config/helm/codespace-crd.yaml``):
  owner (the hub user), name (the codespace, a named server; default the resource's name),
  repository, ref, profile, datasets, gpu, running. :meth:`CodespaceSpec.options` is the
  user options a start sends (the same model as the spawn form and the REST API).
- :class:`Observed` is the hub's view of that named server (``GET /hub/api/users/<owner>``);
- :func:`decide` says what brings the hub to the spec: ``start``, ``stop``, ``restart`` (the
  options changed while it runs: stop, then start with the new ones), ``wait`` (a start or
  stop is under way) or ``none``;
- :func:`status_of` turns the observation into the resource's ``status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spawner.form import validate_options

Action = Literal["start", "stop", "restart", "wait", "none"]


class CodespaceSpec(BaseModel):
    """The ``spec`` of a ``Codespace`` resource (the CRD's schema checks it first)."""

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(..., min_length=1)
    name: str | None = None
    repository: str
    ref: str | None = None
    profile: str | None = None
    datasets: list[str] = Field(default_factory=list)
    gpu: Any = None  # the CRD's object form, or a count/fraction as in .codespace
    running: bool = True

    def server_name(self, resource_name: str) -> str:
        return self.name or resource_name

    def options(self) -> dict[str, Any]:
        """The user options of the start, checked as the REST API's are (ValueError)."""
        return validate_options(
            {
                "repo": self.repository,
                "ref": self.ref,
                "profile": self.profile,
                "datasets": self.datasets,
                "gpu": self.gpu,
            }
        )


@dataclass(frozen=True)
class Observed:
    """The hub's named server (``exists`` False: no such server, or no such user)."""

    exists: bool = False
    ready: bool = False
    pending: str | None = None  # "spawn", "stop", ...
    options: dict[str, Any] = field(default_factory=dict)
    url: str = ""  # the server's path, /user/<owner>/<name>/
    last_activity: str | None = None

    @classmethod
    def from_user(cls, user: Mapping[str, Any] | None, name: str) -> Observed:
        servers = (user or {}).get("servers") or {}
        server = servers.get(name)
        if server is None:
            return cls()
        return cls(
            exists=True,
            ready=bool(server.get("ready")) and not server.get("stopped"),
            pending=server.get("pending"),
            options=dict(server.get("user_options") or {}),
            url=server.get("url") or "",
            last_activity=server.get("last_activity"),
        )


def same_options(wanted: Mapping[str, Any], running: Mapping[str, Any]) -> bool:
    """Whether a server started with ``running`` serves ``wanted`` (the hub keeps the options
    as given: compare them as the spawners read them)."""

    def clean(options: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return validate_options(options)
        except ValueError:
            return dict(options)

    return clean(wanted) == clean(running)


def decide(spec: CodespaceSpec, wanted: Mapping[str, Any], observed: Observed) -> Action:
    """What brings the hub's server to ``spec`` (see the module docstring)."""
    if observed.pending:
        return "wait"
    if not spec.running:
        return "stop" if observed.ready else "none"
    if not observed.ready:
        return "start"
    return "none" if same_options(wanted, observed.options) else "restart"


def status_of(
    spec: CodespaceSpec,
    observed: Observed,
    *,
    public_url: str,
    generation: int | None = None,
    message: str = "",
    failed: bool = False,
    env_hash: str | None = None,
) -> dict[str, Any]:
    """The resource's ``status`` for what the hub says now."""
    if failed:
        phase = "Failed"
    elif observed.pending == "spawn":
        phase = "Starting"
    elif observed.pending:
        phase = "Stopping"
    elif observed.ready:
        phase = "Ready"
    elif spec.running and not observed.exists:
        phase = "Pending"
    else:
        phase = "Stopped"
    status: dict[str, Any] = {
        "phase": phase,
        "url": public_url.rstrip("/") + observed.url if observed.ready and observed.url else "",
        "ref": (observed.options.get("ref") or "") if observed.exists else "",
        "message": message or _message(phase, spec),
        "conditions": [_ready_condition(phase, message, generation)],
    }
    if generation is not None:
        status["observedGeneration"] = generation
    if observed.last_activity:
        status["lastActivity"] = observed.last_activity
    if env_hash is not None:
        status["envHash"] = env_hash
    return status


def _message(phase: str, spec: CodespaceSpec) -> str:
    return {
        "Ready": "running",
        "Starting": "starting: the hub's progress page shows each step",
        "Stopping": "stopping",
        "Stopped": "stopped" if not spec.running else "not running (stopped or culled)",
        "Pending": "not created yet",
    }.get(phase, "")


def _ready_condition(phase: str, message: str, generation: int | None) -> dict[str, Any]:
    from datetime import UTC, datetime

    condition = {
        "type": "Ready",
        "status": "True" if phase == "Ready" else "False",
        "reason": phase,
        "message": message or phase.lower(),
        "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition
