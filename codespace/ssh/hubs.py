"""The hubs ``codespace login`` remembers: ``hubs.json`` in the user's config directory.

``$XDG_CONFIG_HOME/codespace/hubs.json`` (default ``~/.config/codespace/hubs.json``), mode
0600 in a 0700 directory, because it holds API tokens::

    {"default": "https://hub.example.org",
     "hubs": {"https://hub.example.org": {"url": ..., "user": "alice", "token": ...,
                                          "tokenId": "a12", "logins": {"alice/": "cs-alice"}}}}

Several hubs may be stored; the one logged in to last is the default. ``logins`` remembers
the SSH login name each codespace's session reported, so ``codespace ssh-config`` can write
``User`` for a codespace that is stopped.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Path segments where a URL stops being the hub's base URL (a pasted /hub/home or /user/x/lab).
_HUB_SEGMENTS = ("hub", "user", "users")


class LoginError(Exception):
    """No stored login fits, or a hub URL is not usable."""


@dataclass
class HubLogin:
    """One stored hub: its base URL (no trailing slash), the user and the API token."""

    url: str
    user: str
    token: str
    token_id: str | None = None
    logins: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"url": self.url, "user": self.user, "token": self.token}
        if self.token_id:
            data["tokenId"] = self.token_id
        if self.logins:
            data["logins"] = dict(sorted(self.logins.items()))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HubLogin:
        logins = data.get("logins")
        return cls(
            url=str(data["url"]),
            user=str(data["user"]),
            token=str(data["token"]),
            token_id=data.get("tokenId") or None,
            logins={str(k): str(v) for k, v in logins.items()} if isinstance(logins, dict) else {},
        )


def normalize_hub_url(url: str) -> str:
    """The hub's base URL: scheme, host and base path, without ``/hub/...`` or a trailing
    slash (``https://h.org/hub/home`` -> ``https://h.org``)."""
    text = url.strip()
    if "://" not in text:
        raise LoginError(f"{url!r} is not a URL: give it with http:// or https://")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoginError(f"{url!r} is not an http(s) URL of a hub")
    if parts.username or parts.password:
        raise LoginError("give the hub URL without a user name or password in it")
    segments = [s for s in parts.path.split("/") if s]
    for index, segment in enumerate(segments):
        if segment in _HUB_SEGMENTS:
            segments = segments[:index]
            break
    path = "/" + "/".join(segments) if segments else ""
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.lower(), path, "", ""))


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "codespace"


class HubStore:
    """``hubs.json``: read, change, write back (atomically, mode 0600)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "hubs.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"default": None, "hubs": {}}
        except (OSError, ValueError) as error:
            raise LoginError(f"cannot read {self.path}: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("hubs"), dict):
            raise LoginError(f"{self.path} is not a hubs file; remove it and log in again")
        return data

    def _write(self, data: dict[str, Any]) -> None:
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        fd, temp = tempfile.mkstemp(prefix=".hubs.", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(data, out, indent=2)
                out.write("\n")
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        os.chmod(self.path, 0o600)

    def all(self) -> list[HubLogin]:
        return [HubLogin.from_json(hub) for hub in self._read()["hubs"].values()]

    def get(self, url: str | None = None) -> HubLogin:
        """The login for ``url`` (any URL of that hub), else the default one."""
        data = self._read()
        key = normalize_hub_url(url) if url else data.get("default")
        hub = data["hubs"].get(key) if key else None
        if hub is None:
            where = f" to {key}" if key else ""
            raise LoginError(f"not logged in{where}: run `codespace login --hub URL` first")
        return HubLogin.from_json(hub)

    def save(self, login: HubLogin, *, make_default: bool = True) -> None:
        data = self._read()
        old = data["hubs"].get(login.url)
        if old and not login.logins and old.get("user") == login.user:
            login.logins = HubLogin.from_json(old).logins
        data["hubs"][login.url] = login.to_json()
        if make_default or not data.get("default"):
            data["default"] = login.url
        self._write(data)

    def remember_login(self, url: str, target: str, login_name: str) -> None:
        """Record the SSH login name the session of ``target`` (``user/server``) gave."""
        data = self._read()
        hub = data["hubs"].get(url)
        if hub is None or (hub.get("logins") or {}).get(target) == login_name:
            return
        hub.setdefault("logins", {})[target] = login_name
        self._write(data)

    def remember_host_key(self, url: str, target: str, fingerprint: str) -> None:
        """Record the host key fingerprint the session of ``target`` reported."""
        data = self._read()
        hub = data["hubs"].get(url)
        if hub is None or (hub.get("hostKeys") or {}).get(target) == fingerprint:
            return
        hub.setdefault("hostKeys", {})[target] = fingerprint
        self._write(data)

    def host_key(self, url: str, target: str) -> str | None:
        """The fingerprint last reported for ``target`` (None when never seen)."""
        hub = self._read()["hubs"].get(url) or {}
        return (hub.get("hostKeys") or {}).get(target)

    def remove(self, url: str | None = None) -> HubLogin:
        """Forget a hub (default: the default one); the next one stored becomes default."""
        login = self.get(url)
        data = self._read()
        del data["hubs"][login.url]
        if data.get("default") == login.url:
            data["default"] = next(iter(data["hubs"]), None)
        self._write(data)
        return login
