"""The kernel-side client of the codespace server extension's REST API (stdlib only).

A notebook's kernel inherits the Jupyter server's environment, so it can call the server
with the server's own credentials: ``JUPYTERHUB_SERVICE_URL`` (where the single-user server
listens, base URL included) and ``JUPYTERHUB_API_TOKEN``, sent as ``Authorization: token``.
Outside JupyterHub set ``CODESPACE_SERVER_URL`` and ``CODESPACE_SERVER_TOKEN``.
Engine credentials stay in the server; user code only ever sees this API.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

API_PREFIX = "codespace/api"
# Answers after which a request that is safe to repeat (an idempotent submission) is sent again.
RETRY_STATUSES = (0, 502, 503, 504)


class ApiError(Exception):
    """The server answered with an error; ``status`` is the HTTP status (0: unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


def _server_url(environ: Mapping[str, str]) -> str:
    url = environ.get("CODESPACE_SERVER_URL") or environ.get("JUPYTERHUB_SERVICE_URL")
    if not url:
        raise ApiError(
            0,
            "no server to talk to: run inside a codespace, or set CODESPACE_SERVER_URL "
            "and CODESPACE_SERVER_TOKEN",
        )
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - the bind address of the server: reach it locally
        netloc = f"127.0.0.1:{parts.port}" if parts.port else "127.0.0.1"
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts).rstrip("/") + "/"


class CodespaceClient:
    """Small synchronous client; every method returns decoded JSON."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.url = (url.rstrip("/") + "/") if url else _server_url(env)
        self.token = (
            token
            if token is not None
            else env.get("CODESPACE_SERVER_TOKEN") or env.get("JUPYTERHUB_API_TOKEN") or ""
        )
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = self.url + API_PREFIX + "/" + path.lstrip("/") + (f"?{query}" if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, _error_message(error.read(), error.reason)) from error
        except urllib.error.URLError as error:
            raise ApiError(0, f"cannot reach {self.url}: {error.reason}") from error
        return json.loads(payload) if payload else None

    # datasets ------------------------------------------------------------------------------

    def _dataset_path(self, name: str, *rest: str) -> str:
        return "/".join(["datasets", urllib.parse.quote(name, safe=""), *rest])

    def list_datasets(self) -> list[dict[str, Any]]:
        return self.request("GET", "datasets")["datasets"]

    def get_dataset(self, name: str) -> dict[str, Any]:
        return self.request("GET", self._dataset_path(name))

    def list_files(
        self, name: str, path: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        params = {"path": path, "limit": limit, "cursor": cursor}
        return self.request("GET", self._dataset_path(name, "files"), params=params)

    def prewarm(self, name: str, paths: list[str] | None = None) -> dict[str, Any]:
        return self.request("POST", self._dataset_path(name, "prewarm"), body={"paths": paths})

    def prewarm_history(self, name: str) -> list[dict[str, Any]]:
        return self.request("GET", self._dataset_path(name, "prewarm"))["operations"]

    def mount(self, name: str) -> dict[str, Any]:
        return self.request("POST", self._dataset_path(name, "mount"), body={})

    def unmount(self, name: str) -> dict[str, Any]:
        return self.request("DELETE", self._dataset_path(name, "mount"))

    # jobs ----------------------------------------------------------------------------------

    def _job_path(self, job_id: str, *rest: str) -> str:
        return "/".join(["jobs", urllib.parse.quote(job_id, safe=""), *rest])

    def job_backends(self) -> list[dict[str, Any]]:
        return self.request("GET", "jobs")["backends"]

    def list_jobs(self) -> list[dict[str, Any]]:
        return self.request("GET", "jobs")["jobs"]

    def submit_jobs(
        self, submission: Mapping[str, Any], *, attempts: int = 3
    ) -> list[dict[str, Any]]:
        """POST a submission (``{"jobs": [...]}`` or one job spec); the records it made.

        The submission gets an idempotency key (unless it has one), and a request that timed
        out or found the server unreachable is sent again with the same key: the server
        returns the jobs the first one made, so a retry never makes a second job.
        """
        body = dict(submission)
        body.setdefault("idempotencyKey", uuid.uuid4().hex)
        for attempt in range(1, attempts + 1):
            try:
                return self.request("POST", "jobs", body=body)["jobs"]
            except ApiError as error:
                if error.status not in RETRY_STATUSES or attempt == attempts:
                    raise
            except (TimeoutError, ConnectionError) as error:  # a read that timed out
                if attempt == attempts:
                    raise ApiError(0, f"no answer from {self.url}: {error}") from error
            time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", self._job_path(job_id))

    def job_logs(self, job_id: str, tail: int | None = None) -> str:
        return self.request("GET", self._job_path(job_id, "logs"), params={"tail": tail})["text"]

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", self._job_path(job_id, "cancel"), body={})

    def resubmit_job(self, job_id: str) -> list[dict[str, Any]]:
        return self.request("POST", self._job_path(job_id, "resubmit"), body={})["jobs"]


def _error_message(body: bytes, reason: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return reason
    if not isinstance(data, dict):
        return reason
    # ours: {"message"}; a model server's answer passed through (MLServer, KServe): {"error"}
    return str(data.get("message") or data.get("error") or reason)
