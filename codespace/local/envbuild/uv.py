"""Build repository environments with uv, cached by environment hash and shared by everybody.

An environment lives in ``<cache>/envs/<key>`` where ``key`` covers the resolved environment
hash, the requested Python version and the kernel layer. A finished environment has a
``codespace-env.json`` marker; a directory without one is a failed or interrupted build and is
rebuilt. A file lock per key lets concurrent spawns of the same environment wait for one build.
uv never downloads a Python (``UV_PYTHON_DOWNLOADS=never``): when the requested version is not
on the machine, the platform's Python is used and a warning says so.

What is installed, in order (:func:`plan_environment`):

1. conda environment files (``python.environmentFile``, or a ``.yml`` among the
   requirements): their Python packages from the package index (no conda channel is reached
   locally; see :mod:`codespace.local.envbuild.conda`), their ``pip:`` entries as written. An
   entry that cannot be installed is left out, the others are installed, and a warning names it;
2. requirement files (a failure here fails the build, as before);
3. the dependencies of the repository's own project (``installProject``, ``pip: [-e .]``);
   the project itself is linked per codespace by :meth:`UvEnvBuilder.install_projects`;
4. the kernel layer.

Warnings (what is missing, a Python fallback) are kept in the marker, so a cache hit
repeats them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from codespace.kernel_layer import kernel_layer_digest, kernel_layer_requirements
from codespace.local.envbuild.conda import CondaPlan, Project, plan_conda_install
from codespace.local.envbuild.install import install_units
from codespace.local.envbuild.kernel import link_codespace_package, site_packages
from codespace.local.envbuild.project import install_project, install_project_dependencies
from codespace.local.isolation import host_env
from codespace.sources.conda import is_environment_file, read_environment
from codespace.spec.errors import SpecError
from codespace.spec.files import read_text
from codespace.spec.model import Codespace
from codespace.streaming import Finished, stream

OnLine = Callable[[str], None]
MARKER = "codespace-env.json"


@dataclass(frozen=True)
class BuildAs:
    """Who runs a build's commands when it is not the hub: an unprivileged account.

    ``wrap(path)`` returns how to wrap a command line for a build into ``path`` (the
    account, its sandbox with ``path`` writable); ``env`` is uv's environment for it (its own
    cache, nothing of the hub's); ``start(path)`` makes ``path`` the account's before the
    build and ``publish(path)`` gives it back to root, read-only for everybody, before the
    environment is marked finished. So the repository's build code never runs as root, and
    nothing a codespace runs can change an environment other codespaces run.
    """

    wrap: Callable[[Path], Callable[[list[str]], list[str]]]
    env: dict[str, str]
    start: Callable[[Path], None]
    publish: Callable[[Path], None]


class EnvBuildError(RuntimeError):
    """The environment could not be built; the message ends with the tool's last lines."""


@dataclass
class BuiltEnv:
    """A ready environment and how it was obtained."""

    path: Path
    python_version: str
    cache_hit: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)
    # Repository paths of projects to link editable per codespace (install_projects).
    projects: list[str] = field(default_factory=list)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def find_uv() -> str:
    """The uv executable: the one installed with the platform, else the one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise EnvBuildError("uv is not installed (pip install uv)") from None
        return found


def platform_python() -> str:
    """The interpreter behind the platform's virtualenv (used when a version is unavailable)."""
    return getattr(sys, "_base_executable", None) or sys.executable


@dataclass
class EnvPlan:
    """What an environment installs, read from the repository's files."""

    python: str | None
    conda: list[CondaPlan] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    projects: list[Project] = field(default_factory=list)


def plan_environment(root: Path, spec: Codespace) -> EnvPlan:
    """Read the environment files ``spec`` names; a broken one raises :class:`SpecError`."""
    python = spec.python
    names = [python.environmentFile] if python.environmentFile else []
    names += [name for name in python.requirements if is_environment_file(name)]
    conda = [
        plan_conda_install(read_environment(read_text(root, name), name), root)
        for name in dict.fromkeys(names)
    ]
    projects = [Project(".")] if python.installProject else []
    for project in (p for plan in conda for p in plan.projects):
        if all(project.path != known.path for known in projects):
            projects.append(project)
    version = python.version or next((plan.python for plan in conda if plan.python), None)
    requirements = [name for name in python.requirements if not is_environment_file(name)]
    return EnvPlan(version, conda, requirements, projects)


def editable_projects(env: Path, root: Path) -> list[tuple[str, str]]:
    """``(distribution, repository path)`` of the editable installs in ``env`` whose
    directory is inside ``root`` (PEP 610 ``direct_url.json`` with ``editable: true``)."""
    found = []
    real_root = root.resolve()
    for direct_url in sorted(site_packages(env).glob("*.dist-info/direct_url.json")):
        try:
            data = json.loads(direct_url.read_text())
        except (OSError, ValueError):
            continue
        url = str(data.get("url", ""))
        if not data.get("dir_info", {}).get("editable") or not url.startswith("file://"):
            continue
        directory = Path(unquote(urlsplit(url).path)).resolve()
        if directory == real_root or real_root in directory.parents:
            name = direct_url.parent.name.split("-")[0]
            found.append((name, directory.relative_to(real_root).as_posix() or "."))
    return found


def env_key(env_hash: str, python_version: str | None) -> str:
    """The cache key of an environment: its files' hash, the Python asked for, the layer."""
    text = json.dumps([env_hash, python_version or "", kernel_layer_digest()])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class UvEnvBuilder:
    """Materialise a :class:`Codespace`'s Python environment as a uv virtualenv."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        uv: str | None = None,
        uv_cache_dir: Path | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.envs_dir = self.cache_dir / "envs"
        self.uv_cache_dir = Path(uv_cache_dir) if uv_cache_dir else self.cache_dir / "uv-cache"
        self.uv = uv or find_uv()
        self.extra_env = dict(extra_env or {})
        self._build_as: BuildAs | None = None  # during a build by an account
        self._wrap: Callable[[list[str]], list[str]] = list

    def env_path(self, env_hash: str, python_version: str | None) -> Path:
        return self.envs_dir / env_key(env_hash, python_version)

    def cached(self, env_hash: str, python_version: str | None) -> Path | None:
        path = self.env_path(env_hash, python_version)
        return path if (path / MARKER).is_file() else None

    def _env(self) -> dict[str, str]:
        if self._build_as is not None:
            return dict(self._build_as.env)
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env.update(
            {
                "UV_CACHE_DIR": str(self.uv_cache_dir),
                "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1",
                "UV_LINK_MODE": "hardlink",
                "NO_COLOR": "1",
            }
        )
        env.update(self.extra_env)
        return env

    async def build(
        self,
        root: Path,
        spec: Codespace,
        env_hash: str,
        *,
        on_line: OnLine | None = None,
        build_as: BuildAs | None = None,
    ) -> BuiltEnv:
        """Return the environment for ``spec`` (from the cache, or built now; by
        ``build_as`` when given, see :class:`BuildAs`)."""
        started = time.monotonic()
        say = on_line or (lambda _line: None)
        try:
            plan = plan_environment(root, spec)
        except SpecError as error:
            raise EnvBuildError(f"the environment files have errors:\n{error}") from None
        version = plan.python
        path = self.env_path(env_hash, version)
        self.envs_dir.mkdir(parents=True, exist_ok=True)
        async with _locked(path.with_suffix(".lock"), say):
            marker = path / MARKER
            if marker.is_file():
                info = json.loads(marker.read_text())
                cached = BuiltEnv(path, info["python"], True, time.monotonic() - started)
                cached.warnings = list(info.get("warnings", []))
                cached.projects = list(info.get("projects", []))
                for warning in cached.warnings:
                    say(f"warning: {warning}")
                return cached
            warnings: list[str] = []
            if path.exists():
                say("removing an unfinished build of this environment")
                await asyncio.to_thread(shutil.rmtree, path)
            try:
                python = await self._build_into(root, path, plan, version, warnings, say, build_as)
            except BaseException:
                await asyncio.to_thread(shutil.rmtree, path, True)
                raise
            projects = [project.path for project in plan.projects]
            info = {
                "env_hash": env_hash,
                "python": python,
                "requested_python": version,
                "requirements": spec.python.requirements,
                "environment_files": [conda.file for conda in plan.conda],
                "kernel_layer": kernel_layer_requirements(),
                "warnings": warnings,
                "projects": projects,
                "built_at": time.time(),
            }
            marker.write_text(json.dumps(info, indent=1) + "\n")
            return BuiltEnv(path, python, False, time.monotonic() - started, warnings, projects)

    async def _build_into(
        self,
        root: Path,
        path: Path,
        plan: EnvPlan,
        version: str | None,
        warnings: list[str],
        say: OnLine,
        build_as: BuildAs | None,
    ) -> str:
        """Create and fill the environment at ``path``; return its Python version."""
        if build_as is not None:
            path.mkdir()
            build_as.start(path)
            self._build_as, self._wrap = build_as, build_as.wrap(path)
        try:
            python = await self._create(path, version, warnings, say)
            await self._install(root, path, plan, warnings, say)
        finally:
            self._build_as, self._wrap = None, list
        if build_as is not None:
            await asyncio.to_thread(build_as.publish, path)
        link_codespace_package(path)
        return python

    async def _move_editables_out(self, root: Path, path: Path, plan: EnvPlan, say) -> None:
        """An editable install of a directory of the repository (``-e .`` in a requirement
        file) names this workspace's path, but the environment is shared: uninstall it here
        (its dependencies stay) and link it per codespace like ``installProject``."""
        found = editable_projects(path, root)
        if not found:
            return
        names = [name for name, _ in found]
        say(f"editable projects of the repository, linked per codespace: {', '.join(names)}")
        uninstall = self._wrap([self.uv, "pip", "uninstall", "--python", str(path / "bin/python")])
        finished = await stream([*uninstall, *names], env=self._env(), on_line=say)
        if not finished.ok:
            raise EnvBuildError(
                f"uv pip uninstall {' '.join(names)} failed:\n{finished.tail_text()}"
            )
        for _, directory in found:
            if all(directory != known.path for known in plan.projects):
                plan.projects.append(Project(directory))

    def _reset(self, path: Path) -> None:
        """Empty ``path`` for another try (kept as the account's directory in a build by one)."""
        shutil.rmtree(path, ignore_errors=True)
        if self._build_as is not None:
            path.mkdir()
            self._build_as.start(path)

    async def install_projects(
        self,
        built: BuiltEnv,
        workspace: Path,
        python: Path,
        *,
        on_line: OnLine | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
        home: Path | None = None,
    ) -> list[str]:
        """Link each of ``built.projects`` from ``workspace`` editable into ``python``'s
        environment (the codespace's own layer, never ``built.python``); return warnings.

        See :func:`codespace.local.envbuild.project.install_project` for the contract. With
        ``wrap`` (run as the codespace's account) uv gets :meth:`account_env` for ``home``.
        """
        warnings = []
        env = self.account_env(home) if home is not None else self._env()
        for project in built.projects:
            directory = (workspace / project).resolve()
            result = await install_project(
                python, directory, uv=self.uv, env=env, on_line=on_line, wrap=wrap
            )
            if result.warning:
                warnings.append(result.warning)
        return warnings

    def account_env(self, home: Path) -> dict[str, str]:
        """uv's environment for a codespace's account: of the hub's only what reaches package
        indexes (:func:`~codespace.local.isolation.host_env`); the cache is the account's own
        (files copied, not hard-linked, so nothing it has is shared with the hub's cache)."""
        env = {**host_env(self._env()), "NO_COLOR": "1"}
        env.update(
            {
                "HOME": str(home),
                "UV_CACHE_DIR": str(home / ".cache" / "uv"),
                "UV_LINK_MODE": "copy",
            }
        )
        return env

    async def _create(self, path: Path, version: str | None, warnings: list[str], say) -> str:
        argv = self._wrap([self.uv, "venv", "--no-project", "--no-config", "--quiet"])
        if self._build_as is not None:
            argv.append("--allow-existing")  # the account's directory, made for it
        finished: Finished | None = None
        if version:
            finished = await stream([*argv, "--python", version, str(path)], env=self._env())
            if not finished.ok:
                _warn(
                    warnings,
                    say,
                    f"Python {version} is not available on this machine; "
                    f"using the platform's Python instead",
                )
                self._reset(path)
        if finished is None or not finished.ok:
            finished = await stream(
                [*argv, "--python", platform_python(), str(path)], env=self._env(), on_line=say
            )
            if not finished.ok:
                raise EnvBuildError(f"uv venv failed:\n{finished.tail_text()}")
        python = path / "bin" / "python"
        probe = await stream(
            self._wrap([str(python), "-c", "import platform; print(platform.python_version())"])
        )
        return probe.tail[-1] if probe.ok and probe.tail else "unknown"

    async def _install(
        self, root: Path, path: Path, plan: EnvPlan, warnings: list[str], say
    ) -> None:
        install = self._wrap([self.uv, "pip", "install", "--python", str(path / "bin" / "python")])
        for conda in plan.conda:
            await self._install_conda(install, conda, warnings, say)
        if plan.requirements:
            requirement_args: list[str] = []
            for name in plan.requirements:
                requirement_args += ["-r", str((root / name).resolve())]
            say(f"uv pip install {' '.join(plan.requirements)}")
            finished = await stream(
                [*install, *requirement_args], cwd=root, env=self._env(), on_line=say
            )
            if not finished.ok:
                raise EnvBuildError(
                    f"installing {', '.join(plan.requirements)} failed:\n{finished.tail_text()}"
                )
        await self._move_editables_out(root, path, plan, say)
        for project in plan.projects:
            warning = await install_project_dependencies(
                install, root, project.path, project.extras, env=self._env(), on_line=say
            )
            if warning:
                _warn(warnings, say, warning)
        layer = kernel_layer_requirements()
        say(f"kernel layer: uv pip install {' '.join(layer)}")
        finished = await stream([*install, *layer], cwd=root, env=self._env(), on_line=say)
        if not finished.ok:
            raise EnvBuildError(f"installing the kernel layer failed:\n{finished.tail_text()}")

    async def _install_conda(
        self, install: list[str], conda: CondaPlan, warnings: list[str], say
    ) -> None:
        say(f"{conda.file}: installing its Python packages from the package index with uv")
        for note in conda.notes:
            _warn(warnings, say, note)
        for conda_name, pypi_name in conda.renamed:
            say(f"  conda {conda_name} is {pypi_name} on PyPI")
        if conda.skipped:
            _warn(
                warnings,
                say,
                f"{conda.file}: not installed in local mode (no PyPI package): "
                + ", ".join(conda.skipped),
            )
        outcome = await install_units(
            install, conda.units, common=conda.common, cwd=conda.cwd, env=self._env(), on_line=say
        )
        if outcome.failed:
            missing = "; ".join(f"{unit.label} ({why})" for unit, why in outcome.failed)
            _warn(warnings, say, f"{conda.file}: not installed (uv could not install): {missing}")


def _warn(warnings: list[str], say: OnLine, text: str) -> None:
    warnings.append(text)
    say(f"warning: {text}")


@contextlib.asynccontextmanager
async def _locked(lock_path: Path, say: OnLine) -> AsyncIterator[None]:
    """An exclusive file lock, polled so the event loop keeps running while another build runs."""
    with lock_path.open("a+") as handle:
        waited = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    say("waiting for another build of the same environment")
                    waited = True
                await asyncio.sleep(0.25)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
