"""Browser test: deploy a model from JupyterLab's file browser and send it a test request.

Runs ``deploy_codespace.mjs`` (playwright-core + Debian Chromium) against a real hub with its
deploy service: a local codespace of a repository whose environment has scikit-learn and
whose ``onCreateCommand`` trains a small model (so it is pickled by the scikit-learn the
codespace has). In the file browser a corrupt ``.pkl`` is refused with the server's reason
before any form; the model -> "Deploy..." shows the detected format; Deploy -> the
Deployments sidebar (at its default width: no sideways scrolling, badges and actions inside)
follows it to ready; Test request sends the example built from the model's signature and
shows the model server's V2 answer; Copy Python copies the SDK snippet; Share token mints a
token, with which the test itself then calls the endpoint through the hub's proxy.
Screenshots go to ``artifacts/browser/deploy-*.png``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import requests

from tests.browser.driver import ARTIFACTS, browser_tools
from tests.conftest import REPO_ROOT, missing, require_executable
from tests.helpers.hub import RunningHub, running_hub
from tests.helpers.repos import make_repo, share_with_accounts

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCRIPT = Path(__file__).with_name("deploy_codespace.mjs")
LABEXTENSION = REPO_ROOT / "extensions" / "labextension" / "static" / "package.json"
# The server side of deployments: the REST API, the local backend and the hub's service.
DEPLOY_SERVER = (
    REPO_ROOT / "extensions" / "deploy_handlers.py",
    REPO_ROOT / "codespace" / "deploy" / "local.py",
    REPO_ROOT / "hub" / "deploy" / "app.py",
)
USER, SERVER = "deploy-user", "deploy"
MODEL = "iris_model.joblib"
NAME = "iris-model"  # the name the server suggests for MODEL
CORRUPT = "broken.pkl"
TRAIN = """\
import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

features, labels = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=500).fit(features, labels)
joblib.dump(model, "iris_model.joblib")
"""
MANIFEST = """\
python:
  requirements: [requirements.txt]
onCreateCommand: python train.py
"""


def model_repo(tmp_path: Path) -> Path:
    """A repository whose environment has scikit-learn; its onCreateCommand trains the model
    into the workspace. A corrupt pickle lies beside it."""
    repo = make_repo(
        tmp_path / "repo",
        {
            ".codespace/codespace.yaml": MANIFEST,
            "requirements.txt": "scikit-learn\n",
            "train.py": TRAIN,
            "README.md": "# a model to deploy\n",
            ".gitignore": f"{MODEL}\n",
        },
        extra={CORRUPT: b"this is not a pickle\n"},
    )
    share_with_accounts(repo)
    return repo


def test_deploy_a_model_from_the_file_browser_and_send_a_test_request(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tools = browser_tools()
    require_executable("the built lab extension (make install-extension)", LABEXTENSION)
    absent = [str(path.relative_to(REPO_ROOT)) for path in DEPLOY_SERVER if not path.exists()]
    if absent:
        missing(f"the deploy REST API, local backend and hub service ({', '.join(absent)})")
    repo = model_repo(tmp_path)
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # the session's shared uv cache
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    with running_hub(tmp_path / "hub", extra_config=config) as hub:
        password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
        try:
            result, steps = tools.run(
                SCRIPT,
                hub.url,
                user=USER,
                password=password,
                repo=repo,
                server=SERVER,
                MODEL=MODEL,
                CORRUPT=CORRUPT,
            )
            assert result.returncode == 0, result.stdout + result.stderr + hub.log_text()[-4000:]
            # The share token calls the endpoint through the hub's proxy; no token is refused.
            share = steps["share"]
            assert share["token"] and share["copy"] and not share["error"], share
            infer, body = curl_request(steps["snippet"]["curl"])
            headers = {"Authorization": f"token {share['token']}"}
            shared = requests.post(infer, json=body, headers=headers, timeout=300)
            anonymous = requests.post(infer, json=body, timeout=60, allow_redirects=False)
        finally:
            deleted = delete_deployment(hub)

    corrupt = steps["corrupt"]
    assert corrupt["readmeMenu"] == [], corrupt  # no Deploy... on a file that is no model
    assert corrupt["corruptMenu"] == ["Deploy…"], corrupt
    refused = corrupt["refused"]
    assert not refused["form"] and CORRUPT in refused["title"], refused
    assert "not a joblib or pickle file" in refused["body"], refused

    form = steps["form"]
    assert form["menu"] == ["Deploy…"], form
    shown = form["form"]
    assert shown["name"] == NAME, shown  # suggested from the file's name
    assert shown["format"] == "sklearn" and shown["formatReadOnly"], shown
    assert shown["protocols"][0] == "v2" and shown["protocol"] == "v2", shown
    assert shown["scaleToZero"] and shown["idleTimeout"], shown

    states = steps["states"]
    # followed from the record the POST answered (being created) until it serves
    assert states["states"][0] in ("creating", "loading"), states
    assert states["states"][-1] in ("ready", "idle"), states
    assert "sklearn · v2" in states["card"]["sub"], states
    assert "/services/codespace-deploy/" in states["card"]["url"], states

    test = steps["test"]
    assert test["request"]["note"].startswith("inputs: input-0"), test  # from the signature
    assert json.loads(test["request"]["body"])["inputs"][0]["shape"] == [1, 4], test
    response = test["response"]
    assert response["status"] == "200", response
    answer = json.loads(response["body"])
    [output] = answer["outputs"]
    assert len(output["data"]) == 1 and output["data"][0] in (0, 1, 2), answer  # an iris class
    check_panel_layout(test["layout"])

    curl = steps["snippet"]["curl"]
    assert "Authorization: token $TOKEN" in curl and "/v2/models/iris-model/infer" in curl, curl
    python = steps["snippet"]["python"]
    assert f'deploy.get("{NAME}")' in python and "ep.predict([[" in python, python

    assert shared.status_code == 200, (infer, shared.status_code, shared.text[-2000:])
    assert shared.json()["outputs"][0]["data"] == output["data"], shared.text
    assert anonymous.status_code in (302, 401, 403), anonymous.status_code
    assert deleted == 204, deleted

    for shot in ("00-corrupt", "01-form", "02-panel", "03-test-request", "04-share-token"):
        assert (ARTIFACTS / f"deploy-{shot}.png").stat().st_size > 0


def curl_request(curl: str) -> tuple[str, dict]:
    """The URL and the JSON body of the copied curl snippet."""
    url = re.search(r"curl -X POST '([^']+)'", curl)
    body = re.search(r"-d '(.+)'$", curl, re.MULTILINE)
    assert url and body, curl
    return url.group(1), json.loads(body.group(1))


def delete_deployment(hub: RunningHub) -> int | str:
    """A deployment outlives its codespace: delete it through the codespace's REST API (its
    status, or why it could not be asked)."""
    try:
        answer = hub.server_request(USER, SERVER, f"codespace/api/deployments/{NAME}", "DELETE")
    except requests.RequestException as error:
        return str(error)
    return answer.status_code if answer.status_code == 204 else answer.text


def check_panel_layout(seen: dict) -> None:
    """The Deployments sidebar at its default width (about 250px): it never scrolls sideways;
    the title, the state badge, the copy button, every action and the answer stay inside."""
    assert seen["width"] < 320, seen  # the default width, not a widened sidebar
    assert seen["scrollWidth"] <= seen["width"] and seen["scrollLeft"] == 0, seen
    assert seen["titleInside"] and seen["copyInside"] and seen["responseInside"], seen
    assert seen["badges"] and not [badge for badge in seen["badges"] if badge["cut"]], seen
    assert seen["actionsInside"] and all(seen["actionsInside"]), seen
