"""REST handlers for datasets; thin: parse, call the backend, serialise.

``GET  /codespace/api/datasets``                      list
``GET  /codespace/api/datasets/<name>``               one, with a fresh status
``GET  /codespace/api/datasets/<name>/files?path=``   a page of a directory (limit, cursor)
``GET  /codespace/api/datasets/<name>/prewarm``       prewarm history, newest first
``POST /codespace/api/datasets/<name>/prewarm``       start one: {"paths": [...]}
``POST|DELETE /codespace/api/datasets/<name>/mount``  mount / unmount

All need an authenticated user with access to this server's contents; writes need the
XSRF token when authenticated by cookie (jupyter_server checks it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel
from tornado import web

from codespace.datasets.backend import (
    DEFAULT_PAGE_SIZE,
    DatasetBackend,
    DatasetError,
    DatasetNotFound,
)
from codespace.datasets.models import Dataset
from codespace.datasets.paths import PathRefused
from codespace.policy import Effective, PolicyRefused
from codespace.spec.model import DNS1123_LABEL

API = r"/codespace/api/datasets"
NAME = r"(?P<name>[^/]+)"


def _jsonable(value: Any, root: Path | None = None) -> Any:
    if isinstance(value, Dataset):
        path = _contents_path(value.mountPath, root)
        return value.model_copy(update={"contentsPath": path}).model_dump(mode="json")
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(item, root) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item, root) for key, item in value.items()}
    return value


def _contents_path(mount_path: str | None, root: Path | None) -> str | None:
    """The mount path relative to the server's root (what the file browser opens), if inside."""
    if not mount_path or root is None:
        return None
    try:
        return Path(mount_path).relative_to(root).as_posix()
    except ValueError:
        return None


def _errors(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Backend errors become JSON errors a user can read."""

    @functools.wraps(method)
    async def wrapper(self: DatasetHandler, *args: Any, **kwargs: Any) -> None:
        name = kwargs.get("name")
        if name is not None and not DNS1123_LABEL.fullmatch(name):
            raise web.HTTPError(404, f"no dataset named {name!r}")
        try:
            await method(self, *args, **kwargs)
        except PolicyRefused as error:
            raise web.HTTPError(403, str(error)) from error
        except DatasetNotFound as error:
            raise web.HTTPError(404, str(error)) from error
        except PathRefused as error:
            raise web.HTTPError(400, str(error)) from error
        except DatasetError as error:
            raise web.HTTPError(409, str(error)) from error

    return wrapper


class DatasetHandler(APIHandler):
    auth_resource = "contents"

    def initialize(self, backend: DatasetBackend, policy: Effective | None = None) -> None:
        self.backend = backend
        self.policy = policy

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        root = Path(self.settings.get("server_root_dir") or "/").expanduser()
        self.finish(json.dumps(_jsonable(value, root)))

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError as error:
            raise web.HTTPError(400, "the request body is not JSON") from error
        if not isinstance(body, dict):
            raise web.HTTPError(400, "the request body must be a JSON object")
        return body


class DatasetsHandler(DatasetHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self) -> None:
        self.reply({"backend": self.backend.kind, "datasets": await self.backend.list()})


class DatasetItemHandler(DatasetHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, name: str) -> None:
        self.reply(await self.backend.get(name))


class DatasetFilesHandler(DatasetHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, name: str) -> None:
        try:
            limit = int(self.get_query_argument("limit", str(DEFAULT_PAGE_SIZE)))
        except ValueError as error:
            raise web.HTTPError(400, "limit must be an integer") from error
        page = await self.backend.files(
            name,
            self.get_query_argument("path", ""),
            limit=limit,
            cursor=self.get_query_argument("cursor", None),
        )
        self.reply(page)


class DatasetPrewarmHandler(DatasetHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, name: str) -> None:
        self.reply({"operations": await self.backend.prewarm_history(name)})

    @web.authenticated
    @authorized
    @_errors
    async def post(self, name: str) -> None:
        paths = self.json_body().get("paths")
        if paths is not None and (
            not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)
        ):
            raise web.HTTPError(400, "paths must be a list of strings")
        self.reply(await self.backend.prewarm(name, paths), status=202)


class DatasetMountHandler(DatasetHandler):
    @web.authenticated
    @authorized
    @_errors
    async def post(self, name: str) -> None:
        if self.policy is not None:
            self.policy.check_datasets([name])  # PolicyRefused: 403 naming the rule
        self.reply(await self.backend.mount(name))

    @web.authenticated
    @authorized
    @_errors
    async def delete(self, name: str) -> None:
        self.reply(await self.backend.unmount(name))


def dataset_handlers(
    backend: DatasetBackend, policy: Effective | None = None
) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"backend": backend, "policy": policy}
    return [
        (API, DatasetsHandler, kwargs),
        (rf"{API}/{NAME}", DatasetItemHandler, kwargs),
        (rf"{API}/{NAME}/files", DatasetFilesHandler, kwargs),
        (rf"{API}/{NAME}/prewarm", DatasetPrewarmHandler, kwargs),
        (rf"{API}/{NAME}/mount", DatasetMountHandler, kwargs),
    ]
