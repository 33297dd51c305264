"""Activity sources (codespace.activity, extensions.activity): the pure rules, the files other
processes touch, the SSH listener's meter, the report and the hub's records, and the server
extension measuring kernels, terminal input and saves in a real jupyter_server."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry, Gauge

from codespace.activity import sources
from codespace.activity.files import ActivityFile, activity_dir, file_time
from codespace.activity.metrics import set_activity_ages, youngest_ages
from codespace.activity.report import ActivityReport, ReportError
from codespace.activity.store import ActivityStore, StopRecord
from codespace.activity.traffic import TrafficMeter
from codespace.launch import Placement, platform_variables
from codespace.options import UserOptions
from codespace.spec.model import Codespace
from codespace.ssh.listen import Activity
from extensions import vscode_activity
from extensions.activity import (
    BUSY,
    ActivityMonitor,
    ActivityReporter,
    SourceUnavailable,
    deployments_activity,
    hub_activity_url,
    idle_timeout_from,
    local_jobs_activity,
)
from extensions.vscode import install_activity_extension
from tests.conftest import TOOLS, require_executable

pytest_plugins = ["pytest_jupyter.jupyter_server"]

NOW = datetime(2024, 5, 1, 14, 2, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# -- sources ------------------------------------------------------------------------------------


def test_a_busy_kernel_is_active_now_and_idle_ones_at_their_last_message() -> None:
    assert sources.kernel_activity([("idle", ago(600)), ("busy", ago(3600))], NOW) == NOW
    assert sources.kernel_activity([("idle", ago(600)), ("idle", ago(60))], NOW) == ago(60)
    assert sources.kernel_activity([("starting", None)], NOW) is None
    assert sources.kernel_activity([], NOW) is None


def test_a_running_job_is_active_now_else_the_last_end() -> None:
    assert sources.jobs_activity([("succeeded", ago(90)), ("running", None)], NOW) == NOW
    assert sources.jobs_activity([("failed", ago(90)), ("succeeded", ago(30))], NOW) == ago(30)
    assert sources.jobs_activity([("queued", None)], NOW) is None


def test_the_newest_source_wins_and_naive_times_are_utc() -> None:
    times = {"ssh": ago(10), "kernel": ago(10), "vscode": None, "custom": ago(5)}
    assert sources.latest(times) == ("custom", ago(5))
    del times["custom"]
    assert sources.latest(times) == ("kernel", ago(10))  # a tie: the first in SOURCES
    assert sources.latest({"x": None}) is None
    assert sources.utc(datetime(2024, 5, 1, 14, 2)) == NOW
    assert sources.parse_time("2024-05-01T14:02:00Z") == NOW
    assert sources.parse_time("yesterday") is None
    assert sources.iso(NOW) == "2024-05-01T14:02:00Z"


# -- activity files and the SSH meter -----------------------------------------------------------


def test_activity_files_are_touched_at_most_every_few_seconds(tmp_path: Path) -> None:
    assert activity_dir({}) is None
    assert activity_dir({"CODESPACE_ACTIVITY_DIR": str(tmp_path)}) == tmp_path
    file = ActivityFile(tmp_path / "activity", "ssh", every=10)
    assert file.time() is None
    assert file.touch(now=100.0)
    first = file_time(file.path)
    assert first is not None
    os.utime(file.path, (0, 0))
    assert not file.touch(now=105.0)  # within 10 s: not written again
    assert file_time(file.path) == datetime.fromtimestamp(0, UTC)
    assert file.touch(now=111.0)
    assert file.time() >= first


def test_an_unwritable_activity_directory_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert not ActivityFile(tmp_path / "file", "ssh", every=0).touch()


def test_keepalives_are_not_ssh_activity_but_input_is() -> None:
    meter = TrafficMeter(min_bytes=1024, window=60)
    # an idle session: a keepalive of ~70 bytes every 15 s, for an hour
    assert not any(meter.add(70, second) for second in range(0, 3600, 15))
    # typing: ~70 bytes a key, 20 keys within a few seconds
    assert any(meter.add(70, 4000 + key * 0.2) for key in range(20))
    # after a report the count starts again; old bytes age out of the window
    meter.add(1000, 5000)
    assert not meter.add(100, 5100)
    assert not meter.add(0, 5101)


def test_the_listener_touches_the_ssh_file_on_connection_and_input(tmp_path: Path) -> None:
    activity = Activity(ActivityFile(tmp_path, "ssh", every=0), TrafficMeter(min_bytes=100))
    activity.received(60)
    assert file_time(tmp_path / "ssh") is None
    activity.received(60)
    assert file_time(tmp_path / "ssh") is not None
    Activity(None).received(10_000)  # no directory: nothing kept, nothing fails
    activity.connected()


def test_a_connection_through_the_listener_is_relayed_and_recorded(tmp_path: Path) -> None:
    short = Path(f"/tmp/cs-act-{os.getpid()}")  # AF_UNIX paths must be short
    short.mkdir(exist_ok=True)
    path, record = short / "s", tmp_path / "activity"
    argv = [sys.executable, "-m", "codespace.ssh.listen", str(path), "--", "cat"]
    env = {**os.environ, "CODESPACE_ACTIVITY_DIR": str(record)}
    server = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            if path.exists():
                break
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as probe:  # a readiness check: no activity
            probe.connect(str(path))
        time.sleep(0.8)
        assert file_time(record / "ssh") is None
        payload = os.urandom(1 << 20)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
            echoed: list[bytes] = []
            reader = threading.Thread(target=lambda: echoed.append(client.makefile("rb").read()))
            reader.start()
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            reader.join(30)
            assert echoed == [payload]  # both ways, to the end
        assert file_time(record / "ssh") is not None
    finally:
        server.terminate()
        server.wait(timeout=10)
        path.unlink(missing_ok=True)
        short.rmdir()


# -- the report, the hub's records, the gauge ---------------------------------------------------


def test_a_report_round_trips_and_bad_ones_are_refused() -> None:
    report = ActivityReport({"kernel": ago(60), "ssh": None}, 1800, NOW, ago(3600))
    data = report.to_json()
    assert data == {
        "sources": {"kernel": "2024-05-01T14:01:00Z", "ssh": None},
        "lastActivity": "2024-05-01T14:01:00Z",
        "source": "kernel",
        "idleTimeout": 1800,
        "reported": "2024-05-01T14:02:00Z",
        "started": "2024-05-01T13:02:00Z",
    }
    assert ActivityReport.from_json(data) == report
    later = NOW + timedelta(minutes=5)
    assert ActivityReport.from_json(data, reported=later).reported == later
    for bad in (
        [],
        {"sources": {"Kernel!": None}},
        {"sources": {"kernel": "soon"}},
        {"sources": {}, "idleTimeout": -1},
        {"sources": {}, "idleTimeout": True},
        {"sources": {f"s{n}": None for n in range(40)}},
    ):
        with pytest.raises(ReportError):
            ActivityReport.from_json(bad)


def test_a_clock_ahead_of_the_hub_does_not_make_a_server_busy_for_ever() -> None:
    report = ActivityReport({"kernel": NOW + timedelta(days=1)}, None, NOW, NOW + timedelta(1))
    clamped = report.clamped(NOW)
    assert clamped.sources["kernel"] == NOW and clamped.started == NOW


def test_the_hub_keeps_reports_and_stops_until_a_new_run_reports(tmp_path: Path) -> None:
    store = ActivityStore(tmp_path / "activity.sqlite")
    assert store.get("alice", "demo") is None
    store.report("alice", "demo", ActivityReport({"kernel": ago(60)}, 900, ago(30), ago(7200)))
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"
    stop = StopRecord(NOW, "idle", "Stopped after 15 min idle", "kernel", ago(900))
    store.stopped("alice", "demo", stop)
    store.stopped("bob", "x", stop)  # a server that never reported
    record = store.get("alice", "demo")
    assert record.report.idle_timeout == 900 and record.stopped == stop
    # a late report of the run that was stopped leaves the reason
    store.report("alice", "demo", ActivityReport({"kernel": ago(60)}, 900, NOW, ago(7200)))
    assert store.get("alice", "demo").stopped == stop
    # the next run reports: the reason goes
    new_run = ActivityReport({"kernel": None}, 900, NOW + timedelta(minutes=2), NOW)
    new_run = ActivityReport(new_run.sources, 900, new_run.reported, NOW + timedelta(minutes=1))
    store.report("alice", "demo", new_run)
    assert store.get("alice", "demo").stopped is None
    assert [(r.user, r.server) for r in store.list()] == [("alice", "demo"), ("bob", "x")]
    assert [r.server for r in store.list("bob")] == ["x"]
    assert store.get("bob", "x").to_json()["stopped"]["message"] == "Stopped after 15 min idle"
    store.forget("bob", "x")
    assert store.get("bob", "x") is None


def test_a_stop_record_from_json_is_checked() -> None:
    with pytest.raises(ValueError):
        StopRecord.from_json({"reason": "idle"})
    record = StopRecord.from_json(
        {"at": "2024-05-01T14:02:00Z", "reason": "idle", "message": "m" * 1000, "source": 3}
    )
    assert record.at == NOW and len(record.message) == 300 and record.source is None


def test_the_gauge_holds_the_youngest_age_of_each_source() -> None:
    gauge = Gauge("test_activity_age_seconds", "test", ["source"], registry=CollectorRegistry())
    reports = [{"kernel": ago(300), "ssh": None}, {"kernel": ago(30), "vscode": ago(5)}]
    assert youngest_ages(reports, NOW) == {"kernel": 30.0, "vscode": 5.0}
    set_activity_ages(reports, NOW, gauge)
    assert gauge.labels(source="kernel")._value.get() == 30.0
    set_activity_ages([{"ssh": ago(1)}], NOW, gauge)
    samples = {s.labels["source"]: s.value for m in gauge.collect() for s in m.samples}
    assert samples == {"ssh": 1.0}  # the others have no sample any more


# -- what the server is told, and tells ---------------------------------------------------------


def test_the_spec_idle_timeout_reaches_the_server_in_both_modes() -> None:
    placement = Placement("local", "/ws", "/env")
    options = UserOptions(repo="https://example.org/r.git")
    spec = Codespace.model_validate({"lifetime": {"idleTimeout": "45m"}})
    env = platform_variables(options, spec, placement, "hash", [])
    assert env["CODESPACE_IDLE_TIMEOUT"] == "2700"
    assert idle_timeout_from(env) == 2700
    unset = platform_variables(options, Codespace(), placement, "hash", [])
    assert unset["CODESPACE_IDLE_TIMEOUT"] == "" and idle_timeout_from(unset) is None


def test_the_report_goes_to_the_hubs_activity_api() -> None:
    env = {
        "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api/",
        "JUPYTERHUB_USER": "a b",
        "JUPYTERHUB_SERVER_NAME": "demo",
    }
    url = hub_activity_url(env)
    assert url == "http://127.0.0.1:8081/hub/api/codespace/activity/a%20b/demo"
    assert hub_activity_url({}) == ""


def test_the_vscode_extension_packs_as_a_vsix(tmp_path: Path) -> None:
    vsix = vscode_activity.pack_vsix(tmp_path)
    assert vsix.name == f"codespace-hub.codespace-activity-{vscode_activity.VERSION}.vsix"
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("extension/package.json"))
        script = archive.read("extension/extension.js").decode()
    assert names == {
        "[Content_Types].xml",
        "extension.vsixmanifest",
        "extension/package.json",
        "extension/extension.js",
    }
    assert manifest["main"] == "./extension.js" and manifest["extensionKind"] == ["workspace"]
    assert "CODESPACE_ACTIVITY_DIR" in script and "heartbeat" in script


# -- the server extension, in a real jupyter_server ----------------------------------------------


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "TerminalsExtensionApp": {
            "terminal_manager_class": "extensions.activity.InputTerminalManager"
        },
        "CodespaceExtension": {
            "state_dir": str(tmp_path / "state"),
            "activity_interval": 0,
            "idle_timeout": 1200,
            "job_backends": {"local": "codespace.jobs.local.LocalJobBackend"},
            "job_backend_options": {"local": {"poll_interval": 0.05}},
        },
    }


async def report(jp_fetch) -> dict:
    response = await jp_fetch("codespace", "api", "activity")
    return json.loads(response.body)


def test_a_fresh_server_has_measured_nothing_and_is_active_since_its_start(
    jp_fetch, run, extension, jp_serverapp
) -> None:
    body = run(report(jp_fetch))
    assert body["idleTimeout"] == 1200 and body["lastActivity"] is None
    # no deploy service here (no CODESPACE_DEPLOY_URL): that source is not measured
    assert set(body["sources"]) == {"kernel", "terminal", "vscode", "ssh", "files", "jobs"}
    assert jp_serverapp.web_app.last_activity() == extension.activity.started
    assert os.environ["CODESPACE_ACTIVITY_DIR"] == extension.activity_dir


def test_a_busy_kernel_is_activity_now_and_its_idle_tab_is_not(jp_fetch, run, jp_serverapp) -> None:
    manager = jp_serverapp.kernel_manager

    async def scenario() -> None:
        kernel_id = await manager.start_kernel()
        client = manager.get_kernel(kernel_id).client()
        client.start_channels()
        try:
            await asyncio.wait_for(client._async_wait_for_ready(), 60)
            await asyncio.sleep(1.0)
            idle = (await report(jp_fetch))["sources"]["kernel"]
            client.execute("import time\nfor _ in range(40): time.sleep(0.1)")
            for _ in range(50):
                await asyncio.sleep(0.1)
                if manager.get_kernel(kernel_id).execution_state == "busy":
                    break
            busy = await report(jp_fetch)
            assert busy["source"] == "kernel"
            assert sources.parse_time(busy["sources"]["kernel"]) >= sources.parse_time(idle)
            assert sources.parse_time(busy["sources"]["kernel"]) == sources.parse_time(
                busy["reported"]
            )  # busy: active at the moment of the report
            for _ in range(100):
                await asyncio.sleep(0.1)
                if manager.get_kernel(kernel_id).execution_state == "idle":
                    break
            done = (await report(jp_fetch))["sources"]["kernel"]
            await asyncio.sleep(1.5)  # an idle kernel: its time stays where it was
            assert (await report(jp_fetch))["sources"]["kernel"] == done
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(kernel_id, now=True)

    run(scenario())


def test_terminal_input_counts_and_output_does_not(jp_fetch, jp_ws_fetch, run) -> None:
    async def scenario() -> None:
        made = await jp_fetch("api", "terminals", method="POST", body="{}")
        name = json.loads(made.body)["name"]
        socket_ = await jp_ws_fetch("terminals", "websocket", name)
        try:
            await asyncio.sleep(1.0)  # the shell's prompt: output only
            assert (await report(jp_fetch))["sources"]["terminal"] is None
            await socket_.write_message(json.dumps(["stdin", "echo hello\r"]))
            for _ in range(50):
                await asyncio.sleep(0.1)
                body = await report(jp_fetch)
                if body["sources"]["terminal"]:
                    break
            assert body["sources"]["terminal"] is not None
        finally:
            socket_.close()
            await jp_fetch("api", "terminals", name, method="DELETE")

    run(scenario())


def test_a_saved_file_and_the_activity_files_count(jp_fetch, run, extension, jp_serverapp) -> None:
    body = json.dumps({"type": "file", "format": "text", "content": "x"})
    run(jp_fetch("api", "contents", "notes.txt", method="PUT", body=body))
    ActivityFile(Path(extension.activity_dir), "vscode", every=0).touch()
    measured = run(report(jp_fetch))["sources"]
    assert measured["files"] and measured["vscode"]
    newest = max(sources.parse_time(measured[name]) for name in ("files", "vscode"))
    assert jp_serverapp.web_app.last_activity() >= newest


def test_a_running_local_job_keeps_the_codespace_active(
    jp_fetch, run, extension, jp_root_dir
) -> None:
    command = [sys.executable, "-c", "import time; time.sleep(3)"]
    submitted = {"name": "sleepy", "command": command}

    async def scenario() -> None:
        await jp_fetch("codespace", "api", "jobs", method="POST", body=json.dumps(submitted))
        for _ in range(100):
            await extension.activity.poll(force=True)
            await asyncio.sleep(0.05)
            body = await report(jp_fetch)
            if body["sources"]["jobs"] == body["reported"]:
                break
        assert body["sources"]["jobs"] == body["reported"], body  # running: active now

    run(scenario())


# -- polled sources and the report to the hub, without a hub -------------------------------------


def test_deployment_requests_and_a_failing_source_backs_off() -> None:
    class Deployments:
        def __init__(self, records, problems) -> None:
            self.answer = (records, problems)

        async def list(self):
            return self.answer

    class Jobs:
        async def list(self):
            return [SimpleNamespace(state="running", finished=None)]

    served = [SimpleNamespace(lastRequest=ago(30)), SimpleNamespace(lastRequest=None)]
    assert asyncio.run(deployments_activity(Deployments(served, {}))) == ago(30)
    assert asyncio.run(deployments_activity(Deployments([], {}))) is None
    with pytest.raises(SourceUnavailable, match="local: no deploy service"):
        asyncio.run(deployments_activity(Deployments([], {"local": "no deploy service"})))
    assert asyncio.run(local_jobs_activity(lambda: None)) is None
    assert asyncio.run(local_jobs_activity(Jobs)) == BUSY

    calls: list[str] = []

    async def failing():
        calls.append("asked")
        raise SourceUnavailable("down")

    async def jobs():
        return BUSY

    monitor = ActivityMonitor(
        {}, Path("/nonexistent"), polled={"deployments": failing, "jobs": jobs}
    )

    async def twice() -> ActivityReport:
        await monitor.poll(force=True)
        await monitor.poll()  # within poll_every: not asked again
        return await monitor.report()

    report = asyncio.run(twice())
    assert calls == ["asked"]  # and not again before RETRY_AFTER
    assert "deployments" not in report.sources  # never answered: not measured
    assert report.sources["jobs"] == report.reported  # a running job: active now


def test_the_reporter_posts_with_the_servers_token(tmp_path: Path) -> None:
    received: list[tuple[str, str, dict]] = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, self.headers["Authorization"], body))
            self.send_response(204)
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{server.server_port}/hub/api",
        "JUPYTERHUB_API_TOKEN": "server-token",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVER_NAME": "demo",
    }
    ActivityFile(tmp_path, "ssh", every=0).touch()
    monitor = ActivityMonitor({"started": ago(60)}, tmp_path, idle_timeout=900)
    try:
        report = asyncio.run(ActivityReporter(monitor, env, 60).once())
    finally:
        server.shutdown()
    [(path, auth, body)] = received
    assert path == "/hub/api/codespace/activity/alice/demo" and auth == "token server-token"
    assert body["source"] == "ssh" and body["idleTimeout"] == 900
    assert body["started"] == "2024-05-01T14:01:00Z"
    assert ActivityReport.from_json(body).sources["ssh"] == report.sources["ssh"]


def test_code_server_installs_the_activity_extension_once(tmp_path: Path) -> None:
    code_server = require_executable(
        "code-server", TOOLS / "code-server" / "node_modules" / ".bin" / "code-server"
    )
    install_activity_extension(code_server, tmp_path)
    installed = (
        tmp_path / "extensions" / f"{vscode_activity.EXTENSION_ID}-{vscode_activity.VERSION}"
    )
    assert (installed / "extension.js").is_file()
    stamp = installed.stat().st_mtime_ns
    install_activity_extension(code_server, tmp_path)  # found installed: left as it is
    assert installed.stat().st_mtime_ns == stamp
