"""A codespace's own layer over the shared environment, where its ``pip install`` goes.

Built environments are shared by every codespace with the same environment hash and are
never changed after they are built. Each codespace runs a small virtualenv of its own (kept in
its server directory, so it survives restarts) whose ``site-packages`` comes first and which
sees the shared environment through a ``.pth`` file (``site.addsitedir``, so the shared
environment's own ``.pth`` files, such as the kernel layer's, apply too):

- ``pip``, ``pip3``, ``python -m pip``, ``%pip`` and ``uv pip`` install into the layer
  (``pip install --user``, common in devcontainer templates, too: the layer's ``pip``
  scripts drop ``--user``, which a virtualenv refuses)
  (``sys.prefix`` and ``VIRTUAL_ENV`` are the layer's); a package the shared environment has
  counts as installed, and upgrading one installs the new version into the layer, which
  shadows the shared copy (pip says it does not uninstall a package "outside environment");
- the kernel, terminals, VS Code and lifecycle commands run the layer's ``python``.

When the shared environment changes (its files changed, so it was rebuilt under a new hash)
the layer is made anew and the packages that were installed in it are named, so the user
knows to install them again (or to add them to the repository's requirements). Console
scripts of the shared environment keep running the shared interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from codespace.local.envbuild.kernel import site_packages

MARKER = "codespace-layer.json"
PTH_NAME = "_codespace_shared_env.pth"
PIP_SCRIPT = """#!{python}
# pip of this codespace's own environment (written by Codespace Hub).
import sys
from pip._internal.cli.main import main
if __name__ == "__main__":
    if sys.argv[1:2] == ["install"] and "--user" in sys.argv:
        # devcontainer templates run `pip3 install --user`: this environment is the user's
        sys.argv.remove("--user")
        print("pip: --user ignored: installing into this codespace's environment", file=sys.stderr)
    sys.exit(main())
"""


@dataclass
class Layer:
    """A codespace's layer: ``path`` over the shared environment ``base``."""

    path: Path
    base: Path
    reset: list[str] = field(default_factory=list)  # packages lost because base changed

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


def installed(env: Path) -> list[str]:
    """Names of the distributions installed in ``env``'s own site-packages."""
    try:
        packages = site_packages(env)
    except FileNotFoundError:
        return []
    names = (entry.name.split("-")[0] for entry in packages.glob("*.dist-info"))
    return sorted({name.replace("_", "-").lower() for name in names})


def ensure_layer(base: Path, path: Path) -> Layer:
    """The codespace's layer at ``path`` over ``base``: kept when ``base`` is the same, else
    made anew (naming the packages that were installed in the old one)."""
    marker = path / MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        info = {}
    if info.get("base") == str(base) and (path / "bin" / "python").exists():
        return Layer(path, base)
    reset = installed(path) if info else []
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run(
        [str(base / "bin" / "python"), "-m", "venv", "--without-pip", str(path)],
        check=True,
        capture_output=True,
    )
    own = site_packages(path)
    shared = site_packages(base)
    (own / PTH_NAME).write_text(f"import site; site.addsitedir({str(shared)!r})\n")
    python = path / "bin" / "python"
    version = own.parent.name.removeprefix("python")  # e.g. 3.11
    for name in ("pip", "pip3", f"pip{version}"):
        script = path / "bin" / name
        script.write_text(PIP_SCRIPT.format(python=python))
        script.chmod(0o755)
    marker.write_text(json.dumps({"base": str(base)}) + "\n")
    return Layer(path, base, reset)


def layer_env(layer: Layer, base_path: str) -> dict[str, str]:
    """Variables that put the layer, then the shared environment, first on PATH."""
    return {
        "VIRTUAL_ENV": str(layer.path),
        "PATH": os.pathsep.join([str(layer.path / "bin"), str(layer.base / "bin"), base_path]),
    }
