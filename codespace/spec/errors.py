"""Diagnostics that point at a file, line and column.

Every problem found while reading a repository's configuration becomes a
:class:`Diagnostic`; ``str(diagnostic)`` is the one line a user reads:
``path:line:col: message`` (``path: message`` when no position is known).
Errors are raised together as one :class:`SpecError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Location:
    """A position in a repository file; ``file`` is repository-relative, line/col 1-based."""

    file: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.col is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.col}"

    def to_dict(self) -> dict[str, str | int | None]:
        return {"file": self.file, "line": self.line, "col": self.col}


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning about a repository's configuration."""

    message: str
    location: Location | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        if self.location is None:
            return self.message
        return f"{self.location}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "message": self.message,
            "location": self.location.to_dict() if self.location else None,
            "text": str(self),
        }


class SpecError(Exception):
    """The configuration cannot be resolved; ``diagnostics`` says why, each with a position."""

    def __init__(self, diagnostics: Iterable[Diagnostic] | Diagnostic | str) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(str(self))

    @classmethod
    def at(cls, location: Location | None, message: str) -> SpecError:
        return cls([Diagnostic(message, location)])

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)
