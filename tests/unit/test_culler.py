"""The idle culler: who is stopped and why (codespace.activity.cull), the service's round
against a fake hub API (hub.cull.app), its configuration and scopes (hub.cull), the proxy
that no longer counts idle tabs, and what the home page says (hub.codespaces)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from jupyterhub import orm
from prometheus_client import REGISTRY
from traitlets.config import Config

from codespace.activity.cull import (
    IDLE,
    MAX_AGE,
    CullPolicy,
    ServerView,
    decide,
    duration,
    parse_duration,
)
from codespace.activity.report import ActivityReport
from codespace.activity.store import ActivityStore, ServerActivity, StopRecord
from hub.activity import ServerActivityProxy, refresh_gauge, running_servers
from hub.codespaces import Urls, describe
from hub.cull import CULLER_SCOPES, PROXY_CLASS, SERVICE, configure_culler
from hub.cull.app import CodespaceCuller, reports_of, server_path, server_views

NOW = datetime(2024, 5, 1, 14, 2, tzinfo=UTC)
POLICY = CullPolicy(timeout=1800)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def server(
    *,
    started: float = 120,
    hub_last: float | None = None,
    report: ActivityReport | None = None,
    **kwargs: Any,
) -> ServerView:
    last = ago(hub_last) if hub_last is not None else None
    return ServerView("alice", "demo", ago(started), last, report=report, **kwargs)


def reported(minutes_ago: dict[str, float | None], *, timeout: int | None = None) -> ActivityReport:
    times = {k: (ago(v) if v is not None else None) for k, v in minutes_ago.items()}
    return ActivityReport(times, timeout, reported=ago(0.5), started=ago(119))


# -- the rules ----------------------------------------------------------------------------------


def test_an_idle_codespace_is_culled_after_its_timeout_and_a_busy_one_never() -> None:
    idle = decide(server(report=reported({"kernel": 45, "ssh": None})), POLICY, NOW)
    assert idle is not None and idle.reason == IDLE and idle.source == "kernel"
    assert idle.idle == 45 * 60 and idle.timeout == 1800
    assert (
        idle.message() == "Stopped after 45 min idle (idle timeout 30 min); last activity: kernel"
    )
    # a kernel executing for two hours: the server reports it active at each report
    busy = server(started=240, report=reported({"kernel": 0.5}))
    assert decide(busy, POLICY, NOW) is None
    assert decide(server(report=reported({"terminal": 29})), POLICY, NOW) is None


def test_the_codespace_timeout_within_the_hubs_limits() -> None:
    assert CullPolicy(timeout=3600).timeout_for(None) == 3600
    assert CullPolicy(timeout=3600).timeout_for(600) == 600
    assert CullPolicy(timeout=3600).timeout_for(0) == 0  # asks for none
    capped = CullPolicy(timeout=3600, max_timeout=7200)
    assert capped.timeout_for(86400) == 7200 and capped.timeout_for(0) == 7200
    # the spec's 10 minutes apply, not the hub's hour
    short = server(report=reported({"kernel": 11}, timeout=600))
    assert decide(short, CullPolicy(timeout=3600), NOW).timeout == 600
    never = server(started=10_000, report=reported({"kernel": 9000}, timeout=0))
    assert decide(never, CullPolicy(timeout=3600), NOW) is None
    assert decide(server(hub_last=100), CullPolicy(timeout=0), NOW) is None


def test_without_a_report_of_this_run_the_hubs_time_and_the_start_count() -> None:
    old_run = ActivityReport({"kernel": ago(1)}, None, reported=ago(200), started=ago(300))
    view = server(started=120, hub_last=40, report=old_run)
    verdict = decide(view, POLICY, NOW)
    assert verdict is not None and verdict.source is None and verdict.idle == 40 * 60
    assert decide(server(started=20, hub_last=None), POLICY, NOW) is None
    fresh = decide(server(started=31, hub_last=None), POLICY, NOW)
    assert fresh is not None and fresh.idle == 31 * 60  # never active: idle since the start
    # a report whose every time is from before this start: idle since the server's start
    stale = reported({"vscode": 500})
    assert server(report=stale).activity() == (None, ago(119))


def test_starting_stopping_and_unready_servers_are_left_alone() -> None:
    for view in (server(pending="spawn"), server(pending="stop"), server(ready=False)):
        assert decide(view, CullPolicy(timeout=1, max_age=1), NOW) is None


def test_the_maximum_age_stops_even_a_busy_codespace() -> None:
    busy = server(started=600, report=reported({"jobs": 0}))
    verdict = decide(busy, CullPolicy(timeout=1800, max_age=8 * 3600), NOW)
    assert verdict is not None and verdict.reason == MAX_AGE
    assert verdict.message() == "Stopped after running 10 h (the hub's limit is 8 h)"
    assert (
        decide(server(started=60, report=reported({"jobs": 0})), CullPolicy(max_age=7200), NOW)
        is None
    )


def test_durations() -> None:
    assert [duration(s) for s in (0, 59, 60, 3599, 3600, 5400, 86400, 93600)] == [
        "0 s", "59 s", "1 min", "59 min", "1 h", "1 h 30 min", "1 d", "1 d 2 h",
    ]  # fmt: skip
    assert [parse_duration(v) for v in (3600, "90", "45m", "2h", " 1d ")] == [
        3600, 90, 2700, 7200, 86400,
    ]  # fmt: skip
    for bad in ("soon", "-5", "1w", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


# -- the service's round, against a fake hub ----------------------------------------------------


def user_model(name: str, servers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "user", "name": name, "servers": servers}


def server_model(started: datetime, last: datetime, **extra: Any) -> dict[str, Any]:
    iso = "%Y-%m-%dT%H:%M:%S.%fZ"
    model = {"started": started.strftime(iso), "last_activity": last.strftime(iso)}
    return {"ready": True, "pending": None, **model, **extra}


class FakeHub:
    """``/hub/api`` as the culler's token sees it: two pages of users, the activity records,
    the stop record and the stop."""

    def __init__(self, now: datetime) -> None:
        recent = now - timedelta(seconds=20)
        long_ago = now - timedelta(hours=3)
        self.pages = [
            [user_model("alice", {"busy": server_model(long_ago, recent)})],
            [
                user_model("bob", {"idle": server_model(long_ago, long_ago)}),
                user_model("carol", {"": server_model(long_ago, long_ago)}),
            ],
        ]
        report = ActivityReport({"kernel": recent}, None, recent, long_ago).to_json()
        idle = ActivityReport({"ssh": long_ago}, 3600, recent, long_ago).to_json()
        self.records = [
            {"user": "alice", "server": "busy", "report": report, "stopped": None},
            {"user": "bob", "server": "idle", "report": idle, "stopped": None},
        ]
        self.calls: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/hub/api")
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, path, body))
        assert request.headers["Authorization"] == "token secret"
        if request.method == "GET" and path == "/users":
            assert request.url.params["state"] == "ready"
            page = int(request.url.params["offset"])  # this fake's pages: one offset each
            following = {"offset": page + 1} if page + 1 < len(self.pages) else None
            return httpx.Response(
                200, json={"items": self.pages[page], "_pagination": {"next": following}}
            )
        if request.method == "GET" and path == "/codespace/activity":
            return httpx.Response(200, json={"servers": self.records})
        if request.method == "POST" and path.endswith("/stopped"):
            return httpx.Response(204)
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(404)


def test_a_round_stops_only_the_idle_servers_and_says_why_first() -> None:
    hub = FakeHub(datetime.now(UTC))
    culler = CodespaceCuller(api_url="http://hub/hub/api", api_token="secret", timeout=1800)

    async def one_round() -> list:
        transport = httpx.MockTransport(hub)
        async with httpx.AsyncClient(
            transport=transport,
            base_url=culler.api_url,
            headers={"Authorization": "token secret"},
        ) as client:
            return await culler.cull_round(client)

    stopped = asyncio.run(one_round())
    assert sorted((s.user, s.name, v.reason) for s, v in stopped) == [
        ("bob", "idle", IDLE),
        ("carol", "", IDLE),
    ]
    writes = [(method, path) for method, path, _ in hub.calls if method != "GET"]
    assert writes.index(("POST", "/codespace/activity/bob/idle/stopped")) < writes.index(
        ("DELETE", "/users/bob/servers/idle")
    )
    assert ("DELETE", "/users/carol/server") in writes  # a default server
    assert not any("alice" in path for _, path in writes)
    record = next(body for m, p, body in hub.calls if p.endswith("bob/idle/stopped"))
    assert record["reason"] == "idle" and record["source"] == "ssh"
    assert record["message"].startswith("Stopped after 3 h idle (idle timeout 1 h)")
    assert StopRecord.from_json(record).reason == "idle"
    # stop, never delete: no "remove" in the request
    assert all(body is None for m, _, body in hub.calls if m == "DELETE")


def test_the_hubs_models_become_views() -> None:
    users = [user_model("dana", {"x": server_model(NOW, NOW, pending="stop")})]
    records = [
        {"user": "dana", "server": "x", "report": {"sources": {"kernel": None}}},
        {"user": "dana", "server": "y", "report": {"sources": "garbage"}},
        {"user": "erin", "server": "z", "report": None},
    ]
    reports = reports_of(records)
    assert set(reports) == {("dana", "x")}
    [view] = server_views(users, reports)
    assert view.pending == "stop" and view.started == NOW and view.report is reports[("dana", "x")]
    assert server_path("a b", "x/y") == "/users/a%20b/servers/x%2Fy"


# -- configuration ------------------------------------------------------------------------------


def test_the_culler_is_a_service_with_only_the_scopes_it_needs() -> None:
    c = Config()
    c.JupyterHub.services = [{"name": "other", "url": "http://127.0.0.1:1"}]
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self"]}]
    configure_culler(c, timeout=2700, max_timeout=7200, max_age=86400, every=30)
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert set(services) == {"other", SERVICE}
    command = services[SERVICE]["command"]
    assert command[1:3] == ["-m", "hub.cull.app"]
    assert "--CodespaceCuller.timeout=2700" in command
    assert "--CodespaceCuller.max_age=86400" in command
    [role] = [r for r in c.JupyterHub.load_roles if r["name"] == SERVICE]
    assert role["services"] == [SERVICE]
    assert sorted(role["scopes"]) == sorted(CULLER_SCOPES) == [
        "delete:servers", "list:users", "read:servers", "read:users:activity",
    ]  # fmt: skip
    assert c.JupyterHub.proxy_class == PROXY_CLASS
    configure_culler(c)  # again: still one service and one role
    assert [s["name"] for s in c.JupyterHub.services].count(SERVICE) == 1
    assert [r["name"] for r in c.JupyterHub.load_roles].count(SERVICE) == 1
    # the service's command line sets the traits
    app = CodespaceCuller()
    app.parse_command_line(command[3:])
    assert (app.timeout, app.max_timeout, app.max_age, app.cull_every) == (2700, 7200, 86400, 30)


def test_another_proxy_class_and_a_disabled_culler_are_left_alone() -> None:
    c = Config()
    c.JupyterHub.proxy_class = "traefik"
    configure_culler(c)
    assert c.JupyterHub.proxy_class == "traefik"
    off = Config()
    configure_culler(off, enabled=False)
    assert "services" not in off.JupyterHub and "proxy_class" not in off.JupyterHub


def test_the_proxy_no_longer_reports_idle_tabs_as_activity() -> None:
    routes = {
        "/user/alice/demo/": {
            "target": "http://127.0.0.1:1", "jupyterhub": True, "user": "alice",
            "server_name": "demo", "last_activity": "2024-05-01T14:02:00.000Z",
        },
        "/": {"target": "http://127.0.0.1:2", "jupyterhub": True, "hub": True,
              "last_activity": "2024-05-01T14:02:00.000Z"},
    }  # fmt: skip

    class Answer:
        async def json(self) -> dict:
            return json.loads(json.dumps(routes))

    proxy = ServerActivityProxy(auth_token="x")

    async def api_request(path: str, **kwargs: Any) -> Answer:
        return Answer()

    proxy.api_request = api_request
    found = asyncio.run(proxy.get_all_routes())
    assert "last_activity" not in found["/user/alice/demo/"]["data"]
    assert found["/user/alice/demo/"]["data"]["server_name"] == "demo"
    assert "last_activity" in found["/"]["data"]


# -- the home page ------------------------------------------------------------------------------


def test_the_home_page_says_why_and_when_the_culler_stopped_a_codespace() -> None:
    row = SimpleNamespace(name="demo", user_options={"repo": "r"}, server=None, state={})
    stop = StopRecord(NOW, IDLE, "Stopped after 30 min idle (idle timeout 30 min)", "kernel")
    report = ActivityReport({"terminal": ago(31)}, None, ago(30), ago(60))
    record = ServerActivity("alice", "demo", report, stop)
    shown = describe("alice", row, None, Urls(), record)
    assert shown.state == "stopped"
    assert shown.stop_message.startswith("Stopped after 30 min idle")
    assert shown.stopped_at == "2024-05-01T14:02:00Z"
    assert shown.activity_source == "terminal input"
    running = SimpleNamespace(name="demo", user_options={}, server=object(), state={})
    assert describe("alice", running, None, Urls(), record).stop_message == ""
    assert describe("alice", row, None, Urls()).stop_message == ""


def test_a_long_build_before_the_server_started_is_not_idle_time() -> None:
    # the hub started the spawn 50 min ago; the server itself came up 5 min ago
    report = ActivityReport({"kernel": None}, None, reported=ago(0.5), started=ago(5))
    view = server(started=50, report=report)
    assert view.activity() == (None, ago(5))
    assert decide(view, POLICY, NOW) is None


def test_the_hubs_gauge_counts_only_running_servers(tmp_path: Path) -> None:
    db = orm.new_session_factory("sqlite://")()
    alice = orm.User(name="alice")
    on, off = orm.Spawner(name="on", user=alice), orm.Spawner(name="off", user=alice)
    on.server = orm.Server()
    db.add_all([alice, on, off])
    db.commit()
    assert running_servers(db) == {("alice", "on")}
    store = ActivityStore(tmp_path / "activity.sqlite")
    now = datetime.now(UTC)
    store.report("alice", "on", ActivityReport({"ssh": now - timedelta(seconds=30)}, None, now))
    store.report("alice", "off", ActivityReport({"vscode": now}, None, now))
    assert len(refresh_gauge(store, db)) == 2
    ssh = REGISTRY.get_sample_value("codespace_activity_age_seconds", {"source": "ssh"})
    assert 29 <= ssh < 60
    assert REGISTRY.get_sample_value("codespace_activity_age_seconds", {"source": "vscode"}) is None
