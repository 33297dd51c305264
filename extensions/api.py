"""What the REST handlers of the jobs and deploy APIs share.

A :class:`ServiceHandler` is initialised with its capability's service (``self.service``),
replies JSON (pydantic models serialised, also inside lists and dicts), reads a JSON body,
the ``?tail=`` of a logs request, and answers the listing of a service with several backends
(``{"backends": [...], <key>: [...]}``). :func:`http_errors` makes the decorator that turns
a capability's exceptions into ``{"message": ...}`` errors with the HTTP status of each.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel
from tornado import web

Method = Callable[..., Awaitable[None]]


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: pydantic models dumped, in lists and dicts too."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    return value


def http_errors(*statuses: tuple[type[Exception], int]) -> Callable[[Method], Method]:
    """A decorator: the exceptions named become HTTP errors a user can read (their message,
    with the status given); the first class that matches decides, so name a subclass before
    its base."""
    kinds = tuple(kind for kind, _ in statuses)

    def decorator(method: Method) -> Method:
        @functools.wraps(method)
        async def wrapper(self: APIHandler, *args: Any, **kwargs: Any) -> None:
            try:
                await method(self, *args, **kwargs)
            except kinds as error:
                status = next(code for kind, code in statuses if isinstance(error, kind))
                raise web.HTTPError(status, str(error)) from error

        return wrapper

    return decorator


class ServiceHandler(APIHandler):
    """A handler over one capability's service."""

    def initialize(self, service: Any) -> None:
        self.service = service

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(jsonable(value)))

    def json_body(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except ValueError as error:
            raise web.HTTPError(400, "the request body is not JSON") from error

    def tail(self) -> int | None:
        """``?tail=N``: the last N lines (None: all of them)."""
        tail = self.get_query_argument("tail", None)
        try:
            lines = None if tail in (None, "") else int(tail)
        except ValueError as error:
            raise web.HTTPError(400, "tail must be a number of lines") from error
        if lines is not None and lines < 0:
            raise web.HTTPError(400, "tail must be a number of lines")
        return lines

    async def reply_listing(self, key: str) -> None:
        """Every backend's records under ``key``, and the backends (with the error of each
        that failed to answer)."""
        records, problems = await self.service.list()
        backends = [
            {**item, **({"error": problems[item["name"]]} if item["name"] in problems else {})}
            for item in self.service.backends()
        ]
        self.reply({"backends": backends, key: records})
