"""devcontainer.json: the three standard locations, named configs, and the mapping.

Read as VS Code reads it (comments, trailing commas). Variables (``${localWorkspaceFolder}``,
``${localEnv:VAR}``, ...) are substituted first (:mod:`codespace.spec.variables`). Names the
model shares with devcontainer.json are kept; ``forwardPorts``/``portsAttributes`` become
``ports`` (attributes of ports that are not forwarded stay ``portsAttributes``),
``hostRequirements`` becomes ``resources``, the deprecated top-level ``extensions``/
``settings`` join ``customizations.vscode``, and our own keys may live under
``customizations.codespace``. Official properties we do not use are accepted (with a warning
when ignoring them changes behaviour); anything else is an unknown-key error. Paths keep the
devcontainer rule: relative to the devcontainer.json file.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from ..spec.errors import Diagnostic, SpecError
from ..spec.files import exists, read_text
from ..spec.model import ENVIRONMENT_KEYS, LIFECYCLE_COMMANDS
from ..spec.parse import Document, Path_, parse_jsonc
from ..spec.validate import dotted
from ..spec.variables import (
    RUNTIME_VARIABLES,
    RUNTIME_WORKSPACE,
    RUNTIME_WORKSPACE_BASENAME,
    Substitution,
)
from .base import Detector, Found, normalise_paths, place
from .merge import merge

TOP_LEVEL = ".devcontainer.json"
DEFAULT = ".devcontainer/devcontainer.json"
DIRECTORY = ".devcontainer"

# Properties the resolved model keeps under the same name.
KEPT = (
    "name",
    "image",
    "build",
    "features",
    *LIFECYCLE_COMMANDS,
    "waitFor",
    "containerEnv",
    "remoteEnv",
    "secrets",
    "customizations",
    "workspaceFolder",
)
# Properties translated onto model fields.
MAPPED = (
    "forwardPorts",
    "portsAttributes",
    "otherPortsAttributes",
    "hostRequirements",
    "dockerFile",
    "context",
    "extensions",  # deprecated spelling of customizations.vscode.extensions: merged into it
    "settings",  # deprecated spelling of customizations.vscode.settings: merged into it
)
# Official properties we cannot honour: accepted, with a warning.
IGNORED_WITH_WARNING = (
    "dockerComposeFile",
    "service",
    "runServices",
    "mounts",
    "runArgs",
    "privileged",
    "capAdd",
    "securityOpt",
    "workspaceMount",
    "appPort",
)
# Official properties that do not change what a codespace is: accepted silently.
# - containerUser, remoteUser, updateRemoteUserUID, userEnvProbe: the codespace runs as the
#   platform's user with the spawner's environment; the user's name does not change what
#   runs or where files are.
# - shutdownAction: a codespace is stopped by the idle culler (lifetime.idleTimeout), not
#   by closing an editor window; every value ends in the same place.
# - init: the images run tini as PID 1 already (Kubernetes), and a local codespace is a
#   process of the host, not a container: zombie reaping is there either way.
# - overrideCommand: true is what happens here (the platform's server is the command);
#   false (keep the image's own CMD running) cannot be honoured and is a warning.
# - overrideFeatureInstallOrder: only orders features, which are warned about themselves.
# - devPort, $schema: editor plumbing.
IGNORED = (
    "$schema",
    "containerUser",
    "remoteUser",
    "updateRemoteUserUID",
    "userEnvProbe",
    "overrideCommand",
    "shutdownAction",
    "init",
    "overrideFeatureInstallOrder",
    "devPort",
)
KNOWN = frozenset(KEPT + MAPPED + IGNORED_WITH_WARNING + IGNORED)
PORT_ATTRIBUTES = ("label", "protocol", "onAutoForward", "visibility")
# Local-port mapping options of a desktop editor: nothing to map in a codespace.
PORT_ATTRIBUTES_IGNORED = ("requireLocalPort", "elevateIfNeeded")
# Fields holding paths, relative to the devcontainer.json (with ``customizations.codespace``
# stripped from the front for our own keys).
PATH_KEYS: frozenset[Path_] = frozenset(
    {
        ("build", "dockerfile"),
        ("build", "context"),
        ("dockerFile",),
        ("context",),
        ("python", "environmentFile"),
        ("postBuild",),
        ("start",),
    }
)
OURS: Path_ = ("customizations", "codespace")


def candidates(root: Path) -> dict[str, str]:
    """The devcontainer configurations present: ``{name: path}``; "" is the default one."""
    found: dict[str, str] = {}
    conflict = [p for p in (DEFAULT, TOP_LEVEL) if exists(root, p)]
    if len(conflict) == 2:
        raise SpecError.at(
            None,
            f"conflicting sources: both {DEFAULT} and {TOP_LEVEL} exist; keep one of them",
        )
    if conflict:
        found[""] = conflict[0]
    directory = root / DIRECTORY
    if directory.is_dir() and not directory.is_symlink():
        for child in sorted(directory.iterdir()):
            if child.is_dir() and exists(root, f"{DIRECTORY}/{child.name}/devcontainer.json"):
                found[child.name] = f"{DIRECTORY}/{child.name}/devcontainer.json"
    return found


class DevcontainerDetector(Detector):
    """``.devcontainer/devcontainer.json``, ``.devcontainer.json`` or a named config.

    ``config`` picks ``.devcontainer/<config>/devcontainer.json``; without it the default
    location wins, else the only named config, else the first by name (with a warning).
    """

    kind = "devcontainer"

    def __init__(self, config: str | None = None) -> None:
        self.config = config

    def detect(self, root: Path) -> Found | None:
        configs = candidates(root)
        warnings: list[Diagnostic] = []
        if self.config is not None:
            if self.config not in configs:
                named = ", ".join(sorted(n for n in configs if n)) or "none"
                raise SpecError.at(
                    None,
                    f"devcontainer config {self.config!r} not found under {DIRECTORY}/ "
                    f"(available: {named})",
                )
            path = configs[self.config]
        elif not configs:
            return None
        elif "" in configs:
            path = configs[""]
        else:
            names = sorted(configs)
            path = configs[names[0]]
            if len(names) > 1:
                warnings.append(
                    Diagnostic(
                        f"several devcontainer configs ({', '.join(names)}); using "
                        f"{names[0]!r}; choose one with the config option",
                        None,
                        "warning",
                    )
                )
        document, more = load(root, path)
        return Found(self.kind, path, document, [path], warnings + more)


def load(root: Path, path: str) -> tuple[Document, list[Diagnostic]]:
    """Read one devcontainer.json and translate it to the model's shape."""
    raw = parse_jsonc(read_text(root, path), path)
    if not isinstance(raw.data, dict):
        raise SpecError.at(raw.locate(()), "a devcontainer.json must be a JSON object")
    return translate(raw)


def translate(raw: Document) -> tuple[Document, list[Diagnostic]]:
    """The model-shaped document for a parsed devcontainer.json."""
    warnings = substitute(raw)
    data: dict[str, Any] = raw.data
    out = Document(raw.file, {})
    out.values[()] = raw.values.get(())  # type: ignore[assignment]
    base_dir = posixpath.dirname(raw.file)
    for key, value in data.items():
        if key in KEPT:
            place(raw, (key,), out, (key,), value)
        elif key in IGNORED_WITH_WARNING:
            warnings.append(_ignored(raw, key))
        elif key not in KNOWN:
            place(raw, (key,), out, (key,), value)  # validation reports it with a suggestion
    if data.get("overrideCommand") is False:
        warnings.append(
            Diagnostic(
                "overrideCommand: false: the image's own command does not run in a codespace "
                "(the platform's server is the command); ignored",
                raw.locate(("overrideCommand",), key=True),
                "warning",
            )
        )
    if out.data.get("workspaceFolder") in DEFAULT_WORKSPACE_FOLDERS:
        del out.data["workspaceFolder"]  # the workspace: the repository checkout
    if "dockerFile" in data and "build" not in data:
        place(raw, ("dockerFile",), out, ("build", "dockerfile"), data["dockerFile"])
        if "context" in data:
            place(raw, ("context",), out, ("build", "context"), data["context"])
    if isinstance(out.data.get("build"), dict) and "dockerfile" in out.data["build"]:
        out.data["build"].setdefault("context", ".")
    _ports(raw, out, warnings)
    _host_requirements(raw, out, warnings)
    normalise_paths(out, base_dir)
    out = _legacy_vscode(raw, out)
    customizations = out.data.get("customizations")
    if isinstance(customizations, dict) and isinstance(customizations.get("codespace"), dict):
        ours = customizations.pop("codespace")
        extra = Document(raw.file, {})
        extra.values[()] = out.values[()]
        for key, value in ours.items():
            place(raw, (*OURS, key), extra, (key,), value)
        normalise_paths(extra, base_dir)
        out = merge(out, extra, raw.file)
    return out, warnings


# ``workspaceFolder`` values that name the workspace itself (the devcontainer default).
DEFAULT_WORKSPACE_FOLDERS = (
    RUNTIME_WORKSPACE,
    f"{RUNTIME_WORKSPACE}/",
    f"/workspaces/{RUNTIME_WORKSPACE_BASENAME}",
)


def _ignored(raw: Document, key: str) -> Diagnostic:
    return Diagnostic(
        f"{key!r} is not supported by codespaces and is ignored",
        raw.locate((key,), key=True),
        "warning",
    )


def substitute(raw: Document) -> list[Diagnostic]:
    """Replace the devcontainer variables in ``raw.data`` in place (see
    :mod:`codespace.spec.variables`); return the warnings, raise the errors."""
    data: dict[str, Any] = raw.data
    sub = Substitution(raw.file)
    env = data.get("containerEnv")
    if isinstance(env, dict):
        data["containerEnv"] = _walk(sub, raw, ("containerEnv",), env)
        sub.container_env = {k: v for k, v in data["containerEnv"].items() if isinstance(v, str)}
    for key in list(data):
        if key not in IGNORED and key not in IGNORED_WITH_WARNING and key != "containerEnv":
            data[key] = _walk(sub, raw, (key,), data[key])
    if sub.errors:
        raise SpecError(sub.errors)
    return sub.warnings


def _walk(sub: Substitution, raw: Document, path: Path_, value: Any) -> Any:
    ours = path[2:] if path[:2] == OURS and len(path) > 2 else path
    where = dotted(path)
    if isinstance(value, str):
        location = raw.locate(path)
        if ours in PATH_KEYS or (ours[:2] == ("python", "requirements") and len(ours) == 3):
            result = sub.path(value, posixpath.dirname(raw.file), where, location)
        else:
            shell = ours[0] in LIFECYCLE_COMMANDS and len(ours) <= 2
            result = sub.text(value, "shell" if shell else "text", where, location)
        if ours[0] in ENVIRONMENT_KEYS and (found := RUNTIME_VARIABLES.search(result)):
            sub.warnings.append(
                Diagnostic(
                    f"{where}: {found[0]} is only known when the codespace runs, not when its "
                    "environment is built; the value is used as written",
                    location,
                    "warning",
                )
            )
        return result
    if isinstance(value, list):
        if ours[0] in LIFECYCLE_COMMANDS and len(ours) <= 2:
            return sub.argv(value, where, lambda i: raw.locate((*path, i)))
        return [_walk(sub, raw, (*path, i), item) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {key: _walk(sub, raw, (*path, key), item) for key, item in value.items()}
    return value


def _legacy_vscode(raw: Document, out: Document) -> Document:
    """Top-level ``extensions``/``settings`` (the old spellings) merged under
    ``customizations.vscode``; the ``customizations`` values win a conflict."""
    legacy = Document(raw.file, {})
    legacy.values[()] = out.values[()]
    for key in ("extensions", "settings"):
        if key in raw.data:
            place(raw, (key,), legacy, ("customizations", "vscode", key), raw.data[key])
    return merge(legacy, out, raw.file) if legacy.data else out


def _port_number(entry: Any) -> int | str | None:
    """``forwardPorts`` entry -> a port of the codespace (int), None for another host's
    port, or the entry as given (validation reports what is wrong with it)."""
    if isinstance(entry, str):
        host, _, port = entry.rpartition(":")
        if port.isdigit() and host in ("", "localhost", "127.0.0.1"):
            return int(port)
        if port.isdigit() and host:
            return None
    return entry


def _ports(raw: Document, out: Document, warnings: list[Diagnostic]) -> None:
    forward = raw.data.get("forwardPorts")
    attributes = raw.data.get("portsAttributes") or {}
    if forward is not None and not isinstance(forward, list):
        raise SpecError.at(raw.locate(("forwardPorts",)), "forwardPorts must be a list of ports")
    if not isinstance(attributes, dict):
        raise SpecError.at(raw.locate(("portsAttributes",)), "portsAttributes must be a mapping")
    used: set[str] = set()
    if forward is not None:
        ports: list[dict[str, Any]] = []
        out.data["ports"] = ports
        out.values[("ports",)] = raw.locate(("forwardPorts",))
        for i, entry in enumerate(forward):
            port = _port_number(entry)
            if port is None:
                warnings.append(
                    Diagnostic(
                        f"forwardPorts[{i}]: {entry!r}: the port of another service cannot be "
                        "forwarded in a codespace (only its own ports); ignored",
                        raw.locate(("forwardPorts", i)),
                        "warning",
                    )
                )
                continue
            index = len(ports)
            out.values[("ports", index)] = raw.locate(("forwardPorts", i))
            out.values[("ports", index, "port")] = raw.locate(("forwardPorts", i))
            item: dict[str, Any] = {"port": port}
            for key in dict.fromkeys((str(entry), str(port))):
                if isinstance(attributes.get(key), dict):
                    used.add(key)
                    _attributes(raw, ("portsAttributes", key), out, ("ports", index), item)
            ports.append(item)
    _other_ports(raw, out, warnings, attributes, used)


def _other_ports(
    raw: Document, out: Document, warnings: list[Diagnostic], attributes: dict, used: set[str]
) -> None:
    """``portsAttributes`` of ports not forwarded (and ranges), ``otherPortsAttributes``."""
    kept: dict[str, Any] = {}
    for key, attrs in attributes.items():
        if key in used:
            continue
        port = _port_number(key)
        name = str(port) if isinstance(port, int) else key
        if port is None or not re.fullmatch(r"\d+(-\d+)?", name):
            what = "another service's port" if port is None else "a regular expression"
            warnings.append(
                Diagnostic(
                    f"portsAttributes.{key}: {what} is not supported in a codespace; ignored",
                    raw.locate(("portsAttributes", key), key=True),
                    "warning",
                )
            )
            continue
        target: Any = {}
        kept[name] = target
        out.keys[("portsAttributes", name)] = raw.locate(("portsAttributes", key), key=True)
        if isinstance(attrs, dict):
            _attributes(raw, ("portsAttributes", key), out, ("portsAttributes", name), target)
        else:
            kept[name] = attrs  # validation reports it
    if kept:
        out.data["portsAttributes"] = kept
        out.values[("portsAttributes",)] = raw.locate(("portsAttributes",))
    other = raw.data.get("otherPortsAttributes")
    if isinstance(other, dict):
        target = out.data["otherPortsAttributes"] = {}
        out.values[("otherPortsAttributes",)] = raw.locate(("otherPortsAttributes",))
        _attributes(raw, ("otherPortsAttributes",), out, ("otherPortsAttributes",), target)
    elif other is not None:
        place(raw, ("otherPortsAttributes",), out, ("otherPortsAttributes",), other)


def _attributes(raw: Document, source: Path_, out: Document, dest: Path_, item: dict) -> None:
    """Copy port attributes from ``raw`` at ``source`` into ``item`` (at ``dest`` in ``out``)."""
    for name, value in _get(raw, source).items():
        if name in PORT_ATTRIBUTES_IGNORED:
            continue
        item[name] = value  # unknown names are reported by validation
        out.values[(*dest, name)] = raw.locate((*source, name))
        out.keys[(*dest, name)] = raw.locate((*source, name), key=True)


def _get(raw: Document, path: Path_) -> Any:
    data: Any = raw.data
    for step in path:
        data = data[step]
    return data


def _host_requirements(raw: Document, out: Document, warnings: list[Diagnostic]) -> None:
    host = raw.data.get("hostRequirements")
    if host is None:
        return
    if not isinstance(host, dict):
        raise SpecError.at(raw.locate(("hostRequirements",)), "hostRequirements must be a mapping")
    resources: dict[str, Any] = {}
    out.data["resources"] = resources
    out.values[("resources",)] = raw.locate(("hostRequirements",))
    names = {"cpus": "cpu", "memory": "memory", "storage": "storage", "gpu": "gpu"}
    for key, value in host.items():
        source = ("hostRequirements", key)
        target = names.get(key, key)
        if key == "gpu":
            if isinstance(value, dict) and "cores" in value:
                warnings.append(
                    Diagnostic(
                        "hostRequirements.gpu.cores: GPUs are requested by count, fraction or "
                        "memory here; cores are ignored",
                        raw.locate((*source, "cores"), key=True),
                        "warning",
                    )
                )
            value = _gpu(value)
        resources[target] = value
        out.values[("resources", target)] = raw.locate(source)
        out.keys[("resources", target)] = raw.locate(source, key=True)
        if key == "gpu" and isinstance(value, dict):
            for sub in value:
                out.values[("resources", "gpu", sub)] = raw.locate((*source, sub))


def _gpu(value: Any) -> Any:
    """devcontainer ``gpu``: true, "optional" or ``{cores, memory}``."""
    if value == "optional":
        return {"count": 1, "optional": True}
    if isinstance(value, dict):
        converted = {k: v for k, v in value.items() if k != "cores"}
        return converted or {"count": 1}
    return value
