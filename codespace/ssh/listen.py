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
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence

PROBE_WAIT = 0.5
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


def serve(listener: socket.socket, command: Sequence[str]) -> None:
    """Accept connections for ever; one ``command`` per connection."""
    children: list[subprocess.Popen[bytes]] = []
    listener.settimeout(5.0)
    while True:
        children = [child for child in children if child.poll() is None]  # reap
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        with connection:
            connection.settimeout(None)
            if is_probe(connection):
                continue
            try:
                child = subprocess.Popen(
                    list(command), stdin=connection.fileno(), stdout=connection.fileno()
                )
            except OSError as error:
                print(f"codespace.ssh.listen: {command[0]}: {error}", file=sys.stderr, flush=True)
                continue
            children.append(child)


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
    serve(listener, command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
