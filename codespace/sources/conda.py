"""conda ``environment.yml`` files: parsing, with file:line diagnostics, and version specs.

:func:`read_environment` turns the text of an environment file into a
:class:`CondaEnvironment`: its name, channels, the Python version it asks for, the conda
packages (``numpy=1.26``, ``conda-forge::numpy>=1.2,<2``, ``numpy 1.26.* py311_0``) and the
``pip:`` entries (requirements, ``-r``/``-c`` files, ``-e`` projects, index options). Paths in
``pip:`` entries are relative to the environment file's directory, as conda runs pip there;
they are also given as repository paths, and one that leaves the repository is an error.

A file that is not a mapping, ``dependencies`` that is not a list, or an entry that is not a
package spec raises :class:`~codespace.spec.errors.SpecError` pointing at the line.

:func:`pep440` translates a conda version spec into a PEP 440 specifier (``=1.26`` is
``==1.26.*``, a bare ``1.26`` is ``==1.26``, ``1.26.*`` is ``==1.26.*``); build strings are
dropped. Pure: only PyYAML (through :mod:`codespace.spec.parse`), usable by ``codespace
resolve`` without the platform.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ..spec.errors import Location, SpecError
from ..spec.files import relpath
from ..spec.parse import Document, parse_yaml

CONDA_SUFFIXES = (".yml", ".yaml")
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.+-]*"
_SPEC = re.compile(rf"^(?:(?P<channel>[^\s:]+)::)?(?P<name>{_NAME})(?P<rest>.*)$")
_OPERATOR = re.compile(r"^(==|!=|>=|<=|~=|>|<|=)?(.*)$")
_VERSION = re.compile(r"^[0-9A-Za-z.+!_-]+$")
_VERSION_SPEC = re.compile(r"^[0-9A-Za-z.*+!_,|<>=~-]+$")
_BUILD = re.compile(r"^[0-9A-Za-z.*+_-]+$")
_BRACKET = re.compile(r"""(\w+)\s*=\s*(?:'([^']*)'|"([^"]*)"|([^,\]]*))""")
_OPTIONS_WITH_VALUE = {
    "-r": "requirements",
    "--requirement": "requirements",
    "-c": "constraints",
    "--constraint": "constraints",
    "-e": "editable",
    "--editable": "editable",
}

PipKind = Literal["requirement", "requirements", "constraints", "editable", "option"]


@dataclass(frozen=True)
class CondaPackage:
    """One conda dependency: ``spec`` as written, its name, channel, version and build."""

    spec: str
    name: str
    channel: str | None = None
    version: str | None = None  # conda version spec, '=1.26' already made '1.26*'
    build: str | None = None
    location: Location | None = None

    def pep440(self) -> str:
        """The version as a PEP 440 specifier ('' for any); ValueError when inexpressible."""
        return pep440(self.version) if self.version else ""


@dataclass(frozen=True)
class PipEntry:
    """One ``pip:`` entry.

    ``kind``: ``requirement`` (a name, URL or local path), ``requirements`` (``-r``),
    ``constraints`` (``-c``), ``editable`` (``-e``) or ``option`` (``--index-url`` ...).
    ``value`` is as written (relative to the environment file's directory); ``path`` is
    the repository path when ``value`` is a local path, ``extras`` the ``[extras]`` of one.
    """

    text: str
    kind: PipKind
    value: str
    path: str | None = None
    extras: tuple[str, ...] = ()
    location: Location | None = None


@dataclass(frozen=True)
class CondaEnvironment:
    """A parsed environment file; ``python`` is a version request such as '3.11' or '>=3.9'."""

    file: str
    name: str | None = None
    channels: tuple[str, ...] = ()
    python: str | None = None
    packages: tuple[CondaPackage, ...] = ()
    pip: tuple[PipEntry, ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def directory(self) -> str:
        """The repository directory of the file ('' at the root): pip paths start here."""
        return posixpath.dirname(self.file)

    @property
    def requirement_files(self) -> list[str]:
        """Repository paths of the ``-r`` and ``-c`` files the ``pip:`` section names."""
        return [e.path for e in self.pip if e.kind in ("requirements", "constraints") and e.path]

    @property
    def local_paths(self) -> list[str]:
        """Repository paths of the local files and directories the ``pip:`` section installs."""
        return [e.path for e in self.pip if e.kind in ("requirement", "editable") and e.path]


def is_environment_file(path: str) -> bool:
    return path.endswith(CONDA_SUFFIXES)


def read_environment(text: str, path: str) -> CondaEnvironment:
    """Parse the environment file ``path`` (repository-relative) whose content is ``text``."""
    document = parse_yaml(text, path)
    data = document.data
    if not isinstance(data, dict):
        raise SpecError.at(document.locate(()), "environment file: expected a mapping")
    name = data.get("name")
    if name is not None and not isinstance(name, str | int | float):
        raise SpecError.at(document.locate(("name",)), "name: expected a string")
    channels = _strings(document, "channels")
    dependencies = data.get("dependencies")
    if dependencies is None:
        dependencies = []
    if not isinstance(dependencies, list):
        raise SpecError.at(
            document.locate(("dependencies",)), "dependencies: expected a list of package specs"
        )
    packages: list[CondaPackage] = []
    pip: list[PipEntry] = []
    python: str | None = None
    warnings: list[str] = []
    for index, item in enumerate(dependencies):
        where = ("dependencies", index)
        if isinstance(item, dict):
            pip += _pip_section(document, item, where)
            continue
        if not isinstance(item, str):
            raise SpecError.at(
                document.locate(where),
                f"dependencies[{index}]: expected a package spec or a 'pip:' list, got {item!r}",
            )
        package = parse_package(item, document.locate(where), f"dependencies[{index}]")
        if package.name == "python":
            python = _python_request(package, warnings)
        else:
            packages.append(package)
    return CondaEnvironment(
        file=path,
        name=str(name) if name is not None else None,
        channels=tuple(channels),
        python=python,
        packages=tuple(packages),
        pip=tuple(pip),
        warnings=tuple(warnings),
    )


def _strings(document: Document, key: str) -> list[str]:
    value = document.data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError.at(document.locate((key,)), f"{key}: expected a list of strings")
    return value


def parse_package(spec: str, location: Location | None = None, what: str = "") -> CondaPackage:
    """Parse a conda MatchSpec string (the forms environment files use)."""
    prefix = f"{what}: " if what else ""
    text = spec.strip()
    match = _SPEC.match(text)
    if not match or not text:
        raise SpecError.at(location, f"{prefix}{spec!r} is not a conda package spec")
    channel, name, rest = match["channel"], match["name"].lower(), match["rest"]
    if channel and "://" not in channel:
        channel = channel.split("/", 1)[0]  # conda-forge/linux-64::numpy
    version, build = _version_and_build(rest, spec, location, prefix)
    return CondaPackage(spec, name, channel, version, build, location)


def _version_and_build(
    rest: str, spec: str, location: Location | None, prefix: str
) -> tuple[str | None, str | None]:
    rest = re.sub(r"(==|!=|>=|<=|~=|>|<)\s+", r"\1", rest.strip())
    rest = re.sub(r"\s*([,|])\s*", r"\1", rest)
    if not rest:
        return None, None
    if rest.startswith("["):
        if not rest.endswith("]"):
            raise SpecError.at(location, f"{prefix}{spec!r}: unclosed '['")
        keys = {m[1]: m[2] or m[3] or (m[4] or "").strip() for m in _BRACKET.finditer(rest[1:-1])}
        version, build = keys.get("version") or None, keys.get("build") or None
    elif rest.startswith("=") and not rest.startswith("=="):
        version, _, build = rest[1:].partition("=")
        if not version:
            raise SpecError.at(location, f"{prefix}{spec!r}: '=' needs a version")
        if not (build or version.endswith("*") or any(c in version for c in ",|")):
            version += "*"  # conda's fuzzy '=1.26' means 1.26.*
    else:
        parts = rest.split()
        if len(parts) > 2:
            raise SpecError.at(location, f"{prefix}{spec!r} is not a conda package spec")
        version, build = parts[0], parts[1] if len(parts) == 2 else None
    if version is not None and not _VERSION_SPEC.match(version):
        raise SpecError.at(location, f"{prefix}{spec!r}: {version!r} is not a conda version")
    if build and not _BUILD.match(build):
        raise SpecError.at(location, f"{prefix}{spec!r}: {build!r} is not a build string")
    return version, build or None


def pep440(version: str) -> str:
    """A PEP 440 specifier for a conda version spec; ValueError when there is none."""
    if "|" in version:
        raise ValueError(f"conda version {version!r} ('or') has no pip equivalent")
    specifiers: list[str] = []
    for raw in version.split(","):
        part = raw.strip()
        if not part or part == "*":
            continue
        match = _OPERATOR.match(part)
        assert match is not None  # the pattern matches any string
        operator, value = match[1] or "==", match[2].strip()
        if operator == "=":
            operator, value = "==", value.rstrip("*").rstrip(".") + ".*"
        if value.endswith("*"):
            base = value.rstrip("*").rstrip(".")
            if not base:
                continue
            value = f"{base}.*" if operator in ("==", "!=") else base
        if not _VERSION.match(value.removesuffix(".*")):
            raise ValueError(f"conda version {version!r} has no pip equivalent")
        specifiers.append(f"{operator}{value}")
    return ",".join(specifiers)


def _python_request(package: CondaPackage, warnings: list[str]) -> str | None:
    """'python=3.11' -> '3.11'; 'python>=3.9' -> '>=3.9' (uv's --python accepts both)."""
    try:
        specifier = package.pep440()
    except ValueError as error:
        warnings.append(f"{package.spec}: {error}; using the default Python")
        return None
    exact = re.fullmatch(r"==(\d+(?:\.\d+)*)(?:\.\*)?", specifier)
    if exact:
        return exact[1]
    return specifier or None


def _pip_section(document: Document, item: dict[str, Any], where: tuple) -> list[PipEntry]:
    if set(item) != {"pip"}:
        other = next(iter(k for k in item if k != "pip"), "pip")
        raise SpecError.at(
            document.locate((*where, other), key=True),
            f"dependencies: only a 'pip:' list may appear as a mapping, not {other!r}",
        )
    entries = item["pip"]
    if not isinstance(entries, list):
        raise SpecError.at(
            document.locate((*where, "pip")), "pip: expected a list of pip requirements"
        )
    directory = posixpath.dirname(document.file)
    result = []
    for index, entry in enumerate(entries):
        location = document.locate((*where, "pip", index))
        if not isinstance(entry, str) or not entry.strip():
            raise SpecError.at(location, f"pip[{index}]: expected a requirement string")
        result.append(parse_pip_entry(entry, directory, location, f"pip[{index}]"))
    return result


def parse_pip_entry(
    text: str, directory: str = "", location: Location | None = None, what: str = "pip"
) -> PipEntry:
    """One ``pip:`` line; local paths are also resolved to repository paths."""
    entry = text.strip()
    if entry.startswith("-"):
        option, _, value = entry.partition("=") if entry.startswith("--") else ("", "", "")
        if not option or option not in _OPTIONS_WITH_VALUE:
            option, _, value = entry.partition(" ")
            if option[:2] in ("-r", "-c", "-e") and len(option) > 2:
                option, value = option[:2], option[2:]
        value = value.strip()
        kind = _OPTIONS_WITH_VALUE.get(option)
        if kind is None:
            return PipEntry(text, "option", entry, location=location)
        if not value:
            raise SpecError.at(location, f"{what}: {option} needs a value")
        if kind == "editable" and not _is_local(value):
            return PipEntry(text, "editable", value, location=location)
        path, extras = _local_path(value, directory, location, what)
        return PipEntry(text, kind, value, path, extras if kind == "editable" else (), location)
    if _is_local(entry):
        path, extras = _local_path(entry, directory, location, what)
        return PipEntry(text, "requirement", entry, path, extras, location)
    return PipEntry(text, "requirement", entry, location=location)


def _is_local(value: str) -> bool:
    if "://" in value or value.startswith(("git+", "hg+", "svn+", "bzr+")) or " @ " in value:
        return False
    if value.startswith((".", "/", "~")):
        return True
    return "/" in value and not re.search(r"[<>=!;@ ]", value)


def _local_path(
    value: str, directory: str, location: Location | None, what: str
) -> tuple[str, tuple[str, ...]]:
    extras: tuple[str, ...] = ()
    match = re.fullmatch(r"(.*?)\[([^\]]*)\]", value)
    if match and not value.endswith((".txt", ".in")):
        value = match[1]
        extras = tuple(e.strip() for e in match[2].split(",") if e.strip())
    try:
        return relpath(value, directory), extras
    except ValueError as error:
        raise SpecError.at(location, f"{what}: {error}") from None
