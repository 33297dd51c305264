"""The ``Codespace`` operator (``kopf run -m hub.operator.app``, as its Deployment runs it)
against the fake Kubernetes API server and a real local hub.

``kubectl apply`` is a create through the fake's API; the operator talks to the hub with a
service token holding the scopes the Helm values give it. Each GitOps edit is checked where a
user would see it: the resource's status, the hub's server, the workspace's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.conftest import REPO_ROOT
from tests.fakekube import FakeKube
from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import commit_files, git, make_repo

API = "codespace.io/v1alpha1"
NS = "default"
TOKEN = "operator-" + "5" * 32
OPERATOR_ROLE = f"""
c.JupyterHub.services.append({{"name": "codespace-operator", "api_token": {TOKEN!r}}})
c.JupyterHub.load_roles.append({{
    "name": "codespace-operator",
    "scopes": ["admin:users", "start:servers", "read:servers", "delete:servers"],
    "services": ["codespace-operator"],
}})
"""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("operator")
    repo = make_repo(tmp / "origin", {"README.md": "# notes\n", "file.txt": "main\n"})
    git(repo, "checkout", "--quiet", "-b", "dev")
    commit_files(repo, {"file.txt": "dev\n"})
    git(repo, "checkout", "--quiet", "main")
    crd = yaml.safe_load((REPO_ROOT / "config/helm/codespace-crd.yaml").read_text())
    config = OPERATOR_ROLE + uv_cache_config(tmp_path_factory)
    with FakeKube() as kube, running_hub(tmp / "hub", extra_config=config) as hub:
        kube.register_crd(crd)
        kubeconfig = kube.kubeconfig(tmp / "kubeconfig", NS)
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "CODESPACE_HUB_API_URL": f"{hub.url}hub/api",
            "CODESPACE_OPERATOR_TOKEN": TOKEN,
            "CODESPACE_OPERATOR_INTERVAL": "2",
        }
        log = (tmp / "operator.log").open("wb")
        kopf = Path(sys.executable).parent / "kopf"
        operator = subprocess.Popen(
            [str(kopf), "run", "--standalone", f"--namespace={NS}", "-m", "hub.operator.app"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )
        try:
            yield {"kube": kube, "hub": hub, "repo": repo, "log": tmp / "operator.log"}
        finally:
            operator.terminate()
            operator.wait(30)
            log.close()


def resource(name: str, owner: str, repo: Path, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Codespace",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"owner": owner, "repository": str(repo), **spec},
    }


def status(kube: FakeKube, name: str) -> dict[str, Any]:
    obj = kube.get(API, "codespaces", NS, name)
    return (obj or {}).get("status") or {}


def patch_spec(kube: FakeKube, name: str, spec: dict[str, Any]) -> None:
    response = requests.patch(
        f"{kube.url}/apis/{API}/namespaces/{NS}/codespaces/{name}",
        json={"spec": spec},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=30,
    )
    response.raise_for_status()


def servers(hub: RunningHub, user: str) -> dict[str, Any]:
    response = hub.api("GET", f"/users/{user}", params={"include_stopped_servers": "1"})
    return response.json().get("servers", {}) if response.status_code == 200 else {}


def phase_is(kube: FakeKube, name: str, phase: str, **fields: str) -> Callable[[], bool]:
    def check() -> bool:
        now = status(kube, name)
        return now.get("phase") == phase and all(now.get(k) == v for k, v in fields.items())

    return check


def test_a_codespace_resource_drives_the_hub(world) -> None:
    kube, hub, repo = world["kube"], world["hub"], world["repo"]
    kube.create(resource("demo", "dora", repo, ref="main"))
    wait_for("Ready", phase_is(kube, "demo", "Ready"), timeout=300)
    now = status(kube, "demo")
    assert now["url"] == f"{hub.url}user/dora/demo/", now
    assert now["ref"] == "main" and len(now.get("envHash", "")) >= 12, now
    assert now["conditions"][0]["type"] == "Ready" and now["conditions"][0]["status"] == "True"
    assert servers(hub, "dora")["demo"]["ready"]
    workspace = hub.data_dir / "workspaces" / "dora" / "demo"
    assert (workspace / "file.txt").read_text() == "main\n"
    assert (
        requests.get(
            now["url"] + "api/status", timeout=30, headers={"Authorization": f"token {hub.token}"}
        ).status_code
        == 200
    )

    patch_spec(kube, "demo", {"ref": "dev"})  # a GitOps edit: restarted on the new ref
    wait_for("Ready on dev", phase_is(kube, "demo", "Ready", ref="dev"), timeout=300)
    assert (workspace / "file.txt").read_text() == "dev\n"
    assert servers(hub, "dora")["demo"]["user_options"]["ref"] == "dev"

    patch_spec(kube, "demo", {"running": False})
    wait_for("Stopped", phase_is(kube, "demo", "Stopped"))
    assert not servers(hub, "dora")["demo"]["ready"]
    assert (workspace / "file.txt").exists()  # stopping keeps the workspace

    kube.delete(API, "codespaces", NS, "demo")
    wait_for("the resource gone", lambda: kube.get(API, "codespaces", NS, "demo") is None)
    assert "demo" not in servers(hub, "dora")  # removed, and the finalizer cleared


def test_a_create_while_the_hub_is_down_is_retried_into_exactly_one_server(world) -> None:
    kube, hub, repo = world["kube"], world["hub"], world["repo"]
    hub.stop_hub()
    try:
        kube.create(resource("later", "erin", repo))
        wait_for("a retry", lambda: "retrying" in (status(kube, "later").get("message") or ""))
        time.sleep(3)  # a few more retries while the hub is away
    finally:
        hub.start()
    wait_for("Ready", phase_is(kube, "later", "Ready"), timeout=300)
    assert [name for name in servers(hub, "erin") if name] == ["later"]  # one codespace
    log = world["log"].read_text()
    assert "does not answer" in log  # the operator said why it retried


def test_a_start_that_fails_shows_failed_with_the_hubs_reason(world) -> None:
    kube, hub = world["kube"], world["hub"]
    missing = world["repo"].parent / "no-such-repo"
    kube.create(resource("broken", "fay", missing))
    failed = wait_for("Failed", phase_is(kube, "broken", "Failed"))
    message = status(kube, "broken")["message"]
    assert "no-such-repo" in message or "git" in message, message
    assert failed and not servers(hub, "fay").get("broken", {}).get("ready")
    kube.delete(API, "codespaces", NS, "broken")
    wait_for("the resource gone", lambda: kube.get(API, "codespaces", NS, "broken") is None)
