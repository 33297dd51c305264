"""Read a pending pod and its events: is it stuck for a reason waiting cannot fix?

Pure: the spawner calls :func:`pod_failure` with what its reflectors already hold, and ends
the spawn at once with the returned reason instead of waiting for ``start_timeout``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

# Container "waiting" reasons that never resolve by themselves.
WAITING_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
)
# Warning events that end a spawn (unless the cluster autoscaler is adding a node).
EVENT_REASONS = ("FailedScheduling",)
SCALE_UP_REASONS = ("TriggeredScaleUp",)


def pod_failure(
    pod: dict | None,
    events: Iterable[dict] = (),
    waiting_reasons: Iterable[str] = WAITING_REASONS,
    event_reasons: Iterable[str] = EVENT_REASONS,
) -> str | None:
    """Why ``pod`` will not start, or None while it may still start."""
    if not pod:
        return None
    status = pod.get("status") or {}
    name = pod.get("metadata", {}).get("name", "?")
    waiting_reasons = set(waiting_reasons)
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in waiting_reasons:
                detail = waiting.get("message") or container.get("image", "")
                return f"container {container.get('name')}: {waiting['reason']}: {detail}"
            terminated = (container.get("state") or {}).get("terminated") or {}
            if key == "initContainerStatuses" and terminated.get("exitCode"):
                detail = terminated.get("message") or terminated.get("reason", "")
                return (
                    f"init container {container.get('name')} failed with exit code "
                    f"{terminated['exitCode']}: {detail}"
                )
    if status.get("phase") == "Failed":
        return f"pod {name} failed: {status.get('reason', '')} {status.get('message', '')}".strip()
    events = list(events)
    if any(event.get("reason") in SCALE_UP_REASONS for event in events):
        return None
    event_reasons = set(event_reasons)
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
            and "FailedScheduling" in event_reasons
        ):
            return f"pod {name} cannot be scheduled: {condition.get('message', '')}"
    for event in events:
        if event.get("type") == "Warning" and event.get("reason") in event_reasons:
            return f"{event['reason']}: {event.get('message', '')}"
    return None


def gpu_shortage(reason: str, resources: Iterable[str]) -> bool:
    """Whether ``reason`` (why a pod cannot be scheduled, or why the API server refused it)
    is a lack of one of the GPU ``resources`` it asks for: the scheduler says ``Insufficient
    nvidia.com/gpu``, a namespace's quota ``requested: requests.nvidia.com/gpu=1`` (only the
    entries over the quota are named)."""
    return any(
        f"Insufficient {resource}" in reason or f"requests.{resource}=" in reason
        for resource in resources
    )


def quota_refusal(status: int, body: str | None) -> str | None:
    """The API server's message when it refused a pod for a namespace's ResourceQuota
    (``403``, ``exceeded quota: ...``), else None."""
    if status != 403 or not body:
        return None
    try:
        message = str(json.loads(body).get("message", ""))
    except (ValueError, AttributeError):
        message = body
    return message if "exceeded quota" in message else None
