"""Read a policy file into a :class:`~codespace.policy.effective.Policy`, errors at file:line:col.

The text is parsed by :func:`codespace.spec.parse.parse_yaml`, which remembers where every
value was written, and each pydantic error is mapped back to that place by
:func:`codespace.spec.validate.diagnostics`, as for ``codespace.yaml``, with the policy's own
key lists for "did you mean" (rules are named in camelCase only).
"""

from __future__ import annotations

import logging
import os

from pydantic import ValidationError

from codespace.spec.errors import Location, SpecError
from codespace.spec.parse import Path_, parse_yaml
from codespace.spec.validate import diagnostics, unknown_key_message

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
        raise PolicyError(
            diagnostics(error, document, unknown_key=_unknown_key, shapes=_SHAPES)
        ) from None
    return Policy(rules, file)


def _unknown_key(path: Path_) -> str:
    key = str(path[-1]) if path else ""
    if len(path) == 1:
        return unknown_key_message(key, list(TOP_KEYS), "a policy file has")
    return unknown_key_message(key, list(RULES), "a section has")
