"""``CODESPACE_ERRORS.md``: what went wrong at a start, and how to retry, in both modes.

The local start (:mod:`codespace.local.prepare`) and a pod's entrypoint
(:mod:`codespace.kube.entrypoint`) write it into the workspace from the launch plan's
problems (what failed: a configuration error, an environment build, a lifecycle command)
and warnings (what the mode did not honour), so nothing a repository asks for is dropped
without a word where the user looks. The lab opens it when the server starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from codespace.lifecycle_status import ERRORS_FILE
from codespace.spec.errors import SpecError

__all__ = ["ERRORS_FILE", "env_problem", "errors_markdown", "spec_problem"]


def errors_markdown(problems: Sequence[str], warnings: Sequence[str], recovery: bool) -> str | None:
    """The file's text, or ``None`` when all is well (the file is then removed)."""
    if not problems and not warnings:
        return None
    parts = _problem_parts(problems, recovery) if problems else _warning_intro()
    if warnings:
        parts += ["## Warnings\n", *(f"- {warning}" for warning in warnings), ""]
    return "\n".join(parts)


def spec_problem(error: SpecError) -> str:
    lines = "\n".join(f"    {diagnostic}" for diagnostic in error.diagnostics)
    return f"## The configuration has errors\n\n{lines}\n"


def env_problem(message: str, *, what: str = "environment") -> str:
    return f"## The {what} could not be built\n\n```\n{message}\n```\n"


def _warning_intro() -> list[str]:
    return [
        "# This codespace started with warnings\n",
        "The repository's configuration asks for things this codespace could not give it. "
        "They are listed below; `codespace validate` in a terminal shows them too.",
        "",
    ]


def _problem_parts(problems: Sequence[str], recovery: bool) -> list[str]:
    title = "is a recovery codespace" if recovery else "started with problems"
    return [
        f"# This codespace {title}\n",
        "Something in the repository's configuration went wrong. Your repository is checked "
        "out here and you can work on it"
        + (" in the platform's default environment." if recovery else "."),
        "",
        *problems,
        "## How to retry\n",
        "1. Fix the files named above, here in the workspace (or pull a fixed commit in a "
        "terminal: `git pull`).",
        "2. Stop and start this server: *File > Hub Control Panel*, **Stop**, then **Start**.",
        "   The configuration is read again and the environment is rebuilt if its files changed.",
        "",
        "`codespace validate` in a terminal checks the configuration without restarting.",
        "",
    ]
