"""The spawn-time mount plan both spawners follow (one planner, rendered per mode)."""

from pathlib import Path

from codespace.datasets.mounts import PendingMounts, plan_mounts
from codespace.kube.datasets import dataset_mounts
from codespace.spec.model import Codespace


def test_plan_merges_spec_form_and_pending(tmp_path: Path) -> None:
    codespace = Codespace(
        datasets=[{"name": "mnist", "mountPath": "/data/mnist", "readOnly": False, "prewarm": True}]
    )
    pending = PendingMounts(tmp_path)
    pending.add("weather")
    pending.add("weather")
    plan = plan_mounts(codespace, ["imagenet", "mnist"], pending.names())
    assert [(m.name, m.mountPath, m.readOnly, m.origin) for m in plan] == [
        ("mnist", "/data/mnist", False, "spec"),
        ("imagenet", "/datasets/imagenet", True, "options"),
        ("weather", "/datasets/weather", True, "pending"),
    ]
    assert plan[0].workspace_link(Path("/ws")) == Path("/ws/datasets/mnist")
    rendered = dataset_mounts(plan[:1])
    assert rendered.volumes == [
        {
            "name": "dataset-mnist",
            "persistentVolumeClaim": {"claimName": "mnist", "readOnly": False},
        }
    ]
    assert rendered.mounts == [
        {"name": "dataset-mnist", "mountPath": "/data/mnist", "readOnly": False}
    ]
