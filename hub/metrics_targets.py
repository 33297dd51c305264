"""``GET /hub/api/codespace/metrics/targets``: the running codespaces, as Prometheus targets.

Each codespace server serves its own metrics (jobs, dataset prewarms) at
``/user/<name>/<server>/codespace/api/metrics``; this answers Prometheus' HTTP service
discovery (``http_sd_configs``) with one target group per running codespace: the proxy's
address the request came through, ``__metrics_path__`` set to that server's path, and the
labels ``user`` and ``server``. It needs the ``read:metrics`` scope, the scope Prometheus
already scrapes ``/hub/metrics`` and the codespaces with (README, Operations), and it tells
that token the names of the users with a running codespace, nothing more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jupyterhub import orm
from jupyterhub.apihandlers import APIHandler
from jupyterhub.scopes import needs_scope

METRICS_PATH = "codespace/api/metrics"


def target_groups(
    host: str, scheme: str, servers: Iterable[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """HTTP SD target groups for ``(user, server name, base URL)`` of running servers."""
    return [
        {
            "targets": [host],
            "labels": {
                "__metrics_path__": f"{base_url.rstrip('/')}/{METRICS_PATH}",
                "__scheme__": scheme,
                "user": user,
                "server": server,
            },
        }
        for user, server, base_url in servers
    ]


class MetricsTargetsHandler(APIHandler):
    @needs_scope("read:metrics")
    def get(self) -> None:
        running = []
        rows = self.db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None))
        for row in rows.order_by(orm.Spawner.id):
            user = self.users[row.user]
            spawner = dict.get(user.spawners, row.name)
            if spawner is not None and spawner.ready:
                running.append((user.name, row.name, spawner.server.base_url))
        groups = target_groups(self.request.host, self.request.protocol, running)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(groups))


def metrics_handlers() -> list[tuple[str, type]]:
    """``JupyterHub.extra_handlers`` entries (under ``/hub/``)."""
    return [(r"/api/codespace/metrics/targets", MetricsTargetsHandler)]
