"""A real OpenID Connect provider for login tests, and a browser-less login through it.

``OidcProvider`` runs ``node tests/helpers/oidc_provider.mjs`` (npm ``oidc-provider`` 9 from
``.tools/node``, installed by ``scripts/install-node.sh``) on ``http://127.0.0.1:<free port>``
with one confidential client (``client_secret_basic``; PKCE optional) and the given accounts.
Its ``devInteractions`` login form takes any password; the login name is the account id.
Claims: ``sub``/``preferred_username`` = login name, ``email``, and ``groups`` (scope
``groups``), served by the userinfo endpoint ``/me``. Refresh tokens are always issued;
``access_token_ttl`` (seconds) lets a test see an access token expire.

    with OidcProvider({"alice": {"groups": ["admins"]}},
                      redirect_uris=[f"{hub_url}/hub/oauth_callback"]) as idp:
        c.GenericOAuthenticator.authorize_url = idp.authorize_url  # token_url, userinfo_url
        ...
        response = browser_login(requests.Session(), f"{hub_url}/hub/oauth_login", "alice")

``browser_login`` follows the redirects of an authorization-code login with ``requests``,
fills in the provider's login and consent forms, and returns the client's final response.
Missing node or package: ``tests.conftest.missing`` (skip locally, fail with ``CI=true``).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from tests.conftest import TOOLS, missing, require_executable

SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
NODE_MODULES = TOOLS / "node" / "node_modules"


class OidcProvider:
    """``oidc-provider`` in a node subprocess; ``start()``/``stop()`` or a context manager."""

    def __init__(
        self,
        accounts: Mapping[str, Mapping[str, Any]],
        *,
        redirect_uris: Sequence[str],
        client_id: str = "codespace-hub",
        client_secret: str | None = None,
        access_token_ttl: int = 3600,
        host: str = "127.0.0.1",
    ) -> None:
        self.accounts = {name: dict(claims) for name, claims in accounts.items()}
        self.redirect_uris = list(redirect_uris)
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.access_token_ttl = access_token_ttl
        self.host = host
        self.issuer = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._log_tail = ""

    # Endpoints (oidc-provider's default routes).
    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorize_url(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def userinfo_url(self) -> str:
        return f"{self.issuer}/me"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    def start(self, timeout: float = 30.0) -> OidcProvider:
        node = require_executable("node")
        if not (NODE_MODULES / "oidc-provider" / "package.json").is_file():
            missing("npm oidc-provider is not installed (run scripts/install-node.sh)")
        self._dir = tempfile.TemporaryDirectory(prefix="oidc-provider-")
        work = Path(self._dir.name)
        config = {
            "node_modules": str(NODE_MODULES),
            "host": self.host,
            "port": 0,
            "client": {
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "redirect_uris": self.redirect_uris,
            },
            "accounts": self.accounts,
            "access_token_ttl": self.access_token_ttl,
        }
        (work / "config.json").write_text(json.dumps(config))
        with open(work / "ready.out", "wb") as out, open(work / "provider.log", "wb") as log:
            self._proc = subprocess.Popen(
                [node, str(SCRIPT), str(work / "config.json")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log,
            )
        try:
            self._wait_ready(work / "ready.out", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, ready: Path, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited:\n{self.log_text()}")
            line = ready.read_text().strip()
            if line and not self.issuer:
                self.issuer = json.loads(line.splitlines()[0])["issuer"]
            if self.issuer:
                try:
                    if requests.get(self.discovery_url, timeout=2).ok:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"oidc-provider not ready after {timeout}s:\n{self.log_text()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._dir is not None:
            self._log_tail = self.log_text()
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        """The provider's stderr: warnings, ``METHOD /path`` per request (no query), errors."""
        if self._dir is None:
            return self._log_tail
        return (Path(self._dir.name) / "provider.log").read_text(errors="replace")

    def userinfo(self, token: str) -> dict[str, Any]:
        """Claims for an access token from ``/me``; raises ``requests.HTTPError`` if invalid."""
        response = requests.get(
            self.userinfo_url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def username_for(self, token: str) -> str | None:
        """``preferred_username`` of a valid access token, else None (a git server validator)."""
        try:
            return self.userinfo(token).get("preferred_username")
        except requests.HTTPError:
            return None


class _Forms(HTMLParser):
    """Collects ``<form>``s: action, method, and named ``<input>`` values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {key: value or "" for key, value in attrs}
        if tag == "form":
            self._current = {
                "action": attr.get("action", ""),
                "method": attr.get("method", "get").lower(),
                "fields": {},
            }
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and attr.get("name"):
            self._current["fields"][attr["name"]] = attr.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def _provider_form(response: requests.Response) -> dict[str, Any] | None:
    """The devInteractions login or consent form on a page (identified by ``prompt``)."""
    if "html" not in response.headers.get("Content-Type", ""):
        return None
    parser = _Forms()
    parser.feed(response.text)
    for form in parser.forms:
        if form["fields"].get("prompt") in ("login", "consent"):
            return form
    return None


def browser_login(
    session: requests.Session,
    start_url: str,
    username: str,
    password: str = "any",
    *,
    max_steps: int = 6,
    **request_kwargs: Any,
) -> requests.Response:
    """Log in as a browser would: GET ``start_url`` (a client's login URL that redirects to
    the provider), submit the provider's login and consent forms, follow the redirects back
    to the client's callback, and return the last response. ``request_kwargs`` (``verify``,
    ``timeout``) go to every request. Raises ``RuntimeError`` if the provider shows an error.
    """
    request_kwargs.setdefault("timeout", 30)
    response = session.get(start_url, **request_kwargs)
    for _ in range(max_steps):
        form = _provider_form(response)
        if form is None:
            if "oidc error" in response.text[:200]:
                raise RuntimeError(f"provider error at {response.url}: {response.text[:2000]}")
            return response
        fields = dict(form["fields"])
        if fields["prompt"] == "login":
            fields.update(login=username, password=password)
        action = urljoin(response.url, form["action"])
        response = session.post(action, data=fields, **request_kwargs)
    raise RuntimeError(f"login did not finish after {max_steps} forms; last page {response.url}")
