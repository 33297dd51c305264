"""The hub's own pages: launch links and the home page's New-codespace form.

``GET /hub/codespaces/new?repo=...&ref=...&open=path/in/repo`` (a launch link, like a Binder
badge; after JupyterHub's login when needed): a running codespace of that repository and ref
goes straight to the file in JupyterLab; otherwise the page says what will happen (start the
user's codespace ``x``, or create one) with one button. Starting code from a repository is
never done by a plain GET: any web page can make a logged-in browser follow a link, and a
codespace runs the repository's own commands with the user's rights (GitHub's "Open in
Codespaces" and Gitpod ask too).

``POST /hub/codespaces/new`` (that button, and the home page's New-codespace form; XSRF
checked by JupyterHub): validates the options with the spawner's own checks *before* any
server exists (a refusal is shown on the page, nothing is created), reuses the codespace of
that repository and ref (starting it when stopped) or creates a named server with a name made
from the repository, then sends the browser to JupyterHub's progress page, which goes on to
``/user/<name>/<server>/lab/tree/<open>`` when the codespace is ready.

``GET /hub/codespaces/badge.svg``: the README badge (no login: READMEs are read anywhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jupyterhub.handlers import BaseHandler
from jupyterhub.scopes import has_scope
from jupyterhub.utils import maybe_future
from tornado import web

from hub.codespaces import Refused, find_codespace, parse_open, pick_name, server_state
from hub.home import HomeView, hub_urls
from hub.refusals import check_options

FORM_FIELDS = ("repo", "ref", "profile", "config", "datasets")
BADGE_SVG = """\
<svg xmlns="http://www.w3.org/2000/svg" width="160" height="20" role="img" \
aria-label="launch: codespace">
<title>launch: codespace</title>
<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>
<stop offset="1" stop-opacity=".1"/></linearGradient>
<clipPath id="r"><rect width="160" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)"><rect width="70" height="20" fill="#555"/>
<rect x="70" width="90" height="20" fill="#f37726"/>
<rect width="160" height="20" fill="url(#s)"/></g>
<path d="M9 7l-4 3 4 3M15 7l4 3-4 3" fill="none" stroke="#fff" stroke-width="1.6" \
stroke-linecap="round" stroke-linejoin="round"/>
<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">
<text x="45" y="14">launch</text><text x="115" y="14">codespace</text></g>
</svg>
"""
LINK_FIELDS = ("repo", "ref")


def form_fields(arguments: Mapping[str, list[bytes]], allowed: tuple[str, ...]) -> dict:
    """Request arguments -> the spawn form's shape (lists of str), only ``allowed`` names."""
    return {
        key: [value.decode("utf-8", "replace") for value in values]
        for key, values in arguments.items()
        if key in allowed
    }


def first(fields: Mapping[str, list[str]], key: str) -> str:
    values = fields.get(key) or [""]
    return values[0].strip()


async def options_from_fields(spawner: Any, fields: Mapping[str, list[str]]) -> dict[str, Any]:
    """Form-shaped fields -> options, with the spawner's form parsing and start checks; a
    refusal raises :class:`Refused` with the spawner's message."""
    if not first(fields, "repo"):
        raise Refused("Give a repository: an https:// or ssh:// URL, or user@host:path.")
    try:
        options = await maybe_future(spawner.run_options_from_form(dict(fields)))
    except web.HTTPError as error:
        if error.status_code >= 500:
            raise
        raise Refused(error.log_message or str(error)) from None
    except ValueError as error:
        raise Refused(str(error)) from None
    return await check_options(spawner, options)


class NewCodespaceHandler(BaseHandler):
    """``/hub/codespaces/new``: see the module docstring."""

    def _own_user(self) -> Any:
        user = self.current_user
        if user is None or not hasattr(user, "spawners"):
            raise web.HTTPError(403, "Only users have codespaces.")
        if not has_scope(f"servers!user={user.name}", self.parsed_scopes, db=self.db):
            raise web.HTTPError(403, f"{user.name} may not start servers.")
        return user

    @web.authenticated
    async def get(self) -> None:
        user = self._own_user()
        fields = form_fields(self.request.query_arguments, LINK_FIELDS)
        open_arg = self.get_query_argument("open", "")
        try:
            open_path = parse_open(open_arg)
            options = await options_from_fields(user.spawner, fields)
        except Refused as error:
            self.set_status(400)
            await self._page(user, fields, open_arg, error=str(error))
            return
        urls = hub_urls(self.settings)
        existing = find_codespace(self._rows(user), options["repo"], options.get("ref", ""))
        if existing is not None:
            state = server_state(existing, dict.get(user.spawners, existing.name))
            lab = urls.lab(user.name, existing.name, open_path)
            if state == "running":
                self.redirect(lab)
                return
            if state == "starting":
                self.redirect(urls.progress(user.name, existing.name, lab))
                return
        await self._page(user, fields, open_path, existing=existing)

    @web.authenticated
    async def post(self) -> None:
        user = self._own_user()
        fields = form_fields(self.request.body_arguments, FORM_FIELDS)
        open_arg = self.get_body_argument("open", "")
        try:
            open_path = parse_open(open_arg)
            options = await options_from_fields(user.spawner, fields)
            url = await self._launch(user, options, open_path)
        except Refused as error:
            self.set_status(400)
            await self._home(user, fields, open_arg, error=str(error))
            return
        self.redirect(url)

    def _rows(self, user: Any) -> list[Any]:
        return [row for name, row in user.orm_user.orm_spawners.items() if name]

    async def _launch(self, user: Any, options: dict[str, Any], open_path: str) -> str:
        """Start the codespace (reused or new); return the progress page's URL."""
        if not self.allow_named_servers:
            raise Refused("This hub does not allow named servers, so it has no codespaces.")
        urls = hub_urls(self.settings)
        existing = find_codespace(self._rows(user), options["repo"], options.get("ref", ""))
        if existing is not None:
            name = existing.name
            state = server_state(existing, dict.get(user.spawners, name))
            if state == "stopping":
                raise Refused(f"Codespace {name} is stopping: try again in a moment.")
            if state in ("running", "starting"):
                return urls.progress(user.name, name, urls.lab(user.name, name, open_path))
            start_options = None  # the options it was made with
        else:
            await self._check_limit(user)
            name = pick_name(options["repo"], options.get("ref", ""), user.orm_spawners)
            start_options = options
            if hasattr(user, "get_or_create_spawner"):  # JupyterHub 6 wants the row first
                user.get_or_create_spawner(name, name)  # (5 makes it in spawn_single_user)
        try:
            await self.spawn_single_user(user, name, options=start_options)
        except web.HTTPError as error:
            if error.status_code >= 500:
                raise
            raise Refused(error.log_message or str(error)) from None
        return urls.progress(user.name, name, urls.lab(user.name, name, open_path))

    async def _check_limit(self, user: Any) -> None:
        limit = await self.get_current_user_named_server_limit()  # drops refused leftovers
        count = sum(1 for name in user.orm_spawners if name)
        if limit and count >= limit:
            raise Refused(
                f"You have {count} codespaces, the most this hub allows: delete one first."
            )

    async def _page(
        self,
        user: Any,
        fields: Mapping[str, list[str]],
        open_path: str,
        *,
        error: str = "",
        existing: Any = None,
    ) -> None:
        repo, ref = first(fields, "repo"), first(fields, "ref")
        name = existing.name if existing is not None else pick_name(repo, ref, user.orm_spawners)
        html = await self.render_template(
            "codespace_launch.html",
            launch_repo=repo,
            launch_ref=ref,
            launch_open=open_path,
            launch_name=name,
            launch_reuse=existing is not None,
            launch_error=error,
            new_path=HomeView(user).new_path,
        )
        self.finish(html)

    async def _home(
        self, user: Any, fields: Mapping[str, list[str]], open_path: str, *, error: str
    ) -> None:
        """The home page again, with the refusal and what was typed."""
        prefill = {
            key: values if key == "datasets" else first(fields, key)
            for key, values in fields.items()
        }
        html = await self.render_template(
            "home.html",
            user=user,
            allow_named_servers=self.allow_named_servers,
            named_server_limit_per_user=await self.get_current_user_named_server_limit(),
            codespace_error=error,
            codespace_prefill={**prefill, "open": open_path},
        )
        self.finish(html)


class BadgeHandler(BaseHandler):
    """``/hub/codespaces/badge.svg``: the launch badge image."""

    def get(self) -> None:
        self.set_header("Content-Type", "image/svg+xml")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.finish(BADGE_SVG)


def handlers() -> list[tuple[str, type]]:
    """``JupyterHub.extra_handlers`` entries (JupyterHub puts them under ``/hub/``)."""
    return [
        (r"/codespaces/new", NewCodespaceHandler),
        (r"/codespaces/badge\.svg", BadgeHandler),
    ]
