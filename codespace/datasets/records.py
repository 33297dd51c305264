"""What the notebook SDK returns: light, immutable records built from the REST JSON (stdlib only).

The kernel side runs in the repository's environment, whose dependency pins are the user's, so
these are frozen dataclasses rather than the server's pydantic models
(:mod:`codespace.datasets.models`). Field names are the REST fields, the same names the models
use, so ``dataset.status.cachedPercentage`` reads the same everywhere. Sequences are tuples
(records are immutable); keys a newer server adds are ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

R = TypeVar("R", bound="_Record")


class _Record:
    """Shared behaviour: build from JSON, a repr that leaves out fields still at their default."""

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        """Turn nested JSON into nested records (overridden where a record nests others)."""
        return values

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        known = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values = cls._convert({key: value for key, value in data.items() if key in known})
        try:
            return cls(**values)
        except TypeError as error:  # a required field is missing
            raise ValueError(f"{cls.__name__}: {error}") from error

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON data (tuples become lists)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    def __repr__(self) -> str:
        shown = [
            f"{field.name}={getattr(self, field.name)!r}"
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
            if not _is_default(field, getattr(self, field.name))
        ]
        return f"{type(self).__name__}({', '.join(shown)})"


def _is_default(field: dataclasses.Field, value: Any) -> bool:
    if field.default is not dataclasses.MISSING:
        return value == field.default
    if field.default_factory is not dataclasses.MISSING:
        return value == field.default_factory()
    return False


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in values or ())


@dataclasses.dataclass(frozen=True, repr=False)
class DatasetStatus(_Record):
    """Where a dataset stands. Sizes are human strings as Fluid reports them ('1.20GiB')."""

    phase: str = "Unknown"
    ufsTotal: str | None = None
    fileNum: int | None = None
    cached: str | None = None
    cacheCapacity: str | None = None
    cachedPercentage: str | None = None
    cacheHitRatio: str | None = None
    runtimePhases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    message: str | None = None

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "runtimePhases": dict(values.get("runtimePhases") or {})}

    def __hash__(self) -> int:
        return hash((self.phase, self.ufsTotal, self.fileNum, self.cached, self.message))


@dataclasses.dataclass(frozen=True, repr=False)
class Dataset(_Record):
    """A dataset as this codespace sees it, with its status."""

    name: str
    backend: str
    description: str = ""
    source: str = ""
    readOnly: bool = True
    tags: tuple[str, ...] = ()
    status: DatasetStatus = dataclasses.field(default_factory=DatasetStatus)
    mountPath: str | None = None
    mounted: bool = False
    contentsPath: str | None = None

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {
            **values,
            "tags": _strings(values.get("tags")),
            "status": DatasetStatus.from_json(values.get("status") or {}),
        }


@dataclasses.dataclass(frozen=True, repr=False)
class FileEntry(_Record):
    """One file or directory; ``path`` is relative to the dataset root."""

    name: str
    path: str
    type: str
    size: int | None = None
    modified: float | None = None

    @property
    def is_dir(self) -> bool:
        return self.type == "directory"


@dataclasses.dataclass(frozen=True, repr=False)
class FilePage(_Record):
    """One page of a directory listing; pass ``nextCursor`` back to get the next page."""

    dataset: str
    path: str
    total: int
    entries: tuple[FileEntry, ...] = ()
    nextCursor: str | None = None

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        entries = tuple(FileEntry.from_json(entry) for entry in values.get("entries") or ())
        return {**values, "entries": entries}


@dataclasses.dataclass(frozen=True, repr=False)
class PrewarmOperation(_Record):
    """One prewarm (a Fluid DataLoad, or a local read-through copy)."""

    id: str
    dataset: str
    paths: tuple[str, ...] = ("/",)
    phase: str = "Pending"
    bytesDone: int = 0
    bytesTotal: int | None = None
    filesDone: int = 0
    filesTotal: int | None = None
    startedAt: float | None = None
    finishedAt: float | None = None
    message: str | None = None

    @classmethod
    def _convert(cls, values: dict[str, Any]) -> dict[str, Any]:
        return {**values, "paths": _strings(values.get("paths", ("/",)))}

    @property
    def finished(self) -> bool:
        return self.phase in ("Complete", "Failed")


@dataclasses.dataclass(frozen=True, repr=False)
class MountResult(_Record):
    """What ``mount`` did, in words a user can act on."""

    dataset: str
    mountPath: str
    mounted: bool
    message: str
    pendingRestart: bool = False
    readOnlyEnforced: bool = False

    def __str__(self) -> str:
        return self.message


__all__ = [
    "Dataset",
    "DatasetStatus",
    "FileEntry",
    "FilePage",
    "MountResult",
    "PrewarmOperation",
]
