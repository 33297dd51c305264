"""Package attributes imported on first use (PEP 562), for the packages with two sides.

``codespace.datasets``, ``codespace.jobs`` and ``codespace.deploy`` are imported in the kernel
(their SDKs), where pydantic and PyYAML must not be loaded; their server-side names come from
their own modules when first asked for::

    __getattr__, __dir__ = lazy_attributes(globals(), {"JobBackend": "codespace.jobs.backend"})

Standard library only (the import-linter's kernel-side contract).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any


def lazy_attributes(
    namespace: MutableMapping[str, Any], lazy: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's ``(__getattr__, __dir__)``: each name of ``lazy`` is imported from its
    module when first asked for, then kept in the package's ``namespace`` (its globals)."""

    def __getattr__(name: str) -> Any:
        module = lazy.get(name)
        if module is None:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *lazy})

    return __getattr__, __dir__
