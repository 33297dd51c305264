"""Local builds of environment.yml and of the repository's own project, with real uv.

Fixture packages come from a local index (tests/helpers/pyindex.py) searched before PyPI,
so uv never asks PyPI for them; only the kernel layer and setuptools (the fixture
projects' build backend) come from the regular index or uv's cache, as in
test_local_envbuild.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from codespace.local.envbuild import UvEnvBuilder, find_uv, install_project
from codespace.local.envbuild.install import Unit, install_units
from codespace.resolve import resolve
from tests.helpers.pyindex import local_index, write_pyproject_project, write_setup_py_project
from tests.helpers.repos import make_wheel

ENVIRONMENT = """\
name: demo
channels: [conda-forge]
dependencies:
  - python=3.11
  - msgpack-python=0.1          # PyPI's msgpack (the mapping knows)
  - conda-forge::cs-conda-same>=0.1
  - cs-old=9.9                  # the index only has 0.1.0
  - nodejs=20                   # not a Python package
  - r-base
  - pip:
    - -r requirements-pip.txt
    - ./vendor/cs_pip_local-0.1.0-py3-none-any.whl
    - -e .
"""


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> UvEnvBuilder:
    index = local_index(
        tmp_path_factory.mktemp("index"),
        {
            "msgpack": "VALUE = 'local msgpack'\n",
            "cs_conda_same": "VALUE = 'same'\n",
            "cs_pip_req": "VALUE = 'from -r'\n",
            "cs_dep_a": "VALUE = 'dependency'\n",
            "cs_old": "VALUE = 'old'\n",
        },
    )
    return UvEnvBuilder(tmp_path_factory.mktemp("env-cache"), extra_env={"UV_INDEX": index})


def run(python: Path, code: str) -> subprocess.CompletedProcess[str]:
    # from / so that the repository directory itself is not on sys.path
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd="/")


def make_layer(shared: Path, path: Path) -> Path:
    """A per-codespace venv that sees the shared environment through a .pth file."""
    subprocess.run(
        [find_uv(), "venv", "--quiet", "--python", str(shared / "bin" / "python"), str(path)],
        check=True,
    )
    site = next((path / "lib").glob("python3*/site-packages"))
    shared_site = next((shared / "lib").glob("python3*/site-packages"))
    (site / "shared-env.pth").write_text(f"{shared_site}\n")
    return path / "bin" / "python"


def conda_repo(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "environment.yml").write_text(ENVIRONMENT)
    (root / "requirements-pip.txt").write_text("cs-pip-req\n")
    make_wheel(root / "vendor", "cs_pip_local", "VALUE = 'local wheel'\n")
    write_pyproject_project(root, "cs_conda_project", "cs-dep-a", value=7)
    return root


async def test_environment_yml_installs_what_pypi_has_and_names_the_rest(
    builder: UvEnvBuilder, tmp_path: Path
) -> None:
    repo = conda_repo(tmp_path / "repo")
    resolution = resolve(repo)
    assert resolution.codespace.python.environmentFile == "environment.yml"
    lines: list[str] = []
    built = await builder.build(
        repo, resolution.codespace, resolution.env_hash, on_line=lines.append
    )
    assert built.python_version.startswith("3.11")
    probe = run(
        built.python,
        "import msgpack, cs_conda_same, cs_pip_req, cs_pip_local, cs_dep_a;"
        "print(msgpack.VALUE, cs_pip_req.VALUE, cs_pip_local.VALUE, sep='|')",
    )
    assert probe.stdout.strip() == "local msgpack|from -r|local wheel", probe.stderr
    assert run(built.python, "import cs_old").returncode != 0
    assert any("conda msgpack-python is msgpack on PyPI" in line for line in lines)
    assert (
        "environment.yml: not installed in local mode (no PyPI package): nodejs=20, r-base"
        in built.warnings
    )
    missing = [w for w in built.warnings if "uv could not install" in w]
    assert len(missing) == 1 and "cs-old=9.9" in missing[0] and "cs-conda" not in missing[0]
    # -e . is linked per codespace, its dependencies are in the shared environment
    assert built.projects == ["."]
    assert run(built.python, "import cs_conda_project").returncode != 0
    again = await builder.build(repo, resolution.codespace, resolution.env_hash)
    assert again.cache_hit and again.warnings == built.warnings and again.projects == ["."]


@pytest.mark.parametrize("writer", [write_setup_py_project, write_pyproject_project])
async def test_the_project_is_linked_from_each_workspace(
    builder: UvEnvBuilder, tmp_path: Path, writer
) -> None:
    name = f"cs_{writer.__name__.split('_')[1]}_project"  # cs_setup_project / cs_pyproject_...
    workspaces = [tmp_path / "alice", tmp_path / "bob"]
    for value, workspace in enumerate(workspaces, start=1):
        writer(workspace, name, "cs-dep-a", value=value)
    resolution = resolve(workspaces[0])
    assert resolution.codespace.python.installProject
    assert resolve(workspaces[1]).env_hash == resolution.env_hash  # one shared environment
    built = await builder.build(workspaces[0], resolution.codespace, resolution.env_hash)
    assert built.projects == ["."] and built.warnings == []
    assert run(built.python, "import cs_dep_a").returncode == 0
    assert run(built.python, f"import {name}").returncode != 0, "shared env has no project"
    for value, workspace in enumerate(workspaces, start=1):
        layer = make_layer(built.path, tmp_path / f"layer-{workspace.name}")
        assert await builder.install_projects(built, workspace, layer) == []
        probe = run(layer, f"import {name}, cs_dep_a; print({name}.VALUE, {name}.__file__)")
        assert probe.stdout.split() == [str(value), str(workspace / f"{name}.py")], probe.stderr
    # an edit in a workspace is live (editable)
    (workspaces[1] / f"{name}.py").write_text("VALUE = 99\n")
    assert run(tmp_path / "layer-bob/bin/python", f"import {name}; print({name}.VALUE)").stdout == (
        "99\n"
    )


async def test_a_project_that_does_not_build_keeps_the_requirements(
    builder: UvEnvBuilder, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "setup.py").write_text("raise SystemExit('this project is broken')\n")
    wheel = make_wheel(repo / "vendor", "cs_kept", "VALUE = 'kept'\n")
    (repo / "requirements.txt").write_text(f"./vendor/{wheel.name}\n")
    resolution = resolve(repo)
    assert resolution.codespace.python.installProject
    built = await builder.build(repo, resolution.codespace, resolution.env_hash)
    assert run(built.python, "import cs_kept; print(cs_kept.VALUE)").stdout == "kept\n"
    [warning] = built.warnings
    assert "the repository's project: its dependencies could not be installed" in warning
    assert "this project is broken" in warning
    layer = make_layer(built.path, tmp_path / "layer")
    [linked] = await builder.install_projects(built, repo, layer)
    assert "could not be installed (editable)" in linked and "this project is broken" in linked
    result = await install_project(layer, tmp_path / "nothing-here", uv=builder.uv)
    assert not result.ok and "no pyproject.toml, setup.py or setup.cfg" in (result.warning or "")


FAKE_UV = """\
import sys
args = sys.argv[1:]
if "bad" in args or ("a" in args and "b" in args and "--dry-run" not in args):
    print("error: cannot install", " ".join(args))
    sys.exit(1)
print("installed", " ".join(args))
"""


async def test_install_units_keeps_the_installable_ones(tmp_path: Path) -> None:
    script = tmp_path / "fake_uv.py"
    script.write_text(FAKE_UV)
    units = [Unit(label, (label,)) for label in ("a", "bad", "b", "c")]
    lines: list[str] = []
    outcome = await install_units(
        [sys.executable, str(script)], units, cwd=tmp_path, env={}, on_line=lines.append
    )
    # "bad" fails alone; a and b conflict together, so the rest go one at a time
    assert [u.label for u in outcome.installed] == ["a", "b", "c"]
    assert [(u.label, why) for u, why in outcome.failed] == [
        ("bad", "cannot install --dry-run bad")
    ]
    assert "installed a" in lines and "installed c" in lines


async def test_an_editable_line_in_requirements_is_linked_per_workspace_not_shared(
    builder: UvEnvBuilder, tmp_path: Path
) -> None:
    """``-e .`` in requirements.txt (httpx's shape): the shared environment keeps the
    project's dependencies, each codespace links its own workspace (not the builder's)."""
    from codespace.local.envbuild.overlay import ensure_layer

    workspaces = [tmp_path / "alice", tmp_path / "bob"]
    for value, workspace in enumerate(workspaces, start=1):
        write_pyproject_project(workspace, "cs_req_editable", "cs-dep-a", value=value)
        (workspace / "requirements.txt").write_text("-e .\n")
        (workspace / ".codespace").mkdir()
        (workspace / ".codespace/codespace.yaml").write_text(
            "python:\n  requirements: [requirements.txt]\n"
        )
    resolution = resolve(workspaces[0])
    built = await builder.build(workspaces[0], resolution.codespace, resolution.env_hash)
    assert built.projects == ["."]
    assert run(built.python, "import cs_dep_a").returncode == 0
    assert run(built.python, "import cs_req_editable").returncode != 0, "shared env is clean"
    for value, workspace in enumerate(workspaces, start=1):
        layer = ensure_layer(built.path, tmp_path / f"layer-{workspace.name}")
        assert await builder.install_projects(built, workspace, layer.python) == []
        probe = run(layer.python, "import cs_req_editable as m; print(m.VALUE, m.__file__)")
        assert probe.stdout.split() == [str(value), str(workspace / "cs_req_editable.py")]
