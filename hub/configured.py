"""Read a setting already made in a JupyterHub config (so ``configure_*`` functions extend it)."""

from __future__ import annotations

from typing import Any

from traitlets.config import Config, LazyConfigValue


def configured(section: Config, name: str, default: Any) -> Any:
    """``section[name]`` when a config file set it, else ``default`` (also for lazy values
    such as ``c.X.y.append(...)`` on a value not set yet)."""
    value = section.get(name, default)
    return default if isinstance(value, LazyConfigValue) else value
