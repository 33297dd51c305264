"""The kernel layer, defined once for both modes: what the platform adds to every repository
environment, and the steps that install it.

The layer is small on purpose (DESIGN §4): ipykernel, ipywidgets (pinned to the platform's
version so the lab's widget manager matches), pip, and the ``codespace`` package itself,
made importable through a ``.pth`` file pointing at ``<env>/codespace-layer`` (a symlink to
the platform's package) so that only ``codespace`` (not the hub, spawners or extensions)
enters the environment. The kernelspec is named :data:`KERNEL_NAME` and runs the
environment's Python.

The local mode installs it with :class:`codespace.local.envbuild.uv.UvEnvBuilder`; an image build
runs :func:`kernel_layer_commands` (``codespace.kube.image`` renders them as ``RUN`` lines).
Both take the requirements from :func:`kernel_layer_requirements`, the link and the
kernelspec from :mod:`codespace.local.envbuild.kernel`.

Pure: nothing happens at import; the functions read only installed distributions' versions.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata

import codespace

KERNEL_NAME = "codespace"
KERNEL_DISPLAY_NAME = "Python (codespace)"
LAYER_DIR = "codespace-layer"  # inside the environment: holds the ``codespace`` symlink
PTH_NAME = "codespace_kernel_layer.pth"
# Run by the platform's Python: link ``codespace`` and write the kernelspec into an env.
# ``-I``: nothing from the working directory or PYTHON* variables shadows the platform.
LINK_CODE = "import sys; from codespace.local.envbuild.kernel import main; sys.exit(main())"


def _platform_pin(distribution: str, fallback: str) -> str:
    try:
        return f"{distribution}=={metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return fallback


def kernel_layer_requirements() -> list[str]:
    """Requirements of the kernel layer (installed after the repository's own).

    pip is part of it so that ``pip install`` works in every codespace: it installs into the
    codespace's own layer (:mod:`codespace.local.envbuild.overlay`), never into the shared env.
    """
    return ["ipykernel>=6.29", _platform_pin("ipywidgets", "ipywidgets>=8.1"), "pip"]


def kernel_layer_digest() -> str:
    """Changes whenever the layer would be installed differently (part of the env cache key)."""
    text = json.dumps([kernel_layer_requirements(), codespace.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def jupyter_data_dir(env_prefix: str) -> str:
    """Where an environment keeps its kernelspec (``<dir>/kernels/codespace``): the
    directory to put on ``JUPYTER_PATH``."""
    return f"{env_prefix.rstrip('/')}/share/jupyter"


def kernel_layer_commands(
    env_prefix: str,
    platform_python: str,
    *,
    uv: str = "uv",
    display_name: str = KERNEL_DISPLAY_NAME,
    base_path: str | None = None,
) -> list[list[str]]:
    """The argument lists that install the kernel layer into the environment at ``env_prefix``.

    1. ``uv pip install`` of :func:`kernel_layer_requirements` into the environment's Python;
    2. the platform's Python (``platform_python``, where ``codespace`` is installed) links the
       ``codespace`` package into the environment and writes the :data:`KERNEL_NAME`
       kernelspec under :func:`jupyter_data_dir`. The kernel's ``PATH`` is the environment's
       ``bin`` then ``base_path`` (default: the ``PATH`` that step runs with).
    """
    prefix = env_prefix.rstrip("/") or "/"
    install = [uv, "pip", "install", "--python", f"{prefix}/bin/python"]
    link = [platform_python, "-I", "-c", LINK_CODE, "--env", prefix, "--display-name", display_name]
    if base_path is not None:
        link += ["--base-path", base_path]
    return [[*install, *kernel_layer_requirements()], link]
