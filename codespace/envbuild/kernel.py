"""The kernel layer: what the platform adds to every repository environment, and its kernelspec.

The layer is small on purpose: ipykernel, ipywidgets (pinned to the platform's version so the
lab's widget manager matches) and the ``codespace`` package itself, exposed through a ``.pth``
file so that only ``codespace`` (not the hub, spawners or extensions) becomes importable. The
kernel side of ``codespace`` (the REST client, ``codespace.datasets``' SDK and records,
``codespace.widgets``) needs nothing but the standard library and ipywidgets, so the layer
brings no pydantic or PyYAML to fight a repository's own pins (DESIGN §4). Jupyter, jupyterhub
and the engine SDKs never enter the repository's environment.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path

import codespace

KERNEL_NAME = "codespace"
LAYER_DIR = "codespace-layer"


def _platform_pin(distribution: str, fallback: str) -> str:
    try:
        return f"{distribution}=={metadata.version(distribution)}"
    except metadata.PackageNotFoundError:
        return fallback


def kernel_layer_requirements() -> list[str]:
    """Requirements of the kernel layer (installed after the repository's own).

    pip is part of it so that ``pip install`` works in every codespace: it installs into the
    codespace's own layer (:mod:`codespace.envbuild.overlay`), never into the shared env.
    """
    return ["ipykernel>=6.29", _platform_pin("ipywidgets", "ipywidgets>=8.1"), "pip"]


def kernel_layer_digest() -> str:
    """Changes whenever the layer would be installed differently (part of the env cache key)."""
    text = json.dumps([kernel_layer_requirements(), codespace.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def site_packages(env: Path) -> Path:
    """The site-packages directory of a POSIX virtualenv at ``env``."""
    found = sorted((env / "lib").glob("python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"{env} has no lib/python3*/site-packages")
    return found[0]


def link_codespace_package(env: Path) -> None:
    """Make ``import codespace`` work in ``env`` without installing the platform package."""
    layer = env / LAYER_DIR
    layer.mkdir(exist_ok=True)
    link = layer / "codespace"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(codespace.__file__).resolve().parent, target_is_directory=True)
    (site_packages(env) / "codespace_kernel_layer.pth").write_text(f"{layer}\n")


def env_vars(env: Path, base_path: str) -> dict[str, str]:
    """Variables that put ``env`` first for terminals, kernels' shell commands and VS Code."""
    return {"VIRTUAL_ENV": str(env), "PATH": f"{env / 'bin'}:{base_path}"}


def write_kernelspec(
    env: Path,
    data_dir: Path,
    display_name: str,
    *,
    base_path: str,
    variables: dict[str, str] | None = None,
) -> Path:
    """Write the ``codespace`` kernelspec for ``env`` under ``data_dir/kernels``; return its dir.

    ``variables`` replaces the kernel's environment variables (default: :func:`env_vars`).
    """
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [
            str(env / "bin" / "python"),
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": display_name,
        "language": "python",
        "env": variables if variables is not None else env_vars(env, base_path),
        "metadata": {"debugger": True},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
    logo = Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "logo-64x64.png"
    if logo.exists():
        (spec_dir / "logo-64x64.png").write_bytes(logo.read_bytes())
    return spec_dir
