"""Spawn-time dataset mounts in local mode (codespace.datasets.attach) and the spawn form."""

from __future__ import annotations

from pathlib import Path

import pytest

from codespace.datasets.attach import LocalDatasetSettings, attach_datasets, extension_config
from codespace.datasets.mounts import PendingMounts, plan_mounts
from codespace.spec.model import Codespace
from spawner.form import parse_form, render_form
from tests.datasets_support import moto_s3, write_catalog


class Recorder:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.lines: list[str] = []

    @property
    def text(self) -> str:
        return "\n".join(self.steps + self.lines)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    iris = tmp_path / "data" / "iris"
    iris.mkdir(parents=True)
    (iris / "iris.csv").write_text("sepal,petal\n1,2\n")
    (tmp_path / "data" / "mnist").mkdir()
    return tmp_path / "data"


def settings(tmp_path: Path, catalog: Path | None, **kw) -> LocalDatasetSettings:
    return LocalDatasetSettings(
        catalog=catalog, cache_dir=tmp_path / "cache", state_dir=tmp_path / "state", **kw
    )


async def attach(mounts, config: LocalDatasetSettings, workspace: Path, log: Recorder):
    return await attach_datasets(
        mounts, config, workspace, on_step=log.steps.append, on_line=log.lines.append
    )


async def test_spec_form_and_pending_datasets_are_linked_into_the_workspace(
    tmp_path: Path, data: Path
) -> None:
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        [
            {"name": "iris", "source": str(data / "iris")},
            {"name": "mnist", "source": str(data / "mnist")},
            {"name": "later", "source": str(data / "mnist")},
        ],
    )
    config = settings(tmp_path, catalog)
    PendingMounts(config.state_dir).add("later")
    spec = Codespace(datasets=[{"name": "iris", "mountPath": "/data/iris", "prewarm": True}])
    mounts = plan_mounts(spec, ["mnist", "iris"], PendingMounts(config.state_dir).names())
    workspace = tmp_path / "ws"
    log = Recorder()

    result = await attach(mounts, config, workspace, log)

    assert [a.name for a in result.attached] == ["iris", "mnist", "later"]
    assert (workspace / "datasets" / "iris" / "iris.csv").read_text().startswith("sepal")
    assert (workspace / "datasets" / "mnist").resolve() == (data / "mnist").resolve()
    assert "mounting iris at datasets/iris (asked by the repository)" in log.text
    assert "mounting mnist at datasets/mnist (asked by the spawn form)" in log.text
    assert "mountPath /data/iris applies in Kubernetes mode" in log.text
    assert "read-only is NOT enforced" in log.text
    assert "a local directory needs no cache" in log.text  # the prewarm asked by the spec
    assert result.env()["CODESPACE_DATASETS"] == (
        f"iris={workspace}/datasets/iris,mnist={workspace}/datasets/mnist,"
        f"later={workspace}/datasets/later"
    )
    assert PendingMounts(config.state_dir).names() == []  # honoured, so no longer pending


async def test_an_unknown_dataset_is_reported_and_the_others_still_mount(
    tmp_path: Path, data: Path
) -> None:
    catalog = write_catalog(tmp_path / "c.yaml", [{"name": "iris", "source": str(data / "iris")}])
    mounts = plan_mounts(Codespace(), ["nope", "iris"])
    log = Recorder()
    result = await attach(mounts, settings(tmp_path, catalog), tmp_path / "ws", log)
    assert [a.name for a in result.attached] == ["iris"]
    assert result.problems == [f"dataset 'nope' is not in the catalog {catalog}"]
    assert "starting without it" in log.text

    no_catalog = await attach(mounts, settings(tmp_path, None), tmp_path / "ws2", Recorder())
    assert "this hub has no dataset catalog" in no_catalog.problems[0]


async def test_a_remote_source_is_prewarmed_into_the_shared_cache_at_start(
    tmp_path: Path,
) -> None:
    objects = {"weather/2024/jan.csv": b"t\n1\n", "weather/2024/feb.csv": b"t\n2\n"}
    with moto_s3("spawn-attach", objects) as storage:
        catalog = write_catalog(
            tmp_path / "c.yaml", [{"name": "weather", "source": "s3://spawn-attach/weather"}]
        )
        config = settings(tmp_path, catalog, storage_options=storage)
        spec = Codespace(datasets=[{"name": "weather", "prewarm": ["2024"]}])
        log = Recorder()
        result = await attach(plan_mounts(spec), config, tmp_path / "ws", log)
    assert result.problems == []
    linked = tmp_path / "ws" / "datasets" / "weather"
    assert (linked / "2024" / "feb.csv").read_bytes() == b"t\n2\n"
    assert linked.resolve() == (tmp_path / "cache" / "data" / "weather").resolve()
    assert "weather: prewarm complete: 2 files" in log.text


def test_extension_config_turns_on_the_server_extension_with_the_local_backend(
    tmp_path: Path,
) -> None:
    config = extension_config(settings(tmp_path, tmp_path / "c.yaml"), tmp_path / "ws")
    assert config["ServerApp"]["jpserver_extensions"] == {"extensions": True}
    backend = config["CodespaceExtension"]["dataset_backend_class"]
    assert backend == "codespace.datasets.local.LocalBackend"
    assert config["CodespaceExtension"]["workspace"] == str(tmp_path / "ws")
    assert config["CodespaceExtension"]["dataset_cache_dir"] == str(tmp_path / "cache")


def test_the_form_offers_the_catalog_datasets_and_parses_the_picks() -> None:
    html = render_form(datasets=[("iris", "flowers <3>"), ("mnist", "")])
    assert 'name="datasets" multiple' in html
    assert '<option value="iris">iris - flowers &lt;3&gt;</option>' in html
    picked = parse_form({"repo": ["/srv/repo"], "datasets": ["iris", "mnist"]})
    assert picked["datasets"] == ["iris", "mnist"]
    assert "datasets" not in parse_form({"repo": ["/srv/repo"]})
    with pytest.raises(ValueError, match="not a DNS-1123 label"):
        parse_form({"repo": ["/srv/repo"], "datasets": ["../etc"]})
    assert "cannot be read" in render_form(datasets_note="The catalog cannot be read: x")


def test_codespace_hub_passes_the_catalog_and_names_it_in_the_banner(
    tmp_path: Path, data: Path
) -> None:
    from hub.app import banner, build_parser, hub_environment

    catalog = write_catalog(tmp_path / "c.yaml", [{"name": "iris", "source": str(data / "iris")}])
    args = build_parser().parse_args(
        ["--data-dir", str(tmp_path / "d"), "--dataset-catalog", str(catalog)]
    )
    env, login = hub_environment(args)
    assert env["CODESPACE_HUB_DATASET_CATALOG"] == str(catalog)
    assert f"Datasets: {catalog} (1 dataset)" in banner("127.0.0.1", 8000, "d", login)

    default = build_parser().parse_args(["--data-dir", str(tmp_path / "d")])
    env, login = hub_environment(default)
    assert "CODESPACE_HUB_DATASET_CATALOG" not in env
    assert "create" in login["datasets"] and "datasets.yaml" in login["datasets"]
    (tmp_path / "d" / "datasets.yaml").write_text("datasets: [")
    assert "cannot be read yet" in hub_environment(default)[1]["datasets"]

    with pytest.raises(SystemExit, match="does not exist"):
        hub_environment(
            build_parser().parse_args(
                ["--data-dir", str(tmp_path / "e"), "--dataset-catalog", str(tmp_path / "no")]
            )
        )
    assert not (tmp_path / "e").exists()  # refused before anything was created
