"""The hub's REST API as the SSH client uses it (stdlib only), and starting a codespace.

Everything goes to the hub with ``Authorization: token <t>`` (JupyterHub refuses ``?token=``):

- ``GET hub/api/user``: who the token belongs to;
- ``GET hub/api/users/{user}?include_stopped_servers=1``: the codespaces, running or not;
- ``POST hub/api/users/{user}/servers/{server}`` and its ``/progress`` (server-sent events):
  start a codespace and follow the start;
- ``GET user/{user}/{server}/codespace/api/session``: the codespace's ``ssh`` facts (login
  name, host key fingerprint);
- ``POST hub/api/codespace/ssh-keys``: add a public key.

Redirects are not followed (a token never travels to another URL); ``""`` is a user's default
server. :func:`ensure_running` starts a stopped codespace and waits for it, reporting the
hub's progress messages to a callback (the CLI prints them on stderr).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from codespace.ssh.hubs import HubLogin

# A user or server name the client accepts: it ends up in URLs, a ProxyCommand and ssh's
# HostKeyAlias, so nothing that a shell, ssh's % tokens or an option parser would read.
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,254}")
REFUSED = (401, 403)


class HubError(Exception):
    """The hub (or the codespace) answered with an error; ``status`` 0: not reachable."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Target:
    """A codespace: its owner and server name (``""``: the owner's default server)."""

    user: str
    server: str

    def __str__(self) -> str:
        return f"{self.user}/{self.server}"


def check_name(name: str, what: str) -> str:
    if not NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a valid name (letters, digits and _ . @ + -, "
            "not starting with - or .)"
        )
    return name


def parse_target(text: str, default_user: str) -> Target:
    """``USER/SERVER``, ``SERVER`` (the logged-in user's) or ``USER/`` (a default server)."""
    user, sep, server = text.partition("/")
    if not sep:
        user, server = default_user, text
    if "/" in server:
        raise ValueError(f"{text!r}: give USER/SERVER, SERVER or USER/")
    check_name(user, "user")
    if server:
        check_name(server, "codespace")
    return Target(user, server)


def fingerprint(key_base64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (``ssh-keygen -l`` format)."""
    try:
        blob = base64.b64decode(key_base64, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("not a base64 public key") from error
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None  # the 3xx reaches the caller as an HTTPError


_OPENER = urllib.request.build_opener(_NoRedirect)


def hub_error_message(error: urllib.error.HTTPError) -> str:
    """What the hub said in an error answer (its JSON ``message``), else the HTTP reason."""
    try:
        data = json.loads(error.read() or b"null")
    except ValueError:
        data = None
    text = data.get("message") if isinstance(data, dict) else None
    if 300 <= error.code < 400:
        return f"redirected to {error.headers.get('Location')} (is the hub URL right?)"
    return str(text or error.reason)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class HubClient:
    """A hub's REST API with one user's token."""

    def __init__(self, login: HubLogin, *, timeout: float = 30.0) -> None:
        self.login = login
        self.url = login.url.rstrip("/")
        self.timeout = timeout

    def absolute(self, path_or_url: str) -> str:
        """A URL the hub gave (a path from its root, or absolute with subdomains)."""
        if "://" in path_or_url:
            return path_or_url
        origin = urllib.parse.urlsplit(self.url)
        return f"{origin.scheme}://{origin.netloc}{path_or_url}"

    def open(self, method: str, url: str, body: Any = None, *, timeout: float | None = None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"token {self.login.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            return _OPENER.open(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as error:
            message = hub_error_message(error)
            if error.code in REFUSED:
                message = f"the hub refused the token ({error.code}: {message})"
            raise HubError(error.code, message) from error
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise HubError(0, f"cannot reach {url}: {reason}") from error

    def request(self, method: str, url: str, body: Any = None) -> Any:
        with self.open(method, url, body) as response:
            payload = response.read()
        try:
            return json.loads(payload) if payload else None
        except ValueError:
            return None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.request(method, f"{self.url}/hub/api/{path}", body)

    # who and what ------------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        return self.api("GET", "user")

    def servers(self, user: str) -> dict[str, dict[str, Any]]:
        """The user's servers by name (``""``: default), stopped ones included."""
        model = self.api("GET", f"users/{_quote(user)}?include_stopped_servers=1")
        return dict(model.get("servers") or {})

    def server(self, target: Target) -> dict[str, Any] | None:
        return self.servers(target.user).get(target.server)

    def server_url(self, target: Target, model: dict[str, Any] | None = None) -> str:
        """The codespace's URL, with a trailing slash (the hub's ``url`` when it gave one)."""
        if model and model.get("url"):
            return self.absolute(model["url"]).rstrip("/") + "/"
        path = f"/user/{_quote(target.user)}/"
        if target.server:
            path += f"{_quote(target.server)}/"
        return self.url + path

    def session(self, server_url: str) -> dict[str, Any]:
        return self.request("GET", server_url + "codespace/api/session") or {}

    # starting ----------------------------------------------------------------------------

    def _server_path(self, target: Target) -> str:
        return f"users/{_quote(target.user)}/servers/{_quote(target.server)}"

    def start(self, target: Target) -> int:
        """Ask the hub to start the codespace; its HTTP status (201 started, 202 pending)."""
        with self.open("POST", f"{self.url}/hub/api/{self._server_path(target)}") as response:
            return response.status

    def progress(self, target: Target, timeout: float) -> Iterator[dict[str, Any]]:
        """The start's progress events until the stream ends (server-sent events)."""
        url = f"{self.url}/hub/api/{self._server_path(target)}/progress"
        with self.open("GET", url, timeout=timeout) as response:
            for raw in response:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue  # keepalive comments, blank separators
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event

    # keys --------------------------------------------------------------------------------

    def add_key(self, key: str, title: str) -> bool:
        """Upload a public key; False when the hub already has it (409)."""
        try:
            self.api("POST", "codespace/ssh-keys", {"key": key, "title": title})
        except HubError as error:
            if error.status == 409:
                return False
            raise
        return True


Report = Callable[[str], None]


def _progress_line(event: dict[str, Any]) -> str:
    percent = event.get("progress")
    head = f"[{int(percent):3d}%] " if isinstance(percent, int | float) else ""
    return head + str(event.get("message") or "")


def _follow(hub: HubClient, target: Target, deadline: float, report: Report) -> None:
    """Follow the start's events until ready; raises when it failed or the stream ended."""
    last = ""
    while time.monotonic() < deadline:
        try:
            wait = max(1.0, min(60.0, deadline - time.monotonic()))
            for event in hub.progress(target, timeout=wait):
                line = _progress_line(event)
                if line.strip() and line != last:
                    report(line)
                    last = line
                if event.get("failed"):
                    reason = event.get("message") or "the hub gave no reason"
                    raise HubError(500, f"codespace {target} failed to start: {reason}")
                if event.get("ready"):
                    return
        except (TimeoutError, ConnectionError, http.client.HTTPException):
            pass  # a quiet or broken stream: look at the server and listen again
        except HubError as error:
            if error.status in REFUSED or error.status >= 500:
                raise
        model = hub.server(target)
        if model and model.get("ready"):
            return
        if not model or not model.get("pending"):
            raise HubError(500, f"codespace {target} stopped while starting; see the hub's page")
        time.sleep(0.5)
    raise HubError(504, f"codespace {target} did not start within the time limit")


def ensure_running(
    hub: HubClient, target: Target, *, timeout: float = 600.0, report: Report = lambda _: None
) -> str:
    """Start ``target`` unless it runs, wait until it is ready; its URL (trailing slash).

    A codespace that is stopping is waited for, then started. Raises :class:`HubError`
    when the hub refuses, the start fails, or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    servers = hub.servers(target.user)
    model = servers.get(target.server)
    if target.server and model is None:
        names = ", ".join(sorted(name or "(default)" for name in servers)) or "none"
        raise HubError(
            404, f"{target.user} has no codespace {target.server!r} (codespaces: {names})"
        )
    while model and model.get("pending") == "stop" and time.monotonic() < deadline:
        time.sleep(1.0)
        model = hub.server(target)
    if model and model.get("ready"):
        return hub.server_url(target, model)
    if not (model and model.get("pending") == "spawn"):
        report(f"starting codespace {target} ...")
        try:
            hub.start(target)
        except HubError as error:
            if error.status != 400 or "already running" not in str(error):
                raise HubError(error.status, f"cannot start {target}: {error}") from error
    else:
        report(f"codespace {target} is starting ...")
    _follow(hub, target, deadline, report)
    model = hub.server(target)
    report(f"codespace {target} is ready")
    return hub.server_url(target, model)


def websocket_url(http_url: str) -> str:
    """``http(s)://...`` -> ``ws(s)://...``."""
    scheme, rest = http_url.split("://", 1)
    return ("wss" if scheme == "https" else "ws") + "://" + rest
