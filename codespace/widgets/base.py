"""What the notebook widgets share: an error line, and a refresh in a background thread."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable


def error_html(text: str) -> str:
    """``text`` as an error line (JupyterLab's error colour)."""
    return f'<span style="color:var(--jp-error-color1)">{html.escape(text)}</span>'


class Follows:
    """A widget that refreshes in one background thread at a time; ``wait`` for it."""

    _watcher: threading.Thread | None = None

    def _follow(self, loop: Callable[[], None]) -> None:
        """Run ``loop`` in the background, unless the previous loop still runs."""
        if self._watcher is not None and self._watcher.is_alive():
            return
        self._watcher = threading.Thread(target=loop, daemon=True)
        self._watcher.start()

    def wait(self, timeout: float = 60.0) -> None:
        """Wait for the background refresh to end (tests, scripts)."""
        if self._watcher is not None:
            self._watcher.join(timeout)
