"""Backends as classes: the server extension builds the configured ``dataset_backend_class``
with ``from_settings``; the short ``dataset_backend`` names still work, with a warning."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader

from codespace.datasets.backend import DatasetBackend, DatasetSettings
from codespace.datasets.errors import DatasetError, DatasetNotFound
from codespace.datasets.fluid import FluidBackend
from codespace.datasets.local import LocalBackend
from codespace.datasets.models import Dataset, FilePage, MountResult, PrewarmOperation
from extensions.app import DATASET_BACKENDS, CodespaceExtension

pytest_plugins = ["pytest_jupyter.jupyter_server"]


class SiteBackend(DatasetBackend):
    """A site's own backend: one fixed dataset; remembers what it was built with."""

    kind = "site"
    built: list[SiteBackend] = []

    def __init__(self, settings: DatasetSettings) -> None:
        self.settings = settings
        self.closed = False

    @classmethod
    def from_settings(cls, settings: DatasetSettings) -> SiteBackend:
        backend = cls(settings)
        cls.built.append(backend)
        return backend

    def _dataset(self) -> Dataset:
        return Dataset(name="answers", description=self.settings.namespace, backend=self.kind)

    async def list(self) -> list[Dataset]:
        return [self._dataset()]

    async def get(self, name: str) -> Dataset:
        if name != "answers":
            raise DatasetNotFound(name)
        return self._dataset()

    async def files(self, name: str, path: str = "", **_: Any) -> FilePage:
        await self.get(name)
        return FilePage(dataset=name, path=path, entries=[], total=0)

    async def prewarm(self, name: str, paths: list[str] | None = None) -> PrewarmOperation:
        raise DatasetError("this site's datasets are always warm")

    async def prewarm_history(self, name: str) -> list[PrewarmOperation]:
        return []

    async def mount(self, name: str) -> MountResult:
        raise DatasetError("read-only site")

    async def unmount(self, name: str) -> MountResult:
        raise DatasetError("read-only site")

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict:
    SiteBackend.built.clear()
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "dataset_backend_class": SiteBackend,
            "fluid_namespace": "team-a",
            "state_dir": str(tmp_path / "state"),
        },
    }


def test_a_configured_backend_class_serves_the_rest_api(jp_fetch, run, jp_root_dir) -> None:
    response = run(jp_fetch("codespace", "api", "datasets"))
    body = json.loads(response.body)
    assert body["backend"] == "site"
    assert [(d["name"], d["description"]) for d in body["datasets"]] == [("answers", "team-a")]
    page = json.loads(run(jp_fetch("codespace", "api", "datasets", "answers", "files")).body)
    assert page == {"dataset": "answers", "path": "", "entries": [], "total": 0, "nextCursor": None}
    with pytest.raises(HTTPClientError) as refused:
        run(jp_fetch("codespace", "api", "datasets", "answers", "mount", method="POST", body="{}"))
    assert refused.value.code == 409 and b"read-only site" in refused.value.response.body

    [backend] = SiteBackend.built
    assert backend.settings.workspace == Path(jp_root_dir)
    assert backend.settings.state_dir.name == "state"


def extension(**settings: Any) -> CodespaceExtension:
    return CodespaceExtension(config=Config({"CodespaceExtension": settings}))


async def test_the_extension_builds_and_closes_the_configured_backend(tmp_path: Path) -> None:
    SiteBackend.built.clear()
    app = extension(dataset_backend_class=SiteBackend, workspace=str(tmp_path))
    app.initialize_settings()
    assert SiteBackend.built == [app.datasets] and app.datasets.settings.workspace == tmp_path
    await app.stop_extension()
    assert app.datasets.closed


def test_the_local_backend_is_the_default_and_import_strings_are_accepted() -> None:
    assert extension().dataset_backend_class is LocalBackend
    named = extension(dataset_backend_class="codespace.datasets.fluid.FluidBackend")
    assert named.dataset_backend_class is FluidBackend


@pytest.mark.parametrize(
    "flag",
    [
        "--CodespaceExtension.dataset_backend_class=codespace.datasets.fluid.FluidBackend",
        "--CodespaceExtension.dataset_backend=fluid",  # deprecated
    ],
)
def test_the_command_line_flag_the_kubernetes_spawner_passes(flag: str) -> None:
    config = KVArgParseConfigLoader([flag]).load_config()  # as jupyter_server reads argv
    assert CodespaceExtension(config=config).dataset_backend_class is FluidBackend


def test_a_class_that_is_not_a_dataset_backend_is_refused() -> None:
    with pytest.raises(TraitError, match="DatasetBackend"):
        extension(dataset_backend_class="codespace.datasets.catalog.Catalog")


@pytest.mark.parametrize(("name", "cls"), [("local", LocalBackend), ("fluid", FluidBackend)])
def test_the_deprecated_short_names_map_onto_the_class(
    name: str, cls: type, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("test-codespace-extension")
    app = CodespaceExtension(log=log)
    with caplog.at_level(logging.WARNING, logger=log.name):
        app.dataset_backend = name
    assert app.dataset_backend_class is cls
    assert f"dataset_backend={name} is deprecated" in caplog.text
    assert f"dataset_backend_class={DATASET_BACKENDS[name]}" in caplog.text
    assert extension(dataset_backend=name).dataset_backend_class is cls  # through config too


def test_an_unknown_short_name_lists_the_known_ones() -> None:
    with pytest.raises(TraitError, match="unknown backend 'lustre'; known: local, fluid"):
        extension(dataset_backend="lustre")


def test_each_backend_is_built_from_the_settings(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CODESPACE_PENDING_CONFIGMAP", raising=False)
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("datasets: []\n")
    app = extension(
        dataset_backend="fluid",
        dataset_catalog=str(catalog),
        workspace=str(tmp_path / "ws"),
        state_dir=str(tmp_path / "state"),
        dataset_cache_dir=str(tmp_path / "cache"),
        fluid_namespace="team-a",
        dataset_mount_paths={"mnist": "/data/mnist"},
        storage_options={"s3": {"anon": True}},
    )
    settings = app.dataset_settings()
    assert settings.catalog == catalog and settings.namespace == "team-a"

    fluid = app.dataset_backend_class.from_settings(settings)
    assert isinstance(fluid, FluidBackend) and fluid.namespace == "team-a"
    assert fluid._mount_path("mnist") == "/data/mnist"

    local = LocalBackend.from_settings(settings)
    assert local.catalog.path == catalog and local.workspace == tmp_path / "ws"
    assert local.cache_dir == tmp_path / "cache" and local.pending_dir == tmp_path / "state"
    assert local.storage_options == {"s3": {"anon": True}}
