"""Run a model server and relay a unix socket to its loopback port (inside its sandbox).

``python -m codespace.deploy.launcher --socket PATH --port N -- mlserver start DIR``

MLServer (uvicorn underneath) only listens on TCP. The local backend runs it in a network
namespace of its own (nobody else on the machine can connect to it) and this launcher, in the
same namespace, accepts connections on ``--socket`` (mode 0600, in a directory only the hub's
deploy service reaches) and pipes each to ``127.0.0.1:N``. It passes SIGTERM/SIGINT on to the
server and exits with the server's status; the socket is removed on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence

CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _relay(port: int):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()  # not listening yet: the caller retries
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return handle


async def run(socket_path: str, port: int, command: Sequence[str]) -> int:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    child = subprocess.Popen(list(command))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, child.send_signal, sig)
    old = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(_relay(port), path=socket_path)
    finally:
        os.umask(old)
    try:
        return await asyncio.to_thread(child.wait)
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codespace.deploy.launcher")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    return asyncio.run(run(args.socket, args.port, args.command))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
