"""``python -m codespace.ssh.listen SOCKET -- sshd -i ...``: sshd's inetd, on a unix socket.

jupyter-server-proxy's ``raw_socket_proxy`` connects the websocket at ``<server>/sshd/`` to
a unix socket (``{unix_socket}``: a file in a fresh 0700 directory). OpenSSH's sshd cannot
listen on one, but in inetd mode (``-i``) it serves one connection on its standard input and
output: this program listens on the socket (mode 0600) and starts the command once per
connection, with the connection as the command's stdin and stdout (its stderr is ours, the
server's log). Nothing listens on a TCP port, so only the server (behind the hub's
authentication) reaches the sshd.

The proxy's readiness check connects and closes at once: a connection that closes before it
sends anything within :data:`PROBE_WAIT` seconds starts no sshd (an SSH client sends its
version line as soon as it connects).

The bytes pass through this program (two threads per connection copy them between the
connection and sshd's end of a socket pair), so it sees how much a client sends: a new
connection, and input past :class:`~codespace.activity.traffic.TrafficMeter`'s threshold,
touch the ``ssh`` activity file in ``$CODESPACE_ACTIVITY_DIR`` (the codespace's activity,
see :mod:`codespace.activity`); keepalives alone do not.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from codespace.activity.files import ActivityFile, activity_dir
from codespace.activity.sources import SSH
from codespace.activity.traffic import TrafficMeter

PROBE_WAIT = 0.5
BUFFER = 1 << 16
USAGE = "usage: python -m codespace.ssh.listen SOCKET -- COMMAND [ARGS...]"


def is_probe(connection: socket.socket, wait: float = PROBE_WAIT) -> bool:
    """Whether the peer closed without sending a byte (a readiness check)."""
    readable, _, _ = select.select([connection], [], [], wait)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def bind(path: str) -> socket.socket:
    """A listening unix socket at ``path`` (replacing a stale one), mode 0600."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(old)
    listener.listen(16)
    return listener


class Activity:
    """Input through every connection -> the ``ssh`` activity file (none: nothing kept)."""

    def __init__(self, file: ActivityFile | None, meter: TrafficMeter | None = None) -> None:
        self.file = file
        self.meter = meter or TrafficMeter()

    def connected(self) -> None:
        if self.file is not None:
            self.file.touch()

    def received(self, count: int) -> None:
        if self.file is not None and self.meter.add(count, time.monotonic()):
            self.file.touch()


def pump(
    source: socket.socket, target: socket.socket, seen: Callable[[int], None] | None = None
) -> None:
    """Copy ``source`` to ``target`` until ``source`` ends (or either fails)."""
    with contextlib.suppress(OSError):
        while data := source.recv(BUFFER):
            target.sendall(data)
            if seen is not None:
                seen(len(data))


def relay(client: socket.socket, sshd: socket.socket, activity: Activity) -> None:
    """Carry one connection both ways, then close both ends. The client's end of input
    becomes sshd's end of input; sshd's end ends the connection."""

    def inbound() -> None:
        pump(client, sshd, activity.received)
        with contextlib.suppress(OSError):
            sshd.shutdown(socket.SHUT_WR)

    reader = threading.Thread(target=inbound, daemon=True)
    reader.start()
    pump(sshd, client)
    with contextlib.suppress(OSError):
        client.shutdown(socket.SHUT_RDWR)  # the client's reader stops too
    reader.join()
    client.close()
    sshd.close()


def start(command: Sequence[str], client: socket.socket, activity: Activity) -> bool:
    """``command`` on one end of a socket pair, relayed to ``client`` (in a thread)."""
    ours, theirs = socket.socketpair()
    try:
        child = subprocess.Popen(list(command), stdin=theirs.fileno(), stdout=theirs.fileno())
    except OSError as error:
        print(f"codespace.ssh.listen: {command[0]}: {error}", file=sys.stderr, flush=True)
        ours.close()
        return False
    finally:
        theirs.close()
    activity.connected()

    def carry() -> None:
        relay(client, ours, activity)
        child.wait()

    threading.Thread(target=carry, daemon=True).start()
    return True


def serve(listener: socket.socket, command: Sequence[str], activity: Activity) -> None:
    """Accept connections for ever; one ``command`` per connection."""
    listener.settimeout(5.0)
    while True:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        connection.settimeout(None)
        if is_probe(connection) or not start(command, connection, activity):
            connection.close()


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print(USAGE, file=sys.stderr)
        return 2
    path, command = argv[0], list(argv[2:])
    listener = bind(path)

    def stop(signum: int, frame: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    folder = activity_dir(os.environ)
    serve(listener, command, Activity(ActivityFile(folder, SSH) if folder else None))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
