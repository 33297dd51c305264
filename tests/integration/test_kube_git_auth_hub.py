"""A user's Git host token on Kubernetes: a real hub, KubeCodespaceSpawner, the fake API.

The hub's login is a test authenticator whose ``refresh_user`` (run before each spawn,
``refresh_pre_spawn``) gives an oauthenticator-like ``auth_state`` with an access token, so
JupyterHub's own code runs the spawner's ``auth_state_hook``. The repository is
``https://git.example.org/...``: the hub's git finds it in a local directory through a
``url.<dir>.insteadOf`` rule of its ``~/.gitconfig`` (no Git server is started).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from pathlib import Path

import pytest

from codespace.gitauth import GitCredential, header_env
from codespace.kube.gitauth import CREDENTIAL_HELPER, git_secret_name
from tests.fakekube import FakeKube, JobOutcome
from tests.helpers.hub import running_hub
from tests.helpers.k8s_schema import assert_valid
from tests.helpers.repos import make_repo

pytestmark = pytest.mark.integration

NAMESPACE = "codespaces"
VENV_BIN = str(Path(sys.executable).parent)
GIT_HOST = "https://git.example.org"
TOKEN_PREFIX = "gho_t0kenF0r"

# Python, appended to the hub's configuration: a login whose auth_state has a token
AUTHENTICATOR = f"""
from jupyterhub.auth import Authenticator

class GitHostLogin(Authenticator):
    refreshed = 0

    async def authenticate(self, handler, data):
        return None  # the test only uses the API

    async def refresh_user(self, user, handler=None):
        GitHostLogin.refreshed += 1
        token = f"{TOKEN_PREFIX}{{user.name}}n{{GitHostLogin.refreshed}}"
        return {{"name": user.name, "auth_state": {{"access_token": token}}}}

c.JupyterHub.authenticator_class = GitHostLogin
c.Authenticator.allow_all = True
c.Authenticator.enable_auth_state = True
c.Authenticator.refresh_pre_spawn = True
c.Spawner.git_host_url = {GIT_HOST!r}
"""


@pytest.fixture(scope="module")
def kube():
    with FakeKube() as fake:
        fake.namespaces.add(NAMESPACE)
        fake.kubelet.base_env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin"}
        fake.built = []

        def build(job: dict) -> JobOutcome:
            fake.built.append(job)
            fake.registry.add(job["metadata"]["annotations"]["codespace.io/image"])
            return JobOutcome(log="#1 built\n")

        fake.job_handler = build
        yield fake


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> Path:
    """Where https://git.example.org/alice/<name>.git are (directories <name>.git)."""
    return tmp_path_factory.mktemp("githost")


@pytest.fixture(scope="module")
def hub(kube, repos, tmp_path_factory):
    data = tmp_path_factory.mktemp("kubegithub")
    home = data / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(f'[url "{repos}/"]\n\tinsteadOf = {GIT_HOST}/alice/\n')
    kubeconfig = kube.kubeconfig(data / "kubeconfig", namespace=NAMESPACE)
    document = {
        "registry": {"prefix": f"{kube.registry_host}/codespaces", "insecure": True},
        "build": {"baseImage": "registry.example.org/singleuser:test"},
        "profiles": [{"name": "small", "default": True, "cpu": 2, "memory": "4Gi"}],
    }
    extra = f"""
c.JupyterHub.spawner_class = "spawner.kubernetes.KubeCodespaceSpawner"
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.KubeCodespaceSpawner.namespace = {NAMESPACE!r}
c.KubeCodespaceSpawner.codespace_config = {document!r}
c.KubeCodespaceSpawner.args = ["--ServerApp.allow_root=True"]
c.KubeCodespaceSpawner.start_timeout = 120
c.KubeCodespaceSpawner.http_timeout = 60
{AUTHENTICATOR}
"""
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(home),
        "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    }
    with running_hub(data / "hub", extra_config=extra, base_config=None, env=env) as running:
        yield running


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def secret_forms(token: str) -> list[str]:
    header = header_env(GitCredential(GIT_HOST, token))["GIT_CONFIG_VALUE_0"]
    return [token, header, header.rsplit(" ", 1)[-1]]


def tokens_in(text: str) -> set[str]:
    """The test tokens found in ``text``, in any form they travel in."""
    found = set()
    for number in range(1, 20):
        for user in ("alice", "bob"):
            token = f"{TOKEN_PREFIX}{user}n{number}"
            if any(form in text for form in secret_forms(token)):
                found.add(token)
    return found


def secret_header(kube: FakeKube, user: str) -> str | None:
    secret = kube.get("v1", "secrets", NAMESPACE, git_secret_name(user))
    if secret is None:
        return None
    assert_valid(
        {k: v for k, v in secret.items() if k in ("apiVersion", "kind", "metadata", "data", "type")}
    )
    return base64.b64decode(secret["data"]["GIT_CONFIG_VALUE_0"]).decode()


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def test_the_token_reaches_the_clones_through_the_users_secret_only(kube, hub, repos):
    make_repo(
        repos / "proj.git",
        {
            ".codespace/codespace.yaml": "python:\n  requirements: [requirements.txt]\n",
            "requirements.txt": "rich\n",
        },
    )
    events = hub.spawn("alice", "one", {"repo": f"{GIT_HOST}/alice/proj.git"}, timeout=180)
    text = messages(events)
    assert events[-1].get("ready"), text + hub.log_text()[-3000:]
    name = git_secret_name("alice")
    assert f"Secret {name}" in text

    # the Secret has the header of the token of this spawn's refresh
    header = secret_header(kube, "alice")
    [token] = tokens_in(header)
    assert header == header_env(GitCredential(GIT_HOST, token))["GIT_CONFIG_VALUE_0"]
    secret = kube.get("v1", "secrets", NAMESPACE, name)
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "codespace-hub"
    assert secret["metadata"]["labels"]["codespace.io/owner"] == "alice"

    reference = {"secretKeyRef": {"name": name, "key": "GIT_CONFIG_VALUE_0"}}
    [job] = kube.built
    assert_valid(job)
    pod = kube.get("v1", "pods", NAMESPACE, "jupyter-alice--one")
    assert_valid({k: v for k, v in pod.items() if k != "status"})
    clones = [
        job["spec"]["template"]["spec"]["initContainers"][0],
        pod["spec"]["initContainers"][0],
    ]
    for clone in clones:
        env = env_of(clone)
        assert env["GIT_CONFIG_KEY_0"]["value"] == f"http.{GIT_HOST}/.extraHeader"
        assert env["GIT_CONFIG_VALUE_0"]["valueFrom"] == reference
    # the server's git asks the hub (the platform's helper in the image), for this host only
    server = env_of(pod["spec"]["containers"][0])
    assert server["GIT_CONFIG_KEY_1"]["value"] == f"credential.{GIT_HOST}.helper"
    assert server["GIT_CONFIG_VALUE_1"]["value"] == CREDENTIAL_HELPER
    # no token anywhere but in the Secret: not in the pod, the Job, nor the hub's log
    assert tokens_in(json.dumps([pod, job])) == set()
    assert tokens_in(hub.log_text()) == set()

    # a second server of the same user: the Secret is replaced with the new token; stopping
    # one server keeps it for the other, stopping the last deletes it
    events = hub.spawn("alice", "two", {"repo": f"{GIT_HOST}/alice/proj.git"}, timeout=180)
    assert events[-1].get("ready"), messages(events)
    [newer] = tokens_in(secret_header(kube, "alice"))
    assert newer != token
    hub.stop("alice", "one")
    assert secret_header(kube, "alice") is not None
    hub.stop("alice", "two")
    assert secret_header(kube, "alice") is None


def test_a_repository_elsewhere_gets_no_secret_and_no_git_env(kube, hub, tmp_path):
    repo = make_repo(tmp_path / "local", {"README.md": "x\n"})
    events = hub.spawn("bob", "local", {"repo": str(repo)}, timeout=120)
    assert events[-1].get("ready"), messages(events)
    assert secret_header(kube, "bob") is None
    pod = kube.get("v1", "pods", NAMESPACE, "jupyter-bob--local")
    assert "env" not in pod["spec"]["initContainers"][0]
    # the helper is still named for the Git host: pushes there ask the hub
    server = env_of(pod["spec"]["containers"][0])
    assert server["GIT_CONFIG_VALUE_1"]["value"] == CREDENTIAL_HELPER
    hub.stop("bob", "local")
