"""Repositories shaped like real ones get their environment, seen from the default kernel.

Issue 9 items 3 and 8, end to end: each fixture repository (tests/helpers/realrepos.py) is
spawned through a real hub and its packages are imported in a kernel started through the
proxy (tests/helpers/kernel.py), as a notebook would. Their packages come from a local
file:// index given to the hub as ``UV_INDEX`` (the spawner's uv inherits the hub's
environment), so none is fetched from PyPI; one hub serves the module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.hub import RunningHub, running_hub
from tests.helpers.kernel import run_in_kernel
from tests.helpers.realrepos import (
    USER_WHEEL,
    conda_repo,
    devcontainer_repo,
    manifest_editable_repo,
    real_repo_index,
    requirements_editable_repo,
    requirements_repo,
    setup_py_repo,
    src_layout_repo,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def index() -> Iterator[str]:
    """The local index's URL. Not under /tmp: a codespace's sandbox (and its builds') has a
    /tmp of its own, and its account must be able to read the index."""
    directory = Path(tempfile.mkdtemp(prefix="codespace-test-index-", dir="/var/tmp"))
    try:
        directory.chmod(0o755)
        yield real_repo_index(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, index: str) -> Iterator[RunningHub]:
    data = tmp_path_factory.mktemp("real-repos-hub")
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"  # shared by this session's hubs
    config = f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}"
    # the spawner's uv inherits the hub's environment: UV_INDEX is searched before PyPI
    env = {**os.environ, "UV_INDEX": index}
    with running_hub(data / "hub", extra_config=config, env=env) as running:
        yield running


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def spawn_ready(hub: RunningHub, user: str, server: str, repo: Path) -> str:
    """Spawn ``repo`` and return the progress messages; the spawn must end ready."""
    events = hub.spawn(user, server, {"repo": str(repo)})
    text = messages(events)
    assert events[-1].get("ready"), text
    return text


def kernel_prints(hub: RunningHub, user: str, server: str, code: str) -> str:
    """stdout of ``code`` in a new default kernel, which must raise nothing."""
    stdout, error = run_in_kernel(hub, user, server, code)
    assert error is None, error
    return stdout


def workspace(hub: RunningHub, user: str, server: str) -> Path:
    return hub.data_dir / "workspaces" / user / server


def layer_site(hub: RunningHub, user: str, server: str) -> Path:
    """site-packages of the codespace's own layer (where its pip installs go)."""
    return next((hub.data_dir / "servers" / user / server / "env" / "lib").glob("python3*/site-*"))


def shared_sites(hub: RunningHub) -> list[Path]:
    """site-packages of every shared environment in the hub's cache."""
    return sorted((hub.data_dir / "env-cache" / "envs").glob("*/lib/python3*/site-packages"))


def test_binder_environment_yml(hub: RunningHub, tmp_path: Path) -> None:
    text = spawn_ready(hub, "ada", "conda", conda_repo(tmp_path / "repo"))
    assert "conda msgpack-python is msgpack on PyPI" in text
    assert "not installed in local mode (no PyPI package): nodejs" in text
    code = (
        "import sys, msgpack, cs_real_pip, cs_real_extra\n"
        "print(sys.version_info[:2] == (3, 11), msgpack.VALUE, cs_real_pip.VALUE,"
        " cs_real_extra.VALUE, sep='|')\n"
    )
    assert kernel_prints(hub, "ada", "conda", code).strip() == (
        "True|local msgpack|pip section|requirements-extra"
    )
    errors = (workspace(hub, "ada", "conda") / "CODESPACE_ERRORS.md").read_text()
    assert "nodejs" in errors and "environment.yml" in errors


def test_setup_py_project_is_installed_editable(hub: RunningHub, tmp_path: Path) -> None:
    repo = setup_py_repo(tmp_path / "repo", tmp_path / "project")
    text = spawn_ready(hub, "ada", "setuppy", repo)
    assert "installing the repository's project (editable)" in text
    ws = workspace(hub, "ada", "setuppy")
    code = (
        "import os; os.chdir('/')\n"
        "import cs_setup_app, cs_real_dep\n"
        "print(cs_setup_app.VALUE, cs_setup_app.__file__, cs_real_dep.VALUE, sep='|')\n"
    )
    out = kernel_prints(hub, "ada", "setuppy", code).strip()
    assert out == f"1|{ws / 'cs_setup_app.py'}|project dependency"
    # editable: an edit in the workspace is what the next kernel imports, without a rebuild
    (ws / "cs_setup_app.py").write_text("VALUE = 2\n")
    assert kernel_prints(hub, "ada", "setuppy", code).startswith("2|")


def test_pyproject_src_layout_library(hub: RunningHub, tmp_path: Path) -> None:
    spawn_ready(hub, "ada", "srclib", src_layout_repo(tmp_path / "repo"))
    src = workspace(hub, "ada", "srclib") / "src"
    code = (
        # from another directory, and without the notebook's directory on sys.path
        "import os, sys; os.chdir('/'); sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
        "import importlib.util, cs_srclib\n"
        "print(importlib.util.find_spec('cs_srclib').origin, cs_srclib.DEP, sep='|')\n"
    )
    out = kernel_prints(hub, "ada", "srclib", code).strip()
    assert out == f"{src / 'cs_srclib' / '__init__.py'}|project dependency"


def test_devcontainer_pip3_install_goes_to_the_codespace_layer(
    hub: RunningHub, tmp_path: Path
) -> None:
    repo = devcontainer_repo(tmp_path / "repo", tmp_path / "wheels")
    text = spawn_ready(hub, "ada", "devc", repo)
    assert "lifecycle: postCreateCommand" in text and "Successfully installed" in text
    code = "import cs_devc_pkg; print(cs_devc_pkg.VALUE, cs_devc_pkg.__file__, sep='|')"
    value, origin = kernel_prints(hub, "ada", "devc", code).strip().split("|")
    assert value == "devcontainer pip"
    assert Path(origin).is_relative_to(layer_site(hub, "ada", "devc"))
    assert not [site for site in shared_sites(hub) if list(site.glob("cs_devc_pkg*"))]


def test_requirements_with_editable_project(hub: RunningHub, tmp_path: Path) -> None:
    repo = requirements_editable_repo(tmp_path / "repo", tmp_path / "project")
    code = (
        "import os; os.chdir('/')\n"
        "import cs_req_app, cs_real_req, cs_real_dep\n"
        "print(cs_req_app.VALUE, cs_req_app.__file__, cs_real_req.VALUE, sep='|')\n"
    )
    for user in ("ada", "bea"):  # two workspaces over one shared environment
        spawn_ready(hub, user, "reqe", repo)
        out = kernel_prints(hub, user, "reqe", code).strip()
        assert out == f"5|{workspace(hub, user, 'reqe') / 'cs_req_app.py'}|requirements.txt"


def test_editable_requirement_is_linked_from_each_workspace(
    hub: RunningHub, tmp_path: Path
) -> None:
    repo = manifest_editable_repo(tmp_path / "repo", tmp_path / "project")
    code = "import os; os.chdir('/'); import cs_manifest_app; print(cs_manifest_app.__file__)"
    for user in ("ada", "bea"):
        spawn_ready(hub, user, "manifest", repo)
        mine = workspace(hub, user, "manifest") / "cs_manifest_app.py"
        assert kernel_prints(hub, user, "manifest", code).strip() == str(mine)


def site_listing(sites: list[Path]) -> dict[str, tuple[float, int]]:
    """Every file of the shared environments' site-packages with its modification time and
    size (bytecode aside: Python writes it at the first import, which installs nothing)."""
    return {
        str(path): (stat.st_mtime, stat.st_size)
        for site in sites
        for path in site.rglob("*")
        if "__pycache__" not in path.parts and not path.is_dir()
        for stat in [path.lstat()]
    }


def test_pip_in_a_codespace_stays_in_that_codespace(hub: RunningHub, tmp_path: Path) -> None:
    repo = requirements_repo(tmp_path / "repo", tmp_path / "user-wheels")
    spawn_ready(hub, "bea", "one", repo)
    shared_before = site_listing(shared_sites(hub))
    # the kernel's working directory is the workspace, where the repository keeps the wheel
    installed = kernel_prints(hub, "bea", "one", f"%pip install --no-index ./{USER_WHEEL}")
    assert "Successfully installed cs-user-pkg" in installed, installed
    probe = "import cs_user_pkg; print(cs_user_pkg.VALUE, cs_user_pkg.__file__, sep='|')"
    value, origin = kernel_prints(hub, "bea", "one", probe).strip().split("|")
    assert value == "mine" and Path(origin).is_relative_to(layer_site(hub, "bea", "one"))
    assert site_listing(shared_sites(hub)) == shared_before, "the shared env was changed"

    assert "environment: cache hit" in spawn_ready(hub, "bea", "two", repo)
    _, error = run_in_kernel(hub, "bea", "two", "import cs_user_pkg")
    assert error is not None and error.startswith("ModuleNotFoundError"), error
    assert kernel_prints(hub, "bea", "two", "import cs_real_req; print(cs_real_req.VALUE)") == (
        "requirements.txt\n"
    )

    hub.stop("bea", "one")
    spawn_ready(hub, "bea", "one", repo)
    assert kernel_prints(hub, "bea", "one", probe).startswith("mine|")
