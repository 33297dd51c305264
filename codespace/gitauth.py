"""A user's own token for the configured Git host, handed to ``git`` without leaving a trace.

When users log in with the Git host (README "Identity and policy"), the hub keeps their access
token (encrypted, in JupyterHub's ``auth_state``) and uses it to clone their private
repositories. :class:`GitCredential` is that token for one host; the functions here turn it
into what git reads, as plain data:

- :func:`header_env`: ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n``
  environment variables that give git an ``http.<url>.extraHeader`` scoped to the host (git
  2.31+ reads configuration from the environment). The token is never an argument (the
  process list), never part of the remote URL, and never written into the workspace's
  ``.git/config``: the clone's configuration names the plain URL only;
- :func:`helper_env`: the same variables naming a git *credential helper* for the host only,
  so ``git push`` from a codespace asks the hub for the user's current token
  (``codespace git-credential``, :mod:`codespace.cli.git_credential`) instead of storing it;
- :func:`credential_reply`: the helper's answer in git's credential protocol.

Pure: no I/O; the spawners and the helper do the reading and the running.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

# The user name git sends with a token as password: GitHub wants x-access-token; Gitea,
# GitLab and most OpenID Connect-backed hosts take any name, "oauth2" by convention.
TOKEN_USERNAMES = {"github": "x-access-token"}
DEFAULT_TOKEN_USERNAME = "oauth2"  # noqa: S105 - a user name, not a secret


@dataclass(frozen=True)
class GitCredential:
    """The user's token for repositories under ``base_url`` (``https://host[:port]/``)."""

    base_url: str
    token: str
    username: str = DEFAULT_TOKEN_USERNAME

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"git host {self.base_url!r}: an https:// URL is needed")
        if any(ch in self.token for ch in "\r\n\x00") or not self.token:
            raise ValueError("the git token is empty or has control characters")

    def __repr__(self) -> str:  # never the token (logs, tracebacks)
        return f"GitCredential(base_url={self.base_url!r}, username={self.username!r})"

    @property
    def host(self) -> str:
        """``host`` or ``host:port``, as git's credential protocol names it."""
        return urlsplit(self.base_url).netloc.rsplit("@", 1)[-1]

    @property
    def scope(self) -> str:
        """The URL prefix git matches (``https://host[:port]/``)."""
        return f"https://{self.host}/"

    def covers(self, repo: str) -> bool:
        """Whether ``repo`` (a clone URL) is on this host over https."""
        parts = urlsplit(repo)
        return parts.scheme == "https" and parts.netloc.rsplit("@", 1)[-1] == self.host

    def authorization(self) -> str:
        pair = f"{self.username}:{self.token}".encode()
        return "Authorization: Basic " + base64.b64encode(pair).decode()


def config_env(pairs: Mapping[str, str]) -> dict[str, str]:
    """``GIT_CONFIG_COUNT`` and its ``KEY_n``/``VALUE_n`` for ``pairs`` (git 2.31+)."""
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for index, (key, value) in enumerate(pairs.items()):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def header_env(credential: GitCredential) -> dict[str, str]:
    """Environment for one git command that sends the token to the host only."""
    return config_env({f"http.{credential.scope}.extraHeader": credential.authorization()})


def helper_env(base_url: str, command: str) -> dict[str, str]:
    """Environment for a codespace: ``command`` is the credential helper for ``base_url``'s
    host (and no other); an empty helper first resets any helper configured before."""
    scope = f"https://{urlsplit(base_url).netloc}"
    key = f"credential.{scope}.helper"
    return {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": key,
        "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": key,
        "GIT_CONFIG_VALUE_1": command,
    }


def parse_request(text: str) -> dict[str, str]:
    """git's credential request (``key=value`` lines up to a blank line)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition("=")
        fields[key.strip()] = value
    return fields


def credential_reply(request: Mapping[str, str], credential: GitCredential | None) -> str:
    """The helper's answer to ``request``: the token for its own host over https, else
    nothing (git then tries its other helpers, or asks)."""
    if credential is None or request.get("protocol") != "https":
        return ""
    if request.get("host") != credential.host:
        return ""
    return f"username={credential.username}\npassword={credential.token}\n"
