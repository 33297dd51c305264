"""The user's Git host token in Kubernetes manifests: read from a Secret, never in a spec."""

from __future__ import annotations

import asyncio
import base64
import json
import re

import pytest
import yaml

from codespace.gitauth import GitCredential, header_env
from codespace.kube.config import parse_config
from codespace.kube.gitauth import (
    CREDENTIAL_HELPER,
    GitAuthRef,
    git_auth_ref,
    git_secret,
    git_secret_name,
)
from codespace.kube.plan import KubePlan, Names, launch_plan, make_kube_plan
from codespace.options import UserOptions
from codespace.spec.model import Codespace
from spawner.kubernetes import KubeCodespaceSpawner
from tests.helpers.k8s_schema import assert_all_valid, assert_valid
from tests.helpers.plans import resolution_of

TOKEN = "gho_s3cr3tT0kenValue"
REPO = "https://git.example.org/alice/proj.git"
NAMES = Names(namespace="codespaces", pod="jupyter-alice", pvc="claim-alice")
CREDENTIAL = GitCredential("https://git.example.org", TOKEN, "oauth2")
NEEDS_BUILD = Codespace(python={"requirements": ["requirements.txt"]})
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def plan(codespace: Codespace, git_auth: GitAuthRef | None) -> KubePlan:
    config = parse_config({})
    launch = launch_plan(resolution_of(codespace, "ab" * 32), UserOptions(repo=REPO), config)
    return make_kube_plan(launch, config, NAMES, git_auth)


def secret_forms(credential: GitCredential) -> list[str]:
    """Every form the token travels in: as is, the header, the base64 user:token pair."""
    header = header_env(credential)["GIT_CONFIG_VALUE_0"]
    return [credential.token, header, header.rsplit(" ", 1)[-1]]


def env_of(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def test_with_a_credential_the_clones_read_the_header_from_the_secret():
    ref = git_auth_ref(CREDENTIAL, "alice")
    result = plan(NEEDS_BUILD, ref)
    objects = assert_all_valid(result.objects())  # the Job, the PVC, the pod: real schemas
    assert [o["kind"] for o in objects] == ["Job", "PersistentVolumeClaim", "Pod"]

    job_spec = result.build_job["spec"]["template"]["spec"]
    pod_clone = result.preview_pod()["spec"]["initContainers"][0]
    assert pod_clone["name"] == "clone-repository"
    for container in (pod_clone, job_spec["initContainers"][0]):
        env = env_of(container)
        assert env["GIT_CONFIG_COUNT"] == {"name": "GIT_CONFIG_COUNT", "value": "1"}
        assert env["GIT_CONFIG_KEY_0"]["value"] == "http.https://git.example.org/.extraHeader"
        assert env["GIT_CONFIG_VALUE_0"] == {
            "name": "GIT_CONFIG_VALUE_0",
            "valueFrom": {"secretKeyRef": {"name": ref.secret_name, "key": "GIT_CONFIG_VALUE_0"}},
        }
    # the builder runs the repository's Dockerfile steps: it never gets the header
    assert not any(e["name"].startswith("GIT_CONFIG") for e in job_spec["containers"][0]["env"])
    # what goes in the specs names git's configuration and where the header is, and the
    # Secret holds the very value header_env gives a local clone
    assert {k: v.get("value") for k, v in env_of(pod_clone).items()} == {
        **header_env(CREDENTIAL),
        "GIT_CONFIG_VALUE_0": None,
    }
    text = json.dumps([*result.objects(), result.kubespawner_overrides()])
    for form in secret_forms(CREDENTIAL):
        assert form not in text


def test_without_a_credential_the_manifests_stay_as_they_were():
    for codespace in (Codespace(), NEEDS_BUILD):
        plain = plan(codespace, None)
        assert "env" not in plain.init_containers[0]
        assert "GIT_CONFIG" not in json.dumps(plain.objects())
        # with one, the clones' env is the only difference
        with_ref = plan(codespace, git_auth_ref(CREDENTIAL, "alice")).objects()
        for obj in with_ref:
            spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Job" else obj["spec"]
            for container in spec.get("initContainers", []):
                assert [e["name"] for e in container.pop("env")] == [
                    "GIT_CONFIG_COUNT",
                    "GIT_CONFIG_KEY_0",
                    "GIT_CONFIG_VALUE_0",
                ]
        assert json.dumps(with_ref, sort_keys=True) == json.dumps(plain.objects(), sort_keys=True)


def test_the_secret_holds_the_header_labelled_for_its_owner():
    ref = git_auth_ref(CREDENTIAL, "alice@example.org")
    secret = assert_valid(git_secret(ref, CREDENTIAL, "codespaces", "alice@example.org"))
    meta = secret["metadata"]
    assert meta["name"] == ref.secret_name and meta["namespace"] == "codespaces"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "codespace-hub"
    assert meta["labels"]["codespace.io/owner"].startswith("h-")  # '@' is not label-safe
    assert meta["annotations"]["codespace.io/owner"] == "alice@example.org"
    assert meta["annotations"]["codespace.io/git-host"] == "git.example.org"
    header = base64.b64decode(secret["data"]["GIT_CONFIG_VALUE_0"]).decode()
    assert header == header_env(CREDENTIAL)["GIT_CONFIG_VALUE_0"]
    assert header == "Authorization: Basic " + base64.b64encode(f"oauth2:{TOKEN}".encode()).decode()
    assert TOKEN not in json.dumps(secret)  # at rest only encoded (Secret data)
    other = GitCredential("https://other.example.org", TOKEN)
    with pytest.raises(ValueError, match="does not match"):
        git_secret(ref, other, "codespaces", "alice@example.org")


@pytest.mark.parametrize("owner", ["alice", "a.b", "a-b", "A_B", "ü" * 80, "x@y.z"])
def test_secret_names_are_valid_and_one_per_user(owner):
    name = git_secret_name(owner)
    assert name.startswith("codespace-git-") and len(name) <= 63 and DNS_SUBDOMAIN.match(name)
    assert name == git_secret_name(owner)  # stable: the spawner deletes it by name
    others = {"alice", "a.b", "a-b", "A_B", "a_b", "ü" * 80, "x@y.z"} - {owner}
    assert name not in {git_secret_name(other) for other in others}


def mock_spawner(monkeypatch) -> KubeCodespaceSpawner:
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kw: None)
    monkeypatch.setattr("kubespawner.spawner.shared_client", lambda name: None)
    return KubeCodespaceSpawner(_mock=True)


def test_the_spawner_takes_the_token_from_auth_state(monkeypatch):
    spawner = mock_spawner(monkeypatch)
    assert spawner.git_credential_helper == CREDENTIAL_HELPER
    assert CREDENTIAL_HELPER == "/opt/platform/bin/codespace git-credential"  # in the image
    assert spawner.auth_state_hook is not None
    assert spawner.git_auth(REPO) is None and spawner.git_helper_env() == {}  # no login yet
    spawner.git_host_url = "https://git.example.org"
    asyncio.run(spawner.run_auth_state_hook({"access_token": TOKEN}))
    ref = spawner.git_auth(REPO)
    assert ref == git_auth_ref(CREDENTIAL, spawner.user.name)
    assert spawner.git_auth("https://github.com/alice/proj.git") is None  # another host
    assert spawner.git_auth("/srv/repos/proj") is None
    assert spawner.git_clone_env(REPO) == header_env(CREDENTIAL)
    helper = spawner.git_helper_env()
    assert helper["GIT_CONFIG_VALUE_1"] == CREDENTIAL_HELPER
    assert TOKEN not in json.dumps(helper)
    assert spawner.namespace  # KubeSpawner's own traits are intact
    asyncio.run(spawner.run_auth_state_hook(None))  # a login without a token
    assert spawner.git_auth(REPO) is None


def test_the_hubs_own_clone_sends_the_header_and_the_plan_references_the_secret(monkeypatch):
    from codespace.git import Checkout
    from spawner.progress import ProgressLog

    spawner = mock_spawner(monkeypatch)
    spawner.git_host_url = "https://git.example.org"
    asyncio.run(spawner.run_auth_state_hook({"access_token": TOKEN}))
    seen: dict = {}

    async def checkout(repo, ref, workspace, *, on_line=None, clone_env=None):
        seen[repo] = clone_env
        workspace.mkdir(parents=True)
        return Checkout(workspace, "0" * 40, ref, cloned=True)

    monkeypatch.setattr("spawner.kubernetes.checkout", checkout)
    for repo, expected in ((REPO, header_env(CREDENTIAL)), ("https://github.com/a/b.git", {})):
        result = asyncio.run(spawner._plan(UserOptions(repo=repo), ProgressLog()))
        assert seen[repo] == expected
        env = env_of(result.init_containers[0])
        if expected:
            ref = env["GIT_CONFIG_VALUE_0"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == git_secret_name(spawner.user.name)
        else:
            assert env == {}


def test_the_hub_may_write_the_secrets_and_codespaces_may_not_read_them():
    from tests.conftest import REPO_ROOT

    documents = yaml.safe_load_all((REPO_ROOT / "config" / "helm" / "rbac.yaml").read_text())
    roles = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Role"}

    def granted(role: str) -> set[str]:
        return {
            verb
            for rule in roles[role]["rules"]
            if "" in rule["apiGroups"] and {"secrets", "*"} & set(rule["resources"])
            for verb in rule["verbs"]
        }

    # the spawner creates, replaces (on 409) and deletes; the chart's own hub Role has no update
    assert {"create", "update", "delete"} <= granted("codespace-hub")
    assert granted("codespace-singleuser") == set()
