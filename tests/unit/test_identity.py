"""The login settings: what each provider becomes in oauthenticator's configuration, the
errors a wrong settings file gives, and what ``codespace-hub --login`` stores."""

from __future__ import annotations

import json
import stat
import types
from pathlib import Path

import pytest
import yaml
from traitlets.config import Config

from codespace.spec.errors import SpecError
from hub.app import build_parser, crypt_key, hub_environment
from hub.identity import (
    LoginSettings,
    authenticator_config,
    configure_identity,
    load_login_settings,
)

CALLBACK = "http://127.0.0.1:8000/hub/oauth_callback"


def test_gitea_uses_its_oauth_endpoints_groups_and_git_host() -> None:
    settings = LoginSettings(
        provider="gitea", url="https://git.example.com/", client_id="id", client_secret="s"
    )
    config = authenticator_config(settings, CALLBACK)
    generic = config["GenericOAuthenticator"]
    assert config["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert generic["authorize_url"] == "https://git.example.com/login/oauth/authorize"
    assert generic["userdata_url"] == "https://git.example.com/login/oauth/userinfo"
    assert generic["manage_groups"] and generic["enable_auth_state"]
    assert generic["auth_state_groups_key"] == "oauth_user.groups"
    assert generic["refresh_pre_spawn"] and generic["allow_all"]
    assert settings.git_url == "https://git.example.com" and settings.token_username == "oauth2"
    closed = settings.model_copy(update={"allowed_groups": ["staff"]})
    section = authenticator_config(closed, CALLBACK)["GenericOAuthenticator"]
    assert section["allow_all"] is False and section["allowed_groups"] == {"staff"}


def test_github_takes_teams_as_groups_and_its_token_user_name() -> None:
    settings = LoginSettings(provider="github", client_id="id", client_secret="s")
    section = authenticator_config(settings, CALLBACK)["GitHubOAuthenticator"]
    teams = {"teams": [{"organization": {"login": "acme"}, "slug": "ml"}]}
    assert section["auth_state_groups_key"](teams) == ["acme/ml"]
    assert "repo" in section["scope"] and section["populate_teams_in_auth_state"]
    assert settings.git_url == "https://github.com" and settings.token_username == "x-access-token"


def test_a_settings_file_error_names_the_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "login.yaml"
    path.write_text("provider: gitea\nurl: https://g\nclient_idd: x\n")
    with pytest.raises(SpecError) as error:
        load_login_settings(path)
    assert f"{path}:3" in str(error.value) and "client_idd" in str(error.value)
    with pytest.raises(SpecError, match="client_id is required"):
        load_login_settings("", provider="gitea", url="u")


def test_configure_identity_grants_the_credential_scope_to_users_and_their_servers() -> None:
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self"]}]
    settings = LoginSettings(
        provider="oidc",
        url="http://127.0.0.1:1",
        authorize_url="http://127.0.0.1:1/auth",
        token_url="http://127.0.0.1:1/token",
        userdata_url="http://127.0.0.1:1/me",
        client_id="id",
        client_secret="s",
        git_url="https://git.example.com",
    )
    configure_identity(c, settings, callback_url=CALLBACK, crypt_key=b"k" * 32)
    roles = {role["name"]: role["scopes"] for role in c.JupyterHub.load_roles}
    assert "custom:codespace:git-credential" in roles["user"]
    assert "custom:codespace:git-credential!user" in roles["server"]
    assert c.Spawner.git_host_url == "https://git.example.com"
    assert c.JupyterHub.tornado_settings["slow_spawn_timeout"] >= 1
    with pytest.raises(ValueError, match=r"CryptKeeper\.keys"):
        configure_identity(Config(), settings, callback_url=CALLBACK)


def test_codespace_hub_stores_the_login_privately_and_checks_the_policy(tmp_path: Path) -> None:
    secret = tmp_path / "client-secret"
    secret.write_text("s3cret\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("default:\n  maxCodespaces: 1\n")
    args = build_parser().parse_args(
        [
            f"--data-dir={tmp_path / 'data'}",
            "--login=gitea",
            "--login-url=https://git.example.com",
            "--login-client-id=id",
            f"--login-client-secret-file={secret}",
            f"--policy={policy}",
        ]
    )
    env, login = hub_environment(args)
    stored = Path(env["CODESPACE_HUB_LOGIN"])
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["client_secret"] == "s3cret"
    assert "gitea" in login["login"] and env["CODESPACE_HUB_ADMIN_USERS"] == ""
    assert env["CODESPACE_HUB_POLICY"] == str(policy)
    key = crypt_key(tmp_path / "data" / "secrets" / "crypt-key")
    assert len(key) == 32 and crypt_key(tmp_path / "data" / "secrets" / "crypt-key") == key

    policy.write_text("default:\n  maxCodespace: 1\n")
    with pytest.raises(SystemExit, match="maxCodespace"):
        hub_environment(args)


def test_the_helm_snippet_configures_the_login_from_chart_values(monkeypatch) -> None:
    values = yaml.safe_load(Path("config/helm/values.yaml").read_text())
    snippet = values["hub"]["extraConfig"]["codespace-identity"]
    chart = {
        "custom.codespaceLogin": {
            "provider": "gitlab",
            "url": "https://gitlab.example.com",
            "client_id": "id",
            "client_secret": "s",
            "callback_url": "https://hub.example.com/hub/oauth_callback",
        },
        "custom.codespacePolicy": "/etc/codespace/policy.yaml",
    }
    z2jh = types.ModuleType("z2jh")
    z2jh.get_config = lambda key, default=None: chart.get(key, default)  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "z2jh", z2jh)
    c = Config()
    c.CryptKeeper.keys = ["00" * 32]
    exec(snippet, {"c": c})
    assert c.JupyterHub.authenticator_class == "generic-oauth"
    assert c.GenericOAuthenticator.token_url == "https://gitlab.example.com/oauth/token"
    assert c.KubeCodespaceSpawner.policy_file == "/etc/codespace/policy.yaml"
