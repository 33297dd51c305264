"""Codespace activity at the hub: what the servers report, what the culler reads and writes.

JupyterHub's activity API (``POST /hub/api/users/<name>/activity``) keeps one time per server
and no source. Ours keeps the sources (:mod:`codespace.activity.store`, an SQLite file beside
the SSH keys):

- ``POST /hub/api/codespace/activity/<user>/<server>``: a server's report
  (:class:`~codespace.activity.report.ActivityReport` JSON) -> 204; needs
  ``users:activity`` on the user (every server's own token has it, as for JupyterHub's
  activity API). The server's ``last_activity`` at the hub moves to the report's newest time
  as well;
- ``GET /hub/api/codespace/activity[/<user>/<server>]``: the records (``{"servers": [...]}``,
  or one), each with the last report and the last stop by the culler; needs
  ``read:users:activity`` on their users (the others are left out);
- ``POST /hub/api/codespace/activity/<user>/<server>/stopped``: why the culler stopped a
  server (``{"at", "reason", "message", "source", "lastActivity"}``) -> 204; needs
  ``delete:servers`` on that server: who may stop it may say why. The home page shows it
  until the server reports again.

Reading or taking reports also refreshes the hub's ``codespace_activity_age_seconds`` gauge
from the running servers' reports (:mod:`codespace.activity.metrics`).

:class:`ServerActivityProxy` is configurable-http-proxy's JupyterHub class without the
activity it reports per route (any byte through a route: an idle tab's polling and websocket
pings keep it fresh), so a server's ``last_activity`` at the hub is only what the server
measured. :func:`hub.cull.configure_culler` sets it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.proxy import ConfigurableHTTPProxy
from jupyterhub.scopes import has_scope
from tornado import web

from codespace.activity.metrics import set_activity_ages
from codespace.activity.report import ActivityReport, ReportError
from codespace.activity.store import ActivityStore, ServerActivity, StopRecord

ACTIVITY_SETTING = "codespace_activity_db"
ACTIVITY_FILE = "codespace-activity.sqlite"
API = r"/api/codespace/activity"
SERVER = r"/(?P<user>[^/]+)/(?P<server>[^/]*)"


def activity_store(settings: Any) -> ActivityStore | None:
    """The hub's activity store from its tornado settings (None when not configured)."""
    path = settings.get(ACTIVITY_SETTING) if isinstance(settings, dict) else None
    return ActivityStore(path) if isinstance(path, (str, os.PathLike)) and path else None


def activity_path(ssh_keys_db: str) -> str:
    """Beside the SSH keys' file (the hub's data directory)."""
    return str(Path(ssh_keys_db).parent / ACTIVITY_FILE)


def running_servers(db: Any) -> set[tuple[str, str]]:
    """``(user, server)`` of every server with a running process."""
    rows = db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None)).all()
    return {(row.user.name, row.name) for row in rows}


def refresh_gauge(store: ActivityStore, db: Any) -> list[ServerActivity]:
    """Set the activity gauge from the running servers' reports; returns every record."""
    records = store.list()
    running = running_servers(db)
    reports = [
        record.report.sources
        for record in records
        if record.report is not None and (record.user, record.server) in running
    ]
    set_activity_ages(reports, datetime.now(UTC))
    return records


class _ActivityHandler(APIHandler):
    def store(self) -> ActivityStore:
        store = activity_store(self.settings)
        if store is None:
            raise web.HTTPError(404, "This hub keeps no activity records (see hub.home).")
        return store

    def require(self, scope: str) -> None:
        if not has_scope(scope, self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"This needs the {scope} scope.")

    def orm_spawner(self, user_name: str, server: str) -> Any:
        user = self.find_user(user_name)
        spawner = user.orm_spawners.get(server) if user is not None else None
        if spawner is None:
            raise web.HTTPError(404, f"No server {server!r} of user {user_name!r}.")
        return spawner


class ActivityListHandler(_ActivityHandler):
    """``GET /hub/api/codespace/activity``."""

    def get(self) -> None:
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        records = refresh_gauge(self.store(), self.db)
        visible = [
            record.to_json()
            for record in records
            if has_scope(f"read:users:activity!user={record.user}", self.parsed_scopes, db=self.db)
        ]
        self.finish(json.dumps({"servers": visible}))


class ServerActivityHandler(_ActivityHandler):
    """``GET`` / ``POST /hub/api/codespace/activity/<user>/<server>``."""

    def get(self, user: str, server: str) -> None:
        self.require(f"read:users:activity!user={user}")
        record = self.store().get(user, server)
        if record is None:
            raise web.HTTPError(404, f"No activity recorded for {user}/{server}.")
        self.finish(json.dumps(record.to_json()))

    def post(self, user: str, server: str) -> None:
        self.require(f"users:activity!user={user}")
        spawner = self.orm_spawner(user, server)
        now = datetime.now(UTC)
        try:
            report = ActivityReport.from_json(self.get_json_body(), reported=now).clamped(now)
        except ReportError as error:
            raise web.HTTPError(400, f"Bad activity report: {error}") from None
        store = self.store()
        store.report(user, server, report)
        last = report.last_activity
        if last is not None:
            naive = last.astimezone(UTC).replace(tzinfo=None)  # JupyterHub's naive UTC
            if spawner.last_activity is None or naive > spawner.last_activity:
                spawner.last_activity = naive
                self.db.commit()
        refresh_gauge(store, self.db)
        self.set_status(204)
        self.finish()


class StoppedHandler(_ActivityHandler):
    """``POST /hub/api/codespace/activity/<user>/<server>/stopped``."""

    def post(self, user: str, server: str) -> None:
        self.require(f"delete:servers!server={user}/{server}")
        self.orm_spawner(user, server)
        try:
            record = StopRecord.from_json(self.get_json_body())
        except ValueError as error:
            raise web.HTTPError(400, f"Bad stop record: {error}") from None
        self.store().stopped(user, server, record)
        self.set_status(204)
        self.finish()


def activity_handlers() -> list[tuple[str, type]]:
    """``JupyterHub.extra_handlers`` entries (JupyterHub puts them under ``/hub/``)."""
    return [
        (API, ActivityListHandler),
        (API + SERVER, ServerActivityHandler),
        (API + SERVER + r"/stopped", StoppedHandler),
    ]


class ServerActivityProxy(ConfigurableHTTPProxy):
    """configurable-http-proxy, its per-route activity left out (see the module doc): the
    hub still polls it every ``last_activity_interval`` to check its routes."""

    async def get_all_routes(self) -> dict[str, Any]:
        routes = await super().get_all_routes()
        for route in routes.values():
            if "user" in route.get("data", {}):
                route["data"].pop("last_activity", None)
        return routes
