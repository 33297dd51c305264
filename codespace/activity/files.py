"""Activity files: how processes beside the server (the SSH listener, VS Code's extension
host) tell it they were used, without a socket or a lock between them.

A process touches ``<activity dir>/<source>`` (its modification time is the activity's time);
the server reads the times. The directory is ``$CODESPACE_ACTIVITY_DIR``, which the server
extension sets in its own environment before it starts anything, so every process it starts
(jupyter-server-proxy's code-server and sshd listener, kernels, terminals) sees the same one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

ACTIVITY_DIR_ENV = "CODESPACE_ACTIVITY_DIR"
TOUCH_EVERY = 10.0  # seconds: a busy source rewrites its file at most this often


def activity_dir(environ: Mapping[str, str]) -> Path | None:
    """The activity directory named by the environment (None when it names none)."""
    value = environ.get(ACTIVITY_DIR_ENV, "")
    return Path(value) if value else None


def file_time(path: Path) -> datetime | None:
    """When ``path`` was last touched (aware UTC), or None when it does not exist."""
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


class ActivityFile:
    """``<dir>/<source>``, touched at most every ``every`` seconds; safe across threads.

    A file that cannot be written (a read-only or missing directory) is skipped quietly: a
    source that cannot report must never break the process that reports it.
    """

    def __init__(self, directory: Path, source: str, every: float = TOUCH_EVERY) -> None:
        self.path = Path(directory) / source
        self.every = every
        self._last = float("-inf")
        self._lock = threading.Lock()

    def touch(self, now: float | None = None) -> bool:
        """Record activity now; True when the file was written."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last < self.every:
                return False
            self._last = now
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()  # an existing file: its time is set to now
            return True
        return False

    def time(self) -> datetime | None:
        return file_time(self.path)
