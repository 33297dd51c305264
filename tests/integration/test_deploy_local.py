"""Deploy, local backend, end to end: a scikit-learn model trained in a codespace is served by
MLServer behind the hub's proxy, with the hub's authentication, and scales to zero.

The repository's environment has scikit-learn (from the package index, like the kernel
layer); its ``postCreateCommand`` trains the model in that environment. The deployment is
made through the codespace's own REST API (``/codespace/api/deployments``), so the path is
the one the lab, the widget, the SDK and the CLI take: the server extension's local backend
calls the hub's deploy service, which runs MLServer as the user's account.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pickle
import pwd
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import make_repo

pytestmark = pytest.mark.integration

TRAIN = """
import joblib
from sklearn.linear_model import LogisticRegression
X = [[0.0, 0.0], [1.0, 1.0], [0.1, 0.2], [0.9, 0.8]]
joblib.dump(LogisticRegression().fit(X, [0, 1, 0, 1]), "model.joblib")
"""
MANIFEST = """\
python:
  requirements: [requirements.txt]
postCreateCommand: python train.py
waitFor: postCreateCommand
deploy:
  idleTimeout: 10
"""
V2 = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [0, 0, 1, 1]}]}
USER, SERVER = "dora", "ml"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHub]:
    root = tmp_path_factory.mktemp("deploy-hub")
    repo = make_repo(
        root / "repo",
        {
            ".codespace/codespace.yaml": MANIFEST,
            "requirements.txt": "scikit-learn\n",
            "train.py": TRAIN,
        },
    )
    with running_hub(root / "hub", extra_config=uv_cache_config(tmp_path_factory)) as hub:
        events = hub.spawn(USER, SERVER, {"repo": str(repo)})
        assert events[-1].get("ready"), events
        yield hub


def api(hub: RunningHub, path: str = "", method: str = "GET", **kw: Any) -> requests.Response:
    return hub.server_request(USER, SERVER, f"codespace/api/deployments{path}", method, **kw)


def token_for(hub: RunningHub, user: str) -> str:
    hub.ensure_user(user)
    made = hub.api("POST", f"/users/{user}/tokens", json={"note": "deploy test"})
    assert made.status_code == 201, made.text
    return made.json()["token"]


def wait_for(hub: RunningHub, name: str, states: tuple[str, ...], timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        record = api(hub, f"/{name}").json()
        if record["state"] in states or time.monotonic() > deadline:
            return record
        time.sleep(1)


@pytest.fixture(scope="module")
def deployed(hub: RunningHub) -> dict:
    spec = {"artifact": "model.joblib", "name": "iris", "resources": {"memory": "1Gi"}}
    made = api(hub, "", "POST", json=spec)
    assert made.status_code == 201, made.text
    assert made.json()["format"] == "sklearn"
    record = wait_for(hub, "iris", ("ready", "failed"))
    assert record["state"] == "ready", record
    return record


def call(url: str, token: str | None, body: Any = V2) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.post(url, json=body, headers=headers, timeout=300)


def test_the_owner_calls_v2_infer_through_the_hubs_proxy(hub, deployed) -> None:
    infer = deployed["endpoint"]["infer"]
    assert infer.startswith(hub.url + "services/codespace-deploy/endpoints/dora/iris/")
    answer = call(infer, token_for(hub, USER))
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [0, 1]
    # the same through the codespace's API (what the lab's Test request and the SDK use)
    via_server = api(hub, "/iris/predict", "POST", json=V2)
    assert via_server.status_code == 200, via_server.text
    assert via_server.json()["outputs"][0]["data"] == [0, 1]


def server_pids(hub: RunningHub, name: str) -> list[int]:
    """The processes of a deployment's model server (by their command line)."""
    place = str(hub.data_dir / "deployments" / USER / name)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if any(place.encode() in arg for arg in argv) and b"start" in argv:
                    found.append(int(entry.name))
    return found


def test_the_model_server_runs_as_the_owners_account_with_its_limits(hub, deployed) -> None:
    assert call(deployed["endpoint"]["infer"], token_for(hub, USER)).status_code == 200
    pids = server_pids(hub, "iris")
    assert pids, "no MLServer process found"
    account = pwd.getpwnam("cs-dora").pw_uid
    mlserver = [p for p in pids if os.stat(f"/proc/{p}").st_uid == account]
    assert mlserver, [(p, os.stat(f"/proc/{p}").st_uid) for p in pids]
    lines = Path(f"/proc/{mlserver[0]}/cgroup").read_text().splitlines()
    v1 = [line.split(":", 2)[2] for line in lines if ":memory:" in line]
    if v1:  # cgroup v1 (this machine)
        limit = Path("/sys/fs/cgroup/memory" + v1[0], "memory.limit_in_bytes").read_text()
    else:
        v2 = [line.split(":", 2)[2] for line in lines if line.startswith("0::")]
        limit = Path("/sys/fs/cgroup" + v2[0], "memory.max").read_text()
    assert int(limit) == 1 << 30


def test_no_token_or_another_users_token_is_refused_and_a_share_token_works(hub, deployed) -> None:
    infer = deployed["endpoint"]["infer"]
    assert call(infer, None).status_code == 401
    assert call(infer, token_for(hub, "mallory")).status_code == 403
    assert call(infer, "csd_not-a-real-token").status_code == 403
    shared = api(hub, "/iris/tokens", "POST", json={"note": "for bob"})
    assert shared.status_code == 201, shared.text
    token = shared.json()["token"]
    assert call(infer, token).status_code == 200
    # a share token calls the model only: not the owner's deployment API
    listing = requests.get(
        hub.url + "services/codespace-deploy/api/deployments",
        headers={"Authorization": f"token {token}"},
        timeout=30,
    )
    assert listing.status_code == 403


def test_another_user_neither_sees_nor_deletes_the_deployment(hub, deployed) -> None:
    headers = {"Authorization": f"token {token_for(hub, 'mallory')}"}
    base = hub.url + "services/codespace-deploy/api/deployments"
    assert requests.get(base, headers=headers, timeout=30).json()["deployments"] == []
    assert requests.delete(f"{base}/iris", headers=headers, timeout=30).status_code == 404
    assert api(hub, "/iris").json()["state"] in ("ready", "idle")


def test_the_signature_gives_a_test_request_that_succeeds(hub, deployed) -> None:
    signature = api(hub, "/iris/signature").json()
    assert signature["inputs"][0]["shape"] == [-1, 2], signature
    answer = api(hub, "/iris/predict", "POST", json=signature["example"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [0]


def test_it_scales_to_zero_and_the_next_request_brings_it_back(hub, deployed) -> None:
    token = token_for(hub, USER)
    assert call(deployed["endpoint"]["infer"], token).status_code == 200
    record = wait_for(hub, "iris", ("idle",), timeout=60)
    assert record["state"] == "idle", record
    assert "scaled to zero" in record["reason"]
    answer = call(deployed["endpoint"]["infer"], token)  # a cold start, not an error
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [0, 1]
    assert api(hub, "/iris").json()["state"] == "ready"


def test_protocol_v1_is_served_by_kserves_model_server(hub, deployed) -> None:
    made = api(
        hub, "", "POST", json={"artifact": "model.joblib", "name": "iris-v1", "protocol": "v1"}
    )
    assert made.status_code == 201, made.text
    record = wait_for(hub, "iris-v1", ("ready", "failed"))
    assert record["state"] == "ready", record
    predict = record["endpoint"]["infer"]
    assert predict.endswith("/endpoints/dora/iris-v1/v1/models/iris-v1:predict")
    answer = call(predict, token_for(hub, USER), {"instances": [[0, 0], [1, 1]]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [0, 1]}
    assert call(predict, None, {"instances": [[0, 0]]}).status_code == 401
    assert api(hub, "/iris-v1", "DELETE").status_code == 204


def test_a_corrupt_model_file_is_refused_and_nothing_is_made(hub) -> None:
    put = hub.server_request(
        USER,
        SERVER,
        "api/contents/broken.joblib",
        "PUT",
        json={"type": "file", "format": "base64", "content": base64.b64encode(b"nope").decode()},
    )
    assert put.status_code in (200, 201), put.text
    refused = api(hub, "", "POST", json={"artifact": "broken.joblib"})
    assert refused.status_code == 400
    assert "broken.joblib is not a joblib or pickle file" in refused.json()["message"]
    names = [d["name"] for d in api(hub).json()["deployments"]]
    assert "broken" not in names


def test_a_model_that_cannot_load_fails_with_the_servers_log_and_leaves_no_server(hub) -> None:
    # a pickle naming a module the environment does not have: MLServer fails to load it
    payload = b"\x80\x02cnot_a_module_here\nThing\nq\x00)\x81q\x01."
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(payload)
    hub.server_request(
        USER,
        SERVER,
        "api/contents/crash.pkl",
        "PUT",
        json={"type": "file", "format": "base64", "content": base64.b64encode(payload).decode()},
    )
    made = api(hub, "", "POST", json={"artifact": "crash.pkl"})
    assert made.status_code == 201, made.text
    record = wait_for(hub, "crash", ("ready", "failed"))
    assert record["state"] == "failed", record
    assert "not_a_module_here" in record["reason"]
    answer = api(hub, "/crash/predict", "POST", json=V2)
    assert answer.status_code == 400 and "failed" in answer.json()["message"]
    assert api(hub, "/crash", "DELETE").status_code == 204
    assert api(hub, "/crash").status_code == 404


def test_the_deployment_outlives_the_codespace_and_is_deleted_with_delete(hub, deployed) -> None:
    token = token_for(hub, USER)
    hub.stop(USER, SERVER)
    answer = call(deployed["endpoint"]["infer"], token)
    assert answer.status_code == 200, answer.text
    base = hub.url + "services/codespace-deploy/api/deployments"
    headers = {"Authorization": f"token {token}"}
    assert requests.delete(f"{base}/iris", headers=headers, timeout=60).status_code == 204
    assert call(deployed["endpoint"]["infer"], token).status_code == 404
