"""``GET /hub/api/codespace/git-credential``: the user's current Git host token, for git.

A codespace's git asks its credential helper (``codespace git-credential``,
:mod:`codespace.cli.git_credential`) for the Git host's credentials at each push or fetch;
the helper calls this endpoint with the server's own token. The hub refreshes the login
first (oauthenticator's ``refresh_user``: the access token is checked with the provider and,
when it expired, renewed with the refresh token) and answers
``{"host", "username", "password"}``: 404 when the hub has no Git host login or the user no
token (log in again), 403 without the scope.

The scope is :data:`SCOPE` (``custom:codespace:git-credential``), defined by
:func:`configure` and given to the ``user`` role (the user's own tokens) and the ``server``
role filtered to the owner (``!user``), so a codespace gets only its owner's token.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import has_scope
from tornado import web

from codespace.gitauth import GitCredential
from hub.configured import configured
from spawner.git_credentials import credential_from

SCOPE = "custom:codespace:git-credential"
PATH = r"/api/codespace/git-credential"
SETTING = "codespace_git_host"  # tornado setting: {"url": ..., "username": ...}


class GitCredentialHandler(APIHandler):
    """Answer the user's token for the Git host (see the module docstring)."""

    async def get(self) -> None:
        user = self.current_user
        if user is None or not hasattr(user, "spawners"):
            raise web.HTTPError(403, "Only users have Git host credentials.")
        if not has_scope(f"{SCOPE}!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"Reading Git host credentials needs the {SCOPE} scope.")
        host = self.settings.get(SETTING) or {}
        if not host.get("url"):
            raise web.HTTPError(404, "This hub has no Git host login.")
        refreshed = await self.refresh_auth(user, force=True)
        if refreshed is None:
            raise web.HTTPError(404, "The Git host login has expired: log in to the hub again.")
        credential = credential_from(await user.get_auth_state(), host["url"], host["username"])
        if credential is None:
            raise web.HTTPError(404, "No Git host token for this user: log in to the hub again.")
        self.log.info("Git host credential for %s given to %s", credential.host, user.name)
        self.set_header("Cache-Control", "no-store")
        self.write(json.dumps(_reply(credential)))


def _reply(credential: GitCredential) -> dict[str, str]:
    return {
        "host": credential.host,
        "username": credential.username,
        "password": credential.token,
    }


def configure(c: Any, url: str, username: str) -> None:
    """Serve the endpoint and grant its scope (see the module docstring) in config ``c``."""
    hub = c.JupyterHub
    hub.extra_handlers = [*configured(hub, "extra_handlers", []), (PATH, GitCredentialHandler)]
    settings = dict(configured(hub, "tornado_settings", {}))
    settings[SETTING] = {"url": url, "username": username}
    hub.tornado_settings = settings
    scopes = dict(configured(hub, "custom_scopes", {}))
    scopes[SCOPE] = {"description": "Read your Git host token (git's credential helper)."}
    hub.custom_scopes = scopes
    roles = list(configured(hub, "load_roles", []))
    grants = {"user": SCOPE, "server": f"{SCOPE}!user"}
    for name, scope in grants.items():
        role = next((r for r in roles if r.get("name") == name), None)
        if role is None:
            role = {"name": name, "scopes": ["self"] if name == "user" else _server_scopes()}
            roles.append(role)
        role["scopes"] = [*role.get("scopes", []), scope]
    hub.load_roles = roles


def _server_scopes() -> list[str]:
    """JupyterHub's own default scopes of the ``server`` role (kept when we add one)."""
    return ["users:activity!user", "access:servers!server"]
