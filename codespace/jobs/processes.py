"""The local runner's process side: start a job's process, watch it, kill its group.

Each task runs as ``/bin/sh -c WRAPPER codespace-job EXIT_FILE ARGV...``: the constant
wrapper runs the argv (passed as positional parameters, never pasted into the shell text)
and writes its exit status to ``EXIT_FILE``. The process leads a new session (its own
process group), writes to its log file (not a pipe) and outlives the server: after a
restart the backend finds it again by pid and start time (:func:`start_ticks`), and reads
how it ended from the exit file (a process that is not our child has no exit code to wait
for). A group killed as a whole writes no exit file; the backend knows why it killed it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

# "$1": the exit file; the rest: the job's argv. Constant text: user data stays in argv.
WRAPPER = 'f=$1; shift; "$@"; s=$?; echo "$s" > "$f.tmp" && mv -f "$f.tmp" "$f"; exit "$s"'
SHELL = "/bin/sh"


def spawn(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], log: Path, exit_file: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, output appended to ``log``; the Popen handle."""
    log.parent.mkdir(parents=True, exist_ok=True)
    exit_file.parent.mkdir(parents=True, exist_ok=True)
    exit_file.unlink(missing_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [SHELL, "-c", WRAPPER, "codespace-job", str(exit_file), *argv],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(pid: int, ticks: int | None) -> bool:
    """Is the process we started still there (the same one, not a reused pid)?"""
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


def read_exit(exit_file: Path) -> int | None:
    """The exit status the wrapper recorded, or None."""
    try:
        return int(exit_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def kill_group(pid: int, sig: signal.Signals) -> None:
    """Signal the task's whole process group (the wrapper leads it)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def read_tail(path: Path, lines: int | None, limit: int = 8 << 20) -> str:
    """The file's text (its last ``lines`` lines; at most ``limit`` bytes from the end)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(size - limit, 0)
            if lines is not None:
                start = _tail_start(handle, size, lines, start)
            handle.seek(start)
            data = handle.read(size - start)
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if lines is not None:
        return "".join(text.splitlines(keepends=True)[-lines:]) if lines > 0 else ""
    return text


def _tail_start(handle: BinaryIO, size: int, lines: int, floor: int) -> int:
    """Where the last ``lines`` lines begin, reading blocks backwards from the end."""
    position, found, block = size, 0, 64 << 10
    while position > floor:
        step = min(block, position - floor)
        position -= step
        handle.seek(position)
        found += handle.read(step).count(b"\n")
        if found > lines:
            return position
    return floor
