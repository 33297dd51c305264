"""One kernel layer for both modes: the steps an image build renders, executed here with uv.

The image's environment-install ``RUN`` lines are taken from the rendered Dockerfile and run
on this machine (the image's paths replaced by a temporary environment, this project's
Python as the platform's), then the environment must import the datasets SDK and the
widgets and carry the ``codespace`` kernelspec, as a local environment does.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from codespace.envhash import dockerfile_instructions
from codespace.kernel_layer import (
    KERNEL_NAME,
    LINK_CODE,
    jupyter_data_dir,
    kernel_layer_commands,
    kernel_layer_requirements,
)
from codespace.kube.image import ENV_PREFIX, PLATFORM_PYTHON, PLATFORM_UV, render_dockerfile
from codespace.local.envbuild import uv as local_uv
from codespace.local.envbuild.uv import EnvBuildError, EnvPlan, UvEnvBuilder, find_uv
from codespace.spec.model import Codespace
from codespace.streaming import Finished
from tests.conftest import missing

PLATFORM_IMAGE = "ghcr.io/codespace-hub/singleuser:0.1.0"
PYTHON = ".".join(platform.python_version_tuple()[:2])


def uv_executable() -> str:
    try:
        return find_uv()
    except EnvBuildError:
        missing("uv is not installed (pip install uv)")
        raise  # not reached: missing() skips or fails


def test_kernel_layer_commands_are_argument_lists():
    install, link = kernel_layer_commands("/opt/env/", "/opt/platform/bin/python", uv="/x/uv")
    assert install == [
        "/x/uv",
        "pip",
        "install",
        "--python",
        "/opt/env/bin/python",
        *kernel_layer_requirements(),
    ]
    assert link[:4] == ["/opt/platform/bin/python", "-I", "-c", LINK_CODE]
    assert link[4:] == ["--env", "/opt/env", "--display-name", "Python (codespace)"]
    assert jupyter_data_dir("/opt/env/") == "/opt/env/share/jupyter"


async def test_the_image_and_the_local_mode_install_the_same_kernel_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # the local mode's uv install of the layer, as UvEnvBuilder runs it
    calls: list[list[str]] = []

    async def record(argv, **_kwargs):
        calls.append(list(argv))
        return Finished(0, ())

    builder = UvEnvBuilder(tmp_path / "cache", uv="uv")
    env = tmp_path / "env"
    (env / "lib" / f"python{PYTHON}" / "site-packages").mkdir(parents=True)
    monkeypatch.setattr(local_uv, "stream", record)
    await builder._install(tmp_path, env, EnvPlan(None), [], lambda _line: None)
    [local] = calls
    # the image's: the rendered RUN line of the same step
    text = render_dockerfile(Codespace(python={"version": "3.12"}), PLATFORM_IMAGE)
    runs = [shlex.split(args) for name, args in dockerfile_instructions(text) if name == "RUN"]
    [image] = [argv for argv in runs if argv[:3] == [PLATFORM_UV, "pip", "install"]]
    assert local[:5] == ["uv", "pip", "install", "--python", str(env / "bin" / "python")]
    assert image[:5] == [PLATFORM_UV, "pip", "install", "--python", f"{ENV_PREFIX}/bin/python"]
    assert local[5:] == image[5:] == kernel_layer_requirements()


def _environment_steps(text: str) -> list[str]:
    """The rendered RUN lines that build the environment and its kernel layer, in order."""
    steps = []
    for name, args in dockerfile_instructions(text):
        if name == "RUN" and (ENV_PREFIX in args) and "chown" not in args:
            steps.append(args)
    return steps


def _run_step(step: str, env_dir: Path, uv: str, env: dict[str, str]) -> None:
    """Run one rendered step with the image's paths replaced by this machine's."""
    text = step.replace(PLATFORM_UV, uv).replace(PLATFORM_PYTHON, sys.executable)
    text = text.replace(ENV_PREFIX, str(env_dir))
    argv = shlex.split(text)
    if argv[0] in (uv, sys.executable):
        finished = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    else:  # a fixed shell step of the rendering (the user image's Python, the server config)
        finished = subprocess.run(
            ["sh", "-c", text], env=env, capture_output=True, text=True, timeout=600
        )
    assert finished.returncode == 0, f"{text}\n{finished.stdout}\n{finished.stderr}"


@pytest.mark.parametrize("user_image", [None, "python:3.11"], ids=["platform-image", "user-image"])
def test_the_rendered_install_steps_give_a_kernel_that_imports_the_sdk(
    tmp_path: Path, user_image: str | None
):
    uv = uv_executable()
    if user_image is None:
        text = render_dockerfile(Codespace(python={"version": PYTHON}), PLATFORM_IMAGE)
    else:  # the image's own python3 (here: the system's), seen through --system-site-packages
        text = render_dockerfile(Codespace(), user_image, platform_image=PLATFORM_IMAGE)
    steps = _environment_steps(text)
    assert any(LINK_CODE in step for step in steps)
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({"UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"})
    if user_image is not None:
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # an image's PATH: its python3, if any
    for step in steps:
        _run_step(step, env_dir, uv, env)

    python = env_dir / "bin" / "python"
    probe = subprocess.run(
        [
            str(python),
            "-c",
            "import codespace.datasets, codespace.widgets, ipykernel, ipywidgets;"
            " print(ipywidgets.__version__)",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.returncode == 0, probe.stderr
    assert f"ipywidgets=={probe.stdout.strip()}" in kernel_layer_requirements()
    if user_image is None:  # the layer brings nothing of the server side
        for server_only in ("pydantic", "yaml", "jupyter_server"):
            blocked = subprocess.run([str(python), "-c", f"import {server_only}"], cwd=tmp_path)
            assert blocked.returncode != 0, f"{server_only} must not be in the environment"
    else:  # a user image's environment sees the packages the image installed
        assert "include-system-site-packages = true" in (env_dir / "pyvenv.cfg").read_text()

    spec_dir = Path(jupyter_data_dir(str(env_dir))) / "kernels" / KERNEL_NAME
    spec = json.loads((spec_dir / "kernel.json").read_text())
    assert spec["argv"][0] == str(python)
    assert spec["env"]["PATH"].startswith(f"{env_dir}/bin:")
    # the server finds it through JUPYTER_PATH, and its config makes it the only kernel
    listed = subprocess.run(
        [sys.executable, "-m", "jupyter_client.kernelspecapp", "list", "--json"],
        env={**env, "JUPYTER_PATH": jupyter_data_dir(str(env_dir))},
        capture_output=True,
        text=True,
    )
    kernels = json.loads(listed.stdout)["kernelspecs"]
    assert Path(kernels[KERNEL_NAME]["resource_dir"]) == spec_dir
    config = json.loads((env_dir / "etc/jupyter/jupyter_server_config.json").read_text())
    assert config["MappingKernelManager"]["default_kernel_name"] == KERNEL_NAME
    assert config["KernelSpecManager"]["allowed_kernelspecs"] == [KERNEL_NAME]


def test_the_link_step_refuses_a_directory_that_is_not_an_environment(tmp_path: Path):
    [_install, link] = kernel_layer_commands(str(tmp_path), sys.executable)
    finished = subprocess.run(link, capture_output=True, text=True)
    assert finished.returncode == 2 and "is not an environment" in finished.stderr
