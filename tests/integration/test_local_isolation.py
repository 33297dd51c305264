"""A shared local hub against untrusted repositories: accounts, sandbox, limits (issue 10).

The hub runs as root (as `make run` does on a team's server), so each hub user's codespaces
run as their own account, in a cgroup, in the bubblewrap sandbox. A repository's lifecycle
command (the first untrusted code a codespace runs) tries everything a hostile repository
would: read the hub's secrets and database, list, read and write another user's workspace,
write into the environment other codespaces run, and reports what it got. Without root,
cgroups or bubblewrap the module skips locally and fails in CI.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from tests.helpers.confinement import require_bwrap, require_cgroups, require_root
from tests.helpers.hub import RunningHub, running_hub
from tests.helpers.kernel import run_in_kernel
from tests.helpers.repos import commit_files, fixture_repo

pytestmark = pytest.mark.integration

# Run by the repository's onCreateCommand: every attempt's outcome goes to probe.json.
PROBE = r"""
import glob, json, os, pathlib, sys
data, victim_ws = sys.argv[1], sys.argv[2]
result = {"uid": os.getuid(), "read": {}, "listed": None, "wrote": {}, "env": {}}
for name in ("cookie_secret", "jupyterhub.sqlite", "test_jupyterhub_config.py"):
    try:
        result["read"][name] = len(pathlib.Path(data, name).read_bytes())
    except OSError:
        result["read"][name] = None
try:
    result["listed"] = os.listdir(victim_ws)
except OSError:
    pass
try:
    result["read"]["victim"] = pathlib.Path(victim_ws, "README.md").read_text()
except OSError:
    result["read"]["victim"] = None
targets = {"victim": os.path.join(victim_ws, "planted.py")}
shared = glob.glob(data + "/env-cache/envs/*/lib/python3*/site-packages")
targets.update({f"env{i}": os.path.join(p, "planted.py") for i, p in enumerate(shared)})
targets["shared_env_seen_by_kernel"] = os.path.join(os.path.dirname(os.__file__), "planted.py")
for name, target in targets.items():
    try:
        pathlib.Path(target).write_text("print('planted')\n")
        result["wrote"][name] = True
    except OSError:
        result["wrote"][name] = False
secret = ("TOKEN", "SECRET", "PASSWORD", "CODESPACE_HUB")
result["env"] = sorted(k for k in os.environ if any(word in k for word in secret))
pathlib.Path("probe.json").write_text(json.dumps(result))
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    require_root()
    require_cgroups()
    require_bwrap()
    data = tmp_path_factory.mktemp("isolation-hub")
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    env = {**os.environ, "CODESPACE_HUB_SECRET_FOR_THE_TEST": "must-not-reach-codespaces"}
    with running_hub(data / "hub", extra_config=config, env=env) as running:
        yield running


def workspace(hub: RunningHub, user: str, server: str) -> Path:
    return hub.data_dir / "workspaces" / user / server


def ready(events: list[dict]) -> bool:
    return bool(events and events[-1].get("ready"))


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def test_an_untrusted_repository_gets_nothing_of_the_hub_or_other_users(
    hub: RunningHub, tmp_path: Path
) -> None:
    victim_repo = fixture_repo(tmp_path / "victim")
    assert ready(hub.spawn("victim", "mine", {"repo": str(victim_repo)}))
    victim_ws = workspace(hub, "victim", "mine")

    manifest = (
        "python:\n  requirements: [requirements.txt]\n"
        f"onCreateCommand: [python, probe.py, {str(hub.data_dir)!r}, {str(victim_ws)!r}]\n"
    )
    attacker = fixture_repo(tmp_path / "attacker", codespace_yaml=manifest)
    commit_files(attacker, {"probe.py": PROBE})
    events = hub.spawn("mallory", "evil", {"repo": str(attacker)})
    assert ready(events), messages(events)
    assert "account: running as cs-mallory" in messages(events)
    result = json.loads((workspace(hub, "mallory", "evil") / "probe.json").read_text())

    assert result["uid"] != 0
    assert result["read"] == {
        "cookie_secret": None,
        "jupyterhub.sqlite": None,
        "test_jupyterhub_config.py": None,
        "victim": None,
    }
    assert result["listed"] is None
    assert not any(result["wrote"].values()), result["wrote"]
    assert len(result["wrote"]) >= 2  # the victim's workspace and at least one shared env
    assert result["env"] == []  # no hub token, secret or password in its environment
    assert not (victim_ws / "planted.py").exists()

    # the victim's codespace (same shared environment) still runs its own code only
    out, error = run_in_kernel(hub, "victim", "mine", "import cs_fixture_pkg; print('ok')")
    assert error is None and out.strip() == "ok"
    out, error = run_in_kernel(hub, "victim", "mine", "import planted")
    assert error is not None and "ModuleNotFoundError" in error


def test_servers_run_as_the_users_account_in_the_sandbox(hub: RunningHub, tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path)
    assert ready(hub.spawn("alice", "box", {"repo": str(repo)}))
    code = (
        "import os, pathlib; print(os.getuid(), os.getpid(),"
        " pathlib.Path(os.environ['HOME']).name, os.path.exists('/root/.bashrc'))"
    )
    out, error = run_in_kernel(hub, "alice", "box", code)
    assert error is None, error
    uid, pid, home, sees_root = out.split()
    assert uid != "0" and home == "cs-alice"
    assert int(pid) < 100  # its own PID namespace
    assert sees_root == "False"
    ws = workspace(hub, "alice", "box")
    assert ws.stat().st_uid == int(uid) and ws.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("repo", "reason"),
    [
        ("DATA/workspaces/victim/mine", "outside the directories the hub allows"),
        ("/etc", "outside the directories the hub allows"),
        ("file:///etc", "outside the directories the hub allows"),
    ],
)
def test_a_local_path_outside_the_allowed_roots_is_refused(
    hub: RunningHub, repo: str, reason: str
) -> None:
    options = {"repo": repo.replace("DATA", str(hub.data_dir))}
    with pytest.raises(requests.HTTPError) as refused:
        hub.spawn("mallory", "steal", options)
    assert refused.value.response.status_code == 400
    assert reason in refused.value.response.json()["message"]


def test_a_codespace_past_its_memory_limit_is_killed_alone(hub: RunningHub, tmp_path: Path) -> None:
    calm = fixture_repo(tmp_path / "calm")
    assert ready(hub.spawn("carol", "calm", {"repo": str(calm)}))
    manifest = (
        "python:\n  requirements: [requirements.txt]\n"
        "resources: {memory: 400Mi}\n"
        "postStartCommand: python -c \"x = bytearray(2 * 1024**3); print('survived')\"\n"
    )
    hog = fixture_repo(tmp_path / "hog", codespace_yaml=manifest)
    events = hub.spawn("henry", "hog", {"repo": str(hog)})
    assert ready(events), messages(events)
    assert "limits: 0.391 GiB memory" in messages(events)
    errors = workspace(hub, "henry", "hog") / "CODESPACE_ERRORS.md"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not errors.exists():
        time.sleep(0.5)
    text = errors.read_text()
    assert "postStartCommand" in text and "used all of its memory limit" in text
    log = (workspace(hub, "henry", "hog") / ".codespace-logs" / "lifecycle.log").read_text()
    assert "survived" not in log.splitlines()  # the command's own output (not its echo)
    assert "ran out of memory" in log
    # the hog's own server, the other user's codespace and the hub keep answering
    assert hub.server_request("henry", "hog", "api/status").status_code == 200
    assert hub.server_request("carol", "calm", "api/status").status_code == 200
    assert hub.api("GET", "/users/carol").status_code == 200
