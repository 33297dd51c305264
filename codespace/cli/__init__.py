"""The ``codespace`` command line.

Each group of subcommands lives in its own module that exposes ``register(subparsers)``;
a subcommand sets ``func`` (called with the parsed args, returns the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules providing subcommands, in help order. A module that is missing is skipped.
COMMAND_MODULES = (
    "codespace.cli.spec_commands",
    "codespace.cli.plan_command",
    "codespace.cli.ssh_commands",
    "codespace.cli.dataset_commands",
    "codespace.cli.job_commands",
    "codespace.cli.deploy_commands",
    "codespace.cli.git_credential",
    "codespace.cli.policy_commands",
)


# What ssh runs for every connection (ProxyCommand, KnownHostsCommand): only their module is
# loaded for them, so a connection does not wait for the other commands' imports.
SSH_HELPERS = ("ssh-proxy", "ssh-known-hosts")


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codespace",
        description="Validate, resolve and plan codespaces; use datasets, jobs and deployments.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    first = given[0] if given else ""
    if first in SSH_HELPERS:
        parser = build_parser(("codespace.cli.ssh_commands",))
    elif first == "git-credential":  # git runs it at every push: only its own module
        parser = build_parser(("codespace.cli.git_credential",))
    else:
        parser = build_parser(COMMAND_MODULES)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
