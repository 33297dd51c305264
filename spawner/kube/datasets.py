"""Fluid Datasets seen from the hub: the Bound check before a pod is created, the form's list."""

from __future__ import annotations

from kubernetes_asyncio.client import ApiException

from codespace.kube.datasets import (
    FLUID_DATASETS,
    FLUID_GROUP,
    FLUID_VERSION,
    DatasetNotReady,
    dataset_problem,
)


async def get_dataset(custom, namespace: str, name: str) -> dict | None:
    """The Dataset object, or None when there is none of that name."""
    try:
        return await custom.get_namespaced_custom_object(
            FLUID_GROUP, FLUID_VERSION, namespace, FLUID_DATASETS, name
        )
    except ApiException as error:
        if error.status != 404:
            raise
        return None


async def list_datasets(custom, namespace: str) -> list[dict]:
    """Every Dataset object in the namespace."""
    listing = await custom.list_namespaced_custom_object(
        FLUID_GROUP, FLUID_VERSION, namespace, FLUID_DATASETS
    )
    return list(listing.get("items") or [])


async def check_datasets(custom, namespace: str, names: list[str]) -> None:
    """Raise :class:`DatasetNotReady` naming every dataset that is missing or not Bound."""
    problems = []
    for name in names:
        problem = dataset_problem(name, namespace, await get_dataset(custom, namespace, name))
        if problem:
            problems.append(problem)
    if problems:
        raise DatasetNotReady("; ".join(problems))


async def usable_pending(custom, namespace: str, names: list[str], warn) -> list[str]:
    """The recorded (``mount()``) datasets that can be mounted now: the Bound ones.

    The others are skipped with ``warn(message)``, never failing the start: the record is
    written from inside the codespace and only a running codespace can change it.
    """
    usable = []
    for name in names:
        problem = dataset_problem(name, namespace, await get_dataset(custom, namespace, name))
        if problem:
            warn(
                f"warning: not mounting {name!r} (recorded by mount()): {problem}; it stays "
                f"recorded until codespace.datasets.unmount({name!r})"
            )
        else:
            usable.append(name)
    return usable
