"""Prepare a local codespace: fetch, resolve, build the environment, run lifecycle commands.

This is the whole local start pipeline without JupyterHub: the spawner calls
:func:`prepare` and turns the :class:`Prepared` result into a server command line, and tests
call it directly. Progress goes to a :class:`Reporter`.

Recovery, never lockout: a spec error or a failed environment build continues on the platform
default environment with the repository checked out, and a failing lifecycle command or a
dataset that cannot be mounted still starts the server; each problem is written to
``CODESPACE_ERRORS.md`` in the workspace (opened when the lab starts) with how to retry.
Only a failed fetch stops a start (there is nothing to open without a checkout); its message
says what git said.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from codespace.datasets.attach import AttachResult, LocalDatasetSettings, attach_datasets
from codespace.datasets.mounts import PendingMounts, plan_mounts
from codespace.envbuild import BuiltEnv, EnvBuildError, UvEnvBuilder, env_vars, write_kernelspec
from codespace.git import Checkout, checkout, origin_url
from codespace.lifecycle import LifecycleError, Step, run_lifecycle
from codespace.options import UserOptions
from codespace.resolve import default_resolution, resolve
from codespace.spec.errors import SpecError
from codespace.spec.model import Codespace

ERRORS_FILE = "CODESPACE_ERRORS.md"


class Reporter(Protocol):
    """Where progress goes: ``step`` starts a step at a percentage, ``line`` streams output."""

    def step(self, progress: int, message: str) -> None: ...

    def line(self, text: str) -> None: ...


@dataclass(frozen=True)
class LocalPaths:
    """Where one named server's files live."""

    workspace: Path  # the repository checkout; the Jupyter root and VS Code's folder
    server_dir: Path  # per-server state: kernelspec data dir, VS Code user data, logs

    @property
    def jupyter_data(self) -> Path:
        return self.server_dir / "jupyter-data"


@dataclass
class Prepared:
    """Everything the spawner needs to start the server."""

    checkout: Checkout
    spec: Codespace
    env: BuiltEnv
    source: str
    recovery: bool
    problems: list[str] = field(default_factory=list)  # markdown sections
    warnings: list[str] = field(default_factory=list)
    lifecycle: list[Step] = field(default_factory=list)
    server_env: dict[str, str] = field(default_factory=dict)
    datasets: AttachResult = field(default_factory=AttachResult)

    @property
    def errors_file(self) -> Path:
        return self.checkout.path / ERRORS_FILE


class _Timer:
    def __init__(self) -> None:
        self.started = time.monotonic()

    def __str__(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"


async def prepare(
    options: UserOptions,
    paths: LocalPaths,
    builder: UvEnvBuilder,
    report: Reporter,
    *,
    base_env: Mapping[str, str],
    datasets: LocalDatasetSettings | None = None,
    check_spec: Callable[[Codespace], None] | None = None,
) -> Prepared:
    """Run the local start pipeline for ``options``; raise only when the fetch fails.

    ``check_spec`` sees the resolved spec before the environment is built; what it raises
    ends the start there (the spawner claims the spec's GPU with it, so a request that cannot
    be met fails in seconds, not after a build).
    """
    timer = _Timer()
    where = f"{options.repo}" + (f" at {options.ref}" if options.ref else "")
    report.step(5, f"fetch: {where}")
    done = await checkout(options.repo, options.ref, paths.workspace, on_line=report.line)
    if done.cloned:
        report.step(20, f"fetch: checked out {done.commit[:12]} ({timer})")
    else:
        report.step(20, f"fetch: workspace kept as you left it, at {done.commit[:12]} ({timer})")
        origin = await origin_url(paths.workspace)
        if origin and origin.rstrip("/") != options.repo.rstrip("/"):
            report.line(f"note: this workspace was cloned from {origin}; it is kept as it is")

    problems: list[str] = []
    timer = _Timer()
    report.step(25, "resolve: reading the repository's configuration")
    try:
        resolution = resolve(paths.workspace, config=options.config, mode="local")
        recovery = False
    except SpecError as error:
        problems.append(_spec_problem(error))
        report.line("error: the configuration has errors; starting a recovery codespace")
        for diagnostic in error.diagnostics:
            report.line(f"  {diagnostic}")
        resolution = default_resolution(paths.workspace)
        recovery = True
    warnings = [str(warning) for warning in resolution.warnings]
    for warning in warnings:
        report.line(f"warning: {warning}")
    spec = resolution.codespace
    if spec.apt:
        apt_warning = (
            f"apt packages are not installed in local mode: {', '.join(spec.apt)} "
            "(they are part of the image in Kubernetes mode)"
        )
        warnings.append(apt_warning)
        report.line(f"warning: {apt_warning}")
    report.step(30, f"resolve: {resolution.source} ({resolution.source_kind}) ({timer})")
    if check_spec is not None:
        check_spec(spec)

    timer = _Timer()
    report.step(35, "environment: looking up the environment cache")
    try:
        env = await builder.build(paths.workspace, spec, resolution.env_hash, on_line=report.line)
    except EnvBuildError as error:
        problems.append(_env_problem(error))
        report.line("error: the environment build failed; starting on the default environment")
        resolution = default_resolution(paths.workspace)
        spec = resolution.codespace
        recovery = True
        env = await builder.build(paths.workspace, spec, resolution.env_hash, on_line=report.line)
    warnings += env.warnings
    how = "cache hit" if env.cache_hit else "built"
    report.step(70, f"environment: {how}, Python {env.python_version} ({timer})")

    version = env.python_version
    display = f"Python {version} ({paths.workspace.name})"
    base_path = base_env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    write_kernelspec(env.path, paths.jupyter_data, display, base_path=base_path)
    attached = AttachResult()
    if datasets is not None:
        attached = await _attach(spec, options, paths, datasets, report)
        if attached.problems:
            problems.append(_datasets_problem(attached.problems, datasets.catalog))
    server_env = {**spec.containerEnv, **env_vars(env.path, base_path), **attached.env()}
    lifecycle_env = {**base_env, **server_env, "CODESPACE_WORKSPACE": str(paths.workspace)}

    timer = _Timer()
    ran: list[Step] = []
    if spec.lifecycle():
        report.step(75, "lifecycle: running the repository's commands")
        try:
            ran = await run_lifecycle(
                spec,
                paths.workspace,
                env=lifecycle_env,
                on_line=report.line,
                on_step=lambda step: report.step(80, f"lifecycle: {step.name}"),
            )
        except LifecycleError as error:
            problems.append(_lifecycle_problem(error))
            report.line(f"error: {error}; later commands did not run")
        names = ", ".join(step.name for step in ran) or "nothing due on this start"
        report.step(90, f"lifecycle: {names} ({timer})")

    prepared = Prepared(
        checkout=done,
        spec=spec,
        env=env,
        source=resolution.source,
        recovery=recovery,
        problems=problems,
        warnings=warnings,
        lifecycle=ran,
        server_env=server_env,
        datasets=attached,
    )
    write_errors_file(prepared)
    return prepared


def write_errors_file(prepared: Prepared) -> None:
    """Write (or remove, when all is well) ``CODESPACE_ERRORS.md`` in the workspace."""
    path = prepared.errors_file
    if not prepared.problems:
        path.unlink(missing_ok=True)
        return
    title = "is a recovery codespace" if prepared.recovery else "started with problems"
    parts = [
        f"# This codespace {title}\n",
        "Something in the repository's configuration went wrong. Your repository is checked "
        "out here and you can work on it"
        + (" in the platform's default environment." if prepared.recovery else "."),
        "",
        *prepared.problems,
        "## How to retry\n",
        "1. Fix the files named above, here in the workspace (or pull a fixed commit in a "
        "terminal: `git pull`).",
        "2. Stop and start this server: *File > Hub Control Panel*, **Stop**, then **Start**.",
        "   The configuration is read again and the environment is rebuilt if its files changed.",
        "",
        "`codespace validate` in a terminal checks the configuration without restarting.",
        "",
    ]
    if prepared.warnings:
        parts += ["## Warnings\n", *(f"- {warning}" for warning in prepared.warnings), ""]
    path.write_text("\n".join(parts), encoding="utf-8")


async def _attach(
    spec: Codespace,
    options: UserOptions,
    paths: LocalPaths,
    settings: LocalDatasetSettings,
    report: Reporter,
) -> AttachResult:
    """Mount the spec's, the form's and the pending datasets (see codespace.datasets.attach)."""
    mounts = plan_mounts(spec, options.datasets, PendingMounts(settings.state_dir).names())
    if not mounts:
        return AttachResult()
    timer = _Timer()
    result = await attach_datasets(
        mounts,
        settings,
        paths.workspace,
        on_step=lambda message: report.step(72, message),
        on_line=report.line,
    )
    names = ", ".join(a.name for a in result.attached) or "none"
    failed = f"; {len(result.problems)} not mounted" if result.problems else ""
    report.step(74, f"datasets: mounted {names}{failed} ({timer})")
    return result


def _datasets_problem(problems: list[str], catalog: Path | None) -> str:
    where = f"The hub's dataset catalog is `{catalog}`." if catalog else "The hub has no catalog."
    lines = "\n".join(f"- {problem}" for problem in problems)
    return (
        "## Some datasets are not mounted\n\n"
        f"{lines}\n\n{where} Pick datasets it lists in the spawn form, or fix the names in "
        "the repository's `datasets:`.\n"
    )


def _spec_problem(error: SpecError) -> str:
    lines = "\n".join(f"    {diagnostic}" for diagnostic in error.diagnostics)
    return f"## The configuration has errors\n\n{lines}\n"


def _env_problem(error: EnvBuildError) -> str:
    return f"## The environment could not be built\n\n```\n{error}\n```\n"


def _lifecycle_problem(error: LifecycleError) -> str:
    return (
        f"## `{error.name}` failed\n\n`{error.label}` exited with status {error.returncode}; "
        "the commands after it did not run. The full output is in "
        "`.codespace-logs/lifecycle.log`.\n\n"
        f"```\n{error.tail}\n```\n"
    )
