"""REST handlers for jobs; thin: parse, call the job service, serialise.

``GET  /codespace/api/jobs``                   {"backends": [{"name", "default"}], "jobs": [...]}
``POST /codespace/api/jobs``                   a submission (or one job spec) -> 201 {"jobs": [...]}
``GET  /codespace/api/jobs/<id>``              one job, with a fresh state
``GET  /codespace/api/jobs/<id>/logs?tail=N``  {"text": ...}
``POST /codespace/api/jobs/<id>/cancel``       the job's record
``POST /codespace/api/jobs/<id>/resubmit``     201 {"jobs": [...]}

Errors are ``{"message": ...}``: 400 for a bad spec (naming the field) or an unknown backend,
404 for an id that is not one of the user's jobs, 503 for a backend that is unavailable.
Writes need the XSRF token when authenticated by cookie (jupyter_server checks it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel
from tornado import web

from codespace.jobs.backend import BackendUnavailable, JobError, JobNotFound
from codespace.jobs.service import JobService

API = r"/codespace/api/jobs"
ID = r"(?P<job_id>[^/]+)"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def _errors(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Job errors become JSON errors a user can read."""

    @functools.wraps(method)
    async def wrapper(self: JobHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except JobNotFound as error:
            raise web.HTTPError(404, str(error)) from error
        except BackendUnavailable as error:
            raise web.HTTPError(503, str(error)) from error
        except JobError as error:
            raise web.HTTPError(400, str(error)) from error

    return wrapper


class JobHandler(APIHandler):
    auth_resource = "kernels"  # a job runs code, as a kernel does

    def initialize(self, service: JobService) -> None:
        self.service = service

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(_jsonable(value)))

    def json_body(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except ValueError as error:
            raise web.HTTPError(400, "the request body is not JSON") from error


class JobsHandler(JobHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self) -> None:
        records, problems = await self.service.list()
        backends = [
            {**item, **({"error": problems[item["name"]]} if item["name"] in problems else {})}
            for item in self.service.backends()
        ]
        self.reply({"backends": backends, "jobs": records})

    @web.authenticated
    @authorized
    @_errors
    async def post(self) -> None:
        self.reply({"jobs": await self.service.submit(self.json_body())}, status=201)


class JobItemHandler(JobHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, job_id: str) -> None:
        self.reply(await self.service.get(job_id))


class JobLogsHandler(JobHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self, job_id: str) -> None:
        tail = self.get_query_argument("tail", None)
        try:
            lines = None if tail in (None, "") else int(tail)
        except ValueError as error:
            raise web.HTTPError(400, "tail must be a number of lines") from error
        if lines is not None and lines < 0:
            raise web.HTTPError(400, "tail must be a number of lines")
        self.reply({"text": await self.service.logs(job_id, lines)})


class JobCancelHandler(JobHandler):
    @web.authenticated
    @authorized
    @_errors
    async def post(self, job_id: str) -> None:
        self.reply(await self.service.cancel(job_id))


class JobResubmitHandler(JobHandler):
    @web.authenticated
    @authorized
    @_errors
    async def post(self, job_id: str) -> None:
        self.reply({"jobs": await self.service.resubmit(job_id)}, status=201)


def job_handlers(service: JobService) -> list[tuple[str, type, dict[str, Any]]]:
    kwargs = {"service": service}
    return [
        (API, JobsHandler, kwargs),
        (rf"{API}/{ID}", JobItemHandler, kwargs),
        (rf"{API}/{ID}/logs", JobLogsHandler, kwargs),
        (rf"{API}/{ID}/cancel", JobCancelHandler, kwargs),
        (rf"{API}/{ID}/resubmit", JobResubmitHandler, kwargs),
    ]
