"""The embedded default backend: a catalog of local directories and fsspec URLs.

- local directories are listed and mounted in place (a symlink under ``datasets/`` in the
  workspace);
- remote sources (``s3://...`` and any other fsspec URL) are listed through fsspec;
  prewarming copies them, read-through, into a cache directory, and mounting links the cache;
  ``release_cache(name)`` removes that copy (a job's ``releaseCache`` calls it).

Statuses use Fluid's vocabulary (phase ``Bound``, ``ufsTotal``, ``cachedPercentage``) so the
UI reads the same on one machine and on Kubernetes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from codespace.datasets import metrics
from codespace.datasets.backend import (
    DEFAULT_PAGE_SIZE,
    DatasetBackend,
    DatasetError,
    DatasetNotFound,
    DatasetSettings,
    Row,
    list_local_directory,
    paginate,
)
from codespace.datasets.catalog import Catalog
from codespace.datasets.models import (
    CatalogEntry,
    Dataset,
    DatasetStatus,
    FilePage,
    MountResult,
    PrewarmOperation,
)
from codespace.datasets.mounts import PendingMounts
from codespace.datasets.paths import clean_relative, clean_target, resolve_within
from codespace.datasets.sizes import human_bytes, percentage

CHUNK = 1 << 20
HISTORY_LIMIT = 20


class LocalBackend(DatasetBackend):
    """Datasets from a catalog file; see the module docstring."""

    kind = "local"

    def __init__(
        self,
        catalog: Catalog,
        *,
        cache_dir: Path,
        workspace: Path | None = None,
        storage_options: dict[str, dict[str, Any]] | None = None,
        make_link: Callable[[Path, Path], None] | None = None,
        pending_dir: Path | None = None,
    ) -> None:
        self.catalog = catalog
        # where a mount that must wait for the hub is recorded (the server's state dir)
        self.pending_dir = Path(pending_dir) if pending_dir else None
        # how a mount links ``link`` -> ``target`` (the hub, as root, asks the codespace's
        # account to do it: the workspace is the user's, root never writes into it)
        self.make_link = make_link or _make_link
        self.cache_dir = Path(cache_dir)
        self.workspace = Path(workspace) if workspace else None
        self.storage_options = storage_options or {}
        self._status: dict[str, DatasetStatus] = {}
        self._operations: dict[str, list[PrewarmOperation]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(cls, settings: DatasetSettings) -> Self:
        return cls(
            Catalog(settings.catalog),
            cache_dir=settings.cache_dir,
            workspace=settings.workspace,
            storage_options={key: dict(value) for key, value in settings.storage_options.items()},
            pending_dir=settings.state_dir,
        )

    # --- lookup --------------------------------------------------------------------------

    def _entry(self, name: str) -> CatalogEntry:
        entry = self.catalog.entries().get(name)
        if entry is None:
            raise DatasetNotFound(name)
        return entry

    def _filesystem(self, entry: CatalogEntry) -> tuple[Any, str]:
        from fsspec.core import url_to_fs  # server side only; kernels never import fsspec

        protocol = entry.source.split("://", 1)[0]
        fs, root = url_to_fs(entry.source, **self.storage_options.get(protocol, {}))
        return fs, root.rstrip("/")

    def _link(self, name: str) -> Path | None:
        return self.workspace / "datasets" / name if self.workspace else None

    def _cache(self, name: str) -> Path:
        return self.cache_dir / "data" / name

    def _target(self, entry: CatalogEntry) -> Path:
        """What a mount links to: the directory itself, or the cache of a remote source."""
        if entry.is_remote:
            return self._cache(entry.name)
        return Path(entry.source.removeprefix("file://"))

    def _dataset(self, entry: CatalogEntry, status: DatasetStatus) -> Dataset:
        link = self._link(entry.name)
        mounted = bool(link and link.is_symlink() and link.exists())
        return Dataset(
            name=entry.name,
            description=entry.description,
            source=entry.source,
            readOnly=entry.readOnly,
            tags=entry.tags,
            backend=self.kind,
            status=status,
            mountPath=str(link) if link else None,
            mounted=mounted,
        )

    # --- list / get ----------------------------------------------------------------------

    async def list(self) -> list[Dataset]:
        entries = self.catalog.entries()
        return [
            self._dataset(entry, self._status.get(entry.name) or self._quick_status(entry))
            for entry in entries.values()
        ]

    def _quick_status(self, entry: CatalogEntry) -> DatasetStatus:
        if entry.is_remote:
            return DatasetStatus(phase="Unknown", message="open the dataset to check its source")
        if Path(self._target(entry)).is_dir():
            return DatasetStatus(phase="Bound")
        return DatasetStatus(phase="Failed", message=f"{entry.source} is not a directory")

    async def get(self, name: str) -> Dataset:
        entry = self._entry(name)
        status = await asyncio.to_thread(self._full_status, entry)
        self._status[name] = status
        return self._dataset(entry, status)

    def _full_status(self, entry: CatalogEntry) -> DatasetStatus:
        running = [op for op in self._operations.get(entry.name, []) if not op.finished]
        if entry.is_remote:
            try:
                fs, root = self._filesystem(entry)
                found = fs.find(root, detail=True)
            except (OSError, ValueError, ImportError) as error:
                return DatasetStatus(phase="Failed", message=f"{entry.source}: {error}")
            total = sum(int(info.get("size") or 0) for info in found.values())
            cached, _ = _tree_size(self._cache(entry.name))
            free = shutil.disk_usage(self.cache_dir if self.cache_dir.exists() else "/").free
            return DatasetStatus(
                phase="DataLoading" if running else "Bound",
                ufsTotal=human_bytes(total),
                fileNum=len(found),
                cached=human_bytes(cached),
                cacheCapacity=human_bytes(cached + free),
                cachedPercentage=percentage(cached, total),
                runtimePhases={"cache": "Ready"},
            )
        directory = self._target(entry)
        if not directory.is_dir():
            return DatasetStatus(phase="Failed", message=f"{entry.source} is not a directory")
        total, count = _tree_size(directory)
        return DatasetStatus(
            phase="Bound",
            ufsTotal=human_bytes(total),
            fileNum=count,
            cached=human_bytes(total),
            cachedPercentage="100.0%",
            message="a local directory: always fully available",
        )

    # --- files ---------------------------------------------------------------------------

    async def files(
        self,
        name: str,
        path: str = "",
        *,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> FilePage:
        entry = self._entry(name)
        relative = clean_relative(path)
        if not entry.is_remote:
            return await asyncio.to_thread(
                list_local_directory,
                name,
                self._target(entry),
                relative,
                limit=limit,
                cursor=cursor,
            )
        return await asyncio.to_thread(self._remote_files, entry, relative, limit, cursor)

    def _remote_files(
        self, entry: CatalogEntry, relative: str, limit: int, cursor: str | None
    ) -> FilePage:
        fs, root = self._filesystem(entry)
        directory = f"{root}/{relative}" if relative else root
        try:
            listing = fs.ls(directory, detail=True)
        except FileNotFoundError as error:
            raise DatasetError(f"{relative or '/'} does not exist in {entry.name!r}") from error
        rows: list[Row] = []
        for info in listing:
            child = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if not child or info["name"].rstrip("/") == directory:
                continue
            is_dir = info.get("type") == "directory"
            modified = info.get("LastModified") or info.get("mtime")
            rows.append(
                (
                    child,
                    is_dir,
                    int(info.get("size") or 0),
                    modified.timestamp() if hasattr(modified, "timestamp") else modified,
                )
            )
        return paginate(entry.name, relative, rows, limit, cursor)

    # --- prewarm -------------------------------------------------------------------------

    def _state_file(self, name: str) -> Path:
        return self.cache_dir / "state" / f"{name}.json"

    def _history(self, name: str) -> list[PrewarmOperation]:
        if name not in self._operations:
            path = self._state_file(name)
            loaded: list[PrewarmOperation] = []
            if path.exists():
                try:
                    loaded = [
                        PrewarmOperation.model_validate(op) for op in json.loads(path.read_text())
                    ]
                except (ValueError, TypeError):
                    loaded = []
            for op in loaded:  # interrupted by a restart
                if not op.finished:
                    op.phase, op.message = "Failed", "interrupted: the server stopped"
            self._operations[name] = loaded
        return self._operations[name]

    def _save_history(self, name: str) -> None:
        path = self._state_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        ops = self._operations.get(name, [])[:HISTORY_LIMIT]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps([op.model_dump(mode="json") for op in ops]))
        os.replace(tmp, path)

    async def prewarm_history(self, name: str) -> list[PrewarmOperation]:
        self._entry(name)
        return list(self._history(name))

    async def prewarm(self, name: str, paths: list[str] | None = None) -> PrewarmOperation:
        entry = self._entry(name)
        if entry.is_remote and not self.cache_writable():
            raise self._hub_fills_cache(f"prewarm {name!r}")
        targets = sorted({clean_target(path) for path in (paths or [""])})
        history = self._history(name)
        running = next((op for op in history if not op.finished), None)
        if running is not None:
            return running
        op = PrewarmOperation(
            id=uuid.uuid4().hex[:12],
            dataset=name,
            paths=["/" + target for target in targets],
            startedAt=time.time(),
        )
        history.insert(0, op)
        del history[HISTORY_LIMIT:]
        if not entry.is_remote:
            op.phase, op.finishedAt = "Complete", time.time()
            op.message = "a local directory needs no cache: it is read in place"
            self._save_history(name)
            return op
        op.phase = "Executing"
        self._save_history(name)
        task = asyncio.create_task(self._run_prewarm(entry, op, targets))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return op

    async def _run_prewarm(
        self, entry: CatalogEntry, op: PrewarmOperation, targets: list[str]
    ) -> None:
        try:
            await asyncio.to_thread(self._copy, entry, op, targets)
            op.phase = "Complete"
        except (OSError, ValueError, DatasetError) as error:
            op.phase, op.message = "Failed", f"{type(error).__name__}: {error}"
        finally:
            op.finishedAt = time.time()
            metrics.prewarm_ended(entry.name, op.phase)
            self._status.pop(entry.name, None)
            self._save_history(entry.name)

    def _copy(self, entry: CatalogEntry, op: PrewarmOperation, targets: list[str]) -> None:
        """Read-through copy of ``targets`` into the cache; files already there are kept."""
        fs, root = self._filesystem(entry)
        files: dict[str, int] = {}
        for target in targets:
            remote = f"{root}/{target}" if target else root
            if target and fs.isfile(remote):
                files[remote] = int(fs.info(remote).get("size") or 0)
                continue
            for path, info in fs.find(remote, detail=True).items():
                files[path] = int(info.get("size") or 0)
        op.filesTotal, op.bytesTotal = len(files), sum(files.values())
        cache = self._cache(entry.name)
        cache.mkdir(parents=True, exist_ok=True)
        already = 0
        for remote, size in sorted(files.items()):
            relative = clean_relative(remote[len(root) :].lstrip("/"))
            destination = cache / relative
            resolve_within(cache, str(Path(relative).parent))  # no link in the cache leads out
            if destination.is_file() and destination.stat().st_size == size:
                already += 1
                _advance(op, size)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(destination.name + ".part")
            with fs.open(remote, "rb") as source, open(partial, "wb") as sink:
                while chunk := source.read(CHUNK):
                    sink.write(chunk)
                    op.bytesDone += len(chunk)
                    metrics.copied(entry.name, len(chunk))
            op.filesDone += 1
            if entry.readOnly:
                partial.chmod(0o444)
            os.replace(partial, destination)
        op.message = f"{op.filesTotal} files; {already} were already cached"

    async def release_cache(self, name: str) -> str:
        """Remove the prewarmed copy of a remote dataset (``<cache_dir>/data/<name>``) and the
        prewarm history that described it, so the next prewarm copies it again (a mount
        of it shows nothing until then). A local directory has no copy: nothing to do. A
        prewarm that is running keeps the copy (DatasetError), as does a read-only cache."""
        entry = self._entry(name)
        if not entry.is_remote:
            return f"{name}: a local directory has no cached copy"
        if not self.cache_writable():
            raise self._hub_fills_cache(f"release the cache of {name!r}")
        if any(not op.finished for op in self._history(name)):
            raise DatasetError(f"a prewarm of {name!r} is running: its cached copy is kept")
        cache = self._cache(name)
        size, count = await asyncio.to_thread(_tree_size, cache)
        try:
            await asyncio.to_thread(shutil.rmtree, cache)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise DatasetError(f"cannot release the cache of {name!r}: {error}") from error
        self._operations[name] = []
        self._save_history(name)
        self._status.pop(name, None)
        return f"{name}: released its cached copy ({human_bytes(size)} in {count} files)"

    # --- mount ---------------------------------------------------------------------------

    def cache_writable(self) -> bool:
        """False in a codespace of a hub that runs codespaces as accounts: the shared cache
        is the hub's (no codespace can change what another reads); the hub fills it when a
        codespace starts."""
        probe = self.cache_dir
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return os.access(probe, os.W_OK)

    def _hub_fills_cache(self, what: str) -> DatasetError:
        return DatasetError(
            f"{what}: the hub's shared dataset cache is read-only for codespaces; the hub "
            "prewarms a dataset when a codespace starts (prewarm: true in .codespace/, or "
            "mount it and restart)"
        )

    async def mount(self, name: str) -> MountResult:
        entry = self._entry(name)
        link = self._link(name)
        if link is None:
            raise DatasetError(
                "no workspace is configured for this codespace: nothing to mount into"
            )
        if entry.is_remote and not self.cache_writable() and not self._cache(name).is_dir():
            return self._mount_at_next_start(name)
        target = self._target(entry)
        if entry.is_remote:
            target.mkdir(parents=True, exist_ok=True)
        elif not target.is_dir():
            raise DatasetError(f"{entry.source} is not a directory")
        if link.is_symlink() and os.readlink(link) == str(target):
            notes = ["already mounted"]
        elif link.exists() or link.is_symlink():
            raise DatasetError(
                f"{link} already exists and is not this dataset's link; move it away"
            )
        else:
            self.make_link(link, target)
            notes = [f"linked {link} -> {target}"]
        enforced = False
        if entry.is_remote:
            complete = any(op.phase == "Complete" for op in self._history(name))
            if not complete and self.cache_writable():
                op = await self.prewarm(name)
                notes.append(f"prewarm {op.id} started: files appear as they are copied")
            enforced = entry.readOnly and os.geteuid() != 0
            if entry.readOnly:
                notes.append(
                    "read-only: cached files are mode 0444"
                    + ("" if enforced else ", which does not stop root")
                )
        elif entry.readOnly:
            notes.append(
                "read-only is NOT enforced for a local directory: a symlink cannot make it "
                "read-only, so writes reach the source (its own file permissions apply)"
            )
        return MountResult(
            dataset=name,
            mountPath=str(link),
            mounted=True,
            readOnlyEnforced=enforced,
            message="; ".join(notes),
        )

    def _mount_at_next_start(self, name: str) -> MountResult:
        """A remote dataset nobody cached yet, in a codespace that cannot fill the shared
        cache: record it; the hub mounts and prewarms it when the codespace next starts."""
        if self.pending_dir is None:
            raise self._hub_fills_cache(f"mount {name!r}")
        PendingMounts(self.pending_dir).add(name)
        return MountResult(
            dataset=name,
            mountPath=str(self._link(name)),
            mounted=False,
            pendingRestart=True,
            message=(
                "recorded: the hub fills the shared cache, so this dataset is mounted and "
                "prewarmed when this codespace next starts (stop and start it)"
            ),
        )

    async def unmount(self, name: str) -> MountResult:
        self._entry(name)
        link = self._link(name)
        if link is None or not link.is_symlink():
            return MountResult(
                dataset=name, mountPath=str(link), mounted=False, message="was not mounted"
            )
        link.unlink()
        return MountResult(dataset=name, mountPath=str(link), mounted=False, message="unmounted")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _advance(op: PrewarmOperation, size: int) -> None:
    op.bytesDone += size
    op.filesDone += 1


def _tree_size(root: Path) -> tuple[int, int]:
    """Total bytes and number of files under ``root`` (links not followed)."""
    total = count = 0
    for directory, _dirs, names in os.walk(root):
        for name in names:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            total += info.st_size
            count += 1
    return total, count


def _make_link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)
