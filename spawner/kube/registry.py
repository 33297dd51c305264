"""Does the registry already have an image? One registry v2 manifest ``HEAD``.

Anonymous first; on ``401`` with a ``Bearer`` challenge, a token from the realm (with the
configured credentials, if any); on a ``Basic`` challenge, the credentials directly.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryError(RuntimeError):
    """The registry answered something other than "present" or "absent"."""


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    reference: str

    @classmethod
    def parse(cls, image: str) -> ImageRef:
        name, reference = image, "latest"
        if "@" in name:
            name, reference = name.split("@", 1)
        elif ":" in name.rsplit("/", 1)[-1]:
            name, reference = name.rsplit(":", 1)
        first, _, rest = name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return cls(first, rest, reference)
        repository = name if "/" in name else f"library/{name}"
        return cls("registry-1.docker.io", repository, reference)


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""

    @classmethod
    def from_docker_config(cls, text: str, registry: str) -> Credentials:
        """Credentials for ``registry`` from a ``.dockerconfigjson`` document."""
        auths = (json.loads(text) or {}).get("auths", {})
        for host, entry in auths.items():
            if re.sub(r"^https?://", "", host).rstrip("/").split("/")[0] == registry:
                if entry.get("auth"):
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                    return cls(user, password)
                return cls(entry.get("username", ""), entry.get("password", ""))
        return cls()

    def basic(self) -> str | None:
        if not self.username:
            return None
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


async def _fetch(request: HTTPRequest):
    try:
        return await AsyncHTTPClient().fetch(request, raise_error=False)
    except (HTTPClientError, OSError) as error:
        raise RegistryError(f"cannot reach registry {request.url}: {error}") from None


async def image_exists(
    image: str,
    credentials: Credentials | None = None,
    *,
    insecure: bool = False,
) -> bool:
    """True when ``image`` is in its registry, False when the registry says it is not."""
    credentials = credentials or Credentials()
    ref = ImageRef.parse(image)
    scheme = "http" if insecure else "https"
    url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.reference}"
    headers = {"Accept": MANIFEST_TYPES}
    response = await _fetch(HTTPRequest(url, method="HEAD", headers=headers, request_timeout=20))
    if response.code == 401:
        challenge = response.headers.get("WWW-Authenticate", "")
        if challenge.lower().startswith("bearer"):
            params = dict(_CHALLENGE.findall(challenge))
            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            query.setdefault("scope", f"repository:{ref.repository}:pull")
            token_headers = {}
            if credentials.basic():
                token_headers["Authorization"] = credentials.basic()
            token_response = await _fetch(
                HTTPRequest(
                    f"{params.get('realm', '')}?{urlencode(query)}",
                    headers=token_headers,
                    request_timeout=20,
                )
            )
            if token_response.code != 200:
                raise RegistryError(f"registry token request failed: HTTP {token_response.code}")
            body = json.loads(token_response.body or b"{}")
            headers["Authorization"] = "Bearer " + (
                body.get("token") or body.get("access_token", "")
            )
        elif credentials.basic():
            headers["Authorization"] = credentials.basic()
        else:
            raise RegistryError(f"registry {ref.registry} needs credentials to read {image}")
        response = await _fetch(
            HTTPRequest(url, method="HEAD", headers=headers, request_timeout=20)
        )
    if response.code == 200:
        return True
    if response.code == 404:
        return False
    raise RegistryError(f"registry answered HTTP {response.code} for {image}")
