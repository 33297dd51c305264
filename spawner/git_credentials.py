"""The user's Git host token at spawn time (a mixin for both spawners).

With a Git host login (:mod:`hub.identity`) JupyterHub keeps the user's access token in the
encrypted ``auth_state`` and, with ``refresh_pre_spawn``, refreshes it before every spawn;
then it calls the spawner's ``auth_state_hook``. The hook here keeps the token on the spawner
(in memory only: never in the spawner's saved state) as a
:class:`~codespace.gitauth.GitCredential` for :attr:`git_host_url`:

- :meth:`git_clone_env` is the environment for the hub's clone of a repository on that host
  (an ``extraHeader`` for the host, nothing for other hosts);
- :meth:`git_helper_env` is the environment of the codespace: git's credential helper for
  that host is ``codespace git-credential``, which asks the hub for the user's current token
  (``GET /hub/api/codespace/git-credential``, :mod:`hub.git_credentials`) at each push.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from traitlets import HasTraits, Unicode, default

from codespace.gitauth import DEFAULT_TOKEN_USERNAME, GitCredential, header_env, helper_env


def credential_from(
    auth_state: Mapping[str, Any] | None, base_url: str, username: str
) -> GitCredential | None:
    """The access token of ``auth_state`` (oauthenticator's) for ``base_url``, or None."""
    token = (auth_state or {}).get("access_token")
    if not base_url or not token:
        return None
    return GitCredential(base_url, str(token), username)


class GitCredentialsMixin(HasTraits):
    """``git_host_url`` and the auth_state hook that takes the user's token."""

    git_host_url = Unicode(
        "",
        config=True,
        help="""The Git host whose login token clones the user's private repositories
        (``https://gitea.example.com``). Set by :func:`hub.identity.configure_identity`
        from the login provider; empty: repositories are cloned without credentials.""",
    )
    git_token_username = Unicode(
        DEFAULT_TOKEN_USERNAME,
        config=True,
        help="""The user name git sends with the token (GitHub: ``x-access-token``; Gitea,
        GitLab and most others take any name).""",
    )
    git_credential_helper = Unicode(
        config=True,
        help="""The credential helper command git runs in a codespace for the Git host
        (default: the platform's ``codespace git-credential``).""",
    )

    @default("git_credential_helper")
    def _default_git_credential_helper(self) -> str:
        return f"{Path(sys.executable).parent / 'codespace'} git-credential"

    @default("auth_state_hook")
    def _default_auth_state_hook(self) -> Any:
        return GitCredentialsMixin._take_auth_state

    def _take_auth_state(self, auth_state: Mapping[str, Any] | None) -> None:
        self._git_credential = credential_from(
            auth_state, self.git_host_url, self.git_token_username
        )

    @property
    def git_credential(self) -> GitCredential | None:
        return getattr(self, "_git_credential", None)

    def git_clone_env(self, repo: str) -> dict[str, str]:
        """Environment for cloning ``repo``: the token's header when it is on the Git host."""
        credential = self.git_credential
        if credential is None or not credential.covers(repo):
            return {}
        return header_env(credential)

    def git_helper_env(self) -> dict[str, str]:
        """The codespace's git configuration (through the environment): the credential
        helper for the Git host; nothing without a Git host login."""
        if not self.git_host_url or self.git_credential is None:
            return {}
        return helper_env(self.git_host_url, self.git_credential_helper)
