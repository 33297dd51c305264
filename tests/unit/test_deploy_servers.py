"""Model server processes: a cold start never overlaps the stop of the server before it.

The two servers of one deployment share its cgroup and socket; removing the old server's
cgroup kills whatever is in it, so a start that overlapped a slow stop (MLServer can take
longer than the grace to shut down) lost the new server to the old one's clean-up.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from codespace.deploy.servers import ModelServers, ServerProcess, start_process

# a server that takes a while to shut down after SIGTERM, as MLServer does under load
SLOW_TO_STOP = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.8), sys.exit(0)))\n"
    "print('up', flush=True)\n"
    "time.sleep(60)\n"
)


def starter(tmp_path: Path, events: list[str], previous: list[ServerProcess]):
    async def start() -> ServerProcess:
        # what the old server's state is when the new one starts
        if previous:
            events.append("old exited" if not previous[-1].alive else "old alive")
        log = tmp_path / f"server-{len(previous)}.log"
        process = await start_process([sys.executable, "-c", SLOW_TO_STOP], log, tmp_path, {})
        deadline = time.monotonic() + 20
        while "up" not in (log.read_text() if log.exists() else ""):
            assert time.monotonic() < deadline, "the test server did not come up"
            await asyncio.sleep(0.02)
        server = ServerProcess(process, tmp_path / "socket", log, time.monotonic())
        previous.append(server)
        return server

    return start


def test_a_request_during_a_slow_stop_starts_the_server_after_the_old_one_is_gone(
    tmp_path: Path,
) -> None:
    async def scenario() -> tuple[list[str], ServerProcess, ServerProcess]:
        servers = ModelServers()
        events: list[str] = []
        started: list[ServerProcess] = []
        start = starter(tmp_path, events, started)
        first = await servers.ensure("dora/iris", start)
        stopping = asyncio.ensure_future(servers.stop("dora/iris"))  # scale to zero
        await asyncio.sleep(0.2)
        assert servers.get("dora/iris") is None  # the deployment reads idle meanwhile
        assert first.alive  # still shutting down
        second = await servers.ensure("dora/iris", start)  # the next request: a cold start
        await stopping
        alive = second.alive
        await servers.stop_all()
        assert alive, "the new server was killed by the old one's stop"
        return events, first, second

    events, first, second = asyncio.run(scenario())
    assert events == ["old exited"], events
    assert first.process.returncode == 0  # it shut down on SIGTERM, within the grace
    assert second.process.returncode is not None  # stop_all stopped the new one


def test_stopping_twice_waits_for_the_same_stop(tmp_path: Path) -> None:
    async def scenario() -> ServerProcess:
        servers = ModelServers()
        server = await servers.ensure("dora/iris", starter(tmp_path, [], []))
        await asyncio.gather(servers.stop("dora/iris"), servers.stop("dora/iris"))
        return server

    server = asyncio.run(scenario())
    assert server.process.returncode == 0  # both calls returned only once it had exited
