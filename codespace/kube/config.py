"""The admin's Kubernetes document: registry, image build, workspace storage, profiles.

One YAML/JSON document, read by ``codespace plan --config FILE`` and given to the spawner as
``KubeCodespaceSpawner.codespace_config`` (the Helm values embed the same document), e.g.::

    registry: {prefix: registry.example.org/codespaces}
    build: {tool: buildkit}
    profiles:
      - name: a100-mig
        default: true
        gpu: {mode: mig, migProfiles: [1g.10gb, 2g.20gb, 3g.40gb, 7g.80gb]}

Keys follow the Kubernetes spelling (camelCase). Unknown keys are errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from codespace.spec.model import DNS1123_LABEL, GpuSharing

MIG_PROFILE = re.compile(r"^([1-9])g\.([0-9]+)gb$")
RESOURCE_NAME = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

# The single-user image built from images/singleuser (JupyterLab, our extensions,
# code-server, sshd); `images/README.md` says how to build and push it.
DEFAULT_BASE_IMAGE = "ghcr.io/codespace-hub/singleuser:0.1.0"
DEFAULT_GPU_BASE_IMAGE = "ghcr.io/codespace-hub/singleuser-gpu:0.1.0"


class ConfigError(ValueError):
    """The admin's document is invalid; the message names the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class GpuConfig(_Model):
    """How a profile hands out GPUs. The mode is the admin's; the amount is the user's."""

    mode: GpuSharing = Field(..., description="exclusive, time-slicing, mig, hami or vgpu")
    resource: str | None = Field(
        None,
        description="Extended resource name; default nvidia.com/gpu (volcano.sh/vgpu-number "
        "for vgpu). Time-slicing with renameByDefault uses nvidia.com/gpu.shared",
    )
    maxCount: int = Field(1, ge=1, description="Most whole GPUs (or vGPUs) one codespace gets")
    memory: str | None = Field(
        None,
        description="Memory of one physical GPU (e.g. '80Gi'); lets fractions and memory "
        "requests be converted and checked",
    )
    migProfiles: list[str] = Field(
        default_factory=list, description="MIG mixed strategy: offered profiles, e.g. 1g.10gb"
    )
    replicas: int | None = Field(
        None, ge=1, description="Time-slicing: replicas per GPU (for the announced share)"
    )
    schedulerName: str | None = Field(None, description="Scheduler (vgpu defaults to volcano)")
    runtimeClassName: str | None = Field(None, description="e.g. nvidia")
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("migProfiles")
    @classmethod
    def _mig(cls, value: list[str]) -> list[str]:
        for name in value:
            if not MIG_PROFILE.match(name):
                raise ValueError(f"MIG profile {name!r} is not like '1g.10gb'")
        return value

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str | None) -> str | None:
        if value is not None and not RESOURCE_NAME.match(value):
            raise ValueError(f"{value!r} is not a resource name such as nvidia.com/gpu")
        return value

    @model_validator(mode="after")
    def _mode_needs(self) -> GpuConfig:
        if self.mode == "mig" and not self.migProfiles:
            raise ValueError("mode mig needs migProfiles, e.g. [1g.10gb, 3g.40gb, 7g.80gb]")
        return self


class Profile(_Model):
    """An admin-defined machine size a user can pick."""

    name: str = Field(..., description="Slug users pass as the 'profile' option")
    displayName: str | None = None
    description: str | None = None
    default: bool = False
    cpu: float | str | None = Field(None, description="CPU limit, e.g. 4 or '500m'")
    cpuGuarantee: float | str | None = None
    memory: str | None = Field(None, description="Memory limit, e.g. '16Gi'")
    memoryGuarantee: str | None = None
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    gpu: GpuConfig | None = None
    datasetCacheAffinity: bool = Field(
        False, description="Require nodes that cache the datasets (fluid.io/dataset.<n>.sched)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not DNS1123_LABEL.match(value):
            raise ValueError(f"profile name {value!r} must be a DNS-1123 label")
        return value

    @property
    def title(self) -> str:
        return self.displayName or self.name


def backend_profiles(
    kind: str, options: Mapping[str, Any], known: Iterable[str], error: type[Exception]
) -> list[Profile]:
    """The ``profiles`` of a Kubernetes job or deploy backend's options, after refusing
    options it does not know; each problem is ``error("<kind> backend: ...")``."""
    known = sorted(known)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise error(f"{kind} backend: unknown option(s) {unknown}; known: {known}")
    try:
        return [Profile.model_validate(p) for p in options.get("profiles") or []]
    except ValueError as problem:
        raise error(f"{kind} backend: profiles: {problem}") from None


class RegistryConfig(_Model):
    prefix: str = Field("registry.codespace.svc:5000/codespaces", description="Image prefix")
    insecure: bool = Field(False, description="Plain HTTP registry (in-cluster test registry)")
    pushSecret: str | None = Field(
        None, description="Secret (type kubernetes.io/dockerconfigjson) the build Job pushes with"
    )
    pullSecrets: list[str] = Field(default_factory=list, description="imagePullSecrets for pods")


class BuildConfig(_Model):
    tool: Literal["buildkit", "buildah"] = "buildkit"
    buildkitImage: str = "moby/buildkit:v0.17.3-rootless"
    buildahImage: str = "quay.io/buildah/stable:v1.38"
    gitImage: str = Field("alpine/git:2.47.2", description="Clones the repository")
    baseImage: str = DEFAULT_BASE_IMAGE
    gpuBaseImage: str = DEFAULT_GPU_BASE_IMAGE
    deadlineSeconds: int = Field(3600, ge=60, description="activeDeadlineSeconds of a build")
    cpu: str = "2"
    memory: str = "4Gi"


class WorkspaceConfig(_Model):
    capacity: str = "10Gi"
    storageClassName: str | None = None
    accessModes: list[str] = Field(default_factory=lambda: ["ReadWriteOnce"])
    mountPath: str = "/workspaces"
    fsGroup: int = 100


class KubeConfig(_Model):
    """The whole document."""

    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    build: BuildConfig = Field(default_factory=BuildConfig)
    workspace: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    profiles: list[Profile] = Field(default_factory=lambda: [DEFAULT_PROFILE.model_copy()])

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, value: list[Profile]) -> list[Profile]:
        if not value:
            raise ValueError("give at least one profile")
        names = [profile.name for profile in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"profile names must be unique: {', '.join(duplicates)}")
        if sum(profile.default for profile in value) > 1:
            raise ValueError("only one profile may be the default")
        return value

    @property
    def default_profile(self) -> Profile:
        return next((p for p in self.profiles if p.default), self.profiles[0])

    def profile(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        raise ConfigError(
            f"no profile named {name!r}; profiles: {', '.join(p.name for p in self.profiles)}"
        )


# The profile used when the admin configured none: CPU only, modest limits.
DEFAULT_PROFILE = Profile(
    name="default",
    displayName="Default (2 CPU, 8 GiB, no GPU)",
    default=True,
    cpu=2,
    memory="8Gi",
)


def parse_config(data: dict[str, Any] | None) -> KubeConfig:
    """Validate a document; raise :class:`ConfigError` with every problem, one per line."""
    try:
        return KubeConfig.model_validate(data or {})
    except ValidationError as error:
        lines = [
            f"{'.'.join(str(part) for part in problem['loc']) or '(document)'}: {problem['msg']}"
            for problem in error.errors()
        ]
        raise ConfigError("\n".join(lines)) from None


def load_config(path: str | Path | None) -> KubeConfig:
    """Read a YAML or JSON document; ``None`` gives the documented defaults."""
    if path is None:
        return parse_config(None)
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: the document must be a mapping")
    try:
        return parse_config(data)
    except ConfigError as error:
        raise ConfigError(
            "\n".join(f"{path}: {line}" for line in str(error).splitlines())
        ) from None
