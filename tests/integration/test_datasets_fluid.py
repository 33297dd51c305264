"""The Fluid backend against the fake Kubernetes API; every object validated against the CRDs."""

from __future__ import annotations

from pathlib import Path

import pytest

from codespace.datasets import DatasetError, DatasetNotFound, PathRefused
from codespace.datasets.fluid import FluidBackend
from codespace.datasets.fluid_objects import (
    API_VERSION,
    alluxio_runtime_manifest,
    dataload_manifest,
    dataset_manifest,
)
from codespace.datasets.mounts import PendingMounts
from tests.fakekube import FakeKube
from tests.helpers.k8s_schema import assert_valid

NS = "codespace-alice"


def test_builders_match_the_fluid_crds() -> None:
    assert_valid(dataset_manifest("imagenet", NS, "s3://bucket/imagenet", description="x"))
    assert_valid(dataset_manifest("scratch", NS, "pvc://scratch", read_only=False))
    assert_valid(alluxio_runtime_manifest("imagenet", NS, quota="10Gi", medium="SSD"))
    assert_valid(dataload_manifest("imagenet", NS, ["/", "/train"], name="imagenet-load-1"))
    with pytest.raises(AssertionError):  # the validator is not a no-op
        assert_valid({**dataload_manifest("x", NS, ["/"], name="n"), "spec": {"target": [{}]}})


@pytest.fixture
def kube():
    with FakeKube() as fake:
        yield fake


@pytest.fixture
async def backend(kube: FakeKube, tmp_path: Path):
    from kubernetes_asyncio.client import ApiClient, Configuration

    config = Configuration(host=kube.url)
    api = ApiClient(configuration=config)
    mounted = tmp_path / "mnt" / "imagenet"
    (mounted / "train").mkdir(parents=True)
    (mounted / "train" / "n01.jpeg").write_bytes(b"jpeg")
    backend = FluidBackend(
        NS,
        api_client=api,
        mount_paths={"imagenet": str(mounted)},
        mount_root=str(tmp_path / "mnt"),
        pending=PendingMounts(tmp_path / "state"),
    )
    yield backend
    await backend.close()
    await api.close()


def _seed(kube: FakeKube) -> None:
    for obj in (
        dataset_manifest("imagenet", NS, "s3://bucket/imagenet", description="photos"),
        alluxio_runtime_manifest("imagenet", NS),
        dataset_manifest("laion", NS, "s3://bucket/laion"),
    ):
        assert_valid(obj)
        kube.create(obj)
    kube.set_status(
        API_VERSION,
        "datasets",
        NS,
        "imagenet",
        {
            "phase": "Bound",
            "ufsTotal": "140.00GiB",
            "fileNum": "1281167",
            "cacheStates": {
                "cached": "70.00GiB",
                "cacheCapacity": "200.00GiB",
                "cachedPercentage": "50.0%",
                "cacheHitRatio": "80.0%",
            },
            "runtimes": [
                {"name": "imagenet", "namespace": NS, "type": "alluxio", "category": "Accelerate"}
            ],
        },
    )
    kube.set_status(
        API_VERSION,
        "alluxioruntimes",
        NS,
        "imagenet",
        {"masterPhase": "Ready", "workerPhase": "PartialReady", "fusePhase": "Ready"},
    )


async def test_list_get_files_prewarm_mount(kube: FakeKube, backend: FluidBackend) -> None:
    _seed(kube)
    listed = {d.name: d for d in await backend.list()}
    assert set(listed) == {"imagenet", "laion"}
    assert listed["laion"].status.phase == "Pending" and not listed["laion"].mounted

    imagenet = await backend.get("imagenet")
    status = imagenet.status
    assert (status.phase, status.ufsTotal, status.fileNum) == ("Bound", "140.00GiB", 1281167)
    assert (status.cachedPercentage, status.cacheHitRatio) == ("50.0%", "80.0%")
    assert status.runtimePhases == {"master": "Ready", "worker": "PartialReady", "fuse": "Ready"}
    assert imagenet.source == "s3://bucket/imagenet" and imagenet.description == "photos"
    assert imagenet.mounted and imagenet.readOnly
    with pytest.raises(DatasetNotFound):
        await backend.get("nope")

    page = await backend.files("imagenet", "train")
    assert [e.path for e in page.entries] == ["train/n01.jpeg"]
    with pytest.raises(PathRefused):
        await backend.files("imagenet", "../laion")
    with pytest.raises(DatasetError, match="not mounted"):
        await backend.files("laion")

    op = await backend.prewarm("imagenet", ["train", "/val/"])
    assert op.phase == "Pending" and op.paths == ["/train", "/val"]
    (load,) = kube.list(API_VERSION, "dataloads", NS)
    assert_valid(load)
    assert load["spec"]["dataset"] == {"name": "imagenet", "namespace": NS}
    assert [t["path"] for t in load["spec"]["target"]] == ["/train", "/val"]
    kube.set_status(API_VERSION, "dataloads", NS, op.id, {"phase": "Complete", "duration": "3m"})
    history = await backend.prewarm_history("imagenet")
    assert [(o.id, o.phase) for o in history] == [(op.id, "Complete")]

    result = await backend.mount("laion")
    assert not result.mounted and result.pendingRestart and "next starts" in result.message
    assert await backend.pending.names() == ["laion"]
    assert (await backend.mount("imagenet")).mounted
    assert (await backend.unmount("laion")).message == "no longer pending"
    assert await backend.pending.names() == []
