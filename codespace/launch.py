"""One launch plan for both modes: what a codespace is, before a mode renders it.

:func:`make_launch_plan` turns a resolved repository and the user's options into a
:class:`LaunchPlan`: the environment's identity (environment hash, Python version, the
kernel layer), the server's environment variables, the proxied apps, the dataset mounts,
the GPU request, the lifecycle commands, and whether this is a recovery codespace and why.
It is pure: no file, process or network is touched.

Each mode renders the same plan: the local spawner into processes (:mod:`codespace.local.prepare`),
the Kubernetes spawner into KubeSpawner's traits and the image build Job
(:mod:`codespace.kube.plan`), and the pod's entrypoint (:mod:`codespace.kube.entrypoint`)
runs its lifecycle commands. Jobs, deployments and SSH read the same plan, so they run in
exactly the environment the notebook used.

A :class:`Placement` says where a mode puts things as the server sees them (the workspace,
the repository environment's prefix); values that only the running codespace knows (the
image's or host's ``PATH``) stay ``${containerEnv:VAR}`` references until
:meth:`LaunchPlan.server_env` expands them there.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections import ChainMap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from codespace.datasets.mounts import DATASETS_ENV, DatasetMount, plan_mounts
from codespace.kernel_layer import KERNEL_NAME, kernel_layer_digest, kernel_layer_requirements
from codespace.options import UserOptions
from codespace.resolve import Resolution
from codespace.spec.lifecycle import DEFAULT_WAIT_FOR, POST_BUILD, Step
from codespace.spec.model import Codespace, GpuRequest
from codespace.spec.variables import expand_env

Target = Literal["local", "kubernetes"]
TARGETS: tuple[Target, ...] = ("local", "kubernetes")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
LAUNCH_ENV = "CODESPACE_LAUNCH"  # the RuntimePlan as JSON, in a pod's environment
# Set by the platform; a repository's containerEnv/remoteEnv cannot replace them.
PLATFORM_VARIABLES = (
    "CODESPACE_REPO",
    "CODESPACE_REF",
    "CODESPACE_ENV_HASH",
    "CODESPACE_WORKSPACE",
    "CODESPACE_PROFILE",
    "CODESPACE_VSCODE_EXTENSIONS",
    "CODESPACE_VSCODE_SETTINGS",
    "CODESPACE_OPEN_FILES",
    "CODESPACE_IDLE_TIMEOUT",
    DATASETS_ENV,
)


@dataclass(frozen=True)
class Placement:
    """Where a mode puts a codespace's files, as its server sees them."""

    target: Target
    workspace: str  # the repository checkout: the Jupyter root and VS Code's folder
    env_prefix: str  # the repository environment the kernel, terminals and VS Code use

    def dataset_path(self, mount: DatasetMount) -> str:
        """Where a dataset appears: a link in the workspace locally, the mount path in a pod."""
        if self.target == "local":
            return posixpath.join(self.workspace, "datasets", mount.name)
        return mount.mountPath


@dataclass(frozen=True)
class KernelLayer:
    """What the platform adds to every repository environment (the same in both modes)."""

    requirements: tuple[str, ...]
    digest: str
    kernelspec: str = KERNEL_NAME


@dataclass(frozen=True)
class EnvironmentPlan:
    """The repository environment's identity."""

    env_hash: str
    python_version: str | None
    prefix: str
    kernel_layer: KernelLayer
    image: str | None = None  # a devcontainer ``image`` (the base of the codespace image)
    dockerfile: str | None = None  # a Dockerfile ``build`` (built, then the platform added)


@dataclass(frozen=True)
class ProxiedApp:
    """An application the server proxies under ``/user/<name>/<server>/<path>``."""

    name: str
    path: str
    title: str
    settings: Mapping[str, Any] = field(default_factory=dict)


class _Unknown(Mapping[str, str]):
    """An environment that has every variable, with a value no real one contains."""

    MARK = "\0"

    def __getitem__(self, key: str) -> str:
        return f"{self.MARK}{key}{self.MARK}"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class RuntimePlan:
    """The part of a plan the running codespace applies: its environment variables, its
    lifecycle commands and what went wrong (for ``CODESPACE_ERRORS.md``)."""

    variables: dict[str, str]
    container_env: dict[str, str | None]
    remote_env: dict[str, str | None]
    prefix: str
    steps: tuple[Step, ...]
    wait_for: str
    recovery: bool = False
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def server_env(self, outer: Mapping[str, str]) -> dict[str, str]:
        """The server's environment variables, expanded against ``outer`` (the host's
        environment locally, the image's in a pod).

        ``containerEnv`` describes the container (expanded first); the repository
        environment goes first on its ``PATH``; ``remoteEnv`` is for the tools' processes
        and wins, its ``${containerEnv:PATH}`` being that ``PATH``. The platform's
        ``CODESPACE_*`` variables cannot be replaced by the repository.
        """
        known = ChainMap(self.variables, outer)
        container = expand_env(self.container_env, known)
        path = container.get("PATH") or outer.get("PATH") or DEFAULT_PATH
        tools = {"VIRTUAL_ENV": self.prefix, "PATH": f"{self.prefix}/bin:{path}"}
        remote = expand_env(self.remote_env, ChainMap(tools, container, known))
        return {**container, **tools, **remote, **self.variables}

    def static_env(self) -> dict[str, str]:
        """The server variables that do not depend on the running codespace's environment
        (a pod spec can carry them as they are; the entrypoint sets the others)."""
        env = self.server_env(_Unknown())
        return {key: value for key, value in env.items() if _Unknown.MARK not in value}

    def to_json(self) -> str:
        data = asdict(self)
        data["steps"] = [step.to_json() for step in self.steps]
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RuntimePlan:
        data = json.loads(text)
        data["steps"] = tuple(Step.from_json(step) for step in data["steps"])
        data["problems"], data["warnings"] = tuple(data["problems"]), tuple(data["warnings"])
        return cls(**data)


@dataclass(frozen=True)
class LaunchPlan:
    """What one codespace is, for one target (see the module docstring); each mode renders
    it, and :meth:`runtime` is the part the running codespace applies."""

    target: Target
    repo: str
    ref: str | None
    profile: str | None
    source: str
    source_kind: str
    spec: Codespace
    placement: Placement
    environment: EnvironmentPlan
    variables: dict[str, str]  # the platform's CODESPACE_* variables
    datasets: tuple[DatasetMount, ...]
    gpu: GpuRequest | None
    lifecycle: tuple[Step, ...]  # every configured command, in the devcontainer order
    wait_for: str
    apps: tuple[ProxiedApp, ...]
    recovery: bool = False
    problems: tuple[str, ...] = ()  # markdown sections of CODESPACE_ERRORS.md
    warnings: tuple[str, ...] = ()

    def runtime(self) -> RuntimePlan:
        """What the running codespace needs: the pod's entrypoint reads it as JSON."""
        steps = self.lifecycle
        if self.target == "kubernetes":  # postBuild is part of the image build there
            steps = tuple(step for step in steps if step.name != POST_BUILD)
        return RuntimePlan(
            variables=dict(self.variables),
            container_env=dict(self.spec.containerEnv),
            remote_env=dict(self.spec.remoteEnv),
            prefix=self.environment.prefix,
            steps=steps,
            wait_for=self.wait_for,
            recovery=self.recovery,
            problems=self.problems,
            warnings=self.warnings,
        )

    def server_env(self, outer: Mapping[str, str]) -> dict[str, str]:
        """See :meth:`RuntimePlan.server_env`."""
        return self.runtime().server_env(outer)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (``codespace plan --target local``)."""
        env = self.environment
        return {
            "target": self.target,
            "repo": self.repo,
            "ref": self.ref,
            "source": f"{self.source} ({self.source_kind})",
            "recovery": self.recovery,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "workspace": self.placement.workspace,
            "environment": {
                "env_hash": env.env_hash,
                "python": env.python_version or "(the platform's)",
                "prefix": env.prefix,
                "kernel_layer": list(env.kernel_layer.requirements),
                "kernelspec": env.kernel_layer.kernelspec,
                **({"image": env.image} if env.image else {}),
                **({"dockerfile": env.dockerfile} if env.dockerfile else {}),
            },
            "variables": self.server_env({"PATH": "${PATH}"}),
            "datasets": [
                {"name": m.name, "path": self.placement.dataset_path(m), "readOnly": m.readOnly}
                for m in self.datasets
            ],
            "gpu": self.gpu.model_dump(exclude_defaults=True) if self.gpu else None,
            "lifecycle": [step.to_json() for step in self.runtime().steps],
            "waitFor": self.wait_for,
            "apps": [{"name": app.name, "path": app.path} for app in self.apps],
        }


def lifecycle_steps(spec: Codespace) -> list[Step]:
    """Every configured command in the devcontainer order; ``postBuild`` (repo2docker's
    script) first, run as a program from the workspace as repo2docker does."""
    steps = [Step(name, command) for name, command in spec.lifecycle()]
    if spec.postBuild:
        script = spec.postBuild if "/" in spec.postBuild else f"./{spec.postBuild}"
        run = ["/bin/sh", "-c", 'chmod +x "$1" && exec "$1"', POST_BUILD, script]
        steps.insert(0, Step(POST_BUILD, run))
    return steps


def _apps(spec: Codespace) -> tuple[ProxiedApp, ...]:
    vscode = spec.customizations.vscode
    settings = {"extensions": list(vscode.extensions), "settings": dict(vscode.settings)}
    return (ProxiedApp("vscode", "/vscode/", "VS Code", settings),)


def _seconds(value: int | None) -> str:
    return "" if value is None else str(value)


def platform_variables(
    options: UserOptions,
    spec: Codespace,
    placement: Placement,
    env_hash: str,
    datasets: Sequence[DatasetMount],
) -> dict[str, str]:
    """The ``CODESPACE_*`` variables every codespace's server gets, in both modes."""
    variables = {
        "CODESPACE_REPO": options.repo,
        "CODESPACE_REF": options.ref or "",
        "CODESPACE_ENV_HASH": env_hash,
        "CODESPACE_WORKSPACE": placement.workspace,
        "CODESPACE_PROFILE": options.profile or "",
        "CODESPACE_VSCODE_EXTENSIONS": " ".join(spec.customizations.vscode.extensions),
        "CODESPACE_VSCODE_SETTINGS": json.dumps(spec.customizations.vscode.settings),
        # what the lab opens first (customizations.codespaces.openFiles; else the README)
        "CODESPACE_OPEN_FILES": json.dumps(spec.customizations.codespaces.openFiles),
        # lifetime.idleTimeout in seconds ("": the hub's default); the server reports it
        "CODESPACE_IDLE_TIMEOUT": _seconds(spec.lifetime.idleTimeout),
    }
    if datasets:
        variables[DATASETS_ENV] = ",".join(
            f"{m.name}={placement.dataset_path(m)}" for m in datasets
        )
    return variables


def with_user_options(resolution: Resolution, options: UserOptions) -> Resolution:
    """The resolution with what the user's options set over the repository's spec: a GPU
    request (``options.gpu``, e.g. from a ``Codespace`` resource) replaces
    ``resources.gpu``. The environment hash does not change."""
    if options.gpu is None:
        return resolution
    spec = resolution.codespace
    resources = spec.resources.model_copy(update={"gpu": options.gpu})
    return dataclasses.replace(
        resolution, codespace=spec.model_copy(update={"resources": resources})
    )


def make_launch_plan(
    resolution: Resolution,
    options: UserOptions,
    placement: Placement,
    *,
    pending: Iterable[str] = (),
    recovery: bool = False,
    problems: Sequence[str] = (),
    python_version: str | None = None,
) -> LaunchPlan:
    """The plan of one codespace. ``pending``: datasets a running codespace recorded with
    ``mount()``; ``recovery``/``problems``: a codespace started on the platform default
    because the repository's configuration or environment failed (the problems say why);
    ``python_version``: the one the environment was built with, once known."""
    spec = resolution.codespace
    datasets = plan_mounts(spec, options.datasets, pending)
    environment = EnvironmentPlan(
        env_hash=resolution.env_hash,
        python_version=python_version or spec.python.version,
        prefix=placement.env_prefix,
        kernel_layer=KernelLayer(tuple(kernel_layer_requirements()), kernel_layer_digest()),
        image=spec.image,
        dockerfile=spec.build.dockerfile if spec.build else None,
    )
    return LaunchPlan(
        target=placement.target,
        repo=options.repo,
        ref=options.ref,
        profile=options.profile,
        source=resolution.source,
        source_kind=resolution.source_kind,
        spec=spec,
        placement=placement,
        environment=environment,
        variables=platform_variables(options, spec, placement, resolution.env_hash, datasets),
        datasets=tuple(datasets),
        gpu=spec.resources.gpu,
        lifecycle=tuple(lifecycle_steps(spec)),
        wait_for=spec.waitFor or DEFAULT_WAIT_FOR,
        apps=_apps(spec),
        recovery=recovery,
        problems=tuple(problems),
        warnings=tuple(str(warning) for warning in resolution.warnings),
    )
