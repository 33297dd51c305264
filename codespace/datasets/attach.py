"""Mount a local codespace's datasets at start: the spawn-time half of the local backend.

The local spawner plans the mounts with :func:`~codespace.datasets.mounts.plan_mounts` (the
spec's datasets, the ones picked in the spawn form, and those recorded for the next start)
and calls :func:`attach_datasets`. It uses the same :class:`LocalBackend` the codespace's
server extension uses, with the same cache directory, so what is mounted and prewarmed here
is what the Datasets sidebar shows.

Local mode mounts every dataset at ``<workspace>/datasets/<name>``: a ``mountPath`` from the
spec is a path inside a container, which only Kubernetes mode can honour; the progress log
says where each one went. Problems (a name the catalog does not know, a missing directory, a
failed prewarm) are reported and the start goes on: a dataset never locks a user out.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codespace.datasets.backend import DatasetError, DatasetNotFound
from codespace.datasets.catalog import Catalog
from codespace.datasets.local import LocalBackend
from codespace.datasets.models import PrewarmOperation
from codespace.datasets.mounts import DATASETS_ENV, DatasetMount, PendingMounts
from codespace.datasets.sizes import human_bytes

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class LocalDatasetSettings:
    """Where a local codespace's datasets come from and where their caches live."""

    catalog: Path | None  # the catalog file; None: no catalog (only errors for named datasets)
    cache_dir: Path  # prewarmed copies of remote sources and prewarm history, shared by users
    state_dir: Path  # this server's state: mounts recorded for the next start
    storage_options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Attached:
    """One mounted dataset: where it is and what the user should know about it."""

    name: str
    path: Path
    origin: str
    note: str = ""


@dataclass
class AttachResult:
    attached: list[Attached] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line each, for the errors file

    def env(self) -> dict[str, str]:
        if not self.attached:
            return {}
        return {DATASETS_ENV: ",".join(f"{a.name}={a.path}" for a in self.attached)}


async def attach_datasets(
    mounts: Sequence[DatasetMount],
    settings: LocalDatasetSettings,
    workspace: Path,
    *,
    on_step: Callable[[str], None],
    on_line: Callable[[str], None],
    make_link: Callable[[Path, Path], None] | None = None,
) -> AttachResult:
    """Link each planned dataset into the workspace and prewarm those that ask for it
    (``make_link(link, target)``: how, e.g. as the codespace's account)."""
    result = AttachResult()
    if not mounts:
        return result
    backend = LocalBackend(
        Catalog(settings.catalog),
        cache_dir=settings.cache_dir,
        workspace=workspace,
        storage_options=settings.storage_options,
        make_link=make_link,
    )
    pending = PendingMounts(settings.state_dir)
    try:
        for mount in mounts:
            try:
                attached = await _attach_one(backend, mount, workspace, on_step, on_line)
            except DatasetError as error:
                problem = _problem(mount, error, settings.catalog)
                result.problems.append(problem)
                on_line(f"error: {problem}; starting without it")
                continue
            result.attached.append(attached)
            if mount.origin == "pending":
                pending.remove(mount.name)
    finally:
        await backend.close()
    return result


async def _attach_one(
    backend: LocalBackend,
    mount: DatasetMount,
    workspace: Path,
    on_step: Callable[[str], None],
    on_line: Callable[[str], None],
) -> Attached:
    link = mount.workspace_link(workspace)
    where = _relative(link, workspace)
    asked_by = {"spec": "the repository", "options": "the spawn form", "pending": "mount()"}
    on_step(f"datasets: mounting {mount.name} at {where} (asked by {asked_by[mount.origin]})")
    if mount.mountPath != f"/datasets/{mount.name}":
        on_line(
            f"{mount.name}: mountPath {mount.mountPath} applies in Kubernetes mode; "
            f"in local mode it is at {where}"
        )
    result = await backend.mount(mount.name)
    for note in result.message.split("; "):
        on_line(f"{mount.name}: {note}")
    # Mounting a remote source starts filling its cache; the codespace should find its
    # files, so wait for that here rather than leave a copy running in the hub.
    started = [op for op in await backend.prewarm_history(mount.name) if not op.finished]
    if mount.prewarm and not started:
        paths = mount.prewarm if isinstance(mount.prewarm, list) else None
        on_step(f"datasets: prewarming {mount.name} ({', '.join(paths or ['/'])})")
        started = [await backend.prewarm(mount.name, paths)]
    for op in started:
        await _follow(op, on_line)
    note = ""
    if mount.prewarm and started and started[-1].phase == "Failed":
        raise DatasetError(f"prewarm of {mount.name!r} failed: {started[-1].message}")
    if started:
        note = f"prewarmed: {started[-1].message or started[-1].phase}"
        on_line(f"{mount.name}: {note}")
    return Attached(name=mount.name, path=link, origin=mount.origin, note=note)


async def _follow(op: PrewarmOperation, on_line: Callable[[str], None]) -> None:
    """Report a prewarm's progress about every few seconds until it ends."""
    last = -1
    ticks = 0
    while not op.finished:
        await asyncio.sleep(POLL_SECONDS)
        ticks += 1
        if op.filesDone != last and ticks % 6 == 0:
            last = op.filesDone
            total = "?" if op.filesTotal is None else op.filesTotal
            on_line(
                f"{op.dataset}: prewarm {op.filesDone}/{total} files, {human_bytes(op.bytesDone)}"
            )
    on_line(
        f"{op.dataset}: prewarm {op.phase.lower()}: {op.filesDone} files, "
        f"{human_bytes(op.bytesDone)}"
    )


def _problem(mount: DatasetMount, error: DatasetError, catalog: Path | None) -> str:
    if isinstance(error, DatasetNotFound):
        if catalog is None:
            return (
                f"dataset {mount.name!r} was asked for, but this hub has no dataset catalog "
                "(codespace-hub --dataset-catalog FILE)"
            )
        return f"dataset {mount.name!r} is not in the catalog {catalog}"
    return f"dataset {mount.name!r} could not be mounted: {error}"


def _relative(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


def extension_config(settings: LocalDatasetSettings, workspace: Path) -> dict[str, Any]:
    """Jupyter server config for a local codespace: our server extension on, local backend.

    The spawner writes it as ``jupyter_server_config.json`` in a directory on the server's
    ``JUPYTER_CONFIG_PATH``; it may hold storage credentials, so it is written mode 0600.
    """
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "dataset_backend_class": "codespace.datasets.local.LocalBackend",
            "dataset_catalog": str(settings.catalog or ""),
            "dataset_cache_dir": str(settings.cache_dir),
            "workspace": str(workspace),
            "state_dir": str(settings.state_dir),
            "storage_options": settings.storage_options,
        },
    }
