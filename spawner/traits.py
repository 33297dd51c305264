"""Traits both spawners share."""

from __future__ import annotations

from traitlets import List, Unicode

from codespace.sources import DEFAULT_SOURCES


def sources_trait() -> List:
    """``codespace_sources``: the spec sources a repository is read with, in precedence order."""
    return List(
        Unicode(),
        default_value=list(DEFAULT_SOURCES),
        config=True,
        help="""The spec sources (detector classes, as import strings) in precedence order:
        the first one present in a repository wins (README: the ``.codespace`` format).
        Remove one to ignore that format, or put a site's own detector first.""",
    )
