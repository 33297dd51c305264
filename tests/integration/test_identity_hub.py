"""Log in with an OpenID Connect provider, clone a private repository with the user's own
token, and the group policy, through a real hub.

A real provider (npm ``oidc-provider``, :mod:`tests.helpers.oidc`) knows alice (group
``gpu-team``) and bob (group ``students``); a real HTTPS smart-HTTP git server
(:mod:`tests.helpers.git_http`) serves ``alice/notes.git`` only to a request carrying a token
the provider says is alice's. The hub is the embedded local one, configured as
``codespace-hub --login oidc ... --policy policy.yaml`` would (``CODESPACE_HUB_LOGIN``,
``CODESPACE_HUB_POLICY``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from hub.identity import LoginSettings
from tests.helpers.git_http import GitHttpServer
from tests.helpers.hub import RunningHub, free_port, running_hub, uv_cache_config
from tests.helpers.kernel import run_in_kernel
from tests.helpers.oidc import OidcProvider, browser_login
from tests.helpers.repos import make_repo

TTL = 20  # seconds an access token lives: the last push needs a refreshed one

POLICY = """\
default:
  profiles: [small]
  maxCodespaces: 1
  gpus: 0
groups:
  gpu-team:
    profiles: "*"
    maxCodespaces: 3
    gpus: 0.5
  students:
    maxCodespaces: 1
    jobBackends: []
"""

PROFILES = """
c.LocalCodespaceSpawner.profiles = [
    {"slug": "small", "display_name": "Small"},
    {"slug": "gpu", "display_name": "GPU node"},
]
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("identity")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/hub/oauth_callback"
    accounts = {"alice": {"groups": ["gpu-team"]}, "bob": {"groups": ["students"]}}
    with OidcProvider(accounts, redirect_uris=[callback], access_token_ttl=TTL) as provider:
        with GitHttpServer(provider.username_for, root=tmp / "git") as git_server:
            private = git_server.make_private_repo(
                "alice", "notes", {"README.md": "# alice's notes\n", "hello.py": "print(1)\n"}
            )
            settings = LoginSettings(
                provider="oidc",
                url=provider.issuer,
                client_id=provider.client_id,
                client_secret=provider.client_secret,
                git_url=git_server.url,
            )
            login = tmp / "login.json"
            login.write_text(settings.model_dump_json())
            (tmp / "policy.yaml").write_text(POLICY)
            env = {
                **__import__("os").environ,
                "CODESPACE_HUB_LOGIN": str(login),
                "CODESPACE_HUB_POLICY": str(tmp / "policy.yaml"),
                "GIT_SSL_CAINFO": git_server.ca_file,
            }
            config = PROFILES + uv_cache_config(tmp_path_factory)
            with running_hub(tmp / "hub", extra_config=config, env=env, port=port) as hub:
                yield {
                    "hub": hub,
                    "provider": provider,
                    "git": git_server,
                    "private": private,
                    "tmp": tmp,
                }


def log_in(hub: RunningHub, user: str) -> requests.Session:
    session = requests.Session()  # one per user: the provider remembers a login
    final = browser_login(session, f"{hub.url}hub/oauth_login", user)
    assert final.status_code == 200, final.text[-2000:]
    return session


def user_token(hub: RunningHub, user: str) -> str:
    response = hub.api("POST", f"/users/{user}/tokens", json={"note": "test"})
    response.raise_for_status()
    return response.json()["token"]


def spawn_as(hub: RunningHub, token: str, user: str, server: str, options: dict) -> Any:
    response = hub.api("POST", f"/users/{user}/servers/{server}", json=options, token=token)
    if response.status_code >= 400:
        return response
    hub.started_servers.add((user, server))
    return hub.follow_progress(user, server, timeout=600)


def every_file_text(root: Path) -> Iterator[tuple[Path, str]]:
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path, path.read_bytes().decode(errors="replace")


def test_login_brings_the_providers_groups_and_clones_a_private_repository(world) -> None:
    hub, git_server = world["hub"], world["git"]
    log_in(hub, "alice")
    user = hub.api("GET", "/users/alice").json()
    assert user["groups"] == ["gpu-team"]  # manage_groups: the provider's groups

    token = user_token(hub, "alice")
    events = spawn_as(hub, token, "alice", "notes", {"repo": world["private"]})
    assert events[-1].get("ready"), events[-3:]
    clones = [r for r in git_server.requests if r.path.startswith("/alice/notes.git")]
    assert clones and all(r.user == "alice" for r in clones if r.status == 200)

    out, error = run_in_kernel(hub, "alice", "notes", "print(open('README.md').read())")
    assert error is None and "alice's notes" in out

    # git push from the codespace: the credential helper asks the hub for the token
    push = (
        "import subprocess\n"
        "run = lambda *a: subprocess.run(['git', *a], capture_output=True, text=True)\n"
        "run('-c', 'user.name=a', '-c', 'user.email=a@x', 'commit', '--allow-empty', '-m', 'x')\n"
        "r = run('push', 'origin', 'HEAD:refs/heads/from-codespace')\n"
        "print(r.returncode, r.stderr)\n"
    )
    out, error = run_in_kernel(hub, "alice", "notes", push)
    assert error is None and out.startswith("0 "), out
    pushes = [r for r in git_server.requests if "git-receive-pack" in r.path + r.query]
    assert any(r.user == "alice" and r.status == 200 for r in pushes)

    # an expired access token is renewed with the refresh token: a push after its lifetime
    first = provider_token(world, "alice")
    time.sleep(TTL + 2)
    out, error = run_in_kernel(hub, "alice", "notes", push.replace("from-codespace", "later"))
    assert error is None and out.startswith("0 "), out
    second = provider_token(world, "alice")
    assert second != first

    # the tokens are nowhere: not in the workspace (.git/config included), the server's
    # files and logs, the hub's log, the progress, the database (auth_state is encrypted)
    places = [hub.data_dir / "workspaces" / "alice", hub.data_dir / "servers" / "alice"]
    database = (hub.data_dir / "jupyterhub.sqlite").read_bytes()
    for secret in (first, second):
        for place in places:
            for path, text in every_file_text(place):
                assert secret not in text, path
        assert secret not in hub.log_text()
        assert secret.encode() not in database
        assert secret not in json.dumps(events)
    config = (hub.data_dir / "workspaces" / "alice" / "notes" / ".git" / "config").read_text()
    assert git_server.url in config and "extraHeader" not in config


def provider_token(world: dict[str, Any], user: str) -> str:
    """The access token the provider gave ``user`` (what the hub keeps in auth_state), read
    through the hub's credential endpoint with the user's own token."""
    hub = world["hub"]
    response = hub.api("GET", "/codespace/git-credential", token=user_token(hub, user))
    response.raise_for_status()
    body = response.json()
    assert body["host"] == world["git"].url.removeprefix("https://")
    assert world["provider"].username_for(body["password"]) == user
    return body["password"]


def test_the_group_policy_decides_profiles_counts_gpus_and_jobs(world) -> None:
    hub = world["hub"]
    session = log_in(hub, "bob")
    assert hub.api("GET", "/users/bob").json()["groups"] == ["students"]
    form = session.get(f"{hub.url}hub/spawn/bob/first").text
    assert 'value="small"' in form and 'value="gpu"' not in form  # only what bob may pick

    repo = make_repo(world["tmp"] / "plain", {"README.md": "# plain\n"})
    token = user_token(hub, "bob")
    refused = spawn_as(hub, token, "bob", "big", {"repo": str(repo), "profile": "gpu"})
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert 'profile "gpu"' in message and "students" in message and "(profiles)" in message
    assert "big" not in hub.api("GET", "/users/bob").json()["servers"]  # nothing left behind

    events = spawn_as(hub, token, "bob", "first", {"repo": str(repo), "profile": "small"})
    assert events[-1].get("ready"), events[-3:]
    second = spawn_as(hub, token, "bob", "second", {"repo": str(repo), "profile": "small"})
    assert second.status_code == 400
    assert "maxCodespaces" in second.json()["message"]
    assert 'group "students"' in second.json()["message"]

    job = hub.server_request(
        "bob",
        "first",
        "codespace/api/jobs",
        method="POST",
        json={"jobs": [{"name": "j", "command": ["true"]}]},
    )
    assert job.status_code == 403 and "jobBackends" in job.json()["message"], job.text

    # alice's group may hold half a GPU: a repository asking for a whole one is refused
    # before anything is built
    gpu_repo = make_repo(
        world["tmp"] / "gpu",
        {".codespace/codespace.yaml": "resources:\n  gpu: 1\n", "README.md": "# gpu\n"},
    )
    alice = user_token(hub, "alice")
    result = spawn_as(hub, alice, "alice", "trainer", {"repo": str(gpu_repo)})
    if isinstance(result, requests.Response):  # refused within the start request's wait
        assert result.status_code == 400, result.text
        text = result.json()["message"]
    else:  # refused after it: the progress says why
        assert result[-1].get("failed"), result[-3:]
        text = json.dumps(result)
    assert "(gpus)" in text and 'group "gpu-team"' in text and "0.5" in text, text
