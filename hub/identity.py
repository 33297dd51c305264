"""Log in with the Git host: oauthenticator configured from one small settings document.

``codespace-hub --login gitea --login-url https://gitea.example.com --login-client-id ID
--login-client-secret-file F`` (or ``--login-config login.yaml`` with the same keys), or on
Kubernetes the chart value ``custom.codespaceLogin``, picks the provider:

============== ========================== ===============================================
provider       oauthenticator class       groups (become JupyterHub groups)
============== ========================== ===============================================
gitea          GenericOAuthenticator      Gitea's OpenID Connect userinfo ``groups``
               (Gitea's OAuth2 endpoints)  (organisations and ``org:team``)
gitlab         GenericOAuthenticator      GitLab's OpenID Connect userinfo ``groups``
oidc           GenericOAuthenticator      the userinfo claim ``groups_claim``
               (endpoints from discovery)
github         GitHubOAuthenticator       teams as ``org/team`` (``read:org``)
shared-password SharedPasswordAuthenticator none (the default: a generated password)
============== ========================== ===============================================

For every provider: ``manage_groups`` (groups follow the provider at each login and
refresh), the user's tokens kept in the encrypted ``auth_state`` (``CryptKeeper.keys``: a
key generated in the data directory locally, the chart's Secret on Kubernetes) and
refreshed before each spawn and at each use (``refresh_pre_spawn``, oauthenticator's
refresh-token grant when the access token has expired). The Git host (``git_url``; by
default the provider's own URL for gitea, gitlab and github) is where the token clones
private repositories (:mod:`spawner.git_credentials`, :mod:`hub.git_credentials`).
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codespace.gitauth import TOKEN_USERNAMES
from hub.configured import configured

Provider = Literal["shared-password", "gitea", "gitlab", "github", "oidc"]
GITHUB = "https://github.com"
SPAWN_WAIT = 3  # seconds a start request waits for the spawn (a refusal is a 400 within it)


class LoginSettings(BaseModel):
    """How users log in (the keys of ``--login-config``)."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider = "shared-password"
    url: str = Field("", description="the Git host's (or OIDC issuer's) base URL")
    client_id: str = ""
    client_secret: str = Field("", repr=False)
    client_secret_file: str = ""
    scope: list[str] | None = None
    username_claim: str = "preferred_username"
    groups_claim: str = "groups"
    admin_groups: list[str] = []
    allowed_groups: list[str] = []  # empty: everyone the provider lets in
    git_url: str = Field("", description="the Git host the token clones from")
    authorize_url: str = ""  # oidc: from discovery when empty
    token_url: str = ""
    userdata_url: str = ""

    @model_validator(mode="after")
    def _complete(self) -> LoginSettings:
        if self.provider == "shared-password":
            return self
        if self.provider == "github":
            self.url = (self.url or GITHUB).rstrip("/")
        if not self.url and not (self.authorize_url and self.token_url and self.userdata_url):
            raise ValueError(f"login provider {self.provider}: url is required")
        if not self.client_id:
            raise ValueError(f"login provider {self.provider}: client_id is required")
        if self.client_secret_file and not self.client_secret:
            self.client_secret = Path(self.client_secret_file).read_text().strip()
        if not self.client_secret:
            raise ValueError(
                f"login provider {self.provider}: client_secret or client_secret_file is required"
            )
        self.url = self.url.rstrip("/")
        if not self.git_url and self.provider in ("gitea", "gitlab", "github"):
            self.git_url = self.url
        if self.git_url and not self.git_url.startswith("https://"):
            raise ValueError(f"git_url {self.git_url!r}: an https:// URL is needed")
        return self

    @property
    def token_username(self) -> str:
        return TOKEN_USERNAMES.get(self.provider, "oauth2")


def discover(issuer: str, timeout: float = 10.0) -> dict[str, Any]:
    """The provider's OpenID Connect discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - admin's URL
        return json.loads(response.read())


def endpoints(settings: LoginSettings) -> dict[str, str]:
    """``authorize_url``, ``token_url`` and ``userdata_url`` for a generic provider."""
    given = {
        "authorize_url": settings.authorize_url,
        "token_url": settings.token_url,
        "userdata_url": settings.userdata_url,
    }
    if settings.provider == "gitea":
        base = settings.url
        known = {
            "authorize_url": f"{base}/login/oauth/authorize",
            "token_url": f"{base}/login/oauth/access_token",
            "userdata_url": f"{base}/login/oauth/userinfo",
        }
    elif settings.provider == "gitlab":
        base = settings.url
        known = {
            "authorize_url": f"{base}/oauth/authorize",
            "token_url": f"{base}/oauth/token",
            "userdata_url": f"{base}/oauth/userinfo",
        }
    elif all(given.values()):
        known = {}
    else:
        document = discover(settings.url)
        known = {
            "authorize_url": document["authorization_endpoint"],
            "token_url": document["token_endpoint"],
            "userdata_url": document["userinfo_endpoint"],
        }
    return {key: value or known[key] for key, value in given.items()}


DEFAULT_SCOPES = {
    "gitea": ["openid", "profile", "email", "groups"],
    "gitlab": ["openid", "profile", "email", "read_repository", "write_repository"],
    "oidc": ["openid", "profile", "email", "groups", "offline_access"],
    "github": ["read:user", "read:org", "repo"],
}


def github_groups(auth_state: dict[str, Any]) -> list[str]:
    """GitHub teams as ``org/team`` group names."""
    return [
        f"{team['organization']['login']}/{team['slug']}"
        for team in auth_state.get("teams") or []
        if team.get("organization", {}).get("login") and team.get("slug")
    ]


def authenticator_config(settings: LoginSettings, callback_url: str) -> dict[str, Any]:
    """The config sections for ``settings`` (plain data; ``configure_identity`` applies
    them). ``callback_url`` is the hub's public ``.../hub/oauth_callback``."""
    if settings.provider == "shared-password":
        return {"JupyterHub": {"authenticator_class": "shared-password"}}
    common: dict[str, Any] = {
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "oauth_callback_url": callback_url,
        "scope": settings.scope or DEFAULT_SCOPES[settings.provider],
        "manage_groups": True,
        "enable_auth_state": True,
        "refresh_pre_spawn": True,
        "admin_groups": set(settings.admin_groups),
    }
    # explicit either way: a base config's Authenticator.allow_all must not open a hub that
    # names its groups
    common["allow_all"] = not settings.allowed_groups
    if settings.allowed_groups:
        common["allowed_groups"] = set(settings.allowed_groups)
    if settings.provider == "github":
        section = {
            **common,
            "populate_teams_in_auth_state": True,
            "auth_state_groups_key": github_groups,
        }
        if settings.url != GITHUB:  # GitHub Enterprise
            section["github_url"] = settings.url
        return {"JupyterHub": {"authenticator_class": "github"}, "GitHubOAuthenticator": section}
    section = {
        **common,
        **endpoints(settings),
        "username_claim": settings.username_claim,
        "auth_state_groups_key": f"oauth_user.{settings.groups_claim}",
    }
    return {
        "JupyterHub": {"authenticator_class": "generic-oauth"},
        "GenericOAuthenticator": section,
    }


def configure_identity(
    c: Any, settings: LoginSettings, *, callback_url: str, crypt_key: bytes | None = None
) -> None:
    """Apply ``settings`` to config ``c``: the authenticator, the encryption key of
    ``auth_state`` (``crypt_key``, or one configured already: required with a provider), the
    Git host token for the spawners and the credential endpoint (:mod:`hub.git_credentials`)."""
    from hub import git_credentials

    for section, values in authenticator_config(settings, callback_url).items():
        for name, value in values.items():
            setattr(c[section], name, value)
    if settings.provider == "shared-password":
        return
    if crypt_key is not None:
        c.CryptKeeper.keys = [crypt_key]
    elif not (configured(c.CryptKeeper, "keys", None) or os.environ.get("JUPYTERHUB_CRYPT_KEY")):
        raise ValueError(
            "a login provider keeps tokens in auth_state: set CryptKeeper.keys "
            "(Helm: hub.config.CryptKeeper.keys) or JUPYTERHUB_CRYPT_KEY"
        )
    # the login is refreshed with the provider before each start (refresh_pre_spawn), so a
    # refused start (the policy, a bad option) is known only after that round trip: wait that
    # long for it, so the REST API and the form still answer 400 with the reason
    settings_ = dict(configured(c.JupyterHub, "tornado_settings", {}))
    settings_["slow_spawn_timeout"] = max(settings_.get("slow_spawn_timeout", 0), SPAWN_WAIT)
    c.JupyterHub.tornado_settings = settings_
    if settings.git_url:
        c.Spawner.git_host_url = settings.git_url
        c.Spawner.git_token_username = settings.token_username
        git_credentials.configure(c, settings.git_url, settings.token_username)


def load_login_settings(path: str | Path, **overrides: Any) -> LoginSettings:
    """``--login-config FILE`` (YAML, the keys of :class:`LoginSettings`) with the flags'
    values over it; errors name the file, line and key (:class:`SpecError`)."""
    from pydantic import ValidationError

    from codespace.spec.errors import SpecError
    from codespace.spec.parse import Document, parse_yaml
    from codespace.spec.validate import diagnostics, model_unknown_key

    document = parse_yaml(Path(path).read_text(), str(path)) if path else None
    data = dict(document.data or {}) if document else {}
    if not isinstance(data, dict):
        raise SpecError.at(document.locate(()) if document else None, "expected a mapping")
    data.update({key: value for key, value in overrides.items() if value not in (None, "", [])})
    try:
        return LoginSettings.model_validate(data)
    except ValidationError as error:
        where = document or Document("the --login flags", data)
        unknown = model_unknown_key(LoginSettings)
        raise SpecError(diagnostics(error, where, unknown_key=unknown)) from None
    except OSError as error:
        raise SpecError(f"login settings: {error}") from None
