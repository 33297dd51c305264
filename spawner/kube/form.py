"""The spawn form's dataset choices from the namespace's Fluid ``Dataset`` objects."""

from __future__ import annotations

from codespace.datasets.fluid_objects import dataset_from_object


def dataset_choices(objects: list[dict]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(selectable, unavailable)``, each sorted by name: Bound datasets as ``(name,
    description)``; the others as ``(name, why)`` with their phase (shown disabled)."""
    selectable, unavailable = [], []
    for obj in objects:
        dataset = dataset_from_object(obj, None, mount_path="", mounted=False)
        if dataset.status.phase == "Bound":
            selectable.append((dataset.name, dataset.description))
        else:
            unavailable.append((dataset.name, f"{dataset.status.phase}, not Bound yet"))
    return sorted(selectable), sorted(unavailable)
