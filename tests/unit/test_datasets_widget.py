"""DatasetBrowser renders the catalog, shows a dataset's files, prewarms and mounts."""

from __future__ import annotations

from pathlib import Path

from codespace.datasets.direct import DirectClient
from codespace.widgets import DatasetBrowser
from tests.datasets_support import write_catalog


def test_dataset_browser_renders_and_acts(tmp_path: Path) -> None:
    data = tmp_path / "penguins"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "adelie.csv").write_text("bill\n39.1\n")
    (data / "notes.md").write_text("<script>x</script>")
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        [
            {"name": "penguins", "source": str(data), "description": "<b>birds</b>"},
            {"name": "ocean", "source": str(tmp_path / "missing"), "tags": ["sea"]},
        ],
    )
    client = DirectClient(
        str(catalog), cache_dir=str(tmp_path / "cache"), workspace=str(tmp_path / "ws")
    )
    browser = DatasetBrowser(client)

    assert "<td>penguins</td>" in browser.table.value and "<td>ocean</td>" in browser.table.value
    assert "<b>birds</b>" not in browser.table.value  # escaped
    browser.filter.value = "sea"
    assert "<td>ocean</td>" in browser.table.value and "penguins" not in browser.table.value

    assert browser.choice.value == "penguins"  # the first is selected and shown
    assert "Bound" in browser.detail.value and "<dd>2</dd>" in browser.detail.value
    labels = [label for label, _ in browser.files.options]
    assert labels == ["raw/", "notes.md"]
    browser.files.value = "raw"  # opening a directory lists it
    assert [label for label, _ in browser.files.options] == [".. (up)", "adelie.csv"]
    browser.files.value = ".."
    assert [label for label, _ in browser.files.options] == ["raw/", "notes.md"]

    browser.prewarm(wait=True)
    assert browser.progress.bar_style == "success"
    assert browser.progress.value == browser.progress.max

    browser.mount()
    assert (tmp_path / "ws" / "datasets" / "penguins" / "raw" / "adelie.csv").exists()
    assert "Mounted at" in browser.message.value
    browser.filter.value = ""
    assert str(tmp_path / "ws" / "datasets" / "penguins") in browser.table.value

    browser.choice.value = "ocean"
    assert "Failed" in browser.detail.value
    assert "not a directory" in browser.message.value  # the listing error is shown, not raised
