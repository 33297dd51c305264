"""End to end: JupyterHub + configurable-http-proxy + LocalCodespaceSpawner, real processes.

One hub serves the whole module (starting servers is what takes time); every test uses its
own user or server name. Repositories are made by the tests; their requirements are a wheel
inside the repository, so installing them needs no network (the kernel layer comes from the
uv cache or the index).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.conftest import require_executable
from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import commit_files, fixture_repo, make_vsix

pytestmark = pytest.mark.integration

LIFECYCLE_YAML = """\
python:
  requirements: [requirements.txt]
postCreateCommand: echo created >> .lifecycle-created
postStartCommand: ["sh", "-c", "echo started >> .lifecycle-started"]
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("local-hub")
    config = uv_cache_config(tmp_path_factory)
    with running_hub(data / "hub", extra_config=config) as running:
        yield running


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_repo(tmp_path_factory.mktemp("repo"), codespace_yaml=LIFECYCLE_YAML)


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def workspace(hub: RunningHub, user: str, server: str) -> Path:
    return hub.data_dir / "workspaces" / user / server


def wait_for_background_commands(ws: Path, timeout: float = 60) -> dict:
    """The lifecycle status once no command is pending or running (they run after waitFor)."""
    path = ws / ".codespace-logs" / "lifecycle-status.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            commands = json.loads(path.read_text())["commands"]
            if all(entry["state"] not in ("pending", "running") for entry in commands.values()):
                return commands
        time.sleep(0.2)
    raise AssertionError(f"lifecycle commands still running after {timeout} s")


def test_spawn_makes_the_repo_env_the_default_kernel(hub: RunningHub, repo: Path) -> None:
    events = hub.spawn("alice", "demo", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    text = messages(events)
    for step in ("fetch:", "resolve: .codespace/codespace.yaml", "environment:", "lifecycle:"):
        assert step in text

    specs = hub.server_request("alice", "demo", "api/kernelspecs").json()
    assert specs["default"] == "codespace"
    python = specs["kernelspecs"]["codespace"]["spec"]["argv"][0]
    # the codespace's own layer (where its pip installs go) over the shared environment
    assert python == str(hub.data_dir / "servers" / "alice" / "demo" / "env" / "bin" / "python")
    # the kernel side (SDK, widgets) imports in the repo env, which holds no pydantic of ours
    code = (
        "import importlib.util, cs_fixture_pkg, ipykernel; from codespace import datasets, widgets;"
        " print(cs_fixture_pkg.VALUE, importlib.util.find_spec('pydantic') is None)"
    )
    probe = subprocess.run([python, "-c", code], capture_output=True, text=True)
    assert probe.stdout.split() == ["42", "True"], probe.stderr
    jupyter = subprocess.run([python, "-c", "import jupyter_server"], capture_output=True)
    assert jupyter.returncode != 0, "the platform's Jupyter leaked into the repo environment"

    kernel = hub.server_request("alice", "demo", "api/kernels", method="POST", json={})
    assert kernel.status_code == 201 and kernel.json()["name"] == "codespace"


def test_post_create_runs_once_and_post_start_on_every_start(hub: RunningHub, repo: Path) -> None:
    events = hub.spawn("bob", "life", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    assert "postCreateCommand, postStartCommand will run in the background" in messages(events)
    ws = workspace(hub, "bob", "life")
    assert wait_for_background_commands(ws)["postCreateCommand"]["state"] == "done"
    (ws / "my-notes.txt").write_text("unsaved work\n")
    hub.stop("bob", "life")

    events = hub.spawn("bob", "life", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    assert "workspace kept" in messages(events)
    wait_for_background_commands(ws)
    assert (ws / ".lifecycle-created").read_text().splitlines() == ["created"]
    assert (ws / ".lifecycle-started").read_text().splitlines() == ["started", "started"]
    assert (ws / "my-notes.txt").read_text() == "unsaved work\n"
    log = (ws / ".codespace-logs" / "lifecycle.log").read_text()
    assert "postCreateCommand" in log and log.count("--- postStartCommand") == 2
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored=no"], cwd=ws, capture_output=True, text=True
    ).stdout
    assert ".codespace-logs" not in status


def test_unchanged_environment_is_a_cache_hit(hub: RunningHub, repo: Path) -> None:
    first = hub.spawn("carol", "one", {"repo": str(repo)})
    second = hub.spawn("carol", "two", {"repo": str(repo)})
    assert first[-1].get("ready") and second[-1].get("ready"), messages(second)
    assert "environment: cache hit" in messages(second)
    shared = [
        json.loads(
            (hub.data_dir / "servers" / "carol" / name / "env" / "codespace-layer.json").read_text()
        )["base"]
        for name in ("one", "two")
    ]
    assert shared[0] == shared[1] and shared[0].startswith(str(hub.data_dir / "env-cache"))


def test_code_change_reuses_env_but_requirement_change_rebuilds(
    hub: RunningHub, tmp_path: Path
) -> None:
    repo = fixture_repo(tmp_path)
    assert hub.spawn("erin", "base", {"repo": str(repo)})[-1].get("ready")
    commit_files(repo, {"analysis.py": "print('new code')\n"})
    events = hub.spawn("erin", "code", {"repo": str(repo)})
    assert "environment: cache hit" in messages(events)
    commit_files(repo, {"requirements.txt": "./vendor/cs_fixture_pkg-0.1.0-py3-none-any.whl\n\n"})
    events = hub.spawn("erin", "reqs", {"repo": str(repo)})
    assert events[-1].get("ready") and "environment: built" in messages(events)
    # the build's progress moves with uv's milestones; package lists are one line each
    build = [e for e in events if "environment:" in str(e.get("message"))]
    resolved = next(e for e in build if "environment: resolved" in e["message"])
    installed = next(e for e in build if "environment: installed" in e["message"])
    assert 35 < resolved["progress"] < installed["progress"] < 70
    assert "added " in messages(events)
    assert not any(
        str(e.get("message", "")).split("] ", 1)[-1].strip().startswith("+ ") for e in events
    )


def test_broken_spec_lands_in_a_recovery_codespace(hub: RunningHub, tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path, codespace_yaml="python:\n  requirments: [requirements.txt]\n")
    events = hub.spawn("dave", "broken", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    assert "recovery" in messages(events)
    # each error, with its file:line, is a step of the progress page itself
    steps = [str(e["message"]).split("] ", 1)[-1] for e in events]
    assert any(s.startswith("error: .codespace/codespace.yaml:2") for s in steps), steps
    assert not any("(default) (default)" in s for s in steps)
    errors = (workspace(hub, "dave", "broken") / "CODESPACE_ERRORS.md").read_text()
    assert "recovery codespace" in errors
    assert ".codespace/codespace.yaml:2" in errors
    assert "How to retry" in errors
    landing = hub.server_request("dave", "broken", "", allow_redirects=False)
    assert landing.headers["Location"].split("?")[0].endswith("/lab/tree/CODESPACE_ERRORS.md")
    assert (workspace(hub, "dave", "broken") / "README.md").exists()  # repo checked out
    # the lab opens the errors file (rendered), then the README
    session = hub.server_request("dave", "broken", "codespace/api/session").json()
    assert session["openFiles"] == ["CODESPACE_ERRORS.md", "README.md"]
    assert session["errorsFile"] == "CODESPACE_ERRORS.md"


def test_failed_environment_build_lands_in_recovery(hub: RunningHub, tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path)
    commit_files(repo, {"requirements.txt": "./vendor/no-such-package-1.0-py3-none-any.whl\n"})
    events = hub.spawn("dave", "envfail", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    errors = (workspace(hub, "dave", "envfail") / "CODESPACE_ERRORS.md").read_text()
    assert "environment could not be built" in errors and "no-such-package" in errors
    specs = hub.server_request("dave", "envfail", "api/kernelspecs").json()
    assert specs["default"] == "codespace"  # the default environment still has a kernel


def test_failing_lifecycle_command_is_shown_and_stops_later_ones(
    hub: RunningHub, tmp_path: Path
) -> None:
    manifest = (
        "onCreateCommand: echo about to fail; exit 3\n"
        "postCreateCommand: echo should-not-run > .post-create\n"
    )
    repo = fixture_repo(tmp_path, codespace_yaml=manifest)
    events = hub.spawn("frank", "fails", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    text = messages(events)
    assert "about to fail" in text and "onCreateCommand" in text and "status 3" in text
    ws = workspace(hub, "frank", "fails")
    assert not (ws / ".post-create").exists()
    assert "onCreateCommand" in (ws / "CODESPACE_ERRORS.md").read_text()


@pytest.mark.parametrize(
    ("server", "options", "expected"),
    [
        ("a", {"repo": "--upload-pack=touch /tmp/pwned"}, "starts with '-'"),
        ("b", {"repo": "/tmp/repo;touch /tmp/pwned"}, "shell characters"),
        ("c", {"repo": "/tmp/repo", "ref": "$(touch /tmp/pwned)"}, "ref '$(touch /tmp/pwned)'"),
        ("d", {"repo": "/tmp/repo", "ref": "--upload-pack=touch"}, "starts with '-'"),
        ("e", {"repo": "ext::sh -c touch% /tmp/pwned"}, "refused"),
        ("f", {}, "repo is required"),
    ],
)
def test_injection_attempts_are_refused_with_a_clear_message(
    hub: RunningHub, server: str, options: dict, expected: str
) -> None:
    with pytest.raises(requests.HTTPError) as refused:
        hub.spawn("mallory", server, options)
    assert refused.value.response.status_code == 400
    assert expected in refused.value.response.json()["message"]
    assert not Path("/tmp/pwned").exists()


def test_restarting_the_hub_keeps_servers_running_and_reachable(
    hub: RunningHub, repo: Path
) -> None:
    assert hub.spawn("grace", "keep", {"repo": str(repo)})[-1].get("ready")
    before = hub.server_request("grace", "keep", "api/status").json()
    hub.restart()
    model = hub.api("GET", "/users/grace").json()
    assert model["servers"]["keep"]["ready"]
    after = hub.server_request("grace", "keep", "api/status")
    assert after.status_code == 200
    assert after.json()["started"] == before["started"]  # the same server process


def test_removing_a_named_server_keeps_its_workspace(hub: RunningHub, repo: Path) -> None:
    assert hub.spawn("heidi", "gone", {"repo": str(repo)})[-1].get("ready")
    hub.stop("heidi", "gone", remove=True)
    assert "gone" not in hub.api("GET", "/users/heidi").json()["servers"]
    assert (workspace(hub, "heidi", "gone") / "README.md").exists()


def test_vscode_is_proxied_and_listens_on_no_network_port(hub: RunningHub, repo: Path) -> None:
    node_tool_root = Path(__file__).resolve().parents[2] / ".tools/code-server/node_modules/.bin"
    require_executable("code-server", node_tool_root / "code-server")
    assert hub.spawn("ivan", "code", {"repo": str(repo)})[-1].get("ready")
    info = hub.server_request("ivan", "code", "server-proxy/servers-info").json()
    assert "vscode" in [server["name"] for server in info["server_processes"]]
    health = hub.server_request("ivan", "code", "vscode/healthz")
    assert health.status_code == 200 and health.json()["status"] == "alive"

    ws = str(workspace(hub, "ivan", "code"))
    launched = [
        process
        for process in psutil.process_iter(["cmdline"])
        if ws in (process.info["cmdline"] or []) and "--socket" in process.info["cmdline"]
    ]
    assert launched, "code-server was not started on a unix socket"
    first_on_path = launched[0].environ()["PATH"].split(":")[0]
    assert first_on_path == str(hub.data_dir / "servers" / "ivan" / "code" / "env" / "bin")
    tree = [launched[0], *launched[0].children(recursive=True)]
    listening = [
        conn
        for process in tree
        for conn in process.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening == []


def test_vscode_extensions_install_from_local_vsix_and_missing_ones_are_listed(
    hub: RunningHub, tmp_path: Path
) -> None:
    code_server = Path(__file__).resolve().parents[2] / ".tools/code-server/node_modules/.bin"
    require_executable("code-server", code_server / "code-server")
    make_vsix(hub.data_dir / "vsix", "codespace-tests", "hello")
    manifest = (
        "customizations:\n  vscode:\n"
        "    extensions: [codespace-tests.hello, nobody.not-available]\n"
        "    settings: {editor.fontSize: 17}\n"
    )
    repo = fixture_repo(tmp_path, codespace_yaml=manifest)
    events = hub.spawn("judy", "ext", {"repo": str(repo)})
    assert events[-1].get("ready"), messages(events)
    text = messages(events)
    assert "installs on first open: codespace-tests.hello" in text
    assert "no local VSIX, not installed: nobody.not-available" in text

    assert hub.server_request("judy", "ext", "vscode/healthz").status_code == 200
    vscode_state = hub.data_dir / "servers" / "judy" / "ext" / "vscode"
    installed = [path.name for path in (vscode_state / "extensions").iterdir()]
    assert "codespace-tests.hello-0.0.1" in installed
    assert not any(name.startswith("nobody.") for name in installed)
    settings = json.loads((vscode_state / "user-data" / "Machine" / "settings.json").read_text())
    assert settings["editor.fontSize"] == 17
    assert settings["python.defaultInterpreterPath"].startswith(str(hub.data_dir / "servers"))
