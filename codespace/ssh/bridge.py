"""The ProxyCommand's pump: stdin/stdout <-> a websocket carrying the raw SSH byte stream.

The codespace's sshd sits behind jupyter-server-proxy's ``raw_socket_proxy``: each binary
websocket message is a chunk of the TCP stream, both ways. The hub's proxy takes the token
as ``Authorization: token <t>``. Keepalive pings stop idle proxies from closing the socket
under a quiet SSH session. The pump ends when either side closes.

``websockets`` is imported when the bridge runs (a platform dependency the rest of the CLI
does not need).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from codespace.ssh.client import HubError

CHUNK = 1 << 16


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _upstream(ws: Any, fd: int, closed_type: type[Exception]) -> None:
    """stdin -> websocket until EOF (ssh is done), then close the websocket."""
    try:
        while data := os.read(fd, CHUNK):
            ws.send(data)
    except (closed_type, OSError):
        pass
    finally:
        ws.close()


def connect(url: str, token: str, *, open_timeout: float = 30.0) -> Any:
    """The websocket (``websockets`` sync client); :class:`HubError` when it is refused
    (the HTTP status) or the hub cannot be reached (status 0)."""
    try:
        from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
        from websockets.sync.client import connect as ws_connect
    except ImportError as error:  # pragma: no cover - the platform installs it
        raise HubError(0, "the `websockets` package is needed: pip install websockets") from error
    try:
        return ws_connect(
            url,
            additional_headers={"Authorization": f"token {token}"},
            max_size=None,
            compression=None,  # SSH traffic is encrypted: nothing to compress
            open_timeout=open_timeout,
            ping_interval=20,
            ping_timeout=60,
            close_timeout=5,
        )
    except InvalidStatus as error:
        status = error.response.status_code
        if status in (401, 403):
            raise HubError(status, f"the hub refused the token ({status}) at {url}") from error
        reason = error.response.reason_phrase or ""
        raise HubError(status, f"{url} answered {status} {reason}".rstrip()) from error
    except (InvalidHandshake, InvalidURI) as error:
        raise HubError(0, f"no websocket at {url}: {error}") from error
    except (OSError, TimeoutError) as error:
        raise HubError(0, f"cannot reach {url}: {error}") from error


def pump(ws: Any, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Copy both ways until a side closes; 0 when it closed cleanly (either side), a
    :class:`HubError` when the connection broke."""
    from websockets.exceptions import ConnectionClosed, ConnectionClosedError

    if os.name == "nt":  # pragma: no cover - byte streams, no newline translation
        import msvcrt

        msvcrt.setmode(stdin_fd, os.O_BINARY)
        msvcrt.setmode(stdout_fd, os.O_BINARY)

    thread = threading.Thread(
        target=_upstream, args=(ws, stdin_fd, ConnectionClosed), daemon=True, name="stdin->ws"
    )
    thread.start()
    try:
        for message in ws:
            _write_all(stdout_fd, message if isinstance(message, bytes) else message.encode())
    except ConnectionClosedError as error:
        raise HubError(0, f"the connection to the codespace broke: {error}") from error
    except OSError:
        pass  # ssh closed our stdout: it is gone
    finally:
        ws.close()
    return 0


def bridge(url: str, token: str, *, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Connect and pump; raises :class:`HubError` (refused, unreachable, broken)."""
    return pump(connect(url, token), stdin_fd, stdout_fd)
