"""Check that every requested Fluid Dataset exists and is Bound before the pod is created."""

from __future__ import annotations

from kubernetes_asyncio.client import ApiException

from codespace.kube.datasets import (
    FLUID_DATASETS,
    FLUID_GROUP,
    FLUID_VERSION,
    DatasetNotReady,
    dataset_problem,
)


async def check_datasets(custom, namespace: str, names: list[str]) -> None:
    """Raise :class:`DatasetNotReady` naming every dataset that is missing or not Bound."""
    problems = []
    for name in names:
        try:
            obj = await custom.get_namespaced_custom_object(
                FLUID_GROUP, FLUID_VERSION, namespace, FLUID_DATASETS, name
            )
        except ApiException as error:
            if error.status != 404:
                raise
            obj = None
        problem = dataset_problem(name, namespace, obj)
        if problem:
            problems.append(problem)
    if problems:
        raise DatasetNotReady("; ".join(problems))
