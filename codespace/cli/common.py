"""What the command groups over the server's API share (datasets, jobs, deploy).

:func:`command_group` adds a group (``codespace jobs ...``) with the ``--json`` option every
subcommand takes. A subcommand's handler takes the parsed args and an API client and returns
what ``--json`` prints (or None, having printed its text): :func:`runner` makes the ``func``
argparse calls, which builds the client, prints that JSON, and turns the errors a user can
act on into a message on stderr and exit code 1. :func:`print_table` and
:func:`print_fields` print text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any

Handler = Callable[[argparse.Namespace, Any], Any]


def command_group(
    subparsers: argparse._SubParsersAction, name: str, text: str
) -> tuple[argparse._SubParsersAction, argparse.ArgumentParser]:
    """The group's subcommands (``args.<name>_command``), and the parent parser of their
    common options (``--json``; a group adds its own)."""
    parser = subparsers.add_parser(name, help=text)
    commands = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON")
    return commands, common


def print_table(rows: list[list[str]]) -> None:
    """Rows (the first: the headings) in columns as wide as their widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def print_fields(fields: Iterable[tuple[str, Any]], width: int) -> None:
    """``key: value`` lines, the values aligned at ``width``; empty values left out."""
    for key, value in fields:
        if value not in (None, "", [], {}):
            print(f"{key + ':':{width}} {value}")


def runner(
    prog: str,
    client: Callable[[argparse.Namespace], Any],
    errors: tuple[type[Exception], ...],
) -> Callable[[Handler], Callable[[argparse.Namespace], int]]:
    """``run(handler)``: the subcommand's ``func``; ``client(args)`` is the API it gets,
    ``errors`` what is reported as ``<prog>: <message>`` (exit code 1). The exit code is
    otherwise ``args.exit_code`` when the handler set one, else 0."""

    def run(handler: Handler) -> Callable[[argparse.Namespace], int]:
        def func(args: argparse.Namespace) -> int:
            try:
                output = handler(args, client(args))
            except errors as error:
                print(f"{prog}: {error}", file=sys.stderr)
                return 1
            if output is not None:
                print(json.dumps(output, indent=2))
            return getattr(args, "exit_code", 0)

        return func

    return run
