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

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from codespace.datasets.attach import AttachResult, LocalDatasetSettings, attach_datasets
from codespace.datasets.mounts import DATASETS_ENV, PendingMounts
from codespace.errors_file import env_problem, errors_markdown, spec_problem
from codespace.git import (
    CODESPACE_FILES,
    Checkout,
    checkout,
    origin_url,
    switch_ref,
    with_excludes,
)
from codespace.launch import LaunchPlan, Placement, make_launch_plan, with_user_options
from codespace.lifecycle import LifecycleError, Step, due_steps, split_for_wait
from codespace.lifecycle_runner import job_text, parse_result, runner_argv
from codespace.lifecycle_status import ERRORS_FILE
from codespace.local.envbuild import BuiltEnv, EnvBuildError, UvEnvBuilder, write_kernelspec
from codespace.local.envbuild.overlay import Layer, ensure_layer, layer_env
from codespace.local.envbuild.progress import BuildProgress
from codespace.local.envbuild.uv import BuildAs
from codespace.local.isolation import Isolation
from codespace.options import UserOptions
from codespace.resolve import DEFAULT_SOURCE, Resolution, default_resolution, resolve
from codespace.spec.errors import SpecError
from codespace.spec.model import Codespace
from codespace.streaming import stream

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"  # when the hub has no PATH

LAYER_DIR = "env"  # the codespace's own layer, in its server directory
PROJECTS_FILE = "codespace-projects.json"  # projects linked into the layer


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

    plan: LaunchPlan
    checkout: Checkout
    spec: Codespace
    env: BuiltEnv
    source: str
    recovery: bool
    problems: list[str] = field(default_factory=list)  # markdown sections
    warnings: list[str] = field(default_factory=list)
    lifecycle: list[Step] = field(default_factory=list)  # waited-for commands that ran
    background: list[Step] = field(default_factory=list)  # commands after ``waitFor``
    lifecycle_env: dict[str, str] = field(default_factory=dict)
    server_env: dict[str, str] = field(default_factory=dict)
    datasets: AttachResult = field(default_factory=AttachResult)
    layer: Layer | None = None

    @property
    def errors_file(self) -> Path:
        return self.checkout.path / ERRORS_FILE


def repo_name(repo: str) -> str:
    """A repository's short name, for the kernel: ``https://h/org/proj.git`` -> ``proj``."""
    name = repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return name.removesuffix(".git") or repo


def local_placement(paths: LocalPaths) -> Placement:
    """The local mode's placement: the checkout, and the codespace's own layer."""
    return Placement("local", str(paths.workspace), str(paths.server_dir / LAYER_DIR))


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
    lifecycle_timeout: float | None = None,
    isolation: Isolation | None = None,
    confine: Callable[[Codespace, BuiltEnv], None] | None = None,
    build_as: Callable[[], BuildAs | None] | None = None,
    sources: Sequence[str] | None = None,
    clone_env: Mapping[str, str] | None = None,
) -> Prepared:
    """Run the local start pipeline for ``options``; raise only when the fetch fails.

    ``check_spec`` sees the resolved spec before the environment is built; what it raises
    ends the start there (the spawner claims the spec's GPU with it, so a request that cannot
    be met fails in seconds, not after a build). The lifecycle commands up to ``waitFor``
    run here, each within ``lifecycle_timeout`` seconds; the later ones are returned in
    :attr:`Prepared.background` for the spawner to run beside the server.

    With an ``isolation`` (:mod:`codespace.local.isolation`) git, the project's editable
    install and the lifecycle commands run as the codespace's account; ``confine`` is
    called once the environment is known, to set up the codespace's sandbox; ``build_as``
    gives the account that builds an environment that is not in the cache yet; ``sources``
    the spec sources in precedence order (default: :data:`codespace.sources.DEFAULT_SOURCES`);
    ``clone_env`` goes to the clone only (the user's Git host token, :mod:`codespace.gitauth`).
    """
    iso = isolation or Isolation()
    done = await _fetch(options, paths, report, iso, clone_env)
    resolution, recovery, problems, warnings = _resolve(options, paths, report, sources)
    resolution = with_user_options(resolution, options)  # a GPU the options ask for
    report.line(f"environment: hash {resolution.env_hash}")
    if check_spec is not None:
        check_spec(resolution.codespace)
    who = build_as() if build_as is not None else None
    env, resolution, recovery = await _environment(
        builder, paths, resolution, recovery, problems, report, who
    )
    warnings += env.warnings
    pending = PendingMounts(datasets.state_dir).names() if datasets is not None else []
    plan = make_launch_plan(
        resolution,
        options,
        local_placement(paths),
        pending=pending,
        recovery=recovery,
        problems=problems,
        python_version=env.python_version,
    )
    spec = plan.spec
    if confine is not None:
        confine(spec, env)
    layer = await _layer(builder, env, paths, warnings, report, iso)
    display = f"{repo_name(options.repo)} (Python {env.python_version})"
    base_path = base_env.get("PATH", DEFAULT_PATH)
    variables = layer_env(layer, base_path)
    write_kernelspec(
        layer.path, paths.jupyter_data, display, base_path=base_path, variables=variables
    )
    attached = await _attach(plan, paths, datasets, problems, report, iso)
    server_env = _server_env(plan, base_env, env, attached)
    lifecycle_env = {**base_env, **server_env}
    ran, background = await _start_commands(
        plan, paths, lifecycle_env, lifecycle_timeout, problems, report, iso
    )
    prepared = Prepared(
        plan=plan,
        checkout=done,
        spec=spec,
        env=env,
        source=resolution.source,
        recovery=recovery,
        problems=problems,
        warnings=warnings,
        lifecycle=ran,
        background=background,
        lifecycle_env=lifecycle_env,
        server_env=server_env,
        datasets=attached,
        layer=layer,
    )
    write_errors_file(prepared, iso)
    dataset_links = ["/datasets/"] if attached.attached else []
    exclude_from_git(paths.workspace, [*CODESPACE_FILES, *dataset_links], iso)
    return prepared


async def _start_commands(
    plan: LaunchPlan,
    paths: LocalPaths,
    env: Mapping[str, str],
    timeout: float | None,
    problems: list[str],
    report: Reporter,
    iso: Isolation,
) -> tuple[list[Step], list[Step]]:
    """Run the due lifecycle commands up to ``waitFor``; what ran, and what runs beside the
    server (nothing when a waited-for command failed)."""
    runtime = plan.runtime()
    due = due_steps(runtime.steps, paths.workspace)
    waited, background = split_for_wait(due, runtime.wait_for)
    ran = await _lifecycle(waited, paths, env, timeout, problems, report, iso)
    if len(ran) < len(waited):
        return ran, []  # a waited-for command failed: the later ones do not run
    if background:
        names = ", ".join(step.name for step in background)
        report.line(f"lifecycle: {names} will run in the background (.codespace-logs/)")
    return ran, background


async def _fetch(
    options: UserOptions,
    paths: LocalPaths,
    report: Reporter,
    iso: Isolation,
    clone_env: Mapping[str, str] | None = None,
) -> Checkout:
    timer = _Timer()
    where = f"{options.repo}" + (f" at {options.ref}" if options.ref else "")
    report.step(5, f"fetch: {where}")
    done = await checkout(
        options.repo,
        options.ref,
        paths.workspace,
        on_line=report.line,
        isolation=iso,
        clone_env=clone_env,
    )
    if done.cloned:
        report.step(20, f"fetch: checked out {done.commit[:12]} ({timer})")
    else:
        report.step(20, f"fetch: workspace kept as you left it, at {done.commit[:12]} ({timer})")
        origin = await origin_url(paths.workspace, iso)
        if origin and origin.rstrip("/") != options.repo.rstrip("/"):
            report.line(f"note: this workspace was cloned from {origin}; it is kept as it is")
        elif _requested_ref(paths) not in (None, options.ref or ""):  # the options' ref changed
            moved = await switch_ref(
                paths.workspace,
                options.ref,
                options.repo,
                on_line=report.line,
                isolation=iso,
                clone_env=clone_env,
            )
            report.line(f"fetch: the ref asked for changed: the workspace is {moved}")
    _record_ref(paths, options.ref or "")
    return done


# The ref the options asked for at the last start (in the server's directory, the hub's):
# a start that asks for another one moves a clean workspace there (git.switch_ref).
REQUESTED_REF = "requested-ref"


def _requested_ref(paths: LocalPaths) -> str | None:
    try:
        return (paths.server_dir / REQUESTED_REF).read_text()
    except OSError:
        return None


def _record_ref(paths: LocalPaths, ref: str) -> None:
    paths.server_dir.mkdir(parents=True, exist_ok=True)
    (paths.server_dir / REQUESTED_REF).write_text(ref)


def _resolve(
    options: UserOptions, paths: LocalPaths, report: Reporter, sources: Sequence[str] | None
) -> tuple[Resolution, bool, list[str], list[str]]:
    """``(resolution, recovery, problems, warnings)``: a spec error gives the default."""
    timer = _Timer()
    problems: list[str] = []
    report.step(25, "resolve: reading the repository's configuration")
    try:
        resolution = resolve(paths.workspace, config=options.config, mode="local", sources=sources)
        recovery = False
    except SpecError as error:
        problems.append(spec_problem(error))
        count = len(error.diagnostics)
        report.step(28, f"resolve: the configuration has {count} error(s):")
        for diagnostic in error.diagnostics:  # each one on the page: file:line: message
            report.step(28, f"error: {diagnostic}")
        resolution = default_resolution(paths.workspace)
        recovery = True
    warnings = [str(warning) for warning in resolution.warnings]
    for warning in warnings:
        report.line(f"warning: {warning}")
    report.step(30, f"resolve: {_describe_source(resolution, recovery)} ({timer})")
    return resolution, recovery, problems, warnings


def _describe_source(resolution: Resolution, recovery: bool) -> str:
    if recovery:
        return "starting a recovery codespace: the platform default, errors in CODESPACE_ERRORS.md"
    if resolution.source == DEFAULT_SOURCE:
        return "no configuration in the repository: the platform default"
    return f"{resolution.source} ({resolution.source_kind})"


async def _environment(
    builder: UvEnvBuilder,
    paths: LocalPaths,
    resolution: Resolution,
    recovery: bool,
    problems: list[str],
    report: Reporter,
    who: BuildAs | None,
) -> tuple[BuiltEnv, Resolution, bool]:
    """Build (or find) the environment; a failed build falls back to the default one."""
    timer = _Timer()
    spec = resolution.codespace
    report.step(35, "environment: looking up the environment cache")
    progress = BuildProgress(report)  # uv's milestones move the percentage
    try:
        env = await builder.build(
            paths.workspace, spec, resolution.env_hash, on_line=progress.line, build_as=who
        )
    except EnvBuildError as error:
        progress.flush()
        problems.append(env_problem(str(error)))
        report.line("error: the environment build failed; starting on the default environment")
        resolution, recovery = default_resolution(paths.workspace), True
        env = await builder.build(
            paths.workspace,
            resolution.codespace,
            resolution.env_hash,
            on_line=progress.line,
            build_as=who,
        )
    progress.flush()
    how = "cache hit" if env.cache_hit else "built"
    report.step(70, f"environment: {how}, Python {env.python_version} ({timer})")
    return env, resolution, recovery


async def _layer(
    builder: UvEnvBuilder,
    env: BuiltEnv,
    paths: LocalPaths,
    warnings: list[str],
    report: Reporter,
    iso: Isolation,
) -> Layer:
    """The codespace's own layer over the shared environment, with the repository's project
    linked from this workspace (see :mod:`codespace.local.envbuild.overlay`); the account's."""
    layer = await asyncio.to_thread(ensure_layer, env.path, paths.server_dir / LAYER_DIR)
    await asyncio.to_thread(iso.hand_over, layer.path)
    if layer.reset:
        warning = (
            "the environment was rebuilt, so packages installed with pip in this codespace "
            f"were reset: {', '.join(layer.reset)}; install them again or add them to the "
            "repository's requirements"
        )
        warnings.append(warning)
        report.line(f"warning: {warning}")
    linked = layer.path / PROJECTS_FILE
    wanted = json.dumps([str(paths.workspace / project) for project in env.projects])
    if env.projects and (not linked.exists() or linked.read_text() != wanted):
        report.step(71, "environment: installing the repository's project (editable)")
        failed = await builder.install_projects(
            env,
            paths.workspace,
            layer.python,
            on_line=report.line,
            wrap=iso.confined if iso.active else None,
            home=iso.account.home if iso.account else None,
        )
        warnings += failed
        for warning in failed:
            report.line(f"warning: {warning}")
        if not failed:
            iso.write_file(linked, wanted)
    return layer


async def _lifecycle(
    steps: list[Step],
    paths: LocalPaths,
    env: Mapping[str, str],
    timeout: float | None,
    problems: list[str],
    report: Reporter,
    iso: Isolation,
) -> list[Step]:
    """Run the waited-for commands (in the runner, confined); return those that succeeded."""
    if not steps:
        return []
    timer = _Timer()
    report.step(75, "lifecycle: running the repository's commands")
    names = {f"--- {step.name}": step for step in steps}
    started: list[Step] = []
    results: list[LifecycleError | bool] = []

    def line(text: str) -> None:
        result = parse_result(text)
        if result is not None:
            results.append(result)
        elif text in names:
            started.append(names[text])
            report.step(80, f"lifecycle: {names[text].name}")
        else:
            report.line(text)

    job = job_text(paths.workspace, dict(env), steps, timeout).encode()
    finished = await stream(
        iso.confined(runner_argv()),
        cwd=paths.workspace,
        env=env,
        on_line=line,
        input=job,
        grace=0.5,  # a stopped start: the runner marks the command stopped, ends its group
    )
    ran = list(started)
    if not results:
        problems.append(_runner_problem(finished.tail_text()))
        report.line("error: the lifecycle commands could not be run; see CODESPACE_ERRORS.md")
        ran = []
    elif isinstance(results[-1], LifecycleError):
        error = results[-1]
        ran = started[:-1]
        problems.append(error.markdown())
        report.line(f"error: {error}; later commands did not run")
    done = ", ".join(step.name for step in ran) or "none succeeded"
    report.step(90, f"lifecycle: {done} ({timer})")
    return ran


def write_errors_file(prepared: Prepared, iso: Isolation | None = None) -> None:
    """Write (or remove, when all is well) ``CODESPACE_ERRORS.md`` in the workspace."""
    iso = iso or Isolation()
    text = errors_markdown(prepared.problems, prepared.warnings, prepared.recovery)
    if text is None:
        iso.remove_file(prepared.errors_file)
    else:
        iso.write_file(prepared.errors_file, text)


def _server_env(
    plan: LaunchPlan, base_env: Mapping[str, str], env: BuiltEnv, attached: AttachResult
) -> dict[str, str]:
    """The plan's variables over the host's, the shared environment after the layer on PATH;
    CODESPACE_DATASETS lists the datasets that were mounted."""
    base_path = base_env.get("PATH", DEFAULT_PATH)
    outer = {**base_env, "PATH": f"{env.path / 'bin'}:{base_path}"}
    server_env = {
        key: value for key, value in plan.server_env(outer).items() if key != DATASETS_ENV
    }
    server_env.update(attached.env())
    return server_env


async def _attach(
    plan: LaunchPlan,
    paths: LocalPaths,
    settings: LocalDatasetSettings | None,
    problems: list[str],
    report: Reporter,
    iso: Isolation,
) -> AttachResult:
    """Mount the plan's datasets (the spec's, the form's and the pending ones; see
    codespace.datasets.attach); the links are made as the codespace's account. What could
    not be mounted is added to ``problems``."""
    if settings is None or not plan.datasets:
        return AttachResult()
    timer = _Timer()
    result = await attach_datasets(
        list(plan.datasets),
        settings,
        paths.workspace,
        on_step=lambda message: report.step(72, message),
        on_line=report.line,
        make_link=iso.make_link if iso.active else None,
    )
    names = ", ".join(a.name for a in result.attached) or "none"
    failed = f"; {len(result.problems)} not mounted" if result.problems else ""
    report.step(74, f"datasets: mounted {names}{failed} ({timer})")
    if result.problems:
        problems.append(_datasets_problem(result.problems, settings.catalog))
    return result


def exclude_from_git(workspace: Path, patterns: Sequence[str], iso: Isolation) -> None:
    """Keep what the codespace writes out of the repository's changes (as the account)."""
    exclude = workspace / ".git" / "info" / "exclude"
    if not exclude.parent.parent.is_dir():
        return
    try:
        text = exclude.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    updated = with_excludes(text, patterns)
    if updated is not None:
        iso.write_file(exclude, updated)


def _datasets_problem(problems: list[str], catalog: Path | None) -> str:
    where = f"The hub's dataset catalog is `{catalog}`." if catalog else "The hub has no catalog."
    lines = "\n".join(f"- {problem}" for problem in problems)
    return (
        "## Some datasets are not mounted\n\n"
        f"{lines}\n\n{where} Pick datasets it lists in the spawn form, or fix the names in "
        "the repository's `datasets:`.\n"
    )


def _runner_problem(tail: str) -> str:
    return (
        "## The lifecycle commands could not be run\n\nThe runner that runs them as this "
        f"codespace's account stopped before it reported a result:\n\n```\n{tail}\n```\n"
    )
