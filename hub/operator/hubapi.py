"""The hub's REST API as the operator uses it (httpx, the operator's service token).

:class:`HubUnavailable` is a hub that does not answer (down, restarting, its proxy without a
route): the operator retries later. :class:`HubRefused` is an answer that retrying will not
change (a bad option, a policy refusal, a missing scope): the resource's status says it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx


class HubUnavailable(RuntimeError):
    """The hub did not answer; try again later."""


class HubRefused(RuntimeError):
    """The hub refused the request; the message is the hub's."""


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


class HubApi:
    """``api_url`` is the hub's API (``http://hub:8081/hub/api``)."""

    def __init__(self, api_url: str, token: str, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kw)
        except httpx.HTTPError as error:
            raise HubUnavailable(f"the hub at {self.api_url} does not answer: {error}") from None
        if response.status_code in (502, 503, 504):
            raise HubUnavailable(f"the hub answers {response.status_code}: not ready")
        json_reply = response.headers.get("content-type", "").startswith("application/json")
        if response.status_code >= 400 and not json_reply:
            # the hub's API answers errors in JSON: a page is the proxy (or a hub still
            # starting) answering for it
            raise HubUnavailable(
                f"{method} {path}: {response.status_code} from the proxy, not the hub's API"
            )
        return response

    async def user(self, name: str) -> dict[str, Any] | None:
        """The user with all their servers (stopped ones too), None when there is none."""
        response = await self._request(
            "GET", f"/users/{_path(name)}", params={"include_stopped_servers": "1"}
        )
        if response.status_code == 404:
            return None
        _check(response)
        return response.json()

    async def ensure_user(self, name: str) -> None:
        response = await self._request("POST", f"/users/{_path(name)}")
        if response.status_code != 409:
            _check(response)

    async def start(self, user: str, server: str, options: dict[str, Any]) -> None:
        """Start (or find started) ``user``'s ``server``; a start under way is not repeated."""
        response = await self._request(
            "POST", f"/users/{_path(user, 'servers', server)}", json=options
        )
        if response.status_code == 400 and "already" in response.text:
            return  # running or starting: never a second spawn
        _check(response)

    async def stop(self, user: str, server: str, *, remove: bool = False) -> None:
        body = {"remove": True} if remove else None
        path = f"/users/{_path(user, 'servers', server)}"
        response = await self._request("DELETE", path, json=body)
        if response.status_code == 404:
            return
        _check(response)

    async def progress(self, user: str, server: str) -> AsyncIterator[dict[str, Any]]:
        """The start's progress events (Server-Sent Events), until ready or failed."""
        path = f"/users/{_path(user, 'servers', server, 'progress')}"
        try:
            async with self._client.stream("GET", path, timeout=None) as response:
                if response.status_code >= 400:
                    return
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        yield json.loads(line[5:])
        except httpx.HTTPError as error:
            raise HubUnavailable(f"the hub's progress stream ended: {error}") from None


def _check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json().get("message") or response.text
    except ValueError:
        message = response.text
    raise HubRefused(f"the hub refused ({response.status_code}): {message}")
