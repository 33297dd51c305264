"""A local package index for tests: uv finds fixture packages without asking PyPI for them.

``local_index(dir, {"msgpack": "VALUE = 1\\n"})`` writes one wheel per module (made by
:func:`tests.helpers.repos.make_wheel`) into a PEP 503 "simple" directory tree and returns its
``file://`` URL. Given to uv as ``UV_INDEX``, it is searched before PyPI, and uv's default
first-index strategy never asks PyPI for a package it holds, so ``msgpack==0.1.0`` resolves
offline while the kernel layer still comes from the regular index (or uv's cache).

``write_setup_py_project`` and ``write_pyproject_project`` write small projects (setuptools,
one module, one dependency) for the ``installProject`` tests.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from tests.helpers.repos import make_wheel


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def local_index(directory: Path, modules: Mapping[str, str], version: str = "0.1.0") -> str:
    """A simple index with one wheel per ``module -> __init__ source``; its file:// URL."""
    wheels = directory / "wheels"
    projects: dict[str, list[Path]] = {}
    for module, source in modules.items():
        wheel = make_wheel(wheels, module, source, version)
        projects.setdefault(_normalise(module), []).append(wheel)
    simple = directory / "simple"
    for project, files in projects.items():
        target = simple / project
        target.mkdir(parents=True, exist_ok=True)
        links = []
        for wheel in files:
            shutil.copy2(wheel, target / wheel.name)
            name = html.escape(wheel.name)
            links.append(f'<a href="{name}">{name}</a>')
        (target / "index.html").write_text(f"<html><body>{''.join(links)}</body></html>\n")
    listing = "".join(f'<a href="{p}/">{p}</a>' for p in sorted(projects))
    (simple / "index.html").write_text(f"<html><body>{listing}</body></html>\n")
    return simple.resolve().as_uri()


def write_setup_py_project(root: Path, name: str, dependency: str, value: int = 1) -> None:
    """A setup.py project: module ``name`` (``VALUE = value``) that needs ``dependency``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "setup.py").write_text(
        "from setuptools import setup\n"
        f"setup(name={name!r}, version='0.1', py_modules=[{name!r}],"
        f" install_requires=[{dependency!r}])\n"
    )
    (root / f"{name}.py").write_text(f"VALUE = {value}\n")


def write_pyproject_project(root: Path, name: str, dependency: str, value: int = 1) -> None:
    """A pyproject.toml project ([project] table, setuptools) like the setup.py one."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        "[project]\n"
        f'name = "{name}"\nversion = "0.1"\ndependencies = ["{dependency}"]\n\n'
        "[tool.setuptools]\n"
        f'py-modules = ["{name}"]\n\n'
        "[build-system]\n"
        'requires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
    )
    (root / f"{name}.py").write_text(f"VALUE = {value}\n")
