"""The resolved Codespace model: one description of a repository's environment.

A superset of devcontainer.json: every name that devcontainer.json has keeps its
devcontainer spelling (camelCase); our additions (``python``, ``apt``, ``datasets``,
``resources.gpu``, ``jobs``, ``deploy``, ``lifetime``) follow the same style.

Everything downstream (local spawner, Kubernetes builders, jobs, deploy) consumes
:class:`Codespace`; nothing downstream reads a configuration file itself.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MEMORY_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T|k|kb|mb|gb|tb|KB|MB|GB|TB)?$")


class _Model(BaseModel):
    """Strict base: unknown keys are errors, names are the devcontainer spellings."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


# A lifecycle command: a shell string, an argv list, or a map of named commands
# (each a string or argv list) that run in parallel in the devcontainer spec.
ArgvOrShell = str | list[str]
Command = str | list[str] | dict[str, ArgvOrShell]


class Build(_Model):
    dockerfile: str | None = Field(
        None,
        description="Dockerfile path; relative to its config file as written, "
        "repository-relative once resolved",
    )
    context: str | None = Field(None, description="Build context directory (repo-relative)")
    args: dict[str, str] = Field(default_factory=dict, description="Docker build arguments")
    target: str | None = Field(None, description="Multi-stage build target")
    cacheFrom: str | list[str] | None = Field(None, description="Images to use as build cache")
    options: list[str] = Field(default_factory=list, description="Extra build options")


class Python(_Model):
    version: str | None = Field(None, description="Python version, e.g. '3.11'")
    requirements: list[str] = Field(
        default_factory=list, description="Requirement or lock files, relative to the repo root"
    )
    manager: Literal["uv", "pip", "conda"] = Field("uv", description="How the env is built")
    environmentFile: str | None = Field(
        None, description="conda environment.yml, relative to the repo root (repo2docker)"
    )
    installProject: bool = Field(
        False, description="Install the repository itself (pyproject.toml / setup.py)"
    )

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"3(\.\d+){0,2}", str(value)):
            raise ValueError(f"python version {value!r} is not a Python 3 version such as '3.11'")
        return value


Visibility = Literal["private", "user", "public"]
OnAutoForward = Literal["notify", "openBrowser", "openPreview", "silent", "ignore"]


class Port(_Model):
    port: int = Field(..., ge=1, le=65535, description="TCP port inside the codespace")
    label: str | None = None
    visibility: Visibility = Field(
        "private", description="private: owner only; user: users of the hub; public: anyone"
    )
    protocol: Literal["http", "https"] | None = None
    onAutoForward: OnAutoForward | None = None


class PortAttributes(_Model):
    """Attributes of a port that is not forwarded from the start (applied when detected)."""

    label: str | None = None
    visibility: Visibility | None = None
    protocol: Literal["http", "https"] | None = None
    onAutoForward: OnAutoForward | None = None


def _port_key(key: str) -> str:
    """A ``portsAttributes`` key: a port ``"8080"`` or a range ``"40000-55000"``."""
    match = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", key)
    if match:
        low, high = int(match[1]), int(match[2] or match[1])
        if 1 <= low <= high <= 65535:
            return key
    raise ValueError(f"{key!r} is not a port (1-65535) or a port range such as '40000-55000'")


PortKey = Annotated[str, AfterValidator(_port_key)]


class VSCode(_Model):
    extensions: list[str] = Field(
        default_factory=list, description="Extension IDs (publisher.name)"
    )
    settings: dict[str, Any] = Field(default_factory=dict)


def _open_file(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value or ":" in value:
        raise ValueError(f"{value!r} is not a path inside the repository (such as README.md)")
    return str(path)


class Codespaces(_Model):
    """``customizations.codespaces``, as GitHub Codespaces reads it."""

    openFiles: list[Annotated[str, AfterValidator(_open_file)]] = Field(
        default_factory=list,
        description="Files opened when the codespace opens, relative to the repository root",
    )


class Customizations(BaseModel):
    """Tool-specific settings; other tools' keys are kept as given."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    vscode: VSCode = Field(default_factory=VSCode)
    codespaces: Codespaces = Field(default_factory=Codespaces)


GpuSharing = Literal["exclusive", "time-slicing", "mig", "hami", "vgpu"]


class GpuRequest(_Model):
    count: int | None = Field(None, ge=1, description="Whole GPUs")
    fraction: float | None = Field(None, gt=0, le=1, description="Share of one GPU, in (0, 1]")
    memory: str | None = Field(None, description="GPU memory, e.g. '10Gi'")
    sharing: GpuSharing | None = Field(None, description="Preferred sharing technology")
    optional: bool = Field(False, description="Start without a GPU when none can be had")

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: str | None) -> str | None:
        if value is not None and not MEMORY_QUANTITY.fullmatch(str(value)):
            raise ValueError(f"GPU memory {value!r} is not a quantity such as '10Gi'")
        return value

    @model_validator(mode="after")
    def _one_amount(self) -> GpuRequest:
        if self.count is not None and self.fraction is not None:
            raise ValueError("give either count or fraction, not both")
        if self.count is None and self.fraction is None and self.memory is None:
            self.count = 1
        return self


class Resources(_Model):
    cpu: float | str | None = Field(None, description="CPU cores, e.g. 2 or '500m'")
    memory: str | None = Field(None, description="Memory, e.g. '8Gi'")
    storage: str | None = Field(None, description="Workspace storage, e.g. '20Gi'")
    gpu: GpuRequest | None = Field(
        None, description="true, a count, or {count | fraction | memory, sharing, optional}"
    )

    @field_validator("gpu", mode="before")
    @classmethod
    def _gpu_shorthand(cls, value: Any) -> Any:
        if value is True:
            return {"count": 1}
        if value is False or value == 0:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        if isinstance(value, float):
            if value < 1:
                return {"fraction": value}
            if value.is_integer():
                return {"count": int(value)}
            raise ValueError(
                f"{value:g} GPUs: a GPU amount is a fraction of one GPU (0 < f <= 1) or a "
                "whole number of GPUs"
            )
        return value

    @field_validator("memory", "storage")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not MEMORY_QUANTITY.fullmatch(str(value)):
            raise ValueError(f"{value!r} is not a quantity such as '8Gi'")
        return value


class Dataset(_Model):
    name: str = Field(..., description="Dataset name (a DNS-1123 label)")
    mountPath: str | None = Field(None, description="Absolute mount path; default /datasets/<name>")
    readOnly: bool = True
    prewarm: bool | list[str] = Field(False, description="Prewarm all, or these paths, at start")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not DNS1123_LABEL.fullmatch(value):
            raise ValueError(
                f"dataset name {value!r} must be a DNS-1123 label: lowercase letters, digits "
                "and '-', starting and ending with a letter or digit, at most 63 characters"
            )
        return value

    @field_validator("mountPath")
    @classmethod
    def _mount_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.startswith("/"):
            raise ValueError(f"mountPath {value!r} must be an absolute path")
        if ".." in value.split("/"):
            raise ValueError(f"mountPath {value!r} must not contain '..'")
        return value

    @property
    def mount_path(self) -> str:
        return self.mountPath or f"/datasets/{self.name}"


class Lifetime(_Model):
    idleTimeout: int | None = Field(None, ge=0, description="Seconds idle before the server stops")

    @field_validator("idleTimeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", value)
            if not match:
                raise ValueError(f"idleTimeout {value!r} is not a duration such as '30m' or 3600")
            number, unit = int(match[1]), match[2] or "s"
            return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
        return value


class Secret(_Model):
    description: str | None = None
    documentationUrl: str | None = None


LIFECYCLE_COMMANDS = (
    "initializeCommand",
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
    "postStartCommand",
    "postAttachCommand",
)

# A Debian package name, optionally with an architecture and a version (``pkg:arch=1.0``).
# Never starts with '-', so it cannot be read as an apt-get option.
DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+:~_-]+)?$")


def _debian_package(name: str) -> str:
    if not DEBIAN_PACKAGE.fullmatch(name):
        raise ValueError(f"{name!r} is not a Debian package name")
    return name


DebianPackage = Annotated[str, AfterValidator(_debian_package)]


def _check_command(value: Any) -> Any:
    """A lifecycle command: a string, a list of strings, or a map of either."""

    def argv_or_shell(item: Any) -> bool:
        return isinstance(item, str) or (
            isinstance(item, list) and all(isinstance(part, str) for part in item)
        )

    if value is None or argv_or_shell(value):
        return value
    if isinstance(value, dict) and all(
        isinstance(key, str) and argv_or_shell(item) for key, item in value.items()
    ):
        return value
    raise ValueError(
        "a command must be a shell string, a list of arguments (strings), or a map of "
        "named commands (each a string or a list of strings)"
    )


WaitFor = Literal[
    "initializeCommand",
    "onCreateCommand",
    "updateContentCommand",
    "postCreateCommand",
    "postStartCommand",
]

# Keys whose value defines the built environment (covered by the environment hash).
ENVIRONMENT_KEYS = ("image", "build", "python", "apt", "features", "postBuild")


class Codespace(_Model):
    """The resolved description of one repository's codespace."""

    name: str | None = None
    image: str | None = Field(None, description="Base image (Kubernetes mode)")
    build: Build | None = None
    python: Python = Field(default_factory=Python)
    apt: list[DebianPackage] = Field(default_factory=list, description="Debian packages")
    features: dict[str, Any] = Field(default_factory=dict, description="Dev container features")
    initializeCommand: Command | None = None
    onCreateCommand: Command | None = None
    updateContentCommand: Command | None = None
    postCreateCommand: Command | None = None
    postStartCommand: Command | None = None
    postAttachCommand: Command | None = None
    waitFor: WaitFor | None = Field(
        None,
        description="The lifecycle command the codespace waits for before it is ready; "
        "unset means the devcontainer default, updateContentCommand",
    )
    containerEnv: dict[str, str] = Field(default_factory=dict)
    remoteEnv: dict[str, str | None] = Field(default_factory=dict)
    secrets: dict[str, Secret] = Field(
        default_factory=dict, description="Declared secret names; values are never stored here"
    )
    ports: list[Port] = Field(default_factory=list)
    portsAttributes: dict[PortKey, PortAttributes] = Field(
        default_factory=dict,
        description="Attributes of ports (or port ranges) that are not forwarded from the "
        "start, applied when the port is detected",
    )
    otherPortsAttributes: PortAttributes | None = Field(
        None, description="Attributes of any other detected port"
    )
    customizations: Customizations = Field(default_factory=Customizations)
    resources: Resources = Field(default_factory=Resources)
    datasets: list[Dataset] = Field(default_factory=list)
    jobs: dict[str, Any] = Field(default_factory=dict, description="Job defaults")
    deploy: dict[str, Any] = Field(default_factory=dict, description="Deploy defaults")
    lifetime: Lifetime = Field(default_factory=Lifetime)
    workspaceFolder: str | None = None
    start: str | None = Field(None, description="repo2docker 'start' script, relative path")
    postBuild: str | None = Field(None, description="repo2docker 'postBuild' script, relative path")

    @field_validator(*LIFECYCLE_COMMANDS, mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        return _check_command(value)

    @field_validator("secrets", mode="before")
    @classmethod
    def _secret_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(name): {} for name in value}
        return value

    @field_validator("datasets")
    @classmethod
    def _unique_datasets(cls, value: list[Dataset]) -> list[Dataset]:
        seen: set[str] = set()
        for dataset in value:
            if dataset.name in seen:
                raise ValueError(f"dataset {dataset.name!r} is listed twice")
            seen.add(dataset.name)
        return value

    def lifecycle(self) -> list[tuple[str, Command]]:
        """The lifecycle commands that are set, in devcontainer order."""
        return [(key, getattr(self, key)) for key in LIFECYCLE_COMMANDS if getattr(self, key)]
