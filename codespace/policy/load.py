"""Read a policy file into a :class:`~codespace.policy.effective.Policy`, errors at file:line:col.

The text is parsed by :func:`codespace.spec.parse.parse_yaml`, which remembers where every
value was written, and each pydantic error is mapped back to that place, as
:mod:`codespace.spec.validate` does for ``codespace.yaml``. That module's "did you mean" looks
keys up in the Codespace model, so the policy's own (smaller) mapping lives here.
"""

from __future__ import annotations

import difflib
import logging
import os
from typing import Any

from pydantic import ValidationError

from codespace.spec.errors import Diagnostic, Location, SpecError
from codespace.spec.parse import Document, Path_, parse_yaml
from codespace.spec.validate import dotted, is_scalar

from .effective import Policy
from .model import RULES, PolicyFile

TOP_KEYS = ("default", "groups")
# Pydantic's words for a value of the wrong shape, in the file's terms.
_SHAPES = {
    "model_type": "must be a mapping of rules (rule: value)",
    "dict_type": "must be a mapping of group names to rules",
}


class PolicyError(SpecError):
    """The policy file cannot be read; ``diagnostics`` say why, each ``file:line:col``."""


log = logging.getLogger(__name__)
_loaded: dict[str, tuple[float, Policy]] = {}  # path -> (mtime, policy): one read per change


def read_policy(path: str) -> Policy | None:
    """The policy at ``path`` for a running service: read again only when the file changes;
    a file that became invalid keeps the last good rules (logged). None without a path; an
    unreadable or invalid file with no good rules before is a :class:`PolicyError`."""
    if not path:
        return None
    try:
        mtime = os.stat(path).st_mtime
    except OSError as error:
        raise PolicyError.at(Location(path), f"the policy file cannot be read: {error}") from None
    cached = _loaded.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        policy = load_policy(path)
    except SpecError as error:
        if cached is None:
            raise
        log.error("The policy file %s is invalid, the last good one stays:\n%s", path, error)
        return cached[1]
    _loaded[path] = (mtime, policy)
    return policy


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read and validate the policy file at ``path``; a missing file is a :class:`PolicyError`."""
    file = os.fspath(path)
    try:
        with open(file, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise PolicyError.at(Location(file), "policy file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else str(error)
        raise PolicyError.at(Location(file), f"cannot read the policy file: {reason}") from None
    return parse_policy(text, file)


def parse_policy(text: str, file: str = "policy.yaml") -> Policy:
    """Validate a policy file's text; ``file`` names it in errors. Empty text: no rules."""
    try:
        document = parse_yaml(text, file)
    except SpecError as error:
        raise PolicyError(error.diagnostics) from None
    if not isinstance(document.data, dict):
        raise PolicyError.at(
            document.locate(()),
            "a policy file is a mapping with the keys `default` and `groups` "
            f"(got {type(document.data).__name__})",
        )
    try:
        rules = PolicyFile.model_validate(document.data)
    except ValidationError as error:
        raise PolicyError(policy_diagnostics(error, document)) from None
    return Policy(rules, file)


def policy_diagnostics(error: ValidationError, document: Document) -> list[Diagnostic]:
    """One diagnostic per pydantic error, at the place in ``document`` it is about."""
    result = []
    for item in error.errors(include_url=False):
        path = _data_path(document.data, item["loc"])
        if item["type"] == "extra_forbidden":
            message = _unknown_key(path)
            location = document.locate(path, key=True)
        else:
            message = _SHAPES.get(item["type"]) or str(item["msg"]).removeprefix("Value error, ")
            if item["type"] != "value_error" and is_scalar(item.get("input")):
                message = f"{message} (got {item['input']!r})"
            location = document.locate(path)
        where = dotted(path)
        result.append(Diagnostic(f"{where}: {message}" if where else message, location))
    return sorted(result, key=lambda d: (d.location or Location(""), d.message))


def _data_path(data: Any, loc: tuple[Any, ...]) -> Path_:
    """The steps of ``loc`` down to the value (or, for an unknown key, the key) in ``data``."""
    path: list[str | int] = []
    current = data
    for step in loc:
        if not isinstance(current, dict) or not isinstance(step, str):
            break
        path.append(step)
        if step not in current:
            break
        current = current[step]
    return tuple(path)


def _unknown_key(path: Path_) -> str:
    key = str(path[-1]) if path else ""
    known = list(TOP_KEYS) if len(path) == 1 else list(RULES)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if not close:
        lowered = {name.lower(): name for name in known}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    if close:
        return f"unknown key; did you mean {close[0]!r}?"
    where = "a policy file" if len(path) == 1 else "a section"
    return f"unknown key ({where} has: {', '.join(known)})"
