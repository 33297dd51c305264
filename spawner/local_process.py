"""A local codespace server's files and process group: private settings, the terminals'
bashrc, ending the group."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

DEFAULT_SERVER_DIR = "_default"  # the default server's directory (and key: its name is "")


def write_private_json(path: Path, data: dict[str, Any], group: int | None = None) -> None:
    """Write ``data`` readable by root (and ``group``, the codespace's account) only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        if group is not None:
            os.fchown(handle.fileno(), 0, group)
            os.fchmod(handle.fileno(), 0o640)
        json.dump(data, handle, indent=2)


BASHRC = """# Written by Codespace Hub for this codespace's terminals.
[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
[ -f ~/.bashrc ] && . ~/.bashrc
# Lifecycle commands still running in the background, or failed: say so.
"${VIRTUAL_ENV:-/usr}/bin/python" -m codespace.lifecycle_status --brief 2>/dev/null
"""


def write_bashrc(server_dir: Path) -> Path:
    path = server_dir / "bashrc"
    path.write_text(BASHRC)
    return path


async def end_process_group(group: int, grace: float = 5.0) -> None:
    """SIGTERM the process group a server led (start_new_session), SIGKILL what remains."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        for _ in range(int(grace * 10)):
            await asyncio.sleep(0.1)
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
