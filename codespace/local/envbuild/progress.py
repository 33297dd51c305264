"""Readable progress from uv's output: steps that move, and one line per package list.

uv prints ``Resolved 42 packages in 1.2s``, ``Prepared 40 packages in 3.4s``, ``Installed 42
packages in 80ms`` and then one `` + name==version`` line per package. The spawn page should
show the percentage move with those milestones and not scroll through hundreds of package
lines: :class:`BuildProgress` turns the milestones into steps and folds each package list
into one line. Everything else uv prints (warnings, errors, downloads) passes through.
"""

from __future__ import annotations

import re
from typing import Protocol

SHOWN_PACKAGES = 6
_PACKAGE = re.compile(r"^\s*([+\-~]) (\S+)")
_MILESTONES = (
    (re.compile(r"^Resolved (\d+) packages?"), 45, "resolved {n} packages"),
    (re.compile(r"^(?:Prepared|Downloaded) (\d+) packages?"), 55, "downloaded {n} packages"),
    (re.compile(r"^(?:Installed|Uninstalled) (\d+) packages?"), 65, "installed {n} packages"),
)
_VERBS = {"+": "added", "-": "removed", "~": "changed"}


class Reporter(Protocol):
    def step(self, progress: int, message: str) -> None: ...

    def line(self, text: str) -> None: ...


class BuildProgress:
    """A :class:`Reporter` for an environment build's output (call :meth:`flush` at the end)."""

    def __init__(self, report: Reporter, prefix: str = "environment") -> None:
        self.report, self.prefix = report, prefix
        self._packages: list[tuple[str, str]] = []

    def line(self, text: str) -> None:
        if match := _PACKAGE.match(text):
            self._packages.append((match[1], match[2]))
            return
        self.flush()
        stripped = text.strip()
        for pattern, progress, message in _MILESTONES:
            if found := pattern.match(stripped):
                detail = stripped[found.end() :].strip()
                text = f"{self.prefix}: {message.format(n=found[1])} {detail}".rstrip()
                self.report.step(progress, text)
                return
        self.report.line(text)

    def step(self, progress: int, message: str) -> None:
        self.flush()
        self.report.step(progress, message)

    def flush(self) -> None:
        """Report the package list collected so far as one line per kind of change."""
        if not self._packages:
            return
        for sign, verb in _VERBS.items():
            names = [name for kind, name in self._packages if kind == sign]
            if names:
                shown = ", ".join(names[:SHOWN_PACKAGES])
                more = len(names) - SHOWN_PACKAGES
                self.report.line(
                    f"{verb} {len(names)}: {shown}" + (f" and {more} more" if more > 0 else "")
                )
        self._packages = []
