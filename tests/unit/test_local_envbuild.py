"""codespace.local.envbuild: uv environments by hash, cache hits, Python fallback, failures."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

from codespace.local.envbuild import EnvBuildError, UvEnvBuilder, write_kernelspec
from codespace.spec.model import Codespace, Python
from tests.helpers.repos import fixture_repo


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> UvEnvBuilder:
    return UvEnvBuilder(tmp_path_factory.mktemp("env-cache"))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_repo(tmp_path_factory.mktemp("repo"))


def with_requirements(version: str | None = None) -> Codespace:
    return Codespace(python=Python(requirements=["requirements.txt"], version=version))


async def test_builds_then_hits_the_cache(builder: UvEnvBuilder, repo: Path) -> None:
    first = await builder.build(repo, with_requirements(), "hash-a")
    second = await builder.build(repo, with_requirements(), "hash-a")
    assert not first.cache_hit and second.cache_hit and first.path == second.path
    out = subprocess.run(
        [
            str(first.python),
            "-c",
            "import cs_fixture_pkg, ipykernel; from codespace import datasets, widgets;"
            " print(cs_fixture_pkg.VALUE)",
        ],
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "42", out.stderr
    # the kernel layer is ipykernel + ipywidgets: no pydantic or PyYAML to fight the repo's pins
    platform_side = (
        "jupyter_server",
        "jupyterhub",
        "spawner",
        "kubernetes_asyncio",
        "pydantic",
        "yaml",
    )
    for platform_only in platform_side:
        probe = subprocess.run([str(first.python), "-c", f"import {platform_only}"], cwd=first.path)
        assert probe.returncode != 0, f"{platform_only} must not be in the repo env"
    other = await builder.build(repo, with_requirements(), "hash-b")
    assert not other.cache_hit and other.path != first.path


async def test_unavailable_python_falls_back_with_a_warning(
    builder: UvEnvBuilder, repo: Path
) -> None:
    lines: list[str] = []
    built = await builder.build(repo, with_requirements("3.2"), "hash-a", on_line=lines.append)
    assert any("Python 3.2 is not available" in warning for warning in built.warnings)
    assert any("Python 3.2 is not available" in line for line in lines)
    assert built.python_version.startswith("3.")


async def test_failed_install_raises_and_leaves_no_half_env(
    builder: UvEnvBuilder, tmp_path: Path
) -> None:
    (tmp_path / "requirements.txt").write_text("./missing-1.0-py3-none-any.whl\n")
    with pytest.raises(EnvBuildError, match=r"requirements\.txt"):
        await builder.build(tmp_path, with_requirements(), "hash-broken")
    assert builder.cached("hash-broken", None) is None
    assert not builder.env_path("hash-broken", None).exists()


async def test_kernelspec_points_at_the_env(builder: UvEnvBuilder, repo: Path, tmp_path: Path):
    built = await builder.build(repo, with_requirements(), "hash-a")
    spec_dir = write_kernelspec(built.path, tmp_path, "Python (repo)", base_path="/usr/bin")
    text = (spec_dir / "kernel.json").read_text()
    assert str(built.python) in text and "Python (repo)" in text
    assert f"{built.path}/bin:/usr/bin" in text


async def test_requested_python_is_used_when_uv_finds_it(builder: UvEnvBuilder, repo: Path) -> None:
    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.skip("no system Python besides the platform's")
    version = subprocess.run(
        [str(system), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if version == platform.python_version():
        pytest.skip("the system Python is the platform's; nothing to tell apart")
    built = await builder.build(repo, with_requirements(version), "hash-a")
    assert built.python_version == version and built.warnings == []
