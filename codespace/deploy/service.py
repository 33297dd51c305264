"""Several deploy backends behind one API: what the REST handlers (and tests) call.

The server extension configures backends by name (``local``, ``kserve``, ...) and gives
:class:`DeployService` a factory for each; a backend is built on first use, so a server start
imports no engine client. The service:

- reads a request body (a :class:`DeploymentSpec` as JSON, ``name`` and ``format`` optional),
  puts the codespace's ``deploy:`` defaults under it (:func:`with_defaults`), names it after
  its artifact when it has no name (:func:`suggest_name`) and validates it: a bad spec is a
  :class:`DeployError` naming the field (``resources.cpu: ...``) before any backend sees it;
- reads the format of a workspace artifact from the file itself (:func:`formats.detect`): a
  corrupt or unsupported model is refused naming the file, and no backend is called;
- routes a deployment to the backend it names (default: the ``deploy:`` key's ``backend``,
  else the site's), refusing a name that is not configured (the message lists the configured
  ones) and a deployment name another backend already uses;
- finds a deployment by name across the backends (another user's is
  :class:`DeploymentNotFound`); lists every backend's deployments, newest first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import ValidationError

from codespace.backends import Backends
from codespace.deploy.backend import (
    BackendUnavailable,
    DeployBackend,
    DeployError,
    DeploymentExists,
    DeploymentNotFound,
    Response,
)
from codespace.deploy.formats import FORMATS, FormatError, detect, suggest_name, supported
from codespace.deploy.models import (
    URI_SCHEMES,
    DeploymentRecord,
    DeploymentSpec,
    ShareToken,
    Signature,
    with_defaults,
)
from codespace.jobs.service import field_errors


def workspace_path(workspace: Path, artifact: str) -> Path | None:
    """Where a workspace artifact is; None for a URI or a path that leaves the workspace."""
    if artifact.startswith(URI_SCHEMES):
        return None
    path = PurePosixPath(artifact)
    if not artifact or path.is_absolute() or ".." in path.parts or "\\" in artifact:
        return None
    return workspace / path


def _suggested_name(workspace: Path, artifact: str) -> str:
    local = workspace_path(workspace, artifact)
    if local is not None:
        return suggest_name(local)
    # a URI (or a path the validation refuses): named after its last part
    last = PurePosixPath(artifact.split("://", 1)[-1]).name
    return suggest_name(Path(last or "model"))


def parse_spec(
    body: Any, workspace: Path, defaults: Mapping[str, Any] | None = None
) -> DeploymentSpec:
    """A request body as a DeploymentSpec, with the ``deploy:`` defaults under it and a name
    from the artifact when it has none; DeployError naming the fields otherwise."""
    if not isinstance(body, Mapping):
        raise DeployError("the request body must be a JSON object: a deployment spec")
    # ``name`` and ``format`` may be absent, null or empty: then they are found.
    request = {
        key: value
        for key, value in body.items()
        if not (key in ("name", "format") and value in (None, ""))
    }
    data = with_defaults(request, defaults or {})
    artifact = data.get("artifact")
    if "name" not in data and isinstance(artifact, str) and artifact:
        data["name"] = _suggested_name(workspace, artifact)
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as error:
        raise DeployError(field_errors(error)) from error


def _format_error(error: FormatError, local: Path, artifact: str) -> DeployError:
    """The detector's message, naming the file by its workspace path."""
    message = str(error)
    if message.startswith(local.name) and artifact != local.name:
        message = artifact + message[len(local.name) :]
    return DeployError(message)


def _uri_format(artifact: str, declared: str | None) -> str:
    """A URI cannot be read here: its declared format, or the one its suffix names."""
    if declared is not None:
        if declared not in FORMATS:
            raise DeployError(f"format {declared!r} is not supported; supported: {supported()}")
        return declared
    suffix = PurePosixPath(artifact.split("://", 1)[-1]).suffix.lower()
    matches = [fmt.name for fmt in FORMATS.values() if suffix and suffix in fmt.suffixes]
    if len(matches) == 1:
        return matches[0]
    raise DeployError(
        f"the format of {artifact} cannot be told from its name: give format "
        f"(one of {', '.join(FORMATS)})"
    )


class DeployService(Backends[DeployBackend, DeploymentRecord]):
    """The configured deploy backends, by name, built lazily; one API over all of them."""

    kind, noun = "deploy", "deployment"
    error, not_found, unavailable = DeployError, DeploymentNotFound, BackendUnavailable

    def __init__(
        self,
        factories: Mapping[str, Callable[[], DeployBackend]],
        default: str,
        workspace: Path,
        defaults: Callable[[], Mapping[str, Any]] = dict,
    ) -> None:
        super().__init__(factories, default)
        self.workspace = Path(workspace)
        self.defaults = defaults

    def key(self, record: DeploymentRecord) -> str:
        return record.name

    def created(self, record: DeploymentRecord) -> datetime:
        return record.created

    def default_backend(self, defaults: Mapping[str, Any] | None = None) -> str:
        """The backend of a deployment that names none: the ``deploy:`` key's, else the site's."""
        chosen = (self.defaults() if defaults is None else defaults).get("backend")
        return chosen if isinstance(chosen, str) and chosen in self.factories else self.default

    # --- create ----------------------------------------------------------------------------

    def with_format(self, spec: DeploymentSpec) -> DeploymentSpec:
        """The spec with its format read from the artifact (checked when declared)."""
        local = workspace_path(self.workspace, spec.artifact)
        if local is None:
            return spec.model_copy(update={"format": _uri_format(spec.artifact, spec.format)})
        try:
            found = detect(local, spec.format)
        except FormatError as error:
            raise _format_error(error, local, spec.artifact) from error
        return spec.model_copy(update={"format": found.name})

    def detect(self, path: str) -> dict[str, Any]:
        """What the deploy form shows for a workspace file or directory."""
        local = workspace_path(self.workspace, path)
        if local is None:
            raise DeployError(f"{path!r} is not a path inside the workspace")
        try:
            found = detect(local)
        except FormatError as error:
            raise _format_error(error, local, path) from error
        return {
            "path": str(PurePosixPath(path)),
            "format": found.name,
            "description": found.description,
            "name": suggest_name(local),
            "protocols": ["v2", *(["v1"] if found.v1_local else [])],
        }

    async def create(self, body: Any) -> DeploymentRecord:
        defaults = self.defaults()
        spec = self.with_format(parse_spec(body, self.workspace, defaults))
        name = spec.backend or self.default_backend(defaults)
        backend = self.usable(name)  # the policy; an unconfigured name lists the configured
        spec = spec.model_copy(update={"backend": name})
        await self._refuse_taken(spec.name, name)
        record = await backend.create(spec)
        self._owners[record.name] = name
        return record

    async def _refuse_taken(self, deployment: str, target: str) -> None:
        """DeploymentExists when another backend serves a deployment of that name (the
        target backend refuses its own duplicates)."""
        for name in self.factories:
            if name == target:
                continue
            try:
                await self.backend(name).get(deployment)
            except (DeploymentNotFound, BackendUnavailable):
                continue
            raise DeploymentExists(
                f"a deployment named {deployment!r} exists already (backend {name!r})"
            )

    # --- read and act (list, find and get: Backends) ---------------------------------------

    async def logs(self, deployment: str, tail: int | None = None) -> str:
        backend, record = await self.find(deployment)
        return await backend.logs(record.name, tail)

    async def delete(self, deployment: str) -> None:
        backend, record = await self.find(deployment)
        await backend.delete(record.name)
        self._owners.pop(deployment, None)

    async def predict(self, deployment: str, body: bytes, path: str = "") -> Response:
        backend, record = await self.find(deployment)
        return await backend.predict(record.name, body, path)

    async def signature(self, deployment: str) -> Signature:
        backend, record = await self.find(deployment)
        return await backend.signature(record.name)

    async def share(
        self, deployment: str, note: str = "", expires_in: int | None = None
    ) -> ShareToken:
        backend, record = await self.find(deployment)
        return await backend.share(record.name, note, expires_in)
