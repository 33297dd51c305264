"""``GET /codespace/api/metrics``: this codespace server's Prometheus metrics.

Prometheus text of the server process's default registry: the jobs submitted here and the
jobs of each job backend by state (:mod:`codespace.jobs.metrics`; the backends built so far
are listed first, within ``REFRESH_SECONDS``), the dataset prewarms of this server
(:mod:`codespace.datasets.metrics`) and prometheus_client's process metrics.

Who may read it: whoever the server lets in (its owner; JupyterHub's ``access:servers``), and
a hub token with the ``read:metrics`` scope, the scope of the hub's own ``/hub/metrics``:
checked with the hub as the single-user server checks its tokens, so one Prometheus token
scrapes the hub and every codespace (README, Operations). A scrape is not activity: it does
not keep an idle codespace from being culled.
"""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_server.auth.decorator import allow_unauthenticated
from jupyter_server.base.handlers import APIHandler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from tornado import web

from codespace.jobs.service import JobService

API = r"/codespace/api/metrics"
SCOPE = "read:metrics"
REFRESH_SECONDS = 5.0


class MetricsHandler(APIHandler):
    _track_activity = False  # a scrape is not a user's activity

    def initialize(self, jobs: JobService) -> None:
        self.jobs = jobs

    async def _allowed(self) -> bool:
        user = self.current_user
        if user is not None:
            return self.authorizer.is_authorized(self, user, "read", "api")
        # JupyterHub's identity provider (in a codespace): a token of the hub's with the scope
        hub_auth: Any = getattr(self.identity_provider, "hub_auth", None)
        token = hub_auth.get_token(self, in_cookie=False) if hub_auth is not None else None
        if not token:
            return False
        model = await hub_auth.user_for_token(token, sync=False)
        return bool(model and hub_auth.check_scopes(SCOPE, model))

    @allow_unauthenticated
    async def get(self) -> None:
        if not await self._allowed():
            raise web.HTTPError(403, f"the metrics need this server's owner or {SCOPE}")
        try:
            await asyncio.wait_for(self.jobs.refresh_metrics(), REFRESH_SECONDS)
        except TimeoutError:
            self.log.warning("codespace: job backends did not list within %ss", REFRESH_SECONDS)
        self.finish(generate_latest(REGISTRY), set_content_type=CONTENT_TYPE_LATEST)


def metrics_handlers(jobs: JobService) -> list[tuple[str, type, dict[str, Any]]]:
    return [(API, MetricsHandler, {"jobs": jobs})]
