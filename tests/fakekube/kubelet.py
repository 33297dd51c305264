"""The fake kubelet + scheduler: pods become local processes on their own 127.0.0.N address."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fakekube.errors import ApiError, now
from tests.fakekube.quota import amount
from tests.fakekube.store import Store

DEFAULT_CAPACITY = {"cpu": "16", "memory": "64Gi", "pods": "110"}


class Kubelet:
    """Schedules, "pulls" and runs pods; see :mod:`tests.fakekube` for the behaviour."""

    def __init__(self, store: Store, workdir: Path) -> None:
        self.store = store
        self.workdir = workdir
        self.capacity: dict[str, str] = dict(DEFAULT_CAPACITY)
        self.schedulers: set[str] = {"default-scheduler"}
        self.pullable: Callable[[str], bool] = lambda image: True
        self.base_env: dict[str, str] = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.processes: dict[tuple[str, str], subprocess.Popen] = {}
        self._ips: dict[tuple[str, str], str] = {}
        self._tasks: set[asyncio.Task] = set()

    # -- helpers -------------------------------------------------------------------------

    def event(self, pod: dict, reason: str, message: str, kind: str = "Normal") -> None:
        meta = pod["metadata"]
        self.store.create(
            "v1",
            "events",
            meta["namespace"],
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}"},
                "involvedObject": {
                    "kind": "Pod",
                    "name": meta["name"],
                    "namespace": meta["namespace"],
                    "uid": meta["uid"],
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "count": 1,
                "firstTimestamp": now(),
                "lastTimestamp": now(),
                "source": {"component": "fake-kubelet", "host": "fake-node"},
            },
        )

    def _status(self, pod: dict, **status: Any) -> dict | None:
        meta = pod["metadata"]
        try:
            current = self.store.get("v1", "pods", meta["namespace"], meta["name"])
        except ApiError:
            return None
        if current["metadata"]["uid"] != meta["uid"]:
            return None
        merged = {**current.get("status", {}), **status}
        return self.store.replace(
            "v1", "pods", meta["namespace"], meta["name"], {"status": merged}, "status"
        )

    def _used(self) -> dict[str, float]:
        used: dict[str, float] = {}
        for (ns, name), pod in self.store.collection("v1", "pods").objects.items():
            if (ns, name) in self.processes and pod.get("spec", {}).get("nodeName"):
                for resource, value in _limits(pod).items():
                    used[resource] = used.get(resource, 0) + amount(resource, value)
        return used

    def _unschedulable(self, pod: dict) -> str | None:
        namespace = pod["metadata"]["namespace"]
        for volume in pod["spec"].get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                try:
                    self.store.get("v1", "persistentvolumeclaims", namespace, claim)
                except ApiError:
                    return f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found.'
        used = self._used()
        short = []
        for resource, value in sorted(_limits(pod).items()):
            have = amount(resource, self.capacity.get(resource, 0)) - used.get(resource, 0)
            if amount(resource, value) > have:
                short.append(f"1 Insufficient {resource}")
        if short:
            return (
                f"0/1 nodes are available: {', '.join(short)}. preemption: 0/1 nodes are available."
            )
        return None

    def _pod_ip(self, key: tuple[str, str], port: int) -> str:
        for last in range(2, 255):
            ip = f"127.0.0.{last}"
            if ip in self._ips.values():
                continue
            with socket.socket() as sock:
                try:
                    sock.bind((ip, port))
                except OSError:
                    continue
            self._ips[key] = ip
            return ip
        raise RuntimeError("no free loopback address for a pod")

    # -- lifecycle -----------------------------------------------------------------------

    def on_change(self, event_type: str, api_version: str, plural: str, obj: dict) -> None:
        if (api_version, plural) != ("v1", "pods"):
            return
        if event_type == "ADDED" and not obj["metadata"].get("labels", {}).get("job-name"):
            task = asyncio.get_running_loop().create_task(self._run(obj))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, pod: dict) -> None:
        spec, meta = pod["spec"], pod["metadata"]
        key = (meta["namespace"], meta["name"])
        if (spec.get("schedulerName") or "default-scheduler") not in self.schedulers:
            return  # nobody schedules it: Pending forever, as on a real cluster
        problem = self._unschedulable(pod)
        if problem:
            self._status(
                pod,
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": problem,
                        "lastTransitionTime": now(),
                    }
                ],
            )
            self.event(pod, "FailedScheduling", problem, "Warning")
            return
        container = spec["containers"][0]
        port = next((p["containerPort"] for p in container.get("ports") or []), 8888)
        ip = self._pod_ip(key, port)
        self.store.patch("v1", "pods", *key, {"spec": {"nodeName": "fake-node"}})
        scheduled = {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()}
        self._status(pod, conditions=[scheduled], hostIP="127.0.0.1")
        self.event(pod, "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to fake-node")
        image = container.get("image", "")
        for init in spec.get("initContainers") or []:
            if not self.pullable(init.get("image", "")):
                image = init.get("image", "")
        if not self.pullable(image):
            await self._pull_failure(pod, container["name"], image)
            return
        self.event(pod, "Pulled", f'Container image "{image}" already present on machine')
        self.event(pod, "Created", f"Created container {container['name']}")
        process = self._start(pod, container, ip)
        self.processes[key] = process
        self.event(pod, "Started", f"Started container {container['name']}")
        running = {
            "name": container["name"],
            "image": image,
            "imageID": "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": now()}},
        }
        ready = {"type": "Ready", "status": "True", "lastTransitionTime": now()}
        self._status(
            pod,
            phase="Running",
            podIP=ip,
            podIPs=[{"ip": ip}],
            startTime=now(),
            conditions=[scheduled, ready],
            containerStatuses=[running],
        )
        code = await asyncio.to_thread(process.wait)
        self.processes.pop(key, None)
        self._ips.pop(key, None)
        terminated = {
            "exitCode": code,
            "finishedAt": now(),
            "reason": "Completed" if code == 0 else "Error",
        }
        running.update(ready=False, started=False, state={"terminated": terminated})
        self._status(pod, phase="Succeeded" if code == 0 else "Failed", containerStatuses=[running])

    async def _pull_failure(self, pod: dict, name: str, image: str) -> None:
        message = f'Failed to pull image "{image}": manifest unknown: manifest unknown'
        self.event(pod, "Pulling", f'Pulling image "{image}"')
        self.event(pod, "Failed", message, "Warning")
        waiting = {"name": name, "image": image, "imageID": "", "ready": False, "restartCount": 0}
        self._status(
            pod,
            containerStatuses=[
                {**waiting, "state": {"waiting": {"reason": "ErrImagePull", "message": message}}}
            ],
        )
        await asyncio.sleep(0.5)
        self.event(pod, "BackOff", f'Back-off pulling image "{image}"', "Warning")
        backoff = f'Back-off pulling image "{image}"'
        self._status(
            pod,
            containerStatuses=[
                {
                    **waiting,
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": backoff}},
                }
            ],
        )

    def _start(self, pod: dict, container: dict, ip: str) -> subprocess.Popen:
        meta = pod["metadata"]
        env = dict(self.base_env)
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"]).replace("0.0.0.0", ip)
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        pod_dir = Path(tempfile.mkdtemp(prefix=f"{meta['name']}-", dir=self.workdir))
        log = (pod_dir / "container.log").open("ab")
        env.setdefault("HOME", str(pod_dir))
        process = subprocess.Popen(
            argv, env=env, cwd=pod_dir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        process.log_path = pod_dir / "container.log"  # type: ignore[attr-defined]
        return process

    def logs(self, namespace: str, name: str) -> str | None:
        process = self.processes.get((namespace, name))
        path = getattr(process, "log_path", None)
        return path.read_text(errors="replace") if path and path.exists() else None

    async def kill(self, namespace: str, name: str, grace: float = 5) -> None:
        process = self.processes.get((namespace, name))
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait)

    async def shutdown(self) -> None:
        for namespace, name in list(self.processes):
            await self.kill(namespace, name, grace=3)
        for task in list(self._tasks):
            task.cancel()


def _limits(pod: dict) -> dict[str, Any]:
    total: dict[str, float] = {}
    for container in pod["spec"].get("containers") or []:
        resources = container.get("resources") or {}
        wanted = {**(resources.get("requests") or {}), **(resources.get("limits") or {})}
        for resource, value in wanted.items():
            total[resource] = total.get(resource, 0) + amount(resource, value)
    return total
