"""REST handlers for deployments; thin: parse, call the deploy service, serialise.

``GET    /codespace/api/deployments``                    {"backends": [{"name", "default"}],
                                                          "deployments": [record, ...]}
``POST   /codespace/api/deployments``                    a DeploymentSpec (name, format
                                                          optional) -> 201 record
``GET    /codespace/api/deployments/_detect?path=P``     {"path", "format", "description",
                                                          "name", "protocols"}
``GET    /codespace/api/deployments/<name>``             one deployment, with a fresh state
``DELETE /codespace/api/deployments/<name>``             204
``GET    /codespace/api/deployments/<name>/logs?tail=N`` {"text": ...}
``POST   /codespace/api/deployments/<name>/predict``     a V2 infer (or V1) request body, sent to
                                                          the model server (``?path=`` a path under
                                                          its base URL); its answer as it is
``GET    /codespace/api/deployments/<name>/signature``   the model's inputs, outputs, an example
``POST   /codespace/api/deployments/<name>/tokens``      {"note", "expiresIn"} -> 201 a token

Errors are ``{"message": ...}``: 400 for a bad spec (naming the field), an unsupported or
corrupt model (naming the file) or an unknown backend; 404 for a name that is not one of the
user's deployments; 409 for a name in use; 503 for a backend that is unavailable.
Writes need the XSRF token when authenticated by cookie (jupyter_server checks it).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from codespace.deploy.backend import (
    BackendUnavailable,
    DeployError,
    DeploymentExists,
    DeploymentNotFound,
)
from codespace.deploy.service import DeployService
from codespace.jobs.models import seconds
from codespace.policy import PolicyRefused
from extensions.api import ServiceHandler, http_errors

API = r"/codespace/api/deployments"
NAME = r"(?P<name>[^/_][^/]*)"  # "_detect" is not a deployment name (they start with a letter)
NO_BODY = (204, 304)


# Deploy errors become JSON errors a user can read.
_errors = http_errors(
    (PolicyRefused, 403),
    (DeploymentNotFound, 404),
    (DeploymentExists, 409),
    (BackendUnavailable, 503),
    (DeployError, 400),
)


def expires_in(value: Any) -> int | None:
    """``expiresIn``: seconds (or a duration such as '7d'), or null for no expiry."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = seconds(value)
        except ValueError as error:
            raise DeployError(f"expiresIn: {error}") from error
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DeployError("expiresIn: a number of seconds (more than 0), or null")
    return value


def sub_path(value: str) -> str:
    """``?path=``: a relative path under the deployment's base URL."""
    path = value.strip().lstrip("/")
    if ".." in PurePosixPath(path).parts or "://" in path or "\\" in path:
        raise DeployError(f"path {value!r} is not a path under the deployment's URL")
    return path


class DeployHandler(ServiceHandler):
    auth_resource = "kernels"  # a deployment loads and runs the user's model, as a kernel does
    service: DeployService


class DeploymentsHandler(DeployHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self) -> None:
        await self.reply_listing("deployments")

    @web.authenticated
    @authorized
    @_errors
    async def post(self) -> None:
        self.reply(await self.service.create(self.json_body()), status=201)


class DetectHandler(DeployHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self) -> None:
        path = self.get_query_argument("path", "")
        if not path:
            raise web.HTTPError(400, "give the path of a model file or directory: ?path=")
        self.reply(self.service.detect(path))


class DeploymentHandler(DeployHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, name: str) -> None:
        self.reply(await self.service.get(name))

    @web.authenticated
    @authorized
    @_errors
    async def delete(self, name: str) -> None:
        await self.service.delete(name)
        self.set_status(204)
        self.finish()


class LogsHandler(DeployHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, name: str) -> None:
        self.reply({"text": await self.service.logs(name, self.tail())})


class PredictHandler(DeployHandler):
    @web.authenticated
    @authorized
    @_errors
    async def post(self, name: str) -> None:
        path = sub_path(self.get_query_argument("path", ""))
        answer = await self.service.predict(name, self.request.body or b"", path)
        self.set_status(answer.status)
        if answer.status in NO_BODY:
            self.finish()
            return
        self.finish(answer.body, set_content_type=answer.content_type)


class SignatureHandler(DeployHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, name: str) -> None:
        self.reply(await self.service.signature(name))


class TokensHandler(DeployHandler):
    @web.authenticated
    @authorized
    @_errors
    async def post(self, name: str) -> None:
        body = self.json_body()
        if not isinstance(body, dict):
            raise DeployError('the request body must be a JSON object: {"note", "expiresIn"}')
        note = body.get("note") or ""
        if not isinstance(note, str):
            raise DeployError("note: a string")
        token = await self.service.share(name, note, expires_in(body.get("expiresIn")))
        self.reply(token, status=201)


def deploy_handlers(service: DeployService) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"service": service}
    return [
        (API, DeploymentsHandler, kwargs),
        (rf"{API}/_detect", DetectHandler, kwargs),
        (rf"{API}/{NAME}", DeploymentHandler, kwargs),
        (rf"{API}/{NAME}/logs", LogsHandler, kwargs),
        (rf"{API}/{NAME}/predict", PredictHandler, kwargs),
        (rf"{API}/{NAME}/signature", SignatureHandler, kwargs),
        (rf"{API}/{NAME}/tokens", TokensHandler, kwargs),
    ]
