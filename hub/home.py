"""The codespaces home page: JupyterHub's ``home.html`` replaced by ours (``hub/templates``).

JupyterHub renders the page (its ``HomeHandler``); the template reads the codespaces from
:class:`HomeView`, which ``JupyterHub.template_vars`` hands to every template as
``codespace_hub`` (built per request for the logged-in user, cheap until the home page asks).

:func:`configure_home` wires everything into a JupyterHub configuration (the local config and
the Helm chart's ``hub.extraConfig`` call it): the templates, the ``codespace_hub`` variable,
the handlers of :mod:`hub.handlers` (``/hub/codespaces/new``, ``/hub/codespaces/badge.svg``),
the SSH keys page and API of :mod:`hub.ssh_keys` (``/hub/ssh-keys``,
``/hub/api/codespace/ssh-keys``), Prometheus' discovery of the running codespaces
(:mod:`hub.metrics_targets`) and the hooks of :mod:`hub.refusals`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyterhub import orm
from traitlets.config import Config

from codespace.activity.store import ServerActivity
from hub.activity import ACTIVITY_SETTING, activity_path, activity_store
from hub.codespaces import Codespace, Urls, describe
from hub.configured import configured
from hub.refusals import NamedServerLimit, forget_refused_start

TEMPLATES = Path(__file__).resolve().parent / "templates"
SSH_KEYS_FILE = "ssh-keys.sqlite"


def hub_urls(settings: dict[str, Any]) -> Urls:
    hub = settings.get("hub")
    hub_base = getattr(hub, "base_url", None) or f"{settings.get('base_url', '/')}hub/"
    return Urls(base_url=settings.get("base_url", "/"), hub_base_url=hub_base)


def activity_records(settings: Any, user: str | None = None) -> dict[tuple[str, str], Any]:
    """The hub's activity records (``user``'s, or everyone's) by (user, server)."""
    store = activity_store(settings)
    if store is None:
        return {}
    return {(record.user, record.server): record for record in store.list(user)}


def codespaces_of(
    user: Any, urls: Urls, activity: dict[tuple[str, str], ServerActivity] | None = None
) -> list[Codespace]:
    """The named servers of one user (JupyterHub's User wrapper), by name."""
    rows = sorted(user.orm_user.orm_spawners.items())
    records = activity if activity is not None else activity_records(user.settings, user.name)
    return [
        describe(
            user.name, row, dict.get(user.spawners, name), urls, records.get((user.name, name))
        )
        for name, row in rows
        if name
    ]


class HomeView:
    """What ``home.html`` shows: ``codespace_hub.mine()``, ``.everyone()`` (admins),
    ``.new_form()`` (the spawner's own form fields: repository, ref, profile, datasets)."""

    def __init__(self, user: Any) -> None:
        self.user = user

    @property
    def urls(self) -> Urls:
        return hub_urls(self.user.settings)

    @property
    def is_admin(self) -> bool:
        return bool(self.user is not None and self.user.admin)

    @property
    def badge_path(self) -> str:
        return f"{self.urls.hub_base_url}codespaces/badge.svg"

    @property
    def new_path(self) -> str:
        return f"{self.urls.hub_base_url}codespaces/new"

    @property
    def ssh_keys_path(self) -> str:
        return f"{self.urls.hub_base_url}ssh-keys"

    def mine(self) -> list[Codespace]:
        return codespaces_of(self.user, self.urls) if self.user is not None else []

    def everyone(self) -> list[Codespace]:
        """Every other user's codespaces, for admins ([] for others)."""
        if not self.is_admin:
            return []
        users = self.user.settings.get("users")
        db = self.user.db
        rows = (
            db.query(orm.Spawner)
            .join(orm.User, orm.Spawner.user_id == orm.User.id)
            .filter(orm.Spawner.name != "", orm.User.name != self.user.name)
            .order_by(orm.User.name, orm.Spawner.name)
        )
        found = []
        records = activity_records(self.user.settings)
        for row in rows:
            owner = users[row.user] if users is not None else None
            wrapper = dict.get(owner.spawners, row.name) if owner is not None else None
            record = records.get((row.user.name, row.name))
            found.append(describe(row.user.name, row, wrapper, self.urls, record))
        return found

    async def new_form(self) -> str:
        """The spawn form's fields as the spawner renders them (HTML it escaped)."""
        form = await self.user.spawner.get_options_form()
        return form or (
            '<label for="codespace-repo">Repository</label>'
            '<input class="form-control" id="codespace-repo" name="repo" required>'
        )


def home_view(user: Any) -> HomeView | None:
    """``template_vars`` value: called by JupyterHub with the current user for each page."""
    return HomeView(user) if user is not None else None


def ssh_keys_path(c: Config, ssh_keys_db: str | os.PathLike[str] | None = None) -> str:
    """Where the hub keeps SSH keys: ``ssh_keys_db``, else ``ssh-keys.sqlite`` in the local
    spawner's data directory when one is configured, else in the hub's working directory
    (on Kubernetes, give a path on a persistent volume)."""
    if ssh_keys_db:
        return str(Path(ssh_keys_db).resolve())
    data_dir = configured(c.LocalCodespaceSpawner, "data_dir", "")
    return str((Path(data_dir) if data_dir else Path.cwd()).resolve() / SSH_KEYS_FILE)


def configure_home(
    c: Config,
    named_server_limit: int | None = None,
    ssh_keys_db: str | os.PathLike[str] | None = None,
    activity_db: str | os.PathLike[str] | None = None,
) -> None:
    """Set up the home page, launch links, SSH keys and refused-start cleanup in a
    JupyterHub config.

    ``named_server_limit`` (default: the limit already configured, else none) becomes
    :class:`~hub.refusals.NamedServerLimit`; ``ssh_keys_db`` is the SQLite file of the SSH
    keys (default: :func:`ssh_keys_path`); ``activity_db`` the SQLite file of the activity
    records (default: ``codespace-activity.sqlite`` beside the SSH keys).
    """
    from hub.activity import activity_handlers
    from hub.handlers import handlers  # tornado handlers: only when a hub is configured
    from hub.metrics_targets import metrics_handlers
    from hub.ssh_keys import ssh_key_handlers
    from spawner.ssh import KEYS_SETTING

    hub = c.JupyterHub
    hub.template_paths = [str(TEMPLATES), *configured(hub, "template_paths", [])]
    hub.template_vars = {**configured(hub, "template_vars", {}), "codespace_hub": home_view}
    hub.extra_handlers = [
        *configured(hub, "extra_handlers", []),
        *handlers(),
        *ssh_key_handlers(),
        *metrics_handlers(),
        *activity_handlers(),
    ]
    settings = dict(configured(hub, "tornado_settings", {}))
    settings.setdefault(KEYS_SETTING, ssh_keys_path(c, ssh_keys_db))
    activity = Path(activity_db).resolve() if activity_db else None
    settings.setdefault(ACTIVITY_SETTING, str(activity or activity_path(settings[KEYS_SETTING])))
    hub.tornado_settings = settings
    limit = named_server_limit
    if limit is None:
        current = configured(hub, "named_server_limit_per_user", 0)
        limit = current.limit if isinstance(current, NamedServerLimit) else int(current or 0)
    hub.named_server_limit_per_user = NamedServerLimit(limit)
    c.Spawner.post_stop_hook = forget_refused_start
