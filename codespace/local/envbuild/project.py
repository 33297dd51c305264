"""The repository's own project (``installProject``, a ``pip: [-e .]`` entry): two halves.

An environment is built once per environment hash and shared by every codespace with that
hash, each of which has its own workspace. An editable install records one absolute path,
so the project cannot live in the shared environment. It is split:

1. :func:`install_project_dependencies` (at build time, into the shared environment): the
   project's dependencies, read from its ``pyproject.toml`` / ``setup.py`` / ``setup.cfg``
   (``uv pip install -r pyproject.toml``; uv builds the metadata when it is dynamic). The
   environment hash covers those files, so a changed dependency list builds a new one.
2. :func:`install_project` (per codespace, into that codespace's own layer): the project
   itself, editable and without dependencies, from that codespace's workspace.

A project that fails to build never fails the environment: both return a warning with uv's
last lines, and everything else stays installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from codespace.streaming import stream

OnLine = Callable[[str], None]
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")


@dataclass(frozen=True)
class ProjectInstall:
    """The result of linking one project: ``warning`` (with uv's last lines) when it failed."""

    project: Path
    ok: bool
    warning: str | None = None


def project_file(project_dir: Path) -> Path | None:
    """The file that declares the project's dependencies, or None when there is no project."""
    for name in PROJECT_FILES:
        if (project_dir / name).is_file():
            return project_dir / name
    return None


def describe(path: str) -> str:
    return "the repository's project" if path in ("", ".") else f"the project in {path}/"


async def install_project_dependencies(
    install: Sequence[str],
    root: Path,
    path: str,
    extras: Sequence[str] = (),
    *,
    env: Mapping[str, str],
    on_line: OnLine,
) -> str | None:
    """Install the dependencies of the project at ``root/path`` (not the project); a warning
    when they cannot be installed, else None. ``install`` is ``uv pip install --python ...``
    for the shared environment."""
    directory = (root / path).resolve()
    declared = project_file(directory)
    if declared is None:
        return f"{describe(path)}: no pyproject.toml, setup.py or setup.cfg; not installed"
    argv = [*install, "-r", str(declared)]
    for extra in extras:
        argv += ["--extra", extra]
    on_line(f"{describe(path)}: uv pip install -r {declared.name} (its dependencies)")
    finished = await stream(argv, cwd=directory, env=env, on_line=on_line)
    if finished.ok:
        return None
    return (
        f"{describe(path)}: its dependencies could not be installed "
        f"(the rest of the environment is):\n{finished.tail_text()}"
    )


async def install_project(
    env_python: Path,
    project_dir: Path,
    *,
    uv: str,
    env: Mapping[str, str] | None = None,
    on_line: OnLine | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> ProjectInstall:
    """Install the project in ``project_dir`` editable, WITHOUT dependencies, into the
    environment whose interpreter is ``env_python``.

    Contract:

    - ``project_dir`` is a directory of the codespace's own workspace (``workspace / path``
      for each path of :attr:`BuiltEnv.projects <codespace.local.envbuild.uv.BuiltEnv>`);
    - ``env_python`` is the interpreter of a per-codespace environment (a layer venv whose
      site-packages comes first and which sees the shared environment through a ``.pth``
      file), never the shared environment's: the editable link names ``project_dir``, and
      the shared environment serves every workspace with the same environment hash;
    - the dependencies are already in the shared environment (the builder installed them
      with :func:`install_project_dependencies`), so nothing else is resolved or downloaded
      except the project's build backend (uv's cache keeps it after the first time);
    - safe to call at every start: it re-links the same directory;
    - never raises for a project that does not build: the result says ``ok=False`` and its
      ``warning`` ends with uv's last lines (show it; the codespace still starts).

    ``uv`` is the uv executable and ``env`` its environment (the builder's, with its cache);
    ``wrap`` wraps the command line (to run it as the codespace's account, confined).
    """
    say = on_line or (lambda _line: None)
    if project_file(project_dir) is None:
        warning = f"{project_dir}: no pyproject.toml, setup.py or setup.cfg; project not installed"
        return ProjectInstall(project_dir, False, warning)
    argv = [uv, "pip", "install", "--python", str(env_python), "--no-deps", "-e", str(project_dir)]
    say(f"uv pip install --no-deps -e {project_dir}")
    finished = await stream(wrap(argv) if wrap else argv, cwd=project_dir, env=env, on_line=say)
    if finished.ok:
        return ProjectInstall(project_dir, True)
    warning = (
        f"{project_dir}: the project could not be installed (editable); its dependencies "
        f"are installed:\n{finished.tail_text()}"
    )
    return ProjectInstall(project_dir, False, warning)
