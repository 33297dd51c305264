"""End to end: datasets in the local hub - catalog, spawn-time mounts, the server's REST API.

A real hub (JupyterHub + configurable-http-proxy + LocalCodespaceSpawner) with a catalog at
its default place (``<data dir>/datasets.yaml``); the repository lists one dataset and the
spawn options pick more, one of them unknown. The codespace's own server extension is asked,
through the proxy, what it sees; the repository's environment reads a file through a mount.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest
import requests

from tests.datasets_support import write_catalog
from tests.helpers.hub import RunningHub, running_hub
from tests.helpers.repos import fixture_repo, share_with_accounts

pytestmark = pytest.mark.integration

SPEC = """\
python:
  requirements: [requirements.txt]
datasets:
  - name: iris
    mountPath: /data/iris
"""


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    (root / "iris").mkdir()
    (root / "iris" / "iris.csv").write_text("sepal,petal\n5.1,1.4\n")
    (root / "mnist" / "train").mkdir(parents=True)
    (root / "mnist" / "train" / "labels.txt").write_text("7 2 1 0\n")
    (root / "unused").mkdir()
    share_with_accounts(root)  # the hub (as root) runs codespaces as per-user accounts
    return root


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, sources: Path):
    data = tmp_path_factory.mktemp("datasets-hub") / "hub"
    data.mkdir()
    write_catalog(  # the default place: no flag, no trait
        data / "datasets.yaml",
        [
            {"name": "iris", "description": "flowers", "source": str(sources / "iris")},
            {"name": "mnist", "description": "digits", "source": str(sources / "mnist")},
            {"name": "unused", "source": str(sources / "unused")},
        ],
    )
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # shared by this session's hubs
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    with running_hub(data, extra_config=config) as running:
        yield running


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def test_spec_and_picked_datasets_are_mounted_and_served(
    hub: RunningHub, tmp_path: Path, sources: Path
) -> None:
    repo = fixture_repo(tmp_path, codespace_yaml=SPEC)
    events = hub.spawn("erin", "data", {"repo": str(repo), "datasets": ["mnist", "ghost"]})
    assert events[-1].get("ready"), messages(events)
    text = messages(events)
    assert "datasets: mounting iris at datasets/iris (asked by the repository)" in text
    assert "mountPath /data/iris applies in Kubernetes mode" in text
    assert "datasets: mounting mnist at datasets/mnist (asked by the spawn form)" in text
    assert "dataset 'ghost' is not in the catalog" in text and "starting without it" in text

    ws = hub.data_dir / "workspaces" / "erin" / "data"
    assert (ws / "datasets" / "iris" / "iris.csv").read_text().startswith("sepal")
    assert not (ws / "datasets" / "ghost").exists()
    assert "'ghost' is not in the catalog" in (ws / "CODESPACE_ERRORS.md").read_text()
    # the links and the errors file are not changes to the user's repository
    status = subprocess.run(
        ["git", "-c", f"safe.directory={ws}", "status", "--porcelain", "--untracked-files=all"],
        cwd=ws,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "datasets" not in status and "CODESPACE_ERRORS" not in status, status

    # The codespace's server extension (through the proxy) sees the catalog and the mounts.
    response = hub.server_request("erin", "data", "codespace/api/datasets")
    assert response.status_code == 200, response.text
    assert response.json()["backend"] == "local"
    listed = {item["name"]: item for item in response.json()["datasets"]}
    assert set(listed) == {"iris", "mnist", "unused"}
    assert listed["mnist"]["mounted"] and listed["iris"]["mounted"]
    assert not listed["unused"]["mounted"]
    assert listed["mnist"]["status"]["phase"] == "Bound"
    assert listed["mnist"]["contentsPath"] == "datasets/mnist"
    detail = hub.server_request("erin", "data", "codespace/api/datasets/mnist").json()
    assert detail["status"]["fileNum"] == 1

    # A notebook-style read: the kernel's interpreter reads through the mount path.
    specs = hub.server_request("erin", "data", "api/kernelspecs").json()
    python = specs["kernelspecs"][specs["default"]]["spec"]["argv"][0]
    read = subprocess.run(
        [python, "-c", "print(open('datasets/mnist/train/labels.txt').read().split()[0])"],
        cwd=ws,
        capture_output=True,
        text=True,
    )
    assert read.stdout.strip() == "7", read.stderr


def test_the_form_lists_the_catalog_and_the_server_gets_its_settings(
    hub: RunningHub, tmp_path: Path
) -> None:
    session = requests.Session()
    session.get(f"{hub.url}hub/login", timeout=30)
    password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
    login = session.post(
        f"{hub.url}hub/login",
        data={"username": "frank", "password": password, "_xsrf": session.cookies["_xsrf"]},
        timeout=30,
    )
    assert login.status_code == 200, login.text[-500:]
    form = session.get(f"{hub.url}hub/spawn/frank/plain", timeout=30).text
    assert 'name="datasets" multiple' in form
    assert '<option value="mnist">mnist - digits</option>' in form
    repo = fixture_repo(tmp_path)
    events = hub.spawn("frank", "plain", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    assert "datasets:" not in messages(events)  # nothing asked, nothing mounted
    config = hub.data_dir / "servers" / "frank" / "plain" / "jupyter-config"
    settings = json.loads((config / "jupyter_server_config.json").read_text())
    assert settings["CodespaceExtension"]["dataset_catalog"] == str(hub.data_dir / "datasets.yaml")
    written = (config / "jupyter_server_config.json").stat()
    if os.geteuid() == 0:  # readable by the codespace's account (its group) only
        assert written.st_mode & 0o777 == 0o640 and written.st_uid == 0
        assert written.st_gid == pwd.getpwnam("cs-frank").pw_gid
    else:
        assert written.st_mode & 0o777 == 0o600
    # ... and a dataset mounted from the running codespace appears in its workspace.
    mounted = hub.server_request(
        "frank", "plain", "codespace/api/datasets/iris/mount", method="POST", json={}
    )
    assert mounted.status_code == 200, mounted.text
    assert (hub.data_dir / "workspaces" / "frank" / "plain" / "datasets" / "iris").is_dir()
