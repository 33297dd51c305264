"""Two ways to talk to Slurm with the same four calls: slurmrestd, or the Slurm CLI.

:class:`RestClient` speaks slurmrestd's REST API (httpx) with the user's JWT
(``X-SLURM-USER-NAME`` / ``X-SLURM-USER-TOKEN``), so Slurm runs the jobs as that user; the
payload and the job reader are picked by API version (:mod:`codespace.jobs.slurm_payload`).
:class:`CliClient` runs ``sbatch --parsable`` (the script on stdin), ``squeue --json`` and
``scancel`` as the server's own user, always with argument lists, never a shell.

Errors are two kinds: :class:`SlurmUnavailable` (the controller or slurmrestd cannot be
reached, or is restarting: try again, after looking the job up) and :class:`SlurmRefused`
(Slurm said no: a :class:`~codespace.jobs.backend.JobError` with Slurm's words).
:func:`parse_options` checks the backend's options and :func:`make_client` builds the client
they describe.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pwd
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx

from codespace.jobs.backend import JobError
from codespace.jobs.slurm_payload import PAYLOADS, SlurmJob, sbatch_argv
from codespace.jobs.slurm_states import (
    READERS,
    SlurmTask,
    read_v0_0_38,
    transient_errno,
    transient_text,
)

INVALID_JOB_ID = 2017  # ESLURM_INVALID_JOB_ID
OPTIONS: dict[str, type] = {
    "url": str,
    "api_version": str,
    "token": str,
    "token_file": str,
    "user_name": str,
    "mode": str,
    "bin_dir": str,
    "slurm_conf": str,
    "partition": str,
    "account": str,
    "qos": str,
    "python": str,
    "kernel": str,
    "submit_timeout": float,
    "request_timeout": float,
    "poll_interval": float,
}


class SlurmUnavailable(Exception):
    """Slurm could not be asked (down, restarting, unreachable): retry, after a lookup."""


class SlurmRefused(JobError):
    """Slurm refused the request; the message is Slurm's reason."""


class SlurmClient(Protocol):
    async def submit(self, job: SlurmJob) -> str: ...

    async def jobs(self) -> list[SlurmTask]: ...

    async def cancel(self, slurm_id: str) -> None: ...

    async def close(self) -> None: ...


# --- slurmrestd ---------------------------------------------------------------------------------


def token_user(token: str) -> str | None:
    """The user a Slurm JWT names (its ``sun`` claim), read without checking the signature."""
    try:
        body = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return None
    user = claims.get("sun") if isinstance(claims, dict) else None
    return user if isinstance(user, str) else None


class TokenSource:
    """The user's JWT: given, or read from a file (re-read when it changes: rotation)."""

    def __init__(self, token: str | None = None, token_file: str | Path | None = None) -> None:
        if not token and not token_file:
            raise JobError("slurm job backend: give a token or a token_file for slurmrestd")
        self._token = token
        self._file = Path(token_file) if token_file else None
        self._seen: tuple[float, str] | None = None

    def __call__(self) -> str:
        if self._token:
            return self._token
        assert self._file is not None
        try:
            mtime = self._file.stat().st_mtime
            if self._seen is None or self._seen[0] != mtime:
                self._seen = (mtime, self._file.read_text(encoding="utf-8").strip())
        except OSError as error:
            raise SlurmRefused(f"cannot read the Slurm token file {self._file}: {error}") from error
        token = self._seen[1]
        return token.partition("=")[2] if token.startswith("SLURM_JWT=") else token


def _errors(body: Any) -> list[tuple[int, str]]:
    """(number, text) of each error in a slurmrestd answer."""
    found = []
    for error in (body or {}).get("errors") or []:
        number = error.get("error_number", error.get("error_code", 0))
        words = [str(error.get(k)) for k in ("error", "description") if error.get(k)]
        found.append((int(number or 0), ": ".join(dict.fromkeys(words)) or "unknown error"))
    return found


class RestClient:
    """slurmrestd with a per-user JWT (``rest_auth/jwt``)."""

    def __init__(
        self,
        url: str,
        token: Callable[[], str],
        *,
        user_name: str | None = None,
        api_version: str = "v0.0.38",
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if api_version not in PAYLOADS or api_version not in READERS:
            known = ", ".join(sorted(PAYLOADS))
            raise JobError(f"slurm job backend: API version {api_version!r} unknown ({known})")
        self.api_version = api_version
        self._payload = PAYLOADS[api_version]
        self._read = READERS[api_version]
        self._token = token
        self._user = user_name
        # Submissions wait as long as slurmrestd takes (it retries the controller itself): a
        # request given up on here could still create the job there after a lookup found none.
        timeouts = httpx.Timeout(timeout, connect=10.0)
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"), timeout=timeouts, transport=transport
        )

    def _headers(self) -> dict[str, str]:
        token = self._token()
        user = self._user or token_user(token) or pwd.getpwuid(os.geteuid()).pw_name
        return {"X-SLURM-USER-NAME": user, "X-SLURM-USER-TOKEN": token}

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        url = f"/slurm/{self.api_version}/{path}"
        try:
            response = await self._http.request(method, url, headers=self._headers(), **kwargs)
        except httpx.TransportError as error:
            raise SlurmUnavailable(f"slurmrestd: {error!r}") from error
        if response.status_code in (401, 403):
            raise SlurmRefused(f"slurmrestd refused the token ({response.status_code})")
        if response.status_code == 404:
            raise SlurmRefused(f"slurmrestd has no {url} (is {self.api_version} loaded?)")
        try:
            body = response.json()
        except ValueError:
            body = None
        if body is None and response.status_code >= 500:
            raise SlurmUnavailable(f"slurmrestd answered {response.status_code}")
        return response.status_code, body

    @staticmethod
    def _raise(status: int, errors: list[tuple[int, str]], what: str) -> None:
        text = "; ".join(words for _, words in errors) or f"HTTP {status}"
        if any(transient_errno(number) for number, _ in errors) or status in (502, 503, 504):
            raise SlurmUnavailable(f"{what}: {text}")
        raise SlurmRefused(f"Slurm refused the {what}: {text}")

    async def submit(self, job: SlurmJob) -> str:
        timeout = httpx.Timeout(None, connect=10.0)
        status, body = await self._call(
            "POST", "job/submit", json=self._payload(job), timeout=timeout
        )
        job_id = (body or {}).get("job_id")
        if isinstance(job_id, int) and job_id > 0:  # warnings may come with an accepted job
            return str(job_id)
        self._raise(status, _errors(body), "job")
        raise AssertionError("unreachable")

    async def jobs(self) -> list[SlurmTask]:
        status, body = await self._call("GET", "jobs")
        errors = _errors(body)
        if status != 200 or errors or not isinstance((body or {}).get("jobs"), list):
            # never an empty list for a failed read: the backend would think jobs were lost
            text = "; ".join(words for _, words in errors) or f"HTTP {status}"
            raise SlurmUnavailable(f"job list: {text}")
        return [self._read(entry) for entry in (body or {}).get("jobs") or []]

    async def cancel(self, slurm_id: str) -> None:
        status, body = await self._call("DELETE", f"job/{slurm_id}")
        errors = _errors(body)
        if status == 200 and not errors:
            return
        if any(number == INVALID_JOB_ID for number, _ in errors):
            return  # gone already (finished and purged)
        self._raise(status, errors, "cancellation")

    async def close(self) -> None:
        await self._http.aclose()


# --- the Slurm CLI ------------------------------------------------------------------------------


def read_squeue(entry: Mapping[str, Any]) -> SlurmTask:
    """One job of ``squeue --json``: 22.05's shape, or a newer one with nested numbers."""
    flat = dict(entry)
    for key in ("array_job_id", "array_task_id", "start_time", "end_time"):
        value = flat.get(key)
        if isinstance(value, dict):  # {"set": true, "infinite": false, "number": N}
            flat[key] = value.get("number") if value.get("set") else None
    state = flat.get("job_state")
    if isinstance(state, list):
        flat["job_state"] = state[0] if state else ""
    code = flat.get("exit_code")
    if isinstance(code, dict):  # {"status": [...], "return_code": {...}, "signal": {...}}
        number = (code.get("return_code") or {}).get("number") or 0
        signal_id = ((code.get("signal") or {}).get("id") or {}).get("number") or 0
        flat["exit_code"] = (int(number) << 8) | int(signal_id)
    return read_v0_0_38(flat)


class CliClient:
    """``sbatch`` / ``squeue`` / ``scancel`` as the server's user (no slurmrestd needed)."""

    def __init__(
        self,
        *,
        bin_dir: str | None = None,
        slurm_conf: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self._bin = {
            name: str(Path(bin_dir) / name) if bin_dir else name
            for name in ("sbatch", "squeue", "scancel")
        }
        self._conf = slurm_conf
        self._timeout = timeout

    def _env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        if self._conf:
            env["SLURM_CONF"] = self._conf
        elif "SLURM_CONF" in os.environ:
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        if "PATH" not in env:
            env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        return env

    async def _run(
        self,
        argv: list[str],
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, str, str]:
        """Run a Slurm tool; ``timeout`` only for queries (a killed sbatch may still submit)."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(env),
            )
        except OSError as error:
            raise SlurmRefused(f"cannot run {argv[0]}: {error}") from error
        data = stdin.encode() if stdin is not None else None
        try:
            out, err = await asyncio.wait_for(process.communicate(data), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise SlurmUnavailable(f"{argv[0]} did not answer in {timeout:g}s") from None
        return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    @staticmethod
    def _raise(argv0: str, code: int, err: str) -> None:
        text = err.strip() or f"exit code {code}"
        if transient_text(text):
            raise SlurmUnavailable(f"{argv0}: {text}")
        raise SlurmRefused(f"Slurm refused the job: {text}")

    async def submit(self, job: SlurmJob) -> str:
        argv = sbatch_argv(job, self._bin["sbatch"])
        code, out, err = await self._run(argv, stdin=job.script, env=job.environment)
        first = out.strip().split(";")[0]
        if code == 0 and first.isdigit():
            return first
        self._raise("sbatch", code, err)
        raise AssertionError("unreachable")

    async def jobs(self) -> list[SlurmTask]:
        argv = [self._bin["squeue"], "--json", "--states=all"]
        code, out, err = await self._run(argv, timeout=self._timeout)
        if code != 0:
            self._raise("squeue", code, err)
        try:
            body = json.loads(out)
        except ValueError as error:
            raise SlurmUnavailable(f"squeue --json printed no JSON: {out[:200]!r}") from error
        errors = _errors(body)
        if errors or not isinstance(body.get("jobs"), list):  # squeue exits 0 even then
            text = "; ".join(words for _, words in errors) or "no job list"
            raise SlurmUnavailable(f"squeue: {text}")
        return [read_squeue(entry) for entry in body.get("jobs") or []]

    async def cancel(self, slurm_id: str) -> None:
        argv = [self._bin["scancel"], "--", slurm_id]
        code, _, err = await self._run(argv, timeout=self._timeout)
        if code != 0 and "Invalid job id" not in err:
            self._raise("scancel", code, err)

    async def close(self) -> None:
        return None


# --- the backend's options ---------------------------------------------------------------------


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The backend's options, checked (a wrong name or value is an error naming it)."""
    parsed: dict[str, Any] = {}
    for name, value in options.items():
        kind = OPTIONS.get(name)
        if kind is None:
            known = ", ".join(OPTIONS)
            raise JobError(f"slurm job backend: unknown option {name!r} (known: {known})")
        if value is None:
            continue
        try:
            parsed[name] = kind(value)
        except (TypeError, ValueError) as error:
            raise JobError(f"slurm job backend: option {name!r}: {error}") from error
    mode = parsed.setdefault("mode", "rest" if parsed.get("url") else "cli")
    if mode not in ("rest", "cli"):
        raise JobError(f"slurm job backend: option 'mode' is 'rest' or 'cli', not {mode!r}")
    if mode == "rest" and not parsed.get("url"):
        raise JobError("slurm job backend: mode 'rest' needs the slurmrestd 'url'")
    return parsed


def make_client(
    options: Mapping[str, Any], environment: Mapping[str, str], owner: str
) -> SlurmClient:
    """The REST or CLI client the (parsed) options describe. ``{owner}`` in ``token_file``
    and ``user_name`` is the hub user (a site-wide setting names each user's own token)."""
    timeout = options.get("request_timeout", 30.0)
    if options["mode"] == "cli":
        return CliClient(
            bin_dir=options.get("bin_dir"), slurm_conf=options.get("slurm_conf"), timeout=timeout
        )
    token = options.get("token") or environment.get("SLURM_JWT") or os.environ.get("SLURM_JWT")
    token_file = options.get("token_file")
    if token_file:
        token_file = os.path.expanduser(token_file.replace("{owner}", owner))
    user_name = options.get("user_name")
    return RestClient(
        options["url"],
        TokenSource(token, token_file),
        user_name=user_name.replace("{owner}", owner) if user_name else None,
        api_version=options.get("api_version", "v0.0.38"),
        timeout=timeout,
    )
