"""Refused starts leave no named server behind.

JupyterHub creates a named server's database row *before* the spawner sees the options: the
REST API (``POST /hub/api/users/:name/servers/:server``) and the spawn form create it with
``get_or_create_spawner``, then ``User.spawn`` saves the options and calls the spawner's
``apply_user_options``, which refuses bad ones (HTTP 400). JupyterHub then stops the server but
keeps the row, and every such row counts against ``named_server_limit_per_user``.

Two documented JupyterHub hooks remove those rows (:func:`configure` sets both):

- ``Spawner.post_stop_hook`` = :func:`forget_refused_start`: JupyterHub calls it when it cleans
  up after the refused start; once JupyterHub has finished with that spawn (its pending flag
  cleared, a moment later on the same event loop, before the refusal reaches the client), the
  row is deleted, as ``DELETE .../servers/:server {"remove": true}`` would;
- ``JupyterHub.named_server_limit_per_user`` = :class:`NamedServerLimit`: before JupyterHub
  compares a user's servers with the limit (every request that may create one, and the home
  page), the user's leftover rows are deleted first. This also removes the row JupyterHub's
  spawn form makes to show itself when its submission is refused by the form's own parsing
  (``options_from_form``), which starts nothing, so no stop hook runs.

A *leftover* is a named server that is not active, never started (no spawner state saved:
a start that got past the checks records its workspace) and whose saved options the spawner
refuses (or that has none). A codespace that ran once is never removed, whatever its options.
The checks are the spawner's own: ``validate_options`` and the spawner's ``apply_user_options``
(for :class:`~spawner.local.LocalCodespaceSpawner`: the profile and the allowed local roots).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from jupyterhub.user import User
from tornado import web

from hub.codespaces import Refused, options_of
from spawner.form import validate_options

log = logging.getLogger("JupyterHub")
SETTLE_TIMEOUT = 30.0
_cleanups: set[asyncio.Task] = set()  # running removals (the event loop keeps weak references)


async def check_options(spawner: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """Options -> the clean options the spawner would start with, or :class:`Refused` with the
    spawner's message. ``spawner`` is any of the user's spawners (the checks read only its
    configuration)."""
    try:
        clean = validate_options(options)
        apply = getattr(spawner, "apply_user_options", None)
        if callable(apply):  # a dict applies traits: nothing to check
            result = apply(spawner, clean)
            if inspect.isawaitable(result):
                await result
    except web.HTTPError as error:
        if error.status_code >= 500:
            raise
        raise Refused(error.log_message or error.reason or str(error)) from None
    except ValueError as error:
        raise Refused(str(error)) from None
    return clean


async def refusal(spawner: Any, options: Mapping[str, Any]) -> str | None:
    """Why the spawner refuses ``options``, or None when it accepts them."""
    try:
        await check_options(spawner, options)
    except Refused as error:
        return str(error)
    return None


def _loaded(user: Any, name: str) -> Any | None:
    """JupyterHub's Spawner object for ``name`` if loaded (``user.spawners`` makes one on
    ``[]``; ``dict.get`` does not)."""
    return dict.get(user.spawners, name)


async def is_leftover(user: Any, row: Any) -> bool:
    """A named server row a refused start left (see the module docstring)."""
    if not row.name or row.server is not None or row.state:
        return False
    wrapper = _loaded(user, row.name)
    if wrapper is not None and (wrapper.active or wrapper.pending):
        return False
    return await refusal(user.spawner, options_of(row)) is not None


def remove_row(user: Any, name: str) -> bool:
    """Delete a stopped server's row, as the REST API's ``remove`` does (nothing else was
    made: a refused start created no workspace)."""
    row = user.orm_spawners.get(name)
    wrapper = _loaded(user, name)
    if row is None or (wrapper is not None and wrapper.active):
        return False
    user.spawners.pop(name, None)
    user.db.delete(row)
    user.db.commit()
    log.info("Removed %s's server %r: its start was refused before it began", user.name, name)
    return True


async def forget_leftovers(user: Any) -> list[str]:
    """Remove the user's leftover rows; return their names."""
    removed = []
    for name, row in sorted(user.orm_spawners.items()):
        if name and await is_leftover(user, row) and remove_row(user, name):
            removed.append(name)
    return removed


def forget_refused_start(spawner: Any) -> None:
    """``Spawner.post_stop_hook``: after a stop that ends a refused start of a server that
    never ran, remove its row once JupyterHub is done with the spawn."""
    if not spawner.name or spawner.orm_spawner is None or spawner.orm_spawner.state:
        return
    task = asyncio.ensure_future(_forget_when_settled(spawner))
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)


async def _forget_when_settled(spawner: Any) -> None:
    user, name = spawner.user, spawner.name
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_TIMEOUT
    turns = 0
    while spawner.pending and loop.time() < deadline:
        # JupyterHub clears the pending flag in a callback right after the spawn ends
        await asyncio.sleep(0 if turns < 50 else 0.1)
        turns += 1
    if spawner.pending or _loaded(user, name) not in (None, spawner):
        return  # started again meanwhile
    row = user.orm_spawners.get(name)
    if row is not None and await is_leftover(user, row):
        remove_row(user, name)


class NamedServerLimit:
    """``JupyterHub.named_server_limit_per_user`` as a callable: the limit, after removing
    the requesting user's leftover rows (so refused tries never count against it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    async def __call__(self, handler: Any) -> int:
        user = handler.current_user
        if isinstance(user, User):  # not a service's token
            await forget_leftovers(user)
        return self.limit

    def __repr__(self) -> str:
        return f"NamedServerLimit({self.limit})"
