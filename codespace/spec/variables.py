"""devcontainer.json variables: ``${localWorkspaceFolder}``, ``${localEnv:VAR}``, ...

The devcontainer spec lets string values refer to ``${name}`` or ``${name:arg:default}``
variables (unknown names, such as a shell's ``${HOME}``, are left as written). Here the
workspace is the repository checkout: the local folder and the container folder are the
same directory, the repository root. What each variable becomes:

``${localWorkspaceFolder}``, ``${containerWorkspaceFolder}``
    In a path field (``build.dockerfile``, ``build.context``, requirement files, ...) and
    only at its start: the repository root, so ``${localWorkspaceFolder}/docker/Dockerfile``
    is the repository's ``docker/Dockerfile``. In a shell command (a lifecycle command
    string): ``${CODESPACE_WORKSPACE}``, the environment variable both spawners set to the
    workspace path. Anywhere else (``containerEnv``, ``remoteEnv``, ``workspaceFolder``,
    ``build.args``, ...): ``${containerWorkspaceFolder}``, expanded when the codespace runs
    by :func:`expand`. The absolute checkout path never enters the model, so the
    environment hash does not depend on where the repository was checked out.
``${localWorkspaceFolderBasename}``, ``${containerWorkspaceFolderBasename}``
    The workspace directory's name: ``${CODESPACE_WORKSPACE##*/}`` in a shell command,
    ``${containerWorkspaceFolderBasename}`` elsewhere (expanded by :func:`expand`); not
    allowed in a path field.
``${localEnv:VAR}``, ``${localEnv:VAR:default}`` (and the older ``${env:VAR}``)
    There is no user's machine: the hub's own environment is never read (it would leak
    the server's settings into a repository's configuration). The default when one is
    given, else the empty string with a warning at the value's file:line:col.
``${containerEnv:VAR}``, ``${containerEnv:VAR:default}``
    The codespace's environment at run time. When ``VAR`` is one of the configuration's own
    ``containerEnv`` entries, its value (the container is created with it); otherwise
    ``${VAR}`` in a shell command (``${VAR-default}`` with a default) and the variable as
    written elsewhere, expanded by :func:`expand` from the running codespace's environment.
``${devcontainerId}``
    A stable id of the configuration: 52 base-32 digits of a sha256 over the
    configuration file's repository path, the same on every machine and every rebuild.

An argv-list command that needs a run-time value becomes the equivalent ``/bin/sh -c``
string (each argument quoted, the variable in double quotes), so it gets the value too.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import Diagnostic, Location

# As the reference implementation: the shortest ``${...}``, arguments split on ':'.
VARIABLE = re.compile(r"\$\{([^}]*)\}")
SHELL_WORKSPACE = "${CODESPACE_WORKSPACE}"
SHELL_WORKSPACE_BASENAME = "${CODESPACE_WORKSPACE##*/}"
RUNTIME_WORKSPACE = "${containerWorkspaceFolder}"
RUNTIME_WORKSPACE_BASENAME = "${containerWorkspaceFolderBasename}"
WORKSPACE_NAMES = ("localWorkspaceFolder", "containerWorkspaceFolder")
BASENAME_NAMES = ("localWorkspaceFolderBasename", "containerWorkspaceFolderBasename")
LOCAL_ENV_NAMES = ("localEnv", "env")
RUNTIME_VARIABLES = re.compile(
    r"\$\{(containerWorkspaceFolder|containerWorkspaceFolderBasename|containerEnv:[^}]*)\}"
)

Context = Literal["path", "shell", "text"]


def devcontainer_id(config_file: str) -> str:
    """The ``${devcontainerId}`` of a configuration file (repository-relative path)."""
    digest = hashlib.sha256(json.dumps({"configFile": config_file}).encode()).digest()
    number = int.from_bytes(digest, "big")
    digits = "0123456789abcdefghijklmnopqrstuv"
    out = ""
    while number:
        number, rest = divmod(number, 32)
        out = digits[rest] + out
    return out.rjust(52, "0")


@dataclass
class Substitution:
    """Substitutes the variables of one devcontainer.json; collects what it reports."""

    file: str
    container_env: Mapping[str, str] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    errors: list[Diagnostic] = field(default_factory=list)

    @property
    def id(self) -> str:
        return devcontainer_id(self.file)

    def text(self, value: str, context: Context, where: str, location: Location) -> str:
        """``value`` with its variables replaced for ``context`` (not for paths)."""

        def replace(match: re.Match[str]) -> str:
            return self._one(match, context, where, location)

        return VARIABLE.sub(replace, value)

    def path(self, value: str, base_dir: str, where: str, location: Location) -> str:
        """A path field: a leading workspace variable is the repository root.

        Returns the path relative to ``base_dir`` (the configuration file's directory), so
        that the usual normalisation makes it repository-relative.
        """
        for name in WORKSPACE_NAMES:
            token = "${" + name + "}"
            if value.startswith(token):
                rest = posixpath.normpath(value[len(token) :].lstrip("/") or ".")
                if rest == ".." or rest.startswith("../"):
                    self.errors.append(
                        Diagnostic(f"{where}: {value!r} leaves the repository", location)
                    )
                    return value
                value = posixpath.relpath(rest, base_dir or ".")
                break
        return self.text(value, "path", where, location)

    def _one(self, match: re.Match[str], context: Context, where: str, location: Location) -> str:
        name, *args = match[1].split(":")
        if name in LOCAL_ENV_NAMES and args:
            if len(args) > 1:
                return args[1]
            self.warnings.append(
                Diagnostic(
                    f"{where}: {match[0]}: there is no local machine here; the variable is "
                    "empty (give a default: ${localEnv:" + args[0] + ":value})",
                    location,
                    "warning",
                )
            )
            return ""
        if name == "devcontainerId" and not args:
            return self.id
        if name in WORKSPACE_NAMES + BASENAME_NAMES and not args:
            if context == "path":
                return self._not_in_path(match[0], where, location)
            if name in WORKSPACE_NAMES:
                return SHELL_WORKSPACE if context == "shell" else RUNTIME_WORKSPACE
            return SHELL_WORKSPACE_BASENAME if context == "shell" else RUNTIME_WORKSPACE_BASENAME
        if name == "containerEnv" and args:
            if args[0] in self.container_env:
                return self.container_env[args[0]]
            if context == "path":
                return self._not_in_path(match[0], where, location)
            if context == "shell":
                return "${" + args[0] + (f"-{args[1]}" if len(args) > 1 else "") + "}"
            return match[0]
        return match[0]  # not a devcontainer variable (a shell's ${HOME}): as written

    def _not_in_path(self, token: str, where: str, location: Location) -> str:
        self.errors.append(
            Diagnostic(
                f"{where}: {token} cannot be used in a path here (only a leading "
                "${localWorkspaceFolder} or ${containerWorkspaceFolder}, the repository root)",
                location,
            )
        )
        return token

    def argv(self, argv: list[Any], where: str, locate: Callable[[int], Location]) -> Any:
        """An argv command; a shell string when an argument needs a run-time value."""
        if not all(isinstance(arg, str) for arg in argv):
            return argv  # validation reports it
        static = [self.text(arg, "text", f"{where}[{i}]", locate(i)) for i, arg in enumerate(argv)]
        if not any(RUNTIME_VARIABLES.search(arg) for arg in static):
            return static
        return " ".join(
            self._shell_word(arg, f"{where}[{i}]", locate(i)) for i, arg in enumerate(static)
        )

    def _shell_word(self, arg: str, where: str, location: Location) -> str:
        parts: list[str] = []
        last = 0
        for match in RUNTIME_VARIABLES.finditer(arg):
            if match.start() > last:
                parts.append(shlex.quote(arg[last : match.start()]))
            parts.append('"' + self.text(match[0], "shell", where, location) + '"')
            last = match.end()
        if last < len(arg):
            parts.append(shlex.quote(arg[last:]))
        return "".join(parts) or "''"


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand the run-time variables a resolved value may hold, from the codespace's env.

    ``${containerWorkspaceFolder}`` and its ``Basename`` come from ``CODESPACE_WORKSPACE``;
    ``${containerEnv:VAR[:default]}`` from ``VAR`` (else the default, else empty).
    For spawners: ``containerEnv``, ``remoteEnv`` and ``workspaceFolder`` values.
    """
    workspace = env.get("CODESPACE_WORKSPACE", "")

    def replace(match: re.Match[str]) -> str:
        name, *args = match[1].split(":")
        if name == "containerWorkspaceFolder":
            return workspace
        if name == "containerWorkspaceFolderBasename":
            return posixpath.basename(workspace.rstrip("/"))
        if args[0] in env:
            return env[args[0]]
        return args[1] if len(args) > 1 else ""

    return RUNTIME_VARIABLES.sub(replace, value)


def expand_env(values: Mapping[str, str | None], env: Mapping[str, str]) -> dict[str, str]:
    """:func:`expand` over an environment mapping (``None`` values, unset, are dropped)."""
    return {key: expand(value, env) for key, value in values.items() if value is not None}
