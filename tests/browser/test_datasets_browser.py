"""Browser test: datasets in a local codespace - picked in the spawn form (one whose source is
missing shown disabled, and refused with 400 when posted anyway), seen in the sidebar at its
default width (layout measured: no sideways scrolling, the Phase column not cut), browsed.

Runs ``datasets_codespace.mjs`` (playwright-core + Debian Chromium) against a real hub whose
catalog has a local directory and an S3 prefix served by moto on 127.0.0.1, both picked in
the form: mounted at spawn, the remote one prewarmed by the hub into its shared dataset cache
(which codespaces only read when the hub runs them as accounts).
Screenshots go to ``artifacts/browser/datasets-*.png``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.driver import ARTIFACTS, browser_tools
from tests.conftest import REPO_ROOT, require_executable
from tests.datasets_support import moto_s3, write_catalog
from tests.helpers.hub import running_hub
from tests.helpers.repos import fixture_repo

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SCRIPT = Path(__file__).with_name("datasets_codespace.mjs")
LABEXTENSION = REPO_ROOT / "extensions" / "labextension" / "static" / "package.json"
OBJECTS = {"weather/2024/jan.csv": b"t\n1.5\n", "weather/2024/feb.csv": b"t\n2.5\n"}


def test_pick_a_dataset_see_it_in_the_sidebar_prewarm_and_browse(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tools = browser_tools()
    require_executable("the built lab extension (make install-extension)", LABEXTENSION)
    iris = tmp_path / "iris"
    iris.mkdir()
    (iris / "iris.csv").write_text("sepal,petal\n5.1,1.4\n")
    repo = fixture_repo(tmp_path, codespace_yaml="python:\n  requirements: [requirements.txt]\n")
    uv_cache = tmp_path_factory.getbasetemp() / "uv-cache"
    with moto_s3("browser-weather", OBJECTS) as storage:
        catalog = write_catalog(
            tmp_path / "catalog.yaml",
            [
                {"name": "iris", "description": "flowers", "source": str(iris)},
                {"name": "weather", "source": "s3://browser-weather/weather"},
                {"name": "ghost", "source": str(tmp_path / "no-such-directory")},
            ],
        )
        config = "\n".join(
            [
                f"c.LocalCodespaceSpawner.uv_cache_dir = {str(uv_cache)!r}",
                f"c.LocalCodespaceSpawner.dataset_catalog = {str(catalog)!r}",
                f"c.LocalCodespaceSpawner.dataset_storage_options = {storage!r}",
            ]
        )
        with running_hub(tmp_path / "hub", extra_config=config) as hub:
            password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
            result, steps = tools.run(
                SCRIPT,
                hub.url,
                user="data-user",
                password=password,
                repo=repo,
                server="data",
                PICK="iris",
                REMOTE="weather",
                GHOST="ghost",
            )
            cache = hub.data_dir / "datasets-cache" / "data" / "weather"
            cached = sorted(p.relative_to(cache).as_posix() for p in cache.rglob("*.csv"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert steps["form"]["offered"] == ["iris", "weather"]
    (ghost,) = steps["unavailable"]["unavailable"]
    assert ghost["value"] == "ghost" and "no-such-directory does not exist" in ghost["text"]
    refusal = steps["unavailable"]["refusal"]
    assert refusal["status"] == 400, refusal
    assert "dataset 'ghost' cannot be mounted" in refusal["message"], refusal
    assert steps["progress"]["mounting"]  # the spawn page showed the mount
    assert steps["progress"]["prewarming"]  # ... and the hub prewarming the remote one
    name, source, phase, *_rest, mounted_at = steps["sidebar"]["picked"]
    assert (name, source, phase) == ("iris", str(iris), "Bound")
    assert mounted_at.endswith("/datasets/iris")  # mounted at spawn
    assert any(item.startswith("iris.csv") for item in steps["files"]["pickedFiles"])
    assert any("datasets" in crumb and "iris" in crumb for crumb in steps["files"]["crumbs"])
    assert "100.0%" in steps["prewarm"]["remote"]
    assert "100.0%" in steps["prewarm"]["detailCached"]  # the detail pane follows the table
    assert "2024/" in steps["prewarm"]["remoteFiles"]
    assert cached == ["2024/feb.csv", "2024/jan.csv"]  # in the hub's shared cache
    check_sidebar_layout(steps["layout"])
    shots = ("00-unavailable-in-form", "00-unavailable-refused", "01-spawn-form", "02-sidebar")
    shots += ("03-files-and-browser", "04-prewarmed", "05-sidebar-default-width")
    for shot in shots:
        assert (ARTIFACTS / f"datasets-{shot}.png").stat().st_size > 0


def check_sidebar_layout(layout: dict) -> None:
    """The Datasets sidebar at its default width (JupyterLab opens it about 250px wide):
    it never scrolls sideways, before or after a row is clicked; the title, filter and detail
    stay inside it; the Phase column is shown and no Phase cell is cut."""
    for when in ("before", "after"):
        seen = layout[when]
        assert seen["width"] < 320, seen  # the default width, not a widened sidebar
        assert seen["scrollWidth"] <= seen["width"] and seen["scrollLeft"] == 0, (when, seen)
        assert seen["titleInside"] and seen["filterInside"], (when, seen)
        assert "Name" in seen["columns"] and "Phase" in seen["columns"], seen
        phases = [cell for cell in seen["phases"] if cell["shown"]]
        assert {"Phase", "Bound"} <= {cell["text"] for cell in phases}, seen
        assert not [cell for cell in phases if cell["cut"]], (when, seen)
    assert layout["after"]["detailInside"], layout["after"]
