"""A wheel of the project carries the prebuilt lab extension: its users need no Node; and
building it from a fresh checkout leaves that checkout clean (`git status` empty)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, missing, require_executable

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


# What `make install` / `make run` write inside the repository: all of it must be git-ignored.
WRITTEN_BY_INSTALL_AND_RUN = (
    ".venv/bin/python",
    "codespace_hub.egg-info/PKG-INFO",
    "build/lib/codespace/__init__.py",
    ".tools/node/package.json",
    ".tools/node/package-lock.json",
    ".tools/node/node_modules/configurable-http-proxy/package.json",
    ".tools/code-server/package.json",
    ".tools/code-server/install.log",
    "extensions/labextension/node_modules/.package-lock.json",
    "extensions/labextension/node_modules/.codespace-lock-hash",
    "extensions/labextension/lib/index.js",
    "extensions/labextension/lib/tsconfig.tsbuildinfo",
    "extensions/labextension/static/.sources-hash",
    "extensions/labextension/static/package.json",
    "extensions/labextension/static/static/remoteEntry.0123.js",
    "data/jupyterhub.sqlite",
    "data/secrets/admin-password",
    "artifacts/browser/home.png",
    "codespace/__pycache__/spec.cpython-311.pyc",
)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, timeout=120
    )
    return done.stdout


def test_everything_install_and_run_write_in_the_repository_is_ignored():
    require_executable("git")
    ignored = git(REPO_ROOT, "check-ignore", "--no-index", "--verbose", *WRITTEN_BY_INSTALL_AND_RUN)
    matched = {line.split("\t", 1)[1] for line in ignored.splitlines()}
    assert matched == set(WRITTEN_BY_INSTALL_AND_RUN), set(WRITTEN_BY_INSTALL_AND_RUN) - matched


def test_the_lab_extension_installs_from_the_lockfile():
    script = (REPO_ROOT / "scripts" / "build-labextension.sh").read_text()
    commands = [line.strip() for line in script.splitlines() if not line.strip().startswith("#")]
    assert any(line.startswith("npm ci ") for line in commands), "install with `npm ci`"
    # `npm install` rewrites the tracked package-lock.json; nothing in the build may run it.
    assert not any("npm install" in line or "npm i " in line for line in commands)


def fresh_checkout(dest: Path) -> Path:
    """A fresh clone of the tree as it is now: HEAD with the uncommitted edits to tracked files
    and the new files git does not ignore (what the next commit holds), committed in a new
    repository so `git status` there starts empty."""
    listed = git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in sorted(set(filter(None, listed.split("\0")))):
        source = REPO_ROOT / name
        if not source.is_file() and not source.is_symlink():
            continue  # deleted in the working tree (or a submodule)
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    git(dest, "init", "--quiet")
    git(dest, "add", "--all")
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.invalid")
    git(dest, *identity, "commit", "--quiet", "--no-verify", "--message", "snapshot")
    assert git(dest, "status", "--porcelain", "--untracked-files=all") == ""
    return dest


@pytest.mark.integration
def test_building_the_lab_extension_leaves_a_fresh_checkout_clean(tmp_path):
    """The real build (`npm ci`, tsc, the lab builder) in a fresh checkout, ~15 s with a warm
    npm cache: afterwards `git status` is empty (the lockfile is read, never rewritten)."""
    require_executable("git")
    require_executable("npm")
    builder = Path(sys.executable).parent / "jupyter-builder"
    if not builder.exists():
        missing("jupyter-builder is not installed (run `make install`)")
    checkout = fresh_checkout(tmp_path / "checkout")
    # A venv of its own for the install step (a link into it, config files), so the build
    # never touches the project's .venv; only the builder is borrowed from it.
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "jupyter-builder").symlink_to(builder)
    env = {**os.environ, "VENV": str(venv), "npm_config_update_notifier": "false"}
    done = subprocess.run(
        ["bash", "scripts/build-labextension.sh"],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    built = checkout / "extensions" / "labextension" / "static"
    assert (built / "package.json").exists()
    assert list((built / "static").glob("remoteEntry.*.js"))
    assert (venv / "share/jupyter/labextensions/@codespace/lab").resolve() == built.resolve()
    assert git(checkout, "status", "--porcelain", "--untracked-files=all") == ""


def test_vscode_has_its_own_launcher_section_with_its_icon(monkeypatch, tmp_path):
    """extensions/vscode.py puts the VS Code card in its own launcher category; the lab
    extension's stylesheet draws the icon for that same category (JupyterLab shows an entry's
    image only in the Notebook and Console sections), with the server-proxy icon's file."""
    from extensions.vscode import LAUNCHER_CATEGORY, setup_code_server

    code_server = tmp_path / "code-server"
    code_server.touch()
    monkeypatch.setenv("CODESPACE_CODE_SERVER", str(code_server))
    icon = REPO_ROOT / "config" / "singleuser" / "vscode.svg"
    entry = setup_code_server(icon_path=str(icon))
    assert entry is not None
    assert entry["launcher_entry"]["category"] == LAUNCHER_CATEGORY != "Notebook"
    style = REPO_ROOT / "extensions" / "labextension" / "style"
    assert f"[data-category='{LAUNCHER_CATEGORY}']" in (style / "launcher.css").read_text()
    assert (style / "vscode.svg").read_bytes() == icon.read_bytes()
