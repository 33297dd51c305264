"""Where a codespace's lifecycle commands stand, for terminals and the start page.

The runner (:mod:`codespace.lifecycle`) writes ``.codespace-logs/lifecycle-status.json`` in
the workspace: one entry per command with its state (``pending``, ``running``, ``done``,
``failed``, ``timed out``, ``stopped``, ``skipped``), exit status and times. ``python -m
codespace.lifecycle_status [WORKSPACE] [--brief]`` prints it; a codespace's terminals run it
with ``--brief`` when they open, so a command still running in the background (or one that
failed) is visible where the user types. Standard library only: it runs in the repository's
environment too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ERRORS_FILE = "CODESPACE_ERRORS.md"  # the workspace's report of what went wrong
LOG_DIR = ".codespace-logs"
LOG_FILE = "lifecycle.log"
STATUS_FILE = "lifecycle-status.json"
UNFINISHED = ("pending", "running")
PROBLEMS = ("failed", "timed out", "stopped")


class StatusFile:
    """Read-modify-write of the status file (one writer at a time: the runner in charge)."""

    def __init__(self, log_dir: Path) -> None:
        self.path = Path(log_dir) / STATUS_FILE

    def read(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        commands = data.get("commands") if isinstance(data, dict) else None
        return commands if isinstance(commands, dict) else {}

    def _write(self, commands: dict[str, dict[str, object]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{STATUS_FILE}.{os.getpid()}")
        temporary.write_text(json.dumps({"commands": commands}, indent=1), encoding="utf-8")
        temporary.replace(self.path)

    def set_pending(self, names: list[str]) -> None:
        commands = self.read()
        for name in names:
            commands[name] = {"state": "pending"}
        self._write(commands)

    def set_skipped(self, names: list[str]) -> None:
        commands = self.read()
        for name in names:
            commands[name] = {"state": "skipped"}
        self._write(commands)

    def update(self, name: str, state: str, error: BaseException | None = None) -> None:
        commands = self.read()
        entry = dict(commands.get(name, {}))
        entry["state"] = state
        now = time.time()
        if state == "running":
            entry = {"state": state, "started": now}
        else:
            entry["finished"] = now
        if error is not None:
            entry["message"] = str(error)
        commands[name] = entry
        self._write(commands)


def describe(commands: dict[str, dict[str, object]], *, brief: bool) -> list[str]:
    """Lines for a person; with ``brief``, nothing when every command is done."""
    if brief and all(
        entry.get("state") not in UNFINISHED + PROBLEMS for entry in commands.values()
    ):
        return []
    lines = []
    for name, entry in commands.items():
        state = str(entry.get("state", "?"))
        started = entry.get("started")
        since = ""
        if state == "running" and isinstance(started, int | float):
            since = f" for {time.time() - started:.0f} s"
        message = f": {entry['message']}" if entry.get("message") else ""
        lines.append(f"  {name}: {state}{since}{message}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    brief = "--brief" in args
    rest = [arg for arg in args if arg != "--brief"]
    workspace = Path(rest[0] if rest else os.environ.get("CODESPACE_WORKSPACE", "."))
    lines = describe(StatusFile(workspace / LOG_DIR).read(), brief=brief)
    if lines:
        print("codespace lifecycle commands:")
        print("\n".join(lines))
        print(f"  output: {workspace / LOG_DIR / LOG_FILE}")
    elif not brief:
        print("no lifecycle commands have run in this workspace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
