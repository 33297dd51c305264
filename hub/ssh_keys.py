"""SSH public keys at the hub: a page and a REST API; each user sees and changes only their
own keys (admins too).

- ``GET /hub/ssh-keys``: the page (linked from the home page): the keys with their
  fingerprints, a form to add one (paste the ``.pub`` line, a title) and a button to remove
  each; its forms ``POST /hub/ssh-keys`` (``action=add`` with ``key`` and ``title``,
  ``action=remove`` with ``fingerprint``; the login cookie and XSRF, as every hub form).
- ``GET /hub/api/codespace/ssh-keys`` -> ``{"keys": [{"fingerprint", "type", "comment",
  "title", "added"}]}``; ``POST`` ``{"key", "title"}`` -> 201 and the key (400 naming what
  is wrong with the key, 409 when the user already has it); ``DELETE
  /hub/api/codespace/ssh-keys/<fingerprint, URL-encoded>`` -> 204 (404 for a key the user
  does not have). A token (``Authorization: token ...``) needs ``read:tokens`` on its user to
  list and ``tokens`` to change: SSH keys are credentials, so a codespace's own server token
  cannot add one.

A change is applied at once to the user's running local codespaces (their
``authorized_keys`` is rewritten: :meth:`spawner.ssh.LocalSshMixin.refresh_ssh_keys`); a
Kubernetes codespace gets it at its next start.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import has_scope
from tornado import web

from codespace.ssh.keys import KeyProblem
from codespace.ssh.store import KeyExists, KeyStore, StoredKey
from spawner.ssh import key_store

PAGE = r"/ssh-keys"
API = r"/api/codespace/ssh-keys"


class _Keys:
    """What the page and the API share (mixed into JupyterHub handlers)."""

    def _owner(self: Any, *, write: bool) -> Any:
        """The current user, allowed to read (or change) their own keys; else 403."""
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if not hasattr(user, "spawners"):
            raise web.HTTPError(403, "Only users have SSH keys.")
        scope = f"{'tokens' if write else 'read:tokens'}!user={user.name}"
        if not has_scope(scope, self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"Changing SSH keys needs the {scope} scope.")
        return user

    def _store(self: Any) -> KeyStore:
        store = key_store(self.settings)
        if store is None:
            raise web.HTTPError(404, "This hub keeps no SSH keys (see hub.home.configure_home).")
        return store

    def _apply(self: Any, user: Any, store: KeyStore) -> int:
        """Rewrite the ``authorized_keys`` of the user's running (local) codespaces."""
        text = store.authorized_keys(user.name)
        updated = 0
        for name, spawner in list(user.spawners.items()):
            refresh = getattr(spawner, "refresh_ssh_keys", None)
            if refresh is None or not spawner.active:
                continue
            try:
                updated += bool(refresh(text))
            except OSError as error:
                self.log.warning("SSH keys of %s/%s not updated: %s", user.name, name, error)
        return updated


def _added(user: str, store: KeyStore, key: str, title: str) -> StoredKey:
    """Add a key; KeyProblem -> 400, KeyExists -> 409 (with the reason)."""
    try:
        return store.add(user, key, title)
    except KeyExists as error:
        raise web.HTTPError(409, str(error)) from None
    except KeyProblem as error:
        raise web.HTTPError(400, f"This is not a usable SSH public key: {error}") from None


def _fingerprint(text: str) -> str:
    text = unquote(text).strip()
    return text if text.startswith("SHA256:") else f"SHA256:{text}"


class SshKeysAPIHandler(_Keys, APIHandler):
    """``/hub/api/codespace/ssh-keys``: list (GET) and add (POST)."""

    def get(self) -> None:
        user = self._owner(write=False)
        keys = [key.to_json() for key in self._store().list(user.name)]
        self.finish(json.dumps({"keys": keys}))

    def post(self) -> None:
        user = self._owner(write=True)
        store = self._store()
        body = self.get_json_body()
        if not isinstance(body, dict) or not isinstance(body.get("key"), str):
            raise web.HTTPError(400, 'Send {"key": "<public key line>", "title": "..."}.')
        title = body.get("title") or ""
        if not isinstance(title, str):
            raise web.HTTPError(400, "The title must be a string.")
        stored = _added(user.name, store, body["key"], title)
        self._apply(user, store)
        self.set_status(201)
        self.finish(json.dumps(stored.to_json()))


class SshKeyAPIHandler(_Keys, APIHandler):
    """``/hub/api/codespace/ssh-keys/<fingerprint>``: remove (DELETE)."""

    def delete(self, fingerprint: str) -> None:
        user = self._owner(write=True)
        store = self._store()
        if not store.remove(user.name, _fingerprint(fingerprint)):
            raise web.HTTPError(404, f"You have no SSH key {_fingerprint(fingerprint)}.")
        self._apply(user, store)
        self.set_status(204)
        self.finish()


class SshKeysPageHandler(_Keys, BaseHandler):
    """``/hub/ssh-keys``: the page (see the module doc)."""

    @web.authenticated
    async def get(self) -> None:
        user = self._owner(write=False)
        notice = ""
        if self.get_query_argument("added", ""):
            notice = f"Added key {self.get_query_argument('added')}."
        elif self.get_query_argument("removed", ""):
            notice = f"Removed key {self.get_query_argument('removed')}."
        await self._page(user, notice=notice)

    @web.authenticated
    async def post(self) -> None:
        user = self._owner(write=True)
        store = self._store()
        action = self.get_body_argument("action", "add")
        page = f"{self.hub.base_url}ssh-keys"
        if action == "remove":
            fingerprint = _fingerprint(self.get_body_argument("fingerprint", ""))
            if not store.remove(user.name, fingerprint):
                self.set_status(404)
                await self._page(user, error=f"You have no SSH key {fingerprint}.")
                return
            self._apply(user, store)
            self.redirect(f"{page}?removed={quote(fingerprint, safe='')}")
            return
        key = self.get_body_argument("key", "")
        title = self.get_body_argument("title", "")
        try:
            stored = _added(user.name, store, key, title)
        except web.HTTPError as error:
            self.set_status(error.status_code)
            await self._page(user, error=error.log_message or "", key=key, title=title)
            return
        self._apply(user, store)
        self.redirect(f"{page}?added={quote(stored.fingerprint, safe='')}")

    async def _page(
        self, user: Any, *, notice: str = "", error: str = "", key: str = "", title: str = ""
    ) -> None:
        spawner_class = self.settings.get("spawner_class")
        applies_now = hasattr(spawner_class, "refresh_ssh_keys")
        html = await self.render_template(
            "ssh_keys.html",
            ssh_keys=self._store().list(user.name),
            ssh_notice=notice,
            ssh_error=error,
            ssh_key_text=key,
            ssh_title=title,
            ssh_applies_now=applies_now,
            ssh_page=f"{self.hub.base_url}ssh-keys",
        )
        self.finish(html)


def ssh_key_handlers() -> list[tuple[str, type]]:
    """``JupyterHub.extra_handlers`` entries (JupyterHub puts them under ``/hub/``)."""
    return [
        (PAGE, SshKeysPageHandler),
        (API, SshKeysAPIHandler),
        (API + r"/(.+)", SshKeyAPIHandler),
    ]
