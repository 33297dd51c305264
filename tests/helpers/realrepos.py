"""Fixture repositories shaped like real ones (Binder, devcontainer templates, libraries).

Every package they ask for is a local one: :func:`real_repo_index` writes the packages into
a file:// index (:func:`tests.helpers.pyindex.local_index`) that the hub's uv searches first
(``UV_INDEX`` in the hub's environment), and the devcontainer's ``pip3 install`` finds its
package in a folder of wheels inside the repository (``--no-index --find-links``), so
nothing here is fetched from PyPI. Only the kernel layer and setuptools (the projects' build
backend) come from the regular index or uv's cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.pyindex import local_index, write_setup_py_project
from tests.helpers.repos import make_repo, make_wheel

# msgpack stands for conda's msgpack-python (the mapping renames it) and shadows PyPI's
# msgpack, which is never asked for. jupyter_client uses msgpack when it imports, so the
# stand-in has the two functions it looks up.
FAKE_MSGPACK = """\
import json
VALUE = "local msgpack"
def packb(obj, **options):
    return json.dumps(obj).encode()
def unpackb(data, **options):
    return json.loads(data)
"""
# module -> __init__ source
INDEX_PACKAGES = {
    "msgpack": FAKE_MSGPACK,
    "cs_real_pip": "VALUE = 'pip section'\n",
    "cs_real_extra": "VALUE = 'requirements-extra'\n",
    "cs_real_dep": "VALUE = 'project dependency'\n",
    "cs_real_req": "VALUE = 'requirements.txt'\n",
}

ENVIRONMENT_YML = """\
name: binder-example
channels:
  - conda-forge
dependencies:
  - python=3.11
  - msgpack-python
  - nodejs
  - pip
  - pip:
    - cs-real-pip
    - -r requirements-extra.txt
"""


def real_repo_index(directory: Path) -> str:
    """The file:// URL of an index holding :data:`INDEX_PACKAGES`."""
    return local_index(directory, INDEX_PACKAGES)


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` (written by a project writer) as text, by relative path."""
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def conda_repo(path: Path) -> Path:
    """Binder style: environment.yml with a renamed conda package, nodejs and ``pip:``."""
    return make_repo(
        path,
        {
            "environment.yml": ENVIRONMENT_YML,
            "requirements-extra.txt": "cs-real-extra\n",
            "index.ipynb": json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5}),
        },
    )


def setup_py_repo(path: Path, scratch: Path) -> Path:
    """Binder style: a setup.py project at the root (module ``cs_setup_app``)."""
    write_setup_py_project(scratch, "cs_setup_app", "cs-real-dep", value=1)
    return make_repo(path, {**_files(scratch), "README.md": "# setup.py project\n"})


PYPROJECT_SRC = """\
[project]
name = "cs-srclib"
version = "0.1"
dependencies = ["cs-real-dep"]

[tool.setuptools.packages.find]
where = ["src"]

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
"""


def src_layout_repo(path: Path) -> Path:
    """A library: pyproject.toml ([project] dependencies), package under src/."""
    return make_repo(
        path,
        {
            "pyproject.toml": PYPROJECT_SRC,
            "src/cs_srclib/__init__.py": "from cs_real_dep import VALUE as DEP\nVALUE = 'src'\n",
            "tests/test_nothing.py": "def test_nothing():\n    pass\n",
        },
    )


DEVCONTAINER_JSON = """\
// A devcontainer in the shape of the devcontainers/templates Python one.
{
  "name": "Python 3",
  "image": "mcr.microsoft.com/devcontainers/python:1-3.11-bullseye",
  "postCreateCommand": "pip3 install --user -r requirements.txt",
  "waitFor": "postCreateCommand",
  "customizations": {
    "vscode": {"extensions": ["ms-python.python"]},
  },
}
"""


def devcontainer_repo(path: Path, scratch: Path) -> Path:
    """A devcontainer whose postCreateCommand pip-installs a package from the repo's wheels."""
    wheel = make_wheel(scratch, "cs_devc_pkg", "VALUE = 'devcontainer pip'\n")
    return make_repo(
        path,
        {
            ".devcontainer/devcontainer.json": DEVCONTAINER_JSON,
            # pip must not ask PyPI: only the repository's own folder of wheels
            "requirements.txt": "--no-index\n--find-links ./wheels\ncs-devc-pkg\n",
            "app.py": "import cs_devc_pkg\n",
        },
        extra={f"wheels/{wheel.name}": wheel.read_bytes()},
    )


def requirements_editable_repo(path: Path, scratch: Path) -> Path:
    """requirements.txt with ``-e .`` and an index package, beside a setup.py project."""
    write_setup_py_project(scratch, "cs_req_app", "cs-real-dep", value=5)
    return make_repo(path, {**_files(scratch), "requirements.txt": "-e .\ncs-real-req\n"})


def manifest_editable_repo(path: Path, scratch: Path) -> Path:
    """``python.requirements: [requirements.txt]`` whose requirements say ``-e .`` (the
    project is not ``installProject``: only the requirement file names it)."""
    write_setup_py_project(scratch, "cs_manifest_app", "cs-real-dep", value=6)
    return make_repo(
        path,
        {
            **_files(scratch),
            ".codespace/codespace.yaml": "python:\n  requirements: [requirements.txt]\n",
            "requirements.txt": "-e .\ncs-real-req\n",
        },
    )


USER_WHEEL = "vendor/cs_user_pkg-0.1.0-py3-none-any.whl"  # installed by hand, not required


def requirements_repo(path: Path, scratch: Path) -> Path:
    """The plainest repository: requirements.txt naming an index package, and a wheel that
    a user installs with pip by hand (:data:`USER_WHEEL`)."""
    wheel = make_wheel(scratch, "cs_user_pkg", "VALUE = 'mine'\n")
    return make_repo(
        path,
        {"requirements.txt": "cs-real-req\n", "README.md": "# plain\n"},
        extra={USER_WHEEL: wheel.read_bytes()},
    )
