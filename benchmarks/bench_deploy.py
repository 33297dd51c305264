"""Deploy, local backend: model file to first prediction against MLServer started by hand.

One hub (tests/helpers/hub.py) with a codespace whose ``postCreateCommand`` trains a
scikit-learn model; its first deployment builds the serving environment (printed, not part
of the ratio: like an environment build, it happens once per environment). Then, in the same
run, ``BENCH_DEPLOY_REPS`` (default 3) times each, median seconds:

1. **by hand**: ``mlserver start DIR`` of that serving environment on a copy of the
   deployment's files (TCP on 127.0.0.1, no sandbox), until its first successful ``infer``;
2. **deploy, cold**: ``POST /codespace/api/deployments`` until the first successful ``infer``
   through the hub's proxy with the owner's token (copy, sandbox, account, socket relay);
   target <= 1.2x of (1);
3. **after scale to zero**: the first request after the server stopped for idleness;
4. **request overhead**: p50 of ``BENCH_DEPLOY_CALLS`` (default 200) ``infer`` calls through
   the proxy against the same calls straight to the hand-started server (ratio).

Needs root (accounts and the sandbox, as the hub runs them), the package index for
scikit-learn and MLServer, and configurable-http-proxy (``make install``).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from tests.helpers.hub import RunningHub, free_port, running_hub
from tests.helpers.repos import make_repo

REPS = int(os.environ.get("BENCH_DEPLOY_REPS", "3"))
CALLS = int(os.environ.get("BENCH_DEPLOY_CALLS", "200"))
TRAIN = """
import joblib
from sklearn.linear_model import LogisticRegression
X = [[0.0, 0.0], [1.0, 1.0], [0.1, 0.2], [0.9, 0.8]]
joblib.dump(LogisticRegression().fit(X, [0, 1, 0, 1]), "model.joblib")
"""
MANIFEST = (
    "python:\n  requirements: [requirements.txt]\n"
    "postCreateCommand: python train.py\nwaitFor: postCreateCommand\n"
)
BODY = {"inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP64", "data": [0, 0, 1, 1]}]}


def first_prediction(
    url: str, headers: dict[str, str], started: float, limit: float = 600
) -> float:
    while time.perf_counter() - started < limit:
        try:
            answer = requests.post(url, json=BODY, headers=headers, timeout=300)
            if answer.status_code == 200:
                return time.perf_counter() - started
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no prediction from {url}")


def by_hand(hub: RunningHub, name: str, work: Path) -> tuple[float, subprocess.Popen, str]:
    """Start MLServer as a user would, on the deployment's files; seconds to a prediction."""
    source = hub.data_dir / "deployments" / "dora" / name
    places = json.loads((source / "environments.json").read_text())
    target = work / f"hand-{time.monotonic_ns()}"
    target.mkdir()
    shutil.copytree(source / "model", target / "model")
    shutil.copy(source / "model-settings.json", target / "model-settings.json")
    port = free_port()
    settings = json.loads((source / "settings.json").read_text())
    settings.update(http_port=port, grpc_port=free_port())
    (target / "settings.json").write_text(json.dumps(settings))
    mlserver = str(Path(places["env"]) / "bin" / "mlserver")
    started = time.perf_counter()
    process = subprocess.Popen(
        [mlserver, "start", str(target)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
    return first_prediction(url, {}, started), process, url


def deploy_cold(hub: RunningHub, name: str, token: str) -> float:
    started = time.perf_counter()
    made = hub.server_request(
        "dora",
        "ml",
        "codespace/api/deployments",
        "POST",
        json={"artifact": "model.joblib", "name": name, "idleTimeout": 10},
    )
    assert made.status_code == 201, made.text
    url = made.json()["endpoint"]["infer"]
    return first_prediction(url, {"Authorization": f"token {token}"}, started)


def p50(url: str, headers: dict[str, str]) -> float:
    session = requests.Session()
    times = []
    for _ in range(CALLS):
        started = time.perf_counter()
        answer = session.post(url, json=BODY, headers=headers, timeout=60)
        times.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return statistics.median(times)


def main() -> int:
    if os.geteuid() != 0:
        print("bench_deploy: needs root (accounts and the sandbox); skipped")
        return 0
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    repo = make_repo(
        work / "repo",
        {
            ".codespace/codespace.yaml": MANIFEST,
            "requirements.txt": "scikit-learn\n",
            "train.py": TRAIN,
        },
    )
    with running_hub(work / "hub") as hub:
        assert hub.spawn("dora", "ml", {"repo": str(repo)})[-1].get("ready")
        hub.ensure_user("dora")
        token = hub.api("POST", "/users/dora/tokens", json={"note": "bench"}).json()["token"]
        headers = {"Authorization": f"token {token}"}
        first = deploy_cold(hub, "warmup", token)
        print(f"first deployment of this environment (builds the serving env): {first:.1f} s")
        hand, ours, hand_urls, processes = [], [], [], []
        for rep in range(REPS):
            seconds, process, url = by_hand(hub, "warmup", work)
            hand.append(seconds)
            processes.append(process)
            hand_urls.append(url)
            ours.append(deploy_cold(hub, f"cold{rep}", token))
        base = hub.url + "services/codespace-deploy/endpoints/dora/"
        direct = p50(hand_urls[0], {})
        proxied = p50(f"{base}warmup/v2/models/warmup/infer", headers)
        wakes = []
        for _ in range(REPS):
            time.sleep(13)  # idleTimeout 10 s + the reaper's interval
            started = time.perf_counter()
            wakes.append(first_prediction(f"{base}warmup/v2/models/warmup/infer", headers, started))
        for process in processes:
            process.terminate()
            process.wait(30)
    shutil.rmtree(work, ignore_errors=True)
    hand_s, ours_s = statistics.median(hand), statistics.median(ours)
    print(f"MLServer by hand, start to first prediction: {hand_s:.2f} s (median of {REPS})")
    ratio = ours_s / hand_s
    print(f"deploy (cold), file to first prediction: {ours_s:.2f} s, {ratio:.2f}x (target <= 1.2x)")
    print(f"first request after scale to zero:          {statistics.median(wakes):.2f} s")
    print(
        f"request p50 direct {direct * 1000:.1f} ms, through the hub's proxy "
        f"{proxied * 1000:.1f} ms: {proxied / direct:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
