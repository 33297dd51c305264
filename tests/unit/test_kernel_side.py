"""The kernel side of codespace works with the standard library, ipykernel and ipywidgets only.

A repository's environment holds the user's pins (pydantic 1, no PyYAML, ...), so the kernel
layer brings nothing else (DESIGN §4). Here a real jupyter_server with the codespace extension
serves the REST API, and a separate Python process, in which importing pydantic, PyYAML or any
server-side dependency raises ImportError, uses the SDK and the widget against it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from codespace.datasets import models, records
from codespace.local.envbuild.kernel import kernel_layer_requirements
from tests.datasets_support import write_catalog

pytest_plugins = ["pytest_jupyter.jupyter_server"]

SERVER_ONLY = (
    "pydantic",
    "pydantic_core",
    "yaml",
    "fsspec",
    "s3fs",
    "kubernetes_asyncio",
    "jupyter_server",
    "jupyterhub",
    "prometheus_client",
)

# Runs in a fresh interpreter: block the server-only packages, then do what a notebook does.
KERNEL_SCRIPT = """
import json, sys

BLOCKED = set(sys.argv[1].split(","))
early = BLOCKED & set(sys.modules)
assert not early, "imported at startup: %s" % early

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError("%s is not in this repository environment" % name)

sys.meta_path.insert(0, Block())
try:
    import pydantic
except ImportError:
    pass
else:
    raise SystemExit("the blocker does not work")

from codespace import datasets
from codespace.widgets import DatasetBrowser

listed = datasets.list()
page = datasets.files("iris", "raw")
op = datasets.prewarm("iris")
history = datasets.prewarm_history("iris")
mounted = datasets.mount("iris")
unmounted = datasets.unmount("iris")
try:
    datasets.get("nope")
except Exception as error:
    missing = "%s: %s" % (type(error).__name__, error)
browser = DatasetBrowser()
print(json.dumps({
    "names": [d.name for d in listed],
    "phase": listed[0].status.phase,
    "fileNum": datasets.get("iris").status.fileNum,
    "repr": repr(listed[0]),
    "entries": [e.path for e in page.entries],
    "is_dir": [e.is_dir for e in page.entries],
    "prewarm": [op.phase, op.finished, history[0].id == op.id],
    "mounted": [mounted.mounted, unmounted.mounted, str(mounted)],
    "missing": missing,
    "table": browser.table.value,
    "detail": browser.detail.value,
    "loaded": sorted({m.partition(".")[0] for m in sys.modules} & BLOCKED),
}))
"""


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    data = tmp_path / "data" / "iris"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "iris.csv").write_text("sepal,petal\n1,2\n")
    return write_catalog(
        tmp_path / "catalog.yaml",
        [{"name": "iris", "description": "flowers", "source": str(data)}],
    )


@pytest.fixture
def jp_server_config(catalog: Path, tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "dataset_catalog": str(catalog),
            "dataset_cache_dir": str(tmp_path / "cache"),
        },
    }


def test_sdk_and_widget_work_without_pydantic_or_yaml(  # jp_fetch: the server listens
    jp_fetch, jp_serverapp, jp_http_port, jp_base_url, jp_asyncio_loop
) -> None:
    env = {
        **os.environ,
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
        "JUPYTERHUB_API_TOKEN": jp_serverapp.identity_provider.token,
    }

    command = [sys.executable, "-c", KERNEL_SCRIPT, ",".join(SERVER_ONLY)]
    kernel = asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True)
    done = jp_asyncio_loop.run_until_complete(kernel)  # the server answers on this loop meanwhile
    assert done.returncode == 0, done.stderr
    out = done.stdout
    seen = json.loads(out)
    assert seen["names"] == ["iris"] and seen["phase"] == "Bound" and seen["fileNum"] == 1
    assert seen["repr"].startswith("Dataset(name='iris', backend='local'")
    assert "status=DatasetStatus(phase='Bound'" in seen["repr"]
    assert seen["entries"] == ["raw/iris.csv"] and seen["is_dir"] == [False]
    assert seen["prewarm"] == ["Complete", True, True]
    mounted_now, mounted_after_unmount, message = seen["mounted"]
    assert mounted_now and not mounted_after_unmount and "NOT enforced" in message
    assert seen["missing"].startswith("ApiError: 404")
    assert "<td>iris</td>" in seen["table"] and "Bound" in seen["detail"]
    assert seen["loaded"] == []


RECORDS = {
    records.Dataset: models.Dataset,
    records.DatasetStatus: models.DatasetStatus,
    records.FileEntry: models.FileEntry,
    records.FilePage: models.FilePage,
    records.PrewarmOperation: models.PrewarmOperation,
    records.MountResult: models.MountResult,
}


@pytest.mark.parametrize("record", list(RECORDS), ids=lambda record: record.__name__)
def test_records_have_the_server_models_fields(record: type) -> None:
    """A field added to a server model must reach notebooks too."""
    assert {field.name for field in dataclasses.fields(record)} == set(RECORDS[record].model_fields)


def test_records_read_the_json_the_server_writes() -> None:
    status = models.DatasetStatus(
        phase="Bound",
        ufsTotal="1.20GiB",
        fileNum=3,
        cachedPercentage="50.0%",
        runtimePhases={"master": "Ready", "fuse": "Ready"},
    )
    served = models.Dataset(name="mnist", backend="fluid", tags=["vision"], status=status)
    dataset = records.Dataset.from_json({**served.model_dump(mode="json"), "addedLater": 1})
    assert dataset.status.runtimePhases == {"master": "Ready", "fuse": "Ready"}
    assert dataset.tags == ("vision",) and dataset.status.cachedPercentage == "50.0%"
    assert dataset.to_json() == served.model_dump(mode="json")
    assert dataset == records.Dataset.from_json(served.model_dump(mode="json"))
    assert hash(dataset) == hash(records.Dataset.from_json(served.model_dump(mode="json")))
    with pytest.raises(dataclasses.FrozenInstanceError):
        dataset.name = "other"  # type: ignore[misc]

    page = models.FilePage(
        dataset="mnist",
        path="train",
        total=2,
        nextCursor="abc",
        entries=[
            models.FileEntry(name="a.png", path="train/a.png", type="file", size=3),
            models.FileEntry(name="sub", path="train/sub", type="directory"),
        ],
    )
    read = records.FilePage.from_json(page.model_dump(mode="json"))
    assert [entry.is_dir for entry in read.entries] == [False, True]
    assert read.to_json() == page.model_dump(mode="json")
    op = models.PrewarmOperation(id="x1", dataset="mnist", phase="Executing", bytesDone=5)
    assert records.PrewarmOperation.from_json(op.model_dump(mode="json")).to_json() == (
        op.model_dump(mode="json")
    )
    with pytest.raises(ValueError, match="FilePage"):
        records.FilePage.from_json({"dataset": "mnist"})


def test_kernel_layer_is_ipykernel_platform_ipywidgets_and_pip_only() -> None:
    names = {
        re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0].lower() for req in kernel_layer_requirements()
    }
    assert names == {"ipykernel", "ipywidgets", "pip"}  # pip: installs go to the codespace
    assert f"ipywidgets=={metadata.version('ipywidgets')}" in kernel_layer_requirements()
