"""``python -m hub.cull.app``: the idle culler service (see :mod:`hub.cull`).

Each round: ``GET /hub/api/users?state=ready`` (paginated; ``list:users`` and
``read:servers``), ``GET /hub/api/codespace/activity`` (``read:users:activity``), then for
each server :func:`codespace.activity.cull.decide` says to stop:
``POST /hub/api/codespace/activity/<user>/<server>/stopped`` with why, then ``DELETE
/hub/api/users/<user>/servers/<server>`` (``delete:servers``; without ``remove``: the server
is stopped, its workspace and its row stay). The hub's URL and the service's token come from
the environment JupyterHub gives a managed service (``JUPYTERHUB_API_URL``,
``JUPYTERHUB_API_TOKEN``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from traitlets import Integer, Unicode, default
from traitlets.config import Application

from codespace.activity.cull import CullPolicy, ServerView, Verdict, decide
from codespace.activity.report import ActivityReport, ReportError
from codespace.activity.sources import parse_time
from codespace.activity.store import StopRecord

PAGE = 200
PAGINATED = "application/jupyterhub-pagination+json"


def server_views(
    users: Iterable[dict[str, Any]], reports: dict[tuple[str, str], ActivityReport]
) -> list[ServerView]:
    """JupyterHub's user models (with ``servers``) -> one view per server."""
    views = []
    for user in users:
        for name, server in (user.get("servers") or {}).items():
            views.append(
                ServerView(
                    user=user["name"],
                    name=name,
                    started=parse_time(server.get("started")),
                    last_activity=parse_time(server.get("last_activity")),
                    ready=bool(server.get("ready")),
                    pending=server.get("pending"),
                    report=reports.get((user["name"], name)),
                )
            )
    return views


def reports_of(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], ActivityReport]:
    """``GET /hub/api/codespace/activity``'s records -> the reports, by (user, server)."""
    found = {}
    for record in records:
        if not record.get("report"):
            continue
        try:
            found[(record["user"], record["server"])] = ActivityReport.from_json(record["report"])
        except (ReportError, KeyError):
            continue
    return found


def server_path(user: str, server: str) -> str:
    named = f"/servers/{quote(server, safe='')}" if server else "/server"
    return f"/users/{quote(user, safe='')}{named}"


class CodespaceCuller(Application):
    """Stop idle codespaces (and those past the maximum age)."""

    name = "codespace-culler"
    description = __doc__

    timeout = Integer(
        3600,
        config=True,
        help="Seconds a codespace may be idle when its .codespace sets no "
        "lifetime.idleTimeout; 0: such codespaces are not idle-culled.",
    )
    max_timeout = Integer(
        0,
        config=True,
        help="The longest idle timeout (seconds) a codespace may ask for with "
        "lifetime.idleTimeout (longer ones, and 0, become this); 0: no limit.",
    )
    max_age = Integer(
        0, config=True, help="Stop a codespace this many seconds after its start; 0: never."
    )
    cull_every = Integer(60, config=True, help="Seconds between two rounds.")
    concurrency = Integer(10, config=True, help="How many servers are stopped at once.")
    api_url = Unicode(config=True, help="The hub's API (default: $JUPYTERHUB_API_URL).")
    api_token = Unicode(config=True, help="This service's token ($JUPYTERHUB_API_TOKEN).")

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    @default("api_url")
    def _default_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    def policy(self) -> CullPolicy:
        return CullPolicy(self.timeout, self.max_timeout, self.max_age)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.api_url.rstrip("/"),
            headers={"Authorization": f"token {self.api_token}"},
            timeout=60,
        )

    async def users(self, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        """Every user with a ready server (all pages)."""
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            params = {"state": "ready", "limit": PAGE, "offset": offset}
            answer = await client.get("/users", params=params, headers={"Accept": PAGINATED})
            answer.raise_for_status()
            body = answer.json()
            items = body["items"] if isinstance(body, dict) else body
            found.extend(items)
            following = body.get("_pagination", {}).get("next") if isinstance(body, dict) else None
            if not following or not items:
                return found
            offset = int(following.get("offset", offset + len(items)))

    async def servers(self, client: httpx.AsyncClient) -> list[ServerView]:
        users = await self.users(client)
        answer = await client.get("/codespace/activity")
        records = answer.json().get("servers", []) if answer.status_code == 200 else []
        if answer.status_code != 200:
            self.log.warning("no activity reports (%s): the hub's times only", answer.status_code)
        return server_views(users, reports_of(records))

    async def stop(
        self, client: httpx.AsyncClient, server: ServerView, verdict: Verdict, now: datetime
    ) -> bool:
        """Record why, then stop the server; False when the hub refused."""
        path = server_path(server.user, server.name)
        record = StopRecord.from_verdict(verdict, now).to_json()
        activity = (
            f"/codespace/activity/{quote(server.user, safe='')}/{quote(server.name, safe='')}"
        )
        noted = await client.post(f"{activity}/stopped", json=record)
        if noted.status_code >= 400:
            self.log.warning(
                "%s/%s: stop reason not kept (%s)", server.user, server.name, noted.text
            )
        answer = await client.delete(path)
        if answer.status_code not in (202, 204):
            self.log.error(
                "%s/%s not stopped: %s %s",
                server.user,
                server.name,
                answer.status_code,
                answer.text,
            )
            return False
        self.log.info("stopped %s/%s: %s", server.user, server.name, verdict.message())
        return True

    async def cull_round(self, client: httpx.AsyncClient) -> list[tuple[ServerView, Verdict]]:
        """One round: the servers stopped and why."""
        now = datetime.now(UTC)
        policy = self.policy()
        due = [
            (server, verdict)
            for server in await self.servers(client)
            if (verdict := decide(server, policy, now)) is not None
        ]
        gate = asyncio.Semaphore(max(self.concurrency, 1))

        async def one(server: ServerView, verdict: Verdict) -> bool:
            async with gate:
                return await self.stop(client, server, verdict, now)

        done = await asyncio.gather(*(one(s, v) for s, v in due))
        return [pair for pair, ok in zip(due, done, strict=True) if ok]

    async def run(self) -> None:
        self.log.info(
            "culling every %s s: idle timeout %s s (at most %s), max age %s s",
            self.cull_every, self.timeout, self.max_timeout or "any", self.max_age or "none",
        )  # fmt: skip
        async with self.client() as client:
            while True:
                try:
                    await self.cull_round(client)
                except (httpx.HTTPError, ValueError, KeyError) as error:
                    self.log.error("cull round failed: %s", error)
                await asyncio.sleep(self.cull_every)

    def start(self) -> None:
        asyncio.run(self.run())


def main(argv: list[str] | None = None) -> None:
    CodespaceCuller.launch_instance(argv)


if __name__ == "__main__":  # pragma: no cover
    main()
