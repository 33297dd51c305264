"""The local deploy backend (the embedded default), server extension side.

Deployments outlive the codespace that made them, so they are not the codespace server's:
the hub's deploy service (``hub/deploy``, a JupyterHub-managed service) keeps them and runs
their model servers as the user's account. This backend is its client: it calls the
service's API with the codespace server's own token (``JUPYTERHUB_API_TOKEN``, which the
local hub lets reach the service) and names where the model comes from (the workspace and
the codespace's environment, ``VIRTUAL_ENV``).

Options (``DeploySettings.options``): ``url`` (the service's API, default
``CODESPACE_DEPLOY_URL`` of the server's environment) and ``timeout`` (seconds, 300).
"""

from __future__ import annotations

from typing import Any, Self

import httpx

from codespace.deploy.backend import (
    BackendUnavailable,
    DeployBackend,
    DeployError,
    DeploymentExists,
    DeploymentNotFound,
    DeploySettings,
    Response,
)
from codespace.deploy.models import DeploymentRecord, DeploymentSpec, ShareToken, Signature

URL_ENV = "CODESPACE_DEPLOY_URL"
ERRORS = {404: DeploymentNotFound, 409: DeploymentExists}


def _message(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("message") or answer.reason_phrase)
    except ValueError:
        return answer.text[:500] or answer.reason_phrase


def _from_service(answer: httpx.Response) -> bool:
    """Whether an endpoint's error is the deploy service's (``{"message"}``: a deployment
    that is not serving) rather than the model server's (passed on as it is)."""
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"message"}


class LocalDeployBackend(DeployBackend):
    kind = "local"

    def __init__(self, settings: DeploySettings, url: str, timeout: float) -> None:
        self.settings = settings
        self.url = url.rstrip("/") + "/"
        token = settings.environment.get("JUPYTERHUB_API_TOKEN", "")
        self.client = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"token {token}"}, timeout=timeout
        )

    @classmethod
    def from_settings(cls, settings: DeploySettings) -> Self:
        options = dict(settings.options)
        url = options.get("url") or settings.environment.get(URL_ENV)
        if not url:
            raise BackendUnavailable(
                "the local deploy backend needs the hub's deploy service; this server was not "
                f"started by Codespace Hub (no {URL_ENV})"
            )
        return cls(settings, str(url), float(options.get("timeout", 300)))

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            answer = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise BackendUnavailable(f"the hub's deploy service does not answer: {error}") from None
        if answer.status_code >= 400:
            if answer.status_code in (401, 403, 502, 503):
                raise BackendUnavailable(f"the hub's deploy service: {_message(answer)}")
            raise ERRORS.get(answer.status_code, DeployError)(_message(answer))
        return answer

    async def create(self, spec: DeploymentSpec) -> DeploymentRecord:
        source = {
            "workspace": str(self.settings.workspace),
            "env": self.settings.environment.get("VIRTUAL_ENV", ""),
        }
        body = {"spec": spec.model_dump(mode="json"), "source": source}
        answer = await self._call("POST", "api/deployments", json=body)
        return DeploymentRecord.model_validate(answer.json())

    async def list(self) -> list[DeploymentRecord]:
        answer = await self._call("GET", "api/deployments")
        return [DeploymentRecord.model_validate(r) for r in answer.json()["deployments"]]

    async def get(self, name: str) -> DeploymentRecord:
        answer = await self._call("GET", f"api/deployments/{name}")
        return DeploymentRecord.model_validate(answer.json())

    async def logs(self, name: str, tail: int | None = None) -> str:
        answer = await self._call("GET", f"api/deployments/{name}/logs", params={"tail": tail or 0})
        return str(answer.json()["text"])

    async def delete(self, name: str) -> None:
        await self._call("DELETE", f"api/deployments/{name}")

    async def predict(self, name: str, body: bytes, path: str = "") -> Response:
        record = await self.get(name)
        if record.endpoint is None:
            raise DeployError(f"deployment {name!r} has no endpoint yet ({record.state})")
        target = path.lstrip("/") or record.endpoint.infer.removeprefix(record.endpoint.url)
        try:
            answer = await self.client.post(
                f"endpoints/{record.owner}/{name}/{target}",
                content=body,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as error:
            raise BackendUnavailable(f"the deployment does not answer: {error}") from None
        if answer.status_code in (400, 404) and _from_service(answer):
            raise ERRORS.get(answer.status_code, DeployError)(_message(answer))
        kind = answer.headers.get("content-type", "application/json")
        return Response(answer.status_code, answer.content, kind)

    async def signature(self, name: str) -> Signature:
        answer = await self._call("GET", f"api/deployments/{name}/signature")
        return Signature.model_validate(answer.json())

    async def share(self, name: str, note: str = "", expires_in: int | None = None) -> ShareToken:
        body = {"note": note, "expiresIn": expires_in}
        answer = await self._call("POST", f"api/deployments/{name}/tokens", json=body)
        return ShareToken.model_validate(answer.json())

    async def close(self) -> None:
        await self.client.aclose()
