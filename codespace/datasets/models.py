"""Plain data for datasets: what a backend returns and the REST API serialises.

Field names are camelCase where they mirror Fluid's status (``ufsTotal``, ``fileNum``,
``cachedPercentage`` ...) so the same JSON reads the same in the lab, the widget and the CLI.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from codespace.spec.model import DNS1123_LABEL


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CatalogEntry(_Model):
    """One dataset in a local catalog file."""

    name: str = Field(..., description="Dataset name (a DNS-1123 label)")
    description: str = ""
    source: str = Field(..., description="A local directory or an fsspec URL (s3://bucket/prefix)")
    readOnly: bool = True
    tags: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not DNS1123_LABEL.fullmatch(value):
            raise ValueError(f"dataset name {value!r} is not a DNS-1123 label")
        return value

    @property
    def is_remote(self) -> bool:
        return "://" in self.source and not self.source.startswith("file://")


class DatasetStatus(_Model):
    """Where a dataset stands. Sizes are human strings as Fluid reports them ('1.20GiB')."""

    phase: str = "Unknown"
    ufsTotal: str | None = Field(None, description="Total size in the underlying storage")
    fileNum: int | None = Field(None, description="Number of files")
    cached: str | None = Field(None, description="Bytes in the cache")
    cacheCapacity: str | None = None
    cachedPercentage: str | None = Field(None, description="e.g. '42.0%'")
    cacheHitRatio: str | None = None
    runtimePhases: dict[str, str] = Field(
        default_factory=dict, description="Runtime component phases, e.g. master/worker/fuse"
    )
    message: str | None = None


class Dataset(_Model):
    """A dataset as listed by any backend."""

    name: str
    description: str = ""
    source: str = ""
    readOnly: bool = True
    tags: list[str] = Field(default_factory=list)
    backend: str
    status: DatasetStatus = Field(default_factory=DatasetStatus)
    mountPath: str | None = Field(None, description="Where it is mounted in this codespace")
    mounted: bool = False
    contentsPath: str | None = Field(
        None, description="mountPath relative to the Jupyter server's root (set by the REST API)"
    )


class FileEntry(_Model):
    name: str
    path: str = Field(..., description="Path relative to the dataset root")
    type: Literal["file", "directory"]
    size: int | None = None
    modified: float | None = Field(None, description="Seconds since the epoch")


class FilePage(_Model):
    """One page of a directory listing; pass ``nextCursor`` back to get the next page."""

    dataset: str
    path: str
    entries: list[FileEntry]
    total: int
    nextCursor: str | None = None


class PrewarmOperation(_Model):
    """One prewarm (a Fluid DataLoad, or a local read-through copy)."""

    id: str
    dataset: str
    paths: list[str] = Field(default_factory=lambda: ["/"])
    phase: Literal["Pending", "Executing", "Complete", "Failed"] = "Pending"
    bytesDone: int = 0
    bytesTotal: int | None = None
    filesDone: int = 0
    filesTotal: int | None = None
    startedAt: float | None = None
    finishedAt: float | None = None
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.phase in ("Complete", "Failed")


class MountResult(_Model):
    """What ``mount`` did, in words a user can act on."""

    dataset: str
    mountPath: str
    mounted: bool = Field(..., description="Usable now, without a restart")
    pendingRestart: bool = Field(False, description="Recorded; mounted at the next start")
    readOnlyEnforced: bool = False
    message: str
