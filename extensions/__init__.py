"""Codespace's Jupyter server extension (REST under ``/codespace/api/``) and lab extension.

Enable with ``--ServerApp.jpserver_extensions='{"extensions": true}'`` or the config file
``jupyter_server_config.d/codespace.json`` that scripts/build-labextension.sh installs.
"""

from __future__ import annotations

from typing import Any

LABEXTENSION_NAME = "@codespace/lab"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from extensions.app import CodespaceExtension

    return [{"module": "extensions.app", "app": CodespaceExtension}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension/static", "dest": LABEXTENSION_NAME}]
