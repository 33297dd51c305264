"""VS Code in the browser (code-server): its command line and the extensions a repo asks for.

Pure helpers shared by the server-proxy launcher (:mod:`extensions.vscode`) and the local
spawner's progress report. ``customizations.vscode.extensions`` lists extension ids
(``publisher.name``); an id is installed from a local ``.vsix`` file named
``publisher.name-<version>.vsix`` when one is in a VSIX directory (no marketplace access is
assumed), and reported as missing otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_EXTENSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*\.[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ExtensionPlan:
    """Which requested extensions have a local VSIX and which do not."""

    install: dict[str, Path] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def plan_extensions(ids: Iterable[str], vsix_dirs: Sequence[Path]) -> ExtensionPlan:
    """Match extension ids to ``<id>-<version>.vsix`` files (newest name wins)."""
    plan = ExtensionPlan()
    for extension_id in ids:
        if not _EXTENSION_ID.match(extension_id):
            plan.missing.append(extension_id)
            continue
        candidates = sorted(
            path
            for directory in vsix_dirs
            if directory.is_dir()
            for path in directory.glob("*.vsix")
            if path.name.lower().startswith(extension_id.lower() + "-")
        )
        if candidates:
            plan.install[extension_id] = candidates[-1]
        else:
            plan.missing.append(extension_id)
    return plan


def code_server_argv(
    code_server: str, *, socket: str, workspace: Path, state_dir: Path
) -> list[str]:
    """code-server on a unix socket (never a network address), opened on the workspace."""
    return [
        code_server,
        "--auth",
        "none",
        "--socket",
        socket,
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        "--disable-getting-started-override",
        "--user-data-dir",
        str(state_dir / "user-data"),
        "--extensions-dir",
        str(state_dir / "extensions"),
        str(workspace),
    ]


def install_argv(code_server: str, vsix: Path, state_dir: Path) -> list[str]:
    return [
        code_server,
        "--extensions-dir",
        str(state_dir / "extensions"),
        "--user-data-dir",
        str(state_dir / "user-data"),
        "--install-extension",
        str(vsix),
    ]
