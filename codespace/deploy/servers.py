"""Model server processes of the local backend: start on demand, wait for the model, stop.

One :class:`ServerProcess` per running deployment. :meth:`ModelServers.ensure` returns the
running server of a deployment or starts it (one start at a time per deployment: requests
arriving during a cold start all wait for the same start) and waits until the model answers
ready through the server's unix socket, or fails with the log's last lines when the process
ends first. :meth:`ModelServers.stop` sends SIGTERM to the server's process group (the
sandbox does not forward signals, :mod:`codespace.local.sandbox`) and SIGKILL after a grace,
then removes its cgroup. A start waits for a stop of the same deployment still under way:
the two servers share the deployment's cgroup and socket, and removing the old one's cgroup
kills what is in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from codespace.local.limits import Cgroup, CgroupError

POLL = 0.05  # seconds between readiness probes
STOP_GRACE = 10.0


class ServerFailed(RuntimeError):
    """The model server ended or never became ready; the message has its log's last lines."""


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    socket: Path
    log: Path
    started: float
    cgroup: Cgroup | None = None  # its limits; removed when it stops
    _client: httpx.AsyncClient | None = None

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def client(self, timeout: float = 60.0) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=str(self.socket))
        return httpx.AsyncClient(transport=transport, base_url="http://model", timeout=timeout)

    def shared_client(self) -> httpx.AsyncClient:
        """One client (its connections kept alive) for the requests passed on to the server."""
        if self._client is None:
            self._client = self.client(timeout=300.0)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log the hub wrote (never follows a link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:]) if lines else text


async def start_process(argv: list[str], log: Path, cwd: Path, env: dict[str, str]):
    """Start ``argv`` in a session of its own, its output appended to ``log``."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    finally:
        os.close(fd)


async def wait_ready(server: ServerProcess, path: str, timeout: float) -> None:
    """Until ``GET path`` answers 200 through the socket; ServerFailed when the process ends
    or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    async with server.client(timeout=5.0) as client:
        while True:
            if not server.alive:
                raise ServerFailed(
                    f"the model server exited with status {server.process.returncode}:\n"
                    + log_tail(server.log)
                )
            if server.socket.exists():
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(path)).status_code == 200:
                        return
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"the model was not ready after {timeout:.0f} s:\n" + log_tail(server.log)
                )
            await asyncio.sleep(POLL)


async def terminate(process: asyncio.subprocess.Process, grace: float = STOP_GRACE) -> None:
    """SIGTERM to the process group, SIGKILL after ``grace`` seconds."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


async def release(cgroup: Cgroup | None) -> None:
    """Remove a stopped server's cgroup (what is left in it is killed)."""
    if cgroup is not None:
        with contextlib.suppress(CgroupError, OSError):
            await asyncio.to_thread(cgroup.remove)


async def retire(server: ServerProcess) -> None:
    """Close the server's client, end its process, remove its cgroup."""
    await server.close()
    await terminate(server.process)
    await release(server.cgroup)


Starter = Callable[[], Awaitable[ServerProcess]]


class ModelServers:
    """The running servers by deployment key (``owner/name``)."""

    def __init__(self) -> None:
        self.running: dict[str, ServerProcess] = {}
        self._starting: dict[str, asyncio.Task[ServerProcess]] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}

    def get(self, key: str) -> ServerProcess | None:
        server = self.running.get(key)
        return server if server is not None and server.alive else None

    def starting(self, key: str) -> bool:
        return key in self._starting

    async def ensure(self, key: str, start: Starter) -> ServerProcess:
        """The running server for ``key``, started by ``start`` when there is none."""
        server = self.get(key)
        if server is not None:
            return server
        task = self._starting.get(key)
        if task is None:
            task = asyncio.ensure_future(self._start(key, start))
            self._starting[key] = task
        return await asyncio.shield(task)

    async def _start(self, key: str, start: Starter) -> ServerProcess:
        try:
            stopping = self._stopping.get(key)
            if stopping is not None:  # the previous server still holds the cgroup and socket
                await asyncio.shield(stopping)
            server = await start()
            self.running[key] = server
            return server
        finally:
            self._starting.pop(key, None)

    async def stop(self, key: str) -> None:
        """Stop the deployment's server (and a start under way); returns once it is gone."""
        starting = self._starting.pop(key, None)
        if starting is not None:
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
        server = self.running.pop(key, None)
        if server is not None:
            stopping = asyncio.ensure_future(retire(server))
            self._stopping[key] = stopping
            stopping.add_done_callback(lambda done: self._forget_stop(key, done))
        else:
            stopping = self._stopping.get(key)
        if stopping is not None:
            await asyncio.shield(stopping)

    def _forget_stop(self, key: str, task: asyncio.Task[None]) -> None:
        if self._stopping.get(key) is task:
            del self._stopping[key]

    async def stop_all(self) -> None:
        keys = {*self.running, *self._starting, *self._stopping}  # a stop under way too
        await asyncio.gather(*(self.stop(key) for key in keys))
