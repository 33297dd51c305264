"""A wheel of the project carries the prebuilt lab extension: its users need no Node."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

from tests.conftest import REPO_ROOT, missing

NOT_PACKAGED = (
    ".git",
    ".venv",
    ".tools",
    ".whl",
    "node_modules",
    "tests",
    "data",
    "artifacts",
    "build",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)
BUILT = REPO_ROOT / "extensions" / "labextension" / "static" / "package.json"


def test_wheel_ships_the_prebuilt_lab_extension_and_enables_the_server_extension(tmp_path):
    if not BUILT.exists():
        missing("the lab extension is not built (run `make install`)")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(*NOT_PACKAGED))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("codespace_hub-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = wheel.name.split("-py")[0] + ".data/data/"
    lab = data + "share/jupyter/labextensions/@codespace/lab/"
    assert lab + "package.json" in names
    assert any(name.startswith(lab + "static/remoteEntry.") for name in names), names
    assert data + "etc/jupyter/jupyter_server_config.d/codespace.json" in names
    # The platform packages travel too; the repository's environment never installs this wheel.
    assert any(name.startswith("codespace/spec/") for name in names)
