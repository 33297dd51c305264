"""The local catalog backend with real directories and an S3 source served by moto."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from codespace.datasets import DatasetError, DatasetNotFound, PathRefused
from codespace.datasets.catalog import Catalog, parse_catalog
from codespace.datasets.local import LocalBackend
from tests.datasets_support import moto_s3, write_catalog


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "mnist"
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    for index in range(5):
        (root / "train" / f"img{index}.png").write_bytes(b"x" * (index + 1))
    (root / "README.md").write_text("digits\n")
    (tmp_path / "secret.txt").write_text("not yours")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(tmp_path, root / "escape-dir")
    os.symlink(root / "README.md", root / "inside-link.md")
    return root


@pytest.fixture
def backend(tmp_path: Path, tree: Path) -> LocalBackend:
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        [
            {"name": "mnist", "description": "digits", "source": "mnist", "tags": ["images"]},
            {"name": "gone", "source": str(tmp_path / "missing")},
        ],
    )
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    return LocalBackend(Catalog(catalog), cache_dir=tmp_path / "cache", workspace=workspace)


def test_catalog_errors_name_the_entry() -> None:
    with pytest.raises(DatasetError, match=r"cat.yaml: datasets\[1\]: name"):
        parse_catalog(
            "datasets:\n- {name: ok, source: /x}\n- {name: Not_OK, source: /y}\n",
            origin="cat.yaml",
        )
    with pytest.raises(DatasetError, match="listed twice"):
        parse_catalog("datasets:\n- {name: a, source: /x}\n- {name: a, source: /y}\n")
    with pytest.raises(DatasetError, match="source"):
        parse_catalog("datasets:\n- {name: a}\n")


def test_catalog_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from codespace.datasets.catalog import catalog_path

    monkeypatch.setenv("CODESPACE_DATASET_CATALOG", str(tmp_path / "c.yaml"))
    assert catalog_path() == tmp_path / "c.yaml"
    assert catalog_path("/etc/other.yaml") == Path("/etc/other.yaml")


async def test_list_and_get(backend: LocalBackend, tree: Path) -> None:
    listed = {d.name: d for d in await backend.list()}
    assert listed["mnist"].status.phase == "Bound"
    assert listed["mnist"].source == str(tree)  # relative to the catalog file
    assert listed["gone"].status.phase == "Failed"
    detail = await backend.get("mnist")
    assert detail.status.fileNum == 8  # 5 images, README, 2 links (not followed)
    assert detail.status.cachedPercentage == "100.0%"
    assert detail.tags == ["images"]
    with pytest.raises(DatasetNotFound):
        await backend.get("nope")


async def test_files_paginated_and_confined(backend: LocalBackend) -> None:
    page = await backend.files("mnist")
    names = [e.name for e in page.entries]
    assert names[:2] == ["test", "train"]  # directories first
    assert "escape.txt" not in names and "escape-dir" not in names
    assert "inside-link.md" in names
    first = await backend.files("mnist", "train", limit=2)
    assert [e.path for e in first.entries] == ["train/img0.png", "train/img1.png"]
    assert first.total == 5 and first.nextCursor
    second = await backend.files("mnist", "train/", limit=2, cursor=first.nextCursor)
    assert [e.name for e in second.entries] == ["img2.png", "img3.png"]
    for bad in ("../", "train/../../", "/etc", "escape-dir", "escape-dir/secret.txt"):
        with pytest.raises((PathRefused, DatasetError)):
            await backend.files("mnist", bad)
    with pytest.raises(DatasetError, match="cursor"):
        await backend.files("mnist", "", cursor="garbage!")


async def test_mount_links_into_workspace_and_says_readonly_is_not_enforced(
    backend: LocalBackend, tree: Path
) -> None:
    result = await backend.mount("mnist")
    link = backend.workspace / "datasets" / "mnist"
    assert result.mounted and result.mountPath == str(link)
    assert (link / "README.md").read_text() == "digits\n"
    assert not result.readOnlyEnforced and "NOT enforced" in result.message
    assert (await backend.mount("mnist")).message.startswith("already mounted")
    assert (await backend.get("mnist")).mounted
    await backend.unmount("mnist")
    assert not link.exists() and tree.is_dir()


async def test_local_prewarm_needs_no_copy(backend: LocalBackend) -> None:
    op = await backend.prewarm("mnist")
    assert op.phase == "Complete" and "read in place" in (op.message or "")
    assert [o.id for o in await backend.prewarm_history("mnist")] == [op.id]


async def _wait(backend: LocalBackend, name: str) -> None:
    for _ in range(400):
        history = await backend.prewarm_history(name)
        if history and history[0].finished:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("prewarm did not finish")


async def test_s3_source_lists_prewarms_and_mounts(tmp_path: Path) -> None:
    objects = {f"weather/2024/day{i:02}.csv": b"t,v\n" + b"1,2\n" * i for i in range(1, 13)}
    objects["weather/README"] = b"weather data"
    objects["elsewhere/secret"] = b"outside the prefix"
    with moto_s3("climate", objects) as options:
        catalog = write_catalog(
            tmp_path / "catalog.yaml", [{"name": "weather", "source": "s3://climate/weather"}]
        )
        backend = LocalBackend(
            Catalog(catalog),
            cache_dir=tmp_path / "cache",
            workspace=tmp_path / "ws",
            storage_options=options,
        )
        top = await backend.files("weather")
        assert [(e.name, e.type) for e in top.entries] == [
            ("2024", "directory"),
            ("README", "file"),
        ]
        days = await backend.files("weather", "2024", limit=5)
        assert days.total == 12 and len(days.entries) == 5 and days.nextCursor
        with pytest.raises(PathRefused):
            await backend.files("weather", "../elsewhere")

        before = await backend.get("weather")
        assert before.status.fileNum == 13 and before.status.cachedPercentage == "0.0%"

        op = await backend.prewarm("weather", ["2024"])
        assert op.phase == "Executing" and op.paths == ["/2024"]
        await _wait(backend, "weather")
        done = (await backend.prewarm_history("weather"))[0]
        assert done.phase == "Complete", done.message
        assert done.filesDone == done.filesTotal == 12
        assert (
            done.bytesDone
            == done.bytesTotal
            == sum(len(v) for k, v in objects.items() if k.startswith("weather/2024/"))
        )
        partial = await backend.get("weather")
        assert partial.status.cachedPercentage not in ("0.0%", "100.0%")

        await backend.prewarm("weather")  # the rest; cached files are kept
        await _wait(backend, "weather")
        again = (await backend.prewarm_history("weather"))[0]
        assert again.message == "13 files; 12 were already cached"
        assert (await backend.get("weather")).status.cachedPercentage == "100.0%"

        result = await backend.mount("weather")
        assert result.mounted
        link = tmp_path / "ws" / "datasets" / "weather"
        assert (link / "2024" / "day03.csv").read_bytes() == objects["weather/2024/day03.csv"]
        assert not (link / "2024" / "day03.csv").stat().st_mode & 0o222  # cached read-only

        # history survives a restart of the server
        reborn = LocalBackend(Catalog(catalog), cache_dir=tmp_path / "cache")
        assert len(await reborn.prewarm_history("weather")) == 2
        await backend.close()


async def test_a_codespace_that_cannot_write_the_shared_cache_leaves_filling_it_to_the_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub that runs codespaces as accounts keeps its dataset cache read-only for them (no
    codespace changes what another reads): prewarm says who fills it, and mounting a remote
    dataset nobody cached yet is recorded for the next start, when the hub prewarms it."""
    from codespace.datasets.mounts import PendingMounts

    catalog = write_catalog(
        tmp_path / "catalog.yaml", [{"name": "weather", "source": "s3://climate/weather"}]
    )
    state = tmp_path / "state"
    backend = LocalBackend(
        Catalog(catalog), cache_dir=tmp_path / "cache", workspace=tmp_path / "ws", pending_dir=state
    )
    monkeypatch.setattr(LocalBackend, "cache_writable", lambda self: False)
    with pytest.raises(DatasetError, match="read-only for codespaces; the hub prewarms"):
        await backend.prewarm("weather")
    result = await backend.mount("weather")
    assert not result.mounted and result.pendingRestart and "next starts" in result.message
    assert PendingMounts(state).names() == ["weather"]
    assert not (tmp_path / "ws" / "datasets" / "weather").exists()
    await backend.close()
