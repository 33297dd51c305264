"""Fixture git repositories made by tests, with requirements that need no network.

``make_wheel(dir, name, source)`` writes a minimal pure-Python wheel (no build backend, no
index); ``make_repo(path, files)`` writes files, ``git init``s and commits them.
A requirements.txt naming ``./vendor/<wheel>`` installs offline.

    wheel = make_wheel(tmp / "vendor", "cs_fixture_pkg", "VALUE = 42\\n")
    repo = make_repo(tmp / "repo", {
        ".codespace/codespace.yaml": "python:\\n  requirements: [requirements.txt]\\n",
        "requirements.txt": f"./vendor/{wheel.name}\\n",
    }, extra={f"vendor/{wheel.name}": wheel.read_bytes()})
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import zipfile
from collections.abc import Mapping
from pathlib import Path

GIT_IDENTITY = [
    "-c",
    "user.name=Codespace Tests",
    "-c",
    "user.email=tests@example.invalid",
    "-c",
    "init.defaultBranch=main",
    "-c",
    "commit.gpgsign=false",
]


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def make_wheel(directory: Path, name: str, source: str, version: str = "0.1.0") -> Path:
    """A pure-Python wheel for module ``name`` whose ``__init__.py`` is ``source``."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source.encode(),
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
        ).encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: codespace-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files.items())
    record += f"{dist}/RECORD,,\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            archive.writestr(member, data)
        archive.writestr(f"{dist}/RECORD", record)
    return path


def git(path: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *GIT_IDENTITY, *args], cwd=path, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def make_repo(
    path: Path, files: Mapping[str, str], extra: Mapping[str, bytes] | None = None
) -> Path:
    """Create a git repository at ``path`` with ``files`` committed on ``main``, readable by
    the hub's per-user accounts (which clone it)."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet")
    commit_files(path, files, extra, message="initial")
    share_with_accounts(path)
    return path


def share_with_accounts(path: Path) -> None:
    """Let every account traverse to ``path`` (pytest's directories are 0700) and read it:
    a hub running as root clones as the user's account."""
    for ancestor in [*reversed(path.parents), path]:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | 0o011)
    for directory, dirs, files in os.walk(path):
        for name in dirs:
            target = Path(directory, name)
            target.chmod(stat.S_IMODE(target.stat().st_mode) | 0o055)
        for name in files:
            target = Path(directory, name)
            if not target.is_symlink():
                target.chmod(stat.S_IMODE(target.stat().st_mode) | 0o044)
    path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o055)


def commit_files(
    path: Path,
    files: Mapping[str, str],
    extra: Mapping[str, bytes] | None = None,
    message: str = "update",
) -> str:
    """Write and commit files; return the new commit id."""
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        if name.endswith(".sh"):
            target.chmod(0o755)
    for name, data in (extra or {}).items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", message)
    return git(path, "rev-parse", "HEAD")


def fixture_repo(tmp: Path, *, codespace_yaml: str | None = None, value: int = 42) -> Path:
    """A repository whose environment installs the offline package ``cs_fixture_pkg``.

    ``codespace_yaml`` replaces the default manifest (requirements only).
    """
    wheel = make_wheel(tmp / "wheels", "cs_fixture_pkg", f"VALUE = {value}\n")
    manifest = codespace_yaml or "python:\n  requirements: [requirements.txt]\n"
    return make_repo(
        tmp / "repo",
        {
            ".codespace/codespace.yaml": manifest,
            "requirements.txt": f"./vendor/{wheel.name}\n",
            "README.md": "# fixture\n",
        },
        extra={f"vendor/{wheel.name}": wheel.read_bytes()},
    )


def make_vsix(directory: Path, publisher: str, name: str, version: str = "0.0.1") -> Path:
    """A minimal VS Code extension package (``publisher.name-version.vsix``)."""
    directory.mkdir(parents=True, exist_ok=True)
    package = {
        "name": name,
        "publisher": publisher,
        "version": version,
        "engines": {"vscode": "^1.60.0"},
        "displayName": f"{name} (test)",
    }
    manifest = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<PackageManifest Version="2.0.0" xmlns="http://schemas.microsoft.com/developer/'
        'vsx-schema/2011"><Metadata>'
        f'<Identity Language="en-US" Id="{name}" Version="{version}" Publisher="{publisher}"/>'
        f'<DisplayName>{name}</DisplayName><Description xml:space="preserve"></Description>'
        '</Metadata><Installation><InstallationTarget Id="Microsoft.VisualStudio.Code"/>'
        "</Installation><Dependencies/><Assets>"
        '<Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" '
        'Addressable="true"/></Assets></PackageManifest>\n'
    )
    content_types = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension=".json" ContentType="application/json"/>'
        '<Default Extension=".vsixmanifest" ContentType="text/xml"/></Types>\n'
    )
    path = directory / f"{publisher}.{name}-{version}.vsix"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", content_types)
        archive.writestr("extension.vsixmanifest", manifest)
        archive.writestr("extension/package.json", json.dumps(package))
    return path
