"""``codespace policy check FILE [--groups a,b]``: validate a hub's group policy file.

Exit codes: 0 valid, 1 invalid (one error per line on stderr, ``file:line:col: message``).
With ``--groups`` it prints the rules a user in those groups gets: each rule's value and the
group it comes from (``default`` for the default section).
"""

from __future__ import annotations

import argparse
import sys

from ..policy import Effective, Grant, PolicyError, load_policy
from ..policy.model import NAME_RULES, RULES, Memory
from .common import print_table

EXIT_INVALID = 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("policy", help="check a hub's group policy file")
    commands = parser.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check", help="validate a policy file; with --groups, print a user's effective rules"
    )
    check.add_argument("file", help="the policy file (YAML)")
    check.add_argument(
        "--groups",
        help="comma-separated JupyterHub groups of a user (empty: a user in no group); "
        "prints the rules such a user gets",
    )
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        policy = load_policy(args.file)
    except PolicyError as error:
        for diagnostic in error.diagnostics:
            print(diagnostic, file=sys.stderr)
        return EXIT_INVALID
    listed = list(policy.rules.groups)
    if args.groups is None:
        names = f": {', '.join(listed)}" if listed else ""
        print(f"{args.file}: valid ({len(listed)} groups{names})", file=sys.stderr)
        return 0
    groups = [name.strip() for name in args.groups.split(",") if name.strip()]
    unknown = [name for name in groups if name not in policy.rules.groups]
    if unknown:
        print(f"note: not in the policy file (ignored): {', '.join(unknown)}", file=sys.stderr)
    _print_effective(policy.for_groups(groups))
    return 0


def _print_effective(effective: Effective) -> None:
    rows = [["RULE", "VALUE", "GROUP"]]
    for rule in RULES:
        grant: Grant[object] = getattr(effective, rule)
        rows.append([rule, _show(rule, grant.value), grant.group])
    print_table(rows)


def _show(rule: str, value: object) -> str:
    if value is None:
        return "* (any)" if rule in NAME_RULES else "no limit"
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return value.text if isinstance(value, Memory) else str(value)
