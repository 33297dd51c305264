"""ResourceQuota admission of pods, as the API server does it (the part codespaces meet).

A pod is refused with ``403 Forbidden`` when, with it, a ResourceQuota of its namespace would
go over a ``spec.hard`` entry: ``pods`` (pods not yet Succeeded/Failed), ``requests.<r>`` and
the shorthands ``cpu``/``memory`` (a container's requests, its limits where it gives none, as
Kubernetes defaults them), and ``limits.<r>``. The message is Kubernetes' own::

    pods "jupyter-a" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=1,
    used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=0

Scopes, ``status.used`` bookkeeping and the other kinds a quota can count are not modelled.
"""

from __future__ import annotations

from typing import Any

from codespace.kube.quantity import to_bytes, to_cores
from tests.fakekube.errors import ApiError
from tests.fakekube.store import Store

TERMINAL = ("Succeeded", "Failed")


def amount(resource: str, value: Any) -> float:
    """A quantity of ``resource`` as a number (cores, bytes, a count)."""
    if resource == "cpu":
        return to_cores(value)
    if resource == "memory" or resource.endswith("storage"):
        return float(to_bytes(value))
    return float(value)


def _usage(pod: dict) -> dict[str, float]:
    """What the pod counts against a quota, by quota key."""
    usage = {"pods": 1.0}
    for container in pod.get("spec", {}).get("containers") or []:
        resources = container.get("resources") or {}
        limits = resources.get("limits") or {}
        requests = {**limits, **(resources.get("requests") or {})}
        for kind, values in (("requests", requests), ("limits", limits)):
            for resource, value in values.items():
                key = f"{kind}.{resource}"
                usage[key] = usage.get(key, 0.0) + amount(resource, value)
    for short in ("cpu", "memory"):
        if f"requests.{short}" in usage:
            usage[short] = usage[f"requests.{short}"]
    return usage


def _show(key: str, value: float) -> str:
    return f"{key}={value:g}"


def check_pod_quota(store: Store, namespace: str, pod: dict) -> None:
    """Raise the API server's 403 when ``pod`` would exceed a quota of ``namespace``."""
    wanted = _usage(pod)
    running = [
        _usage(other)
        for other in store.list("v1", "pods", namespace)["items"]
        if (other.get("status") or {}).get("phase") not in TERMINAL
    ]
    for quota in store.list("v1", "resourcequotas", namespace)["items"]:
        hard = (quota.get("spec") or {}).get("hard") or {}
        over = []
        for key, limit in sorted(hard.items()):
            if key not in wanted:
                continue
            resource = key.split(".", 1)[-1]
            used = sum(usage.get(key, 0.0) for usage in running)
            if used + wanted[key] > amount(resource, limit):
                over.append((key, wanted[key], used, amount(resource, limit)))
        if over:
            name = pod.get("metadata", {}).get("name", "")
            requested = ",".join(_show(key, asked) for key, asked, _, _ in over)
            used = ",".join(_show(key, was) for key, _, was, _ in over)
            limited = ",".join(_show(key, cap) for key, _, _, cap in over)
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: exceeded quota: {quota["metadata"]["name"]}, '
                f"requested: {requested}, used: {used}, limited: {limited}",
            )
