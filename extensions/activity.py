"""The codespace's activity, measured in its server, and what it tells the hub.

:class:`ActivityMonitor` samples the sources of :mod:`codespace.activity` (names there):

- ``kernel``: the kernel manager's kernels: one ``busy`` is activity *now* (a ``time.sleep``
  loop with no browser attached counts); else the newest ``last_activity`` (the kernel's last
  IOPub message: an idle kernel behind an open tab sends none, websocket pings are not IOPub);
- ``terminal``: :class:`InputTerminalManager` (``TerminalsExtensionApp.terminal_manager_class``,
  set in ``config/singleuser/jupyter_server_config.py``) records when text was *written to* a
  terminal (a user typing); jupyter_server_terminals' own ``last_activity`` also moves on
  output, so a terminal running ``top`` would never be idle;
- ``vscode`` and ``ssh``: activity files (:mod:`codespace.activity.files`) touched by our
  code-server extension (``extensions/vscode_activity``: edits, cursor moves, saves, commands
  run in its terminals, tasks and debug sessions; code-server's own ``heartbeat`` file is
  written every minute while any browser tab is connected, so it is not used) and by the SSH
  listener (input through a connection: :mod:`codespace.ssh.listen`);
- ``jobs``: the local job backend's jobs (a running one is activity now), when this server
  has one; ``deployments``: the newest ``lastRequest`` of the owner's deployments (listed at
  most every :attr:`ActivityMonitor.poll_every` seconds);
- ``files``: a file saved through the contents API (its post-save hook).

The server's ``web_app.last_activity()`` becomes :meth:`ActivityMonitor.last_activity` (the
newest source, never before the server's start), so what JupyterHub's single-user extension
reports to the hub's activity API is ours. :class:`ActivityReporter` also posts the sources,
the newest one and the codespace's idle timeout (``$CODESPACE_IDLE_TIMEOUT``, the spec's
``lifetime.idleTimeout``) to ``/hub/api/codespace/activity/<user>/<server>`` (the server's
own token: its ``users:activity!user`` scope), where the culler and the home page read them.
``GET /codespace/api/activity`` answers the same report for this server.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server_terminals.terminalmanager import TerminalManager
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from codespace.activity import sources as names
from codespace.activity.files import file_time
from codespace.activity.metrics import set_activity_ages
from codespace.activity.report import ActivityReport
from codespace.activity.sources import jobs_activity, kernel_activity, newest, utc
from codespace.deploy.backend import DeployError
from codespace.jobs.backend import JobError

API = r"/codespace/api/activity"
BUSY = "busy"  # what a polled source answers while it works (a job running): active now
Poll = Callable[[], Awaitable[datetime | str | None]]
log = logging.getLogger(__name__)
RETRY_AFTER = 600.0  # seconds before a source that failed is asked again


class SourceUnavailable(Exception):
    """A polled source cannot say anything now (its backend is missing or failing)."""


SOURCE_ERRORS = (SourceUnavailable, JobError, DeployError, OSError, ValueError)


def now() -> datetime:
    return datetime.now(UTC)


class InputTerminalManager(TerminalManager):
    """jupyter_server_terminals' manager, also recording when a user typed into a terminal:
    what the terminal websocket writes to the pty is what the user sent (``stdin``)."""

    last_input: datetime | None = None

    def new_terminal(self, **kwargs: Any) -> Any:
        terminal = super().new_terminal(**kwargs)
        write = terminal.ptyproc.write

        def typed(text: Any) -> Any:
            self.last_input = now()
            return write(text)

        terminal.ptyproc.write = typed  # this terminal's pty: input from the websocket only
        return terminal


class ActivityMonitor:
    """This server's sources (see the module doc)."""

    poll_every = 30.0  # seconds between asking the polled sources (jobs, deployments)

    def __init__(
        self,
        settings: Mapping[str, Any],
        directory: Path,
        *,
        polled: Mapping[str, Poll] | None = None,
        idle_timeout: int | None = None,
    ) -> None:
        self.settings = settings
        self.directory = Path(directory)
        self.polled = dict(polled or {})
        self.idle_timeout = idle_timeout
        self.started = utc(settings.get("started")) or now()
        self.saved: datetime | None = None
        self._polled_times: dict[str, datetime | str | None] = {}
        self._polled_at: float | None = None
        self._retry_at: dict[str, float] = {}  # a failed source: when to ask it again

    # -- sources --------------------------------------------------------------------------

    def file_saved(self, **_kwargs: Any) -> None:
        """The contents manager's post-save hook."""
        self.saved = now()

    def kernels(self, at: datetime) -> datetime | None:
        manager = self.settings.get("kernel_manager")
        if manager is None:
            return None
        found = []
        for kernel_id in list(manager.list_kernel_ids()):
            kernel = manager.get_kernel(kernel_id)
            state = getattr(kernel, "execution_state", "")
            found.append((state, getattr(kernel, "last_activity", None)))
        return kernel_activity(found, at)

    def measured(self, at: datetime) -> dict[str, datetime | None]:
        """Every source measured here and its time (the polled ones as last polled)."""
        times: dict[str, datetime | None] = {names.KERNEL: self.kernels(at)}
        terminals = self.settings.get("terminal_manager")
        if terminals is not None and hasattr(terminals, "last_input"):
            times[names.TERMINAL] = utc(terminals.last_input)
        for source in (names.VSCODE, names.SSH):
            times[source] = file_time(self.directory / source)
        times[names.FILES] = self.saved
        for source, time in self._polled_times.items():
            times[source] = at if time == BUSY else time  # type: ignore[assignment]
        return times

    async def poll(self, *, force: bool = False) -> None:
        """Ask the polled sources again (at most every :attr:`poll_every` seconds); a source
        that fails keeps its last time and is asked again after :data:`RETRY_AFTER`."""
        clock = asyncio.get_running_loop().time()
        if not force and self._polled_at is not None and clock - self._polled_at < self.poll_every:
            return
        self._polled_at = clock
        for source, ask in self.polled.items():
            if not force and clock < self._retry_at.get(source, clock):
                continue
            try:
                answer = await ask()
                self._polled_times[source] = answer if answer == BUSY else utc(answer)
            except SOURCE_ERRORS as error:
                self._retry_at[source] = clock + RETRY_AFTER
                log.info("codespace: activity source %s unavailable for now: %s", source, error)
            else:
                self._retry_at.pop(source, None)

    async def report(self) -> ActivityReport:
        await self.poll()
        at = now()
        return ActivityReport(self.measured(at), self.idle_timeout, at, self.started)

    def last_activity(self) -> datetime:
        """``web_app.last_activity()``: the newest source, never before the server started."""
        return newest([self.started, *self.measured(now()).values()]) or self.started


async def local_jobs_activity(backend: Callable[[], Any]) -> datetime | str | None:
    """The local job backend's jobs -> the ``jobs`` source: :data:`BUSY` while one runs, else
    the last end (``backend()``: the backend, or None when this server has none yet)."""
    built = backend()
    if built is None:
        return None
    at = now()
    records = await built.list()
    last = jobs_activity([(r.state, r.finished) for r in records], at)
    return BUSY if last == at else last


async def deployments_activity(service: Any) -> datetime | None:
    """The owner's deployments -> the newest ``lastRequest`` (None: no request yet)."""
    records, problems = await service.list()
    if problems and not records:
        raise SourceUnavailable("; ".join(f"{name}: {why}" for name, why in problems.items()))
    return newest(getattr(record, "lastRequest", None) for record in records)


class ActivityReporter:
    """Every ``interval`` seconds: sample, set the gauge, post the report to the hub."""

    def __init__(
        self, monitor: ActivityMonitor, environ: Mapping[str, str], interval: float
    ) -> None:
        self.monitor = monitor
        self.interval = interval
        self.url = hub_activity_url(environ)
        self.token = environ.get("JUPYTERHUB_API_TOKEN", "")
        self._task: asyncio.Task[None] | None = None

    def start(self, first_after: float = 5.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(first_after))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, first_after: float) -> None:
        await asyncio.sleep(first_after)
        while True:
            try:
                await self.once()
            except Exception:  # the next round tries again
                log.exception("codespace: the activity report failed")
            await asyncio.sleep(self.interval)

    async def once(self) -> ActivityReport:
        report = await self.monitor.report()
        set_activity_ages([report.sources], report.reported or now())
        if self.url and self.token:
            await self.post(report)
        return report

    async def post(self, report: ActivityReport) -> None:
        body = json.dumps(report.to_json())
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        try:
            await AsyncHTTPClient().fetch(
                self.url, method="POST", body=body, headers=headers, request_timeout=30
            )
        except (HTTPClientError, OSError) as error:
            log.warning("codespace: the hub did not take the activity report: %s", error)


def hub_activity_url(environ: Mapping[str, str]) -> str:
    """``$JUPYTERHUB_API_URL/codespace/activity/<user>/<server>`` ('' outside a hub)."""
    api, user = environ.get("JUPYTERHUB_API_URL", ""), environ.get("JUPYTERHUB_USER", "")
    if not api or not user:
        return ""
    server = environ.get("JUPYTERHUB_SERVER_NAME", "")
    return f"{api.rstrip('/')}/codespace/activity/{quote(user, safe='')}/{quote(server, safe='')}"


def idle_timeout_from(environ: Mapping[str, str]) -> int | None:
    """``$CODESPACE_IDLE_TIMEOUT`` (seconds; unset or '' is None)."""
    value = environ.get("CODESPACE_IDLE_TIMEOUT", "").strip()
    return int(value) if value.isdigit() else None


class ActivityHandler(APIHandler):
    """``GET /codespace/api/activity``: this server's report (``reported``: now)."""

    auth_resource = "api"

    def initialize(self, monitor: ActivityMonitor) -> None:
        self.monitor = monitor

    @web.authenticated
    @authorized
    async def get(self) -> None:
        report = await self.monitor.report()
        self.finish(json.dumps(report.to_json()))


def activity_handlers(monitor: ActivityMonitor) -> list[tuple[str, type, dict[str, Any]]]:
    return [(API, ActivityHandler, {"monitor": monitor})]
