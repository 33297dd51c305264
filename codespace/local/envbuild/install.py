"""Install a set of requirements so that one that cannot be installed does not lose the others.

A *unit* is what a user wrote as one entry (``numpy=1.26``, ``-r extra.txt``, a wheel path)
with the uv arguments that install it. :func:`install_units` installs all units in one
resolution; when that fails it asks uv, unit by unit (``--dry-run``), which cannot be
installed at all, installs the rest together, and, when the rest still conflict, one at a
time in order. What was left out comes back with uv's own reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codespace.streaming import Finished, stream

OnLine = Callable[[str], None]
_MARKS = "\u00d7\u2570\u2500\u25b6\u2502\u251c "  # the marks uv draws before its messages


@dataclass(frozen=True)
class Unit:
    """One entry as the user wrote it (``label``) and the uv arguments that install it."""

    label: str
    args: tuple[str, ...]


@dataclass
class Outcome:
    """Which units are installed, and which are not with uv's reason."""

    installed: list[Unit] = field(default_factory=list)
    failed: list[tuple[Unit, str]] = field(default_factory=list)


def reason(finished: Finished) -> str:
    """uv's one-line reason for a failure ('cause:' or 'error:' line, else the last line)."""
    lines = [line.strip().lstrip(_MARKS).strip() for line in finished.tail]
    lines = [line for line in lines if line and not line.startswith("hint:")]
    for prefix in ("cause:", "error:"):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[-1].removeprefix(prefix).strip()
    return lines[-1] if lines else f"exit status {finished.returncode}"


def _args(units: Sequence[Unit]) -> list[str]:
    return [arg for unit in units for arg in unit.args]


async def install_units(
    install: Sequence[str],
    units: Sequence[Unit],
    *,
    common: Sequence[str] = (),
    cwd: Path,
    env: Mapping[str, str],
    on_line: OnLine,
) -> Outcome:
    """Install ``units`` with the ``install`` command (``uv pip install --python ...``).

    ``common`` arguments (constraints, index options) go with every attempt.
    """
    if not units:
        return Outcome()

    async def run(chosen: Sequence[Unit], *extra: str, quiet: bool = False) -> Finished:
        argv = [*install, *extra, *common, *_args(chosen)]
        return await stream(argv, cwd=cwd, env=env, on_line=None if quiet else on_line)

    if (await run(units)).ok:
        return Outcome(list(units))
    on_line("some requirements cannot be installed; checking them one by one")
    outcome = Outcome()
    candidates: list[Unit] = []
    for unit in units:
        probe = await run([unit], "--dry-run", quiet=True)
        if probe.ok:
            candidates.append(unit)
        else:
            outcome.failed.append((unit, reason(probe)))
            on_line(f"cannot install {unit.label}: {reason(probe)}")
    if not candidates:
        return outcome
    if (await run(candidates)).ok:
        outcome.installed = candidates
        return outcome
    on_line("the remaining requirements conflict; installing them one at a time")
    for unit in candidates:
        finished = await run([unit])
        if finished.ok:
            outcome.installed.append(unit)
        else:
            outcome.failed.append((unit, reason(finished)))
    return outcome
