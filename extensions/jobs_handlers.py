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

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from codespace.jobs.backend import BackendUnavailable, JobError, JobNotFound
from codespace.jobs.service import JobService
from codespace.policy import PolicyRefused
from extensions.api import ServiceHandler, http_errors

API = r"/codespace/api/jobs"
ID = r"(?P<job_id>[^/]+)"

# Job errors become JSON errors a user can read.
_errors = http_errors(
    (PolicyRefused, 403), (JobNotFound, 404), (BackendUnavailable, 503), (JobError, 400)
)


class JobHandler(ServiceHandler):
    auth_resource = "kernels"  # a job runs code, as a kernel does
    service: JobService


class JobsHandler(JobHandler):
    @web.authenticated
    @authorized
    @_errors
    async def get(self) -> None:
        await self.reply_listing("jobs")

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
        self.reply({"text": await self.service.logs(job_id, self.tail())})


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
