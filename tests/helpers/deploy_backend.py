"""A test-only, in-memory DeployBackend for the REST, SDK, CLI and widget tests.

Configured like any backend through ``CodespaceExtension.deploy_backends``
(``"tests.helpers.deploy_backend.MemoryDeployBackend"``). Deployments live in one store shared
by every instance (:data:`MemoryDeployBackend.store`), keyed by ``options["space"]`` (one per
configured backend) and owner, so a test can make another user's deployment with a second
instance. A deployment is ``creating``, then
``loading``, then ``ready`` as time passes (``options["ready_after"]`` seconds); an artifact
whose name starts with ``crash`` fails instead. Its "model" sums each row: V2 answers
``{"outputs": [{"name": "predict", "shape": [rows, 1], ...}]}``, V1 ``{"predictions": [...]}``;
every request body it gets is kept (``requests``) so tests can check what the SDK built.
"""

from __future__ import annotations

import builtins
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from codespace.deploy.backend import (
    DeployBackend,
    DeployError,
    DeploymentExists,
    DeploymentNotFound,
    DeploySettings,
    Response,
)
from codespace.deploy.models import (
    DeploymentRecord,
    DeploymentSpec,
    ShareToken,
    Signature,
    endpoint,
)

IMPORT = "tests.helpers.deploy_backend.MemoryDeployBackend"
BROKEN = "tests.helpers.deploy_backend.BrokenDeployBackend"
EXAMPLE = {"inputs": [{"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}


@dataclass
class Entry:
    record: DeploymentRecord
    requests: list[tuple[str, Any]] = field(default_factory=list)  # (path, decoded body)
    lines: list[str] = field(default_factory=list)


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value).encode())


def _rows(data: list[Any], shape: list[int]) -> list[list[float]]:
    width = shape[1] if len(shape) > 1 else 1
    return [data[i : i + width] for i in range(0, len(data), width)]


class MemoryDeployBackend(DeployBackend):
    kind = "memory"
    store: ClassVar[dict[tuple[str, str, str], Entry]] = {}  # (space, owner, name)
    built: ClassVar[list[MemoryDeployBackend]] = []

    def __init__(self, settings: DeploySettings) -> None:
        self.settings = settings
        self.owner = settings.owner
        self.space = str(settings.options.get("space", "default"))
        self.ready_after = float(settings.options.get("ready_after", 0.3))
        self.base = str(settings.options.get("base_url", "http://127.0.0.1:8000/deployments/"))
        self.closed = False

    @classmethod
    def from_settings(cls, settings: DeploySettings) -> Self:
        backend = cls(settings)
        cls.built.append(backend)
        return backend

    @classmethod
    def reset(cls) -> None:
        cls.store.clear()
        cls.built.clear()

    def _entry(self, name: str) -> Entry:
        entry = self.store.get((self.space, self.owner, name))
        if entry is None:
            raise DeploymentNotFound(f"no deployment {name!r}")
        return entry

    def _fresh(self, entry: Entry) -> DeploymentRecord:
        record = entry.record
        if record.state in ("creating", "loading"):
            age = (datetime.now(UTC) - record.created).total_seconds()
            if age >= self.ready_after:
                if record.spec.artifact.startswith("crash"):
                    update = {"state": "failed", "reason": "the model server exited: boom"}
                else:
                    update = {"state": "ready", "reason": ""}
            elif age >= self.ready_after / 2:
                update = {"state": "loading", "reason": "loading the model"}
            else:
                update = {}
            entry.record = record = record.model_copy(update=update)
        return record

    async def create(self, spec: DeploymentSpec) -> DeploymentRecord:
        if (self.space, self.owner, spec.name) in self.store:
            raise DeploymentExists(f"a deployment named {spec.name!r} exists already")
        if spec.format is None:
            raise DeployError("the service gives every spec its format")
        record = DeploymentRecord(
            name=spec.name,
            owner=self.owner,
            backend=spec.backend or self.kind,
            format=spec.format,
            protocol=spec.protocol,
            created=datetime.now(UTC),
            endpoint=endpoint(f"{self.base}{self.owner}/{spec.name}/", spec.name, spec.protocol),
            spec=spec,
        )
        self.store[(self.space, self.owner, spec.name)] = Entry(
            record, lines=[f"serving {spec.artifact}"]
        )
        return record

    async def list(self) -> builtins.list[DeploymentRecord]:
        mine = [
            self._fresh(entry)
            for (space, owner, _), entry in self.store.items()
            if (space, owner) == (self.space, self.owner)
        ]
        return sorted(mine, key=lambda record: record.created, reverse=True)

    async def get(self, name: str) -> DeploymentRecord:
        return self._fresh(self._entry(name))

    async def logs(self, name: str, tail: int | None = None) -> str:
        lines = self._entry(name).lines
        shown = lines if tail is None else lines[len(lines) - tail :] if tail else []
        return "".join(f"{line}\n" for line in shown)

    async def delete(self, name: str) -> None:
        self._entry(name)
        del self.store[(self.space, self.owner, name)]

    async def predict(self, name: str, body: bytes, path: str = "") -> Response:
        entry = self._entry(name)
        record = self._fresh(entry)
        try:
            request = json.loads(body or b"null")
        except ValueError:
            return _json(400, {"error": "the body is not JSON"})
        entry.requests.append((path, request))
        entry.lines.append(f"request {len(entry.requests)}")
        if record.state not in ("ready", "idle"):
            return _json(503, {"error": f"the model is {record.state}"})
        if path:
            return _json(200, {"path": path})
        if record.protocol == "v1":
            rows = request.get("instances") if isinstance(request, dict) else None
            if not isinstance(rows, builtins.list):
                return _json(400, {"error": "expected instances"})
            return _json(200, {"predictions": [sum(row) for row in rows]})
        try:
            [tensor] = request["inputs"]
            sums = [sum(row) for row in _rows(tensor["data"], tensor["shape"])]
        except (KeyError, TypeError, ValueError):
            return _json(400, {"error": "expected one input tensor"})
        output = {"name": "predict", "shape": [len(sums), 1], "datatype": "FP64", "data": sums}
        return _json(200, {"model_name": name, "outputs": [output]})

    async def signature(self, name: str) -> Signature:
        self._entry(name)
        tensor = {"name": "input-0", "datatype": "FP64", "shape": [-1, 2]}
        return Signature(inputs=[tensor], outputs=[{"name": "predict"}], example=EXAMPLE)

    async def share(self, name: str, note: str = "", expires_in: int | None = None) -> ShareToken:
        self._entry(name)
        expires = None if expires_in is None else datetime.now(UTC) + timedelta(seconds=expires_in)
        return ShareToken(token=secrets.token_hex(8), deployment=name, note=note, expires=expires)

    async def close(self) -> None:
        self.closed = True


class BrokenDeployBackend(MemoryDeployBackend):
    """A backend whose engine cannot be reached: it cannot even be built."""

    @classmethod
    def from_settings(cls, settings: DeploySettings) -> Self:
        raise ConnectionError("the engine is not reachable")
