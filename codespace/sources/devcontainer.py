"""devcontainer.json: the three standard locations, named configs, and the mapping.

Read as VS Code reads it (comments, trailing commas). Names the model shares with
devcontainer.json are kept; ``forwardPorts``/``portsAttributes`` become ``ports``,
``hostRequirements`` becomes ``resources``, and our own keys may live under
``customizations.codespace``. Official properties we do not use are accepted (with a
warning when ignoring them changes behaviour); anything else is an unknown-key error.
Paths keep the devcontainer rule: relative to the devcontainer.json file.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from ..spec.errors import Diagnostic, SpecError
from ..spec.files import exists, read_text
from ..spec.model import LIFECYCLE_COMMANDS
from ..spec.parse import Document, parse_jsonc
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
    "containerEnv",
    "remoteEnv",
    "secrets",
    "customizations",
    "workspaceFolder",
)
# Properties translated onto model fields.
MAPPED = ("forwardPorts", "portsAttributes", "hostRequirements", "dockerFile", "context")
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
IGNORED = (
    "$schema",
    "containerUser",
    "remoteUser",
    "updateRemoteUserUID",
    "userEnvProbe",
    "overrideCommand",
    "shutdownAction",
    "init",
    "waitFor",
    "otherPortsAttributes",
    "overrideFeatureInstallOrder",
    "extensions",  # deprecated spelling of customizations.vscode.extensions
    "settings",  # deprecated spelling of customizations.vscode.settings
    "devPort",
)
KNOWN = frozenset(KEPT + MAPPED + IGNORED_WITH_WARNING + IGNORED)
PORT_ATTRIBUTES = ("label", "protocol", "onAutoForward", "visibility")
PORT_ATTRIBUTES_IGNORED = ("requireLocalPort", "elevateIfNeeded")


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
    data: dict[str, Any] = raw.data
    out = Document(raw.file, {})
    out.values[()] = raw.values.get(())  # type: ignore[assignment]
    warnings: list[Diagnostic] = []
    base_dir = posixpath.dirname(raw.file)
    for key, value in data.items():
        if key in KEPT:
            place(raw, (key,), out, (key,), value)
        elif key in IGNORED_WITH_WARNING:
            warnings.append(
                Diagnostic(
                    f"{key!r} is not supported by codespaces and is ignored",
                    raw.locate((key,), key=True),
                    "warning",
                )
            )
        elif key not in KNOWN:
            place(raw, (key,), out, (key,), value)  # validation reports it with a suggestion
    if "dockerFile" in data and "build" not in data:
        place(raw, ("dockerFile",), out, ("build", "dockerfile"), data["dockerFile"])
        if "context" in data:
            place(raw, ("context",), out, ("build", "context"), data["context"])
    if isinstance(out.data.get("build"), dict) and "dockerfile" in out.data["build"]:
        out.data["build"].setdefault("context", ".")
    _ports(raw, out)
    _host_requirements(raw, out, warnings)
    normalise_paths(out, base_dir)
    customizations = out.data.get("customizations")
    if isinstance(customizations, dict) and isinstance(customizations.get("codespace"), dict):
        ours = customizations.pop("codespace")
        extra = Document(raw.file, {})
        extra.values[()] = out.values[()]
        for key, value in ours.items():
            place(raw, ("customizations", "codespace", key), extra, (key,), value)
        normalise_paths(extra, base_dir)
        out = merge(out, extra, raw.file)
    return out, warnings


def _ports(raw: Document, out: Document) -> None:
    forward = raw.data.get("forwardPorts")
    attributes = raw.data.get("portsAttributes") or {}
    if forward is None:
        return
    if not isinstance(forward, list):
        raise SpecError.at(raw.locate(("forwardPorts",)), "forwardPorts must be a list of ports")
    if not isinstance(attributes, dict):
        raise SpecError.at(raw.locate(("portsAttributes",)), "portsAttributes must be a mapping")
    ports: list[dict[str, Any]] = []
    out.data["ports"] = ports
    out.values[("ports",)] = raw.locate(("forwardPorts",))
    for i, entry in enumerate(forward):
        port: Any = entry
        if isinstance(entry, str) and entry.isdigit():
            port = int(entry)
        elif isinstance(entry, str) and entry.startswith("localhost:"):
            port = int(entry.split(":", 1)[1]) if entry.split(":", 1)[1].isdigit() else entry
        elif isinstance(entry, str):
            raise SpecError.at(
                raw.locate(("forwardPorts", i)),
                f"forwardPorts[{i}]: {entry!r}: only ports of the codespace itself can be "
                "forwarded (a number or 'localhost:N')",
            )
        item: dict[str, Any] = {"port": port}
        index = len(ports)
        out.values[("ports", index)] = raw.locate(("forwardPorts", i))
        out.values[("ports", index, "port")] = raw.locate(("forwardPorts", i))
        attrs = attributes.get(str(port))
        if isinstance(attrs, dict):
            for name, value in attrs.items():
                source = ("portsAttributes", str(port), name)
                if name in PORT_ATTRIBUTES_IGNORED:
                    continue
                item[name] = value  # unknown names are reported by validation
                out.values[("ports", index, name)] = raw.locate(source)
                out.keys[("ports", index, name)] = raw.locate(source, key=True)
        ports.append(item)


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
