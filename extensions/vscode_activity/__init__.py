"""Our VS Code extension that reports VS Code use (``package.json`` + ``extension.js`` here).

:func:`pack_vsix` zips it as a VSIX (the layout ``vsce package`` makes: the manifest, the
content types and the extension under ``extension/``), which ``code-server
--install-extension`` installs like any other; :data:`EXTENSION_ID` is its
``publisher.name``. ``extensions/vscode.py`` installs it into each codespace's code-server
before it starts (once per version). What it measures: ``extension.js``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
FILES = ("package.json", "extension.js")
_MANIFEST = json.loads((HERE / "package.json").read_text())
EXTENSION_ID = f"{_MANIFEST['publisher']}.{_MANIFEST['name']}"
VERSION = str(_MANIFEST["version"])

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension=".json" ContentType="application/json"/>'
    '<Default Extension=".js" ContentType="application/javascript"/>'
    '<Default Extension=".vsixmanifest" ContentType="text/xml"/>'
    "</Types>\n"
)


def vsix_manifest() -> str:
    """``extension.vsixmanifest`` for the extension."""
    name, publisher = escape(_MANIFEST["name"]), escape(_MANIFEST["publisher"])
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<PackageManifest Version="2.0.0" '
        'xmlns="http://schemas.microsoft.com/developer/vsx-schema/2011">\n'
        "  <Metadata>\n"
        f'    <Identity Language="en-US" Id="{name}" Version="{escape(VERSION)}" '
        f'Publisher="{publisher}"/>\n'
        f"    <DisplayName>{escape(_MANIFEST['displayName'])}</DisplayName>\n"
        f'    <Description xml:space="preserve">{escape(_MANIFEST["description"])}</Description>\n'
        "  </Metadata>\n"
        '  <Installation><InstallationTarget Id="Microsoft.VisualStudio.Code"/></Installation>\n'
        "  <Dependencies/>\n"
        "  <Assets>\n"
        '    <Asset Type="Microsoft.VisualStudio.Code.Manifest" Path="extension/package.json" '
        'Addressable="true"/>\n'
        "  </Assets>\n"
        "</PackageManifest>\n"
    )


def pack_vsix(directory: Path) -> Path:
    """Write ``<publisher>.<name>-<version>.vsix`` in ``directory``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{EXTENSION_ID}-{VERSION}.vsix"
    partial = target.with_suffix(".vsix.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as vsix:
        vsix.writestr("[Content_Types].xml", CONTENT_TYPES)
        vsix.writestr("extension.vsixmanifest", vsix_manifest())
        for name in FILES:
            vsix.write(HERE / name, f"extension/{name}")
    partial.replace(target)
    return target
