"""When bytes through a connection are activity (pure; the SSH listener uses it).

An SSH connection is never silent: OpenSSH's keepalives (``ServerAliveInterval``, a few dozen
bytes each) and an idle client's window updates trickle through an open session for ever. A
:class:`TrafficMeter` counts the bytes a client *sends* and calls it activity once at least
``min_bytes`` arrived within ``window`` seconds: typing, a command, a file transfer (either
way: a download's acknowledgements are input too), a forwarded port in use. Keepalives alone
stay under the default (1 KiB a minute); output with no input (a long command printing)
does not count, like a lab terminal's.
"""

from __future__ import annotations

import threading

MIN_BYTES = 1024
WINDOW = 60.0


class TrafficMeter:
    """Bytes seen -> "this was activity" (thread-safe: one meter serves both directions of
    every connection of a listener)."""

    def __init__(self, min_bytes: int = MIN_BYTES, window: float = WINDOW) -> None:
        self.min_bytes = max(int(min_bytes), 1)
        self.window = float(window)
        self._count = 0
        self._since: float | None = None
        self._lock = threading.Lock()

    def add(self, count: int, now: float) -> bool:
        """``count`` bytes arrived at ``now`` (monotonic seconds): True when they complete
        ``min_bytes`` within the window (the count starts again after that)."""
        if count <= 0:
            return False
        with self._lock:
            if self._since is None or now - self._since > self.window:
                self._since, self._count = now, 0
            self._count += count
            if self._count >= self.min_bytes:
                self._since, self._count = None, 0
                return True
            return False
