"""Run the image build Job and stream its log into the spawn progress."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable

from kubernetes_asyncio.client import ApiException

from spawner.kube.failfast import pod_failure


class BuildFailed(RuntimeError):
    """The build Job failed; the message has its reason and the last log lines."""


async def _stream_log(core, namespace: str, pod: str, container: str, on_line, tail: deque):
    try:
        response = await core.read_namespaced_pod_log(
            pod, namespace, container=container, follow=True, _preload_content=False
        )
    except ApiException as error:
        on_line(f"(no log from {pod}/{container}: {error.reason})")
        return
    async with response:
        async for raw in response.content:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            on_line(line)


def _finished(job: dict) -> tuple[bool, str] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return True, ""
        if condition.get("type") == "Failed":
            return False, f"{condition.get('reason', '')}: {condition.get('message', '')}"
    return None


async def run_build_job(
    batch,
    core,
    job: dict,
    on_line: Callable[[str], None],
    *,
    poll_seconds: float = 1.0,
) -> None:
    """Create ``job`` (or attach to the same build already running) and wait for it."""
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    try:
        await batch.create_namespaced_job(namespace, job)
        on_line(f"build job {name} created")
    except ApiException as error:
        if error.status != 409:
            raise BuildFailed(f"cannot create build job {name}: {error.reason}") from None
        on_line(f"build job {name} is already running; following it")
    streamed: set[tuple[str, str]] = set()
    tail: deque[str] = deque(maxlen=15)
    while True:
        response = await batch.read_namespaced_job_status(name, namespace, _preload_content=False)
        current = json.loads(await response.read())
        pods = await core.list_namespaced_pod(
            namespace, label_selector=f"job-name={name}", _preload_content=False
        )
        for pod in json.loads(await pods.read())["items"]:
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Pending":
                stuck = pod_failure(pod)  # e.g. the builder image cannot be pulled
                if stuck:
                    raise BuildFailed(f"image build cannot start: {stuck}")
                continue
            if phase not in ("Running", "Succeeded", "Failed"):
                continue
            for container in pod["spec"]["containers"]:
                key = (pod["metadata"]["name"], container["name"])
                if key not in streamed:
                    streamed.add(key)
                    await _stream_log(core, namespace, key[0], key[1], on_line, tail)
        finished = _finished(current)
        if finished is not None:
            ok, reason = finished
            if ok:
                return
            last = "\n".join(line for line in tail if line)
            message = f"image build failed ({reason.strip(': ')})"
            raise BuildFailed(f"{message}; last build output:\n{last}" if last else message)
        await asyncio.sleep(poll_seconds)
