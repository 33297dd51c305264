"""``codespace validate|resolve|schema``: check and inspect a repository's configuration.

Exit codes: 0 valid (warnings go to stderr), 2 configuration errors (one per line on
stderr, ``path:line:col: message``). Never a traceback for a configuration problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from ..resolve import MODES, Resolution, resolve
from ..sources import load_sources
from ..spec.errors import Diagnostic, SpecError
from ..spec.schema import manifest_schema

EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("path", nargs="?", default=".", help="repository directory (default: .)")
    common.add_argument("--config", help="devcontainer config name (.devcontainer/NAME/)")
    common.add_argument(
        "--mode", choices=MODES, default="local", help="target that must honour the values"
    )
    common.add_argument(
        "--sources",
        help="detector classes to try, in order, as comma-separated import strings "
        "(default: codespace.sources.DEFAULT_SOURCES)",
    )

    validate = subparsers.add_parser(
        "validate", parents=[common], help="check a repository's codespace configuration"
    )
    validate.set_defaults(func=_validate)

    resolve_ = subparsers.add_parser(
        "resolve", parents=[common], help="print the resolved codespace model"
    )
    resolve_.add_argument("--json", action="store_true", help="print JSON (default: YAML)")
    resolve_.set_defaults(func=_resolve)

    schema = subparsers.add_parser("schema", help="print the JSON Schema of codespace.yaml")
    schema.add_argument("--indent", type=int, default=2, help="JSON indentation")
    schema.set_defaults(func=_schema)


def _load(args: argparse.Namespace) -> Resolution | None:
    try:
        sources = load_sources(args.sources.split(",")) if args.sources else None
    except ValueError as error:  # a --sources entry that is not a detector class
        print(f"error: {error}", file=sys.stderr)
        return None
    try:
        resolution = resolve(Path(args.path), config=args.config, mode=args.mode, sources=sources)
    except SpecError as error:
        _print(error.diagnostics, "error")
        return None
    _print(resolution.warnings, "warning")
    return resolution


def _print(diagnostics: list[Diagnostic], default: str) -> None:
    for diagnostic in diagnostics:
        severity = diagnostic.severity or default
        line = str(diagnostic)
        print(f"{line}" if severity == "error" else f"warning: {line}", file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    resolution = _load(args)
    if resolution is None:
        return EXIT_INVALID
    print(f"{resolution.source}: valid ({resolution.source_kind})", file=sys.stderr)
    return 0


def _resolve(args: argparse.Namespace) -> int:
    resolution = _load(args)
    if resolution is None:
        return EXIT_INVALID
    data = resolution.to_dict()
    if args.json:
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    return 0


def _schema(args: argparse.Namespace) -> int:
    json.dump(manifest_schema(), sys.stdout, indent=args.indent or None)
    sys.stdout.write("\n")
    return 0
