"""The idle culler: a JupyterHub-managed service that stops idle codespaces.

:func:`configure_culler` adds it to a JupyterHub configuration (the local config and the
Helm chart's ``hub.extraConfig`` call it). Every ``every`` seconds the service
(``python -m hub.cull.app``, :class:`hub.cull.app.CodespaceCuller`) lists the ready servers,
reads their activity reports (``/hub/api/codespace/activity``, :mod:`hub.activity`) and stops
(never deletes: the workspace stays) each one that :func:`codespace.activity.cull.decide`
finds idle past its timeout or older than the maximum age, after recording why at the hub
(the home page shows it). Deployments are the deploy service's and KServe's: stopping a
codespace leaves them running (they scale to zero on their own idle time).

The service's token has only :data:`CULLER_SCOPES`: list the users, read their servers and
activity, stop servers (``delete:servers`` also covers recording why a server stopped).
No ``admin:users``, no access to the servers themselves, no server state.
"""

from __future__ import annotations

import sys
from typing import Any

from traitlets.config import Config, LazyConfigValue

SERVICE = "codespace-culler"
CULLER_SCOPES = ["list:users", "read:servers", "read:users:activity", "delete:servers"]
PROXY_CLASS = "hub.activity.ServerActivityProxy"


def _configured(section: Config, name: str, default: Any) -> Any:
    value = section.get(name, default)
    return default if isinstance(value, LazyConfigValue) else value


def culler_command(timeout: int, max_timeout: int, max_age: int, every: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hub.cull.app",
        f"--CodespaceCuller.timeout={int(timeout)}",
        f"--CodespaceCuller.max_timeout={int(max_timeout)}",
        f"--CodespaceCuller.max_age={int(max_age)}",
        f"--CodespaceCuller.cull_every={int(every)}",
    ]


def configure_culler(
    c: Config,
    *,
    enabled: bool = True,
    timeout: int = 3600,
    max_timeout: int = 0,
    max_age: int = 0,
    every: int = 60,
    hide_proxy_activity: bool = True,
) -> None:
    """Run the culler as a hub service with its role (see the module doc).

    ``timeout``: a codespace's idle timeout when its ``.codespace`` sets no
    ``lifetime.idleTimeout`` (seconds; 0: such codespaces are never idle-culled);
    ``max_timeout``: the longest idle timeout a codespace may ask for (0: any, and
    ``idleTimeout: 0`` means never); ``max_age``: stop any codespace this long after its start
    (0: never); ``every``: seconds between rounds. ``hide_proxy_activity`` sets
    :class:`hub.activity.ServerActivityProxy` as the proxy class (unless another proxy class is
    configured), so a server's ``last_activity`` at the hub is what the server measured, not
    every byte through the proxy.
    """
    if not enabled:
        return
    hub = c.JupyterHub
    service = {"name": SERVICE, "command": culler_command(timeout, max_timeout, max_age, every)}
    services = [s for s in _configured(hub, "services", []) if s.get("name") != SERVICE]
    hub.services = [*services, service]
    role = {
        "name": SERVICE,
        "description": "stop idle codespaces (hub.cull)",
        "scopes": list(CULLER_SCOPES),
        "services": [SERVICE],
    }
    roles = [r for r in _configured(hub, "load_roles", []) if r.get("name") != SERVICE]
    hub.load_roles = [*roles, role]
    if hide_proxy_activity and not _configured(hub, "proxy_class", None):
        hub.proxy_class = PROXY_CLASS
