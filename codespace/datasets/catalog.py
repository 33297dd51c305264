"""The local dataset catalog: a YAML file naming directories and fsspec URLs.

```yaml
datasets:
  - name: mnist
    description: Handwritten digits
    source: /srv/data/mnist          # a local directory (or file:///srv/data/mnist)
    readOnly: true
    tags: [images]
  - name: weather
    source: s3://climate/weather/    # any fsspec URL
```

The path comes from the server extension's setting or ``CODESPACE_DATASET_CATALOG``.
Relative local sources are relative to the catalog file.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from codespace.datasets.backend import DatasetError
from codespace.datasets.models import CatalogEntry

CATALOG_ENV = "CODESPACE_DATASET_CATALOG"
# libyaml when present: a 1,000-entry catalog parses ~10x faster
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def catalog_path(configured: str | os.PathLike[str] | None = None) -> Path | None:
    """The configured catalog path, else the environment variable's, else None."""
    value = configured or os.environ.get(CATALOG_ENV)
    return Path(value).expanduser() if value else None


def parse_catalog(
    text: str, *, origin: str = "<catalog>", base: Path | None = None
) -> list[CatalogEntry]:
    """Parse catalog YAML; errors name the file and the entry."""
    try:
        data = yaml.load(text, Loader=_LOADER) or {}  # noqa: S506 - a safe loader
    except yaml.YAMLError as error:
        raise DatasetError(f"{origin}: not valid YAML: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("datasets", []), list):
        raise DatasetError(f"{origin}: expected a mapping with a 'datasets' list")
    unknown = set(data) - {"datasets"}
    if unknown:
        raise DatasetError(f"{origin}: unknown top-level keys {sorted(unknown)}")
    entries: list[CatalogEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(data.get("datasets") or []):
        try:
            entry = CatalogEntry.model_validate(item)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in error.errors()
            )
            raise DatasetError(f"{origin}: datasets[{index}]: {problems}") from error
        if entry.name in seen:
            raise DatasetError(f"{origin}: datasets[{index}]: {entry.name!r} is listed twice")
        seen.add(entry.name)
        if base is not None and not entry.is_remote:
            local = entry.source.removeprefix("file://")
            entry.source = str((base / local).resolve()) if not local.startswith("/") else local
        entries.append(entry)
    return entries


class Catalog:
    """A catalog file, re-read when it changes on disk (mtime), so admins can edit it live."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, CatalogEntry] = {}

    def entries(self) -> dict[str, CatalogEntry]:
        if self.path is None:
            return {}
        try:
            info = self.path.stat()
        except FileNotFoundError as error:
            raise DatasetError(f"dataset catalog {self.path} does not exist") from error
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            parsed = parse_catalog(
                self.path.read_text(), origin=str(self.path), base=self.path.parent
            )
            self._entries = {entry.name: entry for entry in parsed}
            self._stamp = stamp
        return self._entries
