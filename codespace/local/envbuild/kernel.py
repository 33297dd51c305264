"""The kernel layer's side effects: link ``codespace`` into an environment, write its kernelspec.

What the layer is (requirements, digest, :data:`KERNEL_NAME`, the layer directory, the
install steps for an image) is defined once, purely, in :mod:`codespace.kernel_layer`;
those names are re-exported here so the local mode's imports keep working.

The layer is small on purpose: ipykernel, ipywidgets (pinned to the platform's version so the
lab's widget manager matches) and the ``codespace`` package itself, exposed through a ``.pth``
file so that only ``codespace`` (not the hub, spawners or extensions) becomes importable. The
kernel side of ``codespace`` (the REST client, ``codespace.datasets``' SDK and records,
``codespace.widgets``) needs nothing but the standard library and ipywidgets, so the layer
brings no pydantic or PyYAML to fight a repository's own pins (DESIGN §4). Jupyter, jupyterhub
and the engine SDKs never enter the repository's environment.

:func:`main` is the command an image build runs with the platform's Python (see
:func:`codespace.kernel_layer.kernel_layer_commands`)::

    /opt/platform/bin/python -I -c "$LINK_CODE" --env /opt/codespace/env
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import codespace
from codespace.kernel_layer import (
    KERNEL_DISPLAY_NAME,
    KERNEL_NAME,
    LAYER_DIR,
    PTH_NAME,
    jupyter_data_dir,
    kernel_layer_digest,
    kernel_layer_requirements,
)

__all__ = [
    "KERNEL_NAME",
    "LAYER_DIR",
    "env_vars",
    "kernel_layer_digest",
    "kernel_layer_requirements",
    "link_codespace_package",
    "main",
    "site_packages",
    "write_kernelspec",
]


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
    (site_packages(env) / PTH_NAME).write_text(f"{layer}\n")


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


def main(argv: Sequence[str] | None = None) -> int:
    """Link ``codespace`` into ``--env`` and write its kernelspec (run by the platform's Python)."""
    parser = argparse.ArgumentParser(
        prog="codespace-kernel-layer",
        description="Link the platform's codespace package into an environment and write "
        f"the {KERNEL_NAME!r} kernelspec (after the layer's requirements are installed).",
    )
    parser.add_argument("--env", required=True, type=Path, help="the environment's prefix")
    parser.add_argument("--display-name", default=KERNEL_DISPLAY_NAME)
    parser.add_argument(
        "--base-path",
        default=None,
        help="PATH after the environment's bin in the kernel (default: this process's PATH)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="default: <env>/share/jupyter")
    args = parser.parse_args(argv)
    env = args.env.absolute()
    if not (env / "bin" / "python").exists():
        parser.error(f"{env} is not an environment (no bin/python)")
    base_path = args.base_path
    if base_path is None:
        base_path = os.environ.get("PATH", os.defpath)
    data_dir = args.data_dir or Path(jupyter_data_dir(str(env)))
    link_codespace_package(env)
    spec_dir = write_kernelspec(env, data_dir, args.display_name, base_path=base_path)
    print(f"kernel layer: codespace linked into {env}; kernelspec {spec_dir}")
    return 0
