"""Argo-shaped behaviour on the fake API: a scripted workflow "controller" and an Argo Server.

No Argo runs here, so a test plays its controller: :meth:`ArgoController.advance` gives the
DAG tasks of a ``Workflow`` the nodes Argo would (``status.nodes``: the DAG root, a ``Pod``
node per task, a ``Retry`` node over its attempts with a ``retryStrategy``, a ``TaskGroup``
over the ``(i:i)`` copies of a ``withSequence`` task), with phases, messages, times and exit
codes, and creates each attempt's pod the way Argo does (the template's labels and
annotations, ``workflows.argoproj.io/workflow``, ``workflows.argoproj.io/node-name``, a
``main`` and a ``wait`` container) with its log served by the pod-log endpoint. The pods
name a scheduler the fake kubelet does not run, so they stay records, never processes.
:meth:`ArgoController.sync` does what the controller does with ``spec.shutdown``: every
unfinished node fails with "Stopped with strategy '<Stop|Terminate>'".

:class:`FakeArgoServer` serves the ``WorkflowsService`` REST endpoints the backend uses
(create, get, list, stop, terminate, log) over the same store, behind a bearer token::

    with FakeKube() as kube, FakeArgoServer(kube, token="t") as server:
        server.url  # http://127.0.0.1:PORT
"""

from __future__ import annotations

import asyncio
import json
import threading
import zlib
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakekube.errors import ApiError, now
from tests.fakekube.server import FakeKube, _free_port

API_VERSION, PLURAL = "argoproj.io/v1alpha1", "workflows"
SCHEDULER = "fake-argo-controller"  # not the kubelet's: Argo pods here are records only
FINISHED = {"Succeeded", "Failed", "Error", "Omitted", "Skipped"}


@dataclass
class NodeOutcome:
    """What one DAG task does: its phase, message, exit code and (each copy's) log."""

    phase: str = "Succeeded"  # Pending, Running, Succeeded, Failed, Error, Omitted, Skipped
    message: str = ""
    exit_code: int | None = None  # default: 0 when Succeeded, 1 when Failed
    log: str = ""  # "{index}" is replaced by the copy's index
    failed_attempts: int = 0  # attempts that failed (exit 1) before this one


def _id(workflow: str, node_name: str) -> str:
    return f"{workflow}-{zlib.crc32(node_name.encode())}"


class ArgoController:
    """Sets ``status.nodes`` of Workflows on a :class:`FakeKube` and creates their pods."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    def workflow(self, namespace: str, name: str) -> dict:
        workflow = self.kube.get(API_VERSION, PLURAL, namespace, name)
        assert workflow is not None, f"no workflow {namespace}/{name}"
        return workflow

    def _pod(self, workflow: dict, template: dict, node: dict, log: str) -> None:
        meta = workflow["metadata"]
        namespace, wf = meta["namespace"], meta["name"]
        pod_name = f"{wf}-{template['name']}-{zlib.crc32(node['name'].encode())}"
        tmeta = template.get("metadata") or {}
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": {**(tmeta.get("labels") or {}), "workflows.argoproj.io/workflow": wf},
                "annotations": {
                    **(tmeta.get("annotations") or {}),
                    "workflows.argoproj.io/node-name": node["name"],
                    "workflows.argoproj.io/node-id": node["id"],
                },
            },
            "spec": {
                "schedulerName": SCHEDULER,
                "containers": [
                    {**template["container"], "name": "main"},
                    {"name": "wait", "image": "quay.io/argoproj/argoexec:v3.6"},
                ],
                "volumes": (workflow["spec"].get("volumes") or []),
                "restartPolicy": "Never",
            },
        }
        self.kube.pod_logs[(namespace, pod_name)] = log
        if self.kube.get("v1", "pods", namespace, pod_name) is None:
            self.kube.create(pod, "pods", namespace)
        phase = node["phase"] if node["phase"] in ("Running", "Succeeded") else "Failed"
        self.kube.set_status("v1", "pods", namespace, pod_name, {"phase": phase})

    def _leaf(self, workflow: dict, template: dict, name: str, outcome: NodeOutcome, index):
        """The node(s) of one copy: a Pod, or a Retry over its attempts."""
        wf = workflow["metadata"]["name"]
        log = outcome.log.replace("{index}", str(index if index is not None else 0))
        attempts = []
        for attempt in range(outcome.failed_attempts + 1):
            last = attempt == outcome.failed_attempts
            phase = outcome.phase if last else "Failed"
            code = outcome.exit_code if last else 1
            if code is None and phase in FINISHED:
                code = 0 if phase == "Succeeded" else 1
            attempt_name = f"{name}({attempt})" if template.get("retryStrategy") else name
            node = {
                "id": _id(wf, attempt_name),
                "name": attempt_name,
                "displayName": attempt_name.rsplit(".", 1)[-1],
                "type": "Pod",
                "templateName": template["name"],
                "phase": phase,
                "message": outcome.message if last else "Error (exit code 1)",
                "startedAt": now(),
                "boundaryID": wf,
            }
            if phase in FINISHED:
                node["finishedAt"] = now()
            if code is not None and phase in FINISHED:
                node["outputs"] = {"exitCode": str(code)}
            if phase not in ("Pending", "Omitted", "Skipped"):
                self._pod(workflow, template, node, log if last else "attempt failed\n")
            attempts.append(node)
        if not template.get("retryStrategy"):
            return attempts[-1], attempts
        retry = {
            **attempts[-1],
            "id": _id(wf, name),
            "name": name,
            "displayName": name.rsplit(".", 1)[-1],
            "type": "Retry",
            "children": [a["id"] for a in attempts],
        }
        retry.pop("outputs", None)
        return retry, [retry, *attempts]

    def _task_nodes(self, workflow: dict, task: dict, outcome: NodeOutcome) -> list[dict]:
        wf = workflow["metadata"]["name"]
        templates = {t["name"]: t for t in workflow["spec"]["templates"]}
        template = templates[task["template"]]
        name = f"{wf}.{task['name']}"
        if outcome.phase in ("Omitted", "Skipped"):
            node = {"id": _id(wf, name), "name": name, "displayName": task["name"]}
            node.update(type=outcome.phase, phase=outcome.phase, message=outcome.message)
            node.update(templateName=template["name"], boundaryID=wf, finishedAt=now())
            return [node]
        count = int((task.get("withSequence") or {}).get("count") or 0)
        if not count:
            return self._leaf(workflow, template, name, outcome, None)[1]
        nodes, children = [], []
        for index in range(count):
            head, all_nodes = self._leaf(
                workflow, template, f"{name}({index}:{index})", outcome, index
            )
            children.append(head["id"])
            nodes += all_nodes
        group = {
            "id": _id(wf, name),
            "name": name,
            "displayName": task["name"],
            "type": "TaskGroup",
            "templateName": template["name"],
            "phase": outcome.phase,
            "message": "child failed" if outcome.phase in ("Failed", "Error") else "",
            "startedAt": now(),
            "boundaryID": wf,
            "children": children,
        }
        if outcome.phase in FINISHED:
            group["finishedAt"] = now()
        return [group, *nodes]

    @staticmethod
    def _tasks(workflow: dict) -> dict[str, dict]:
        spec = workflow["spec"]
        dag = next(t for t in spec["templates"] if t["name"] == spec["entrypoint"])
        return {task["name"]: task for task in dag["dag"]["tasks"]}

    def advance(self, namespace: str, name: str, outcomes: dict[str, NodeOutcome | str]) -> dict:
        """Give the named tasks these outcomes (a phase alone: the default outcome)."""
        workflow = self.workflow(namespace, name)
        status = workflow.get("status") or {}
        nodes: dict[str, dict] = dict(status.get("nodes") or {})
        tasks = self._tasks(workflow)
        for task_name, outcome in outcomes.items():
            if isinstance(outcome, str):
                outcome = NodeOutcome(phase=outcome)
            prefix = f"{name}.{task_name}"
            nodes = {
                k: n
                for k, n in nodes.items()
                if not (n["name"] == prefix or n["name"].startswith(prefix + "("))
            }
            for node in self._task_nodes(workflow, tasks[task_name], outcome):
                nodes[node["id"]] = node
        return self._write(workflow, nodes, tasks)

    def _write(
        self, workflow: dict, nodes: dict[str, dict], tasks: dict, stopped: str | None = None
    ) -> dict:
        meta = workflow["metadata"]
        wf = meta["name"]
        by_name = {n["name"]: n for n in nodes.values()}
        heads = [by_name.get(f"{wf}.{task}") for task in tasks]
        phases = [h["phase"] if h else "Pending" for h in heads]
        if stopped:
            phase, message = "Failed", f"Stopped with strategy '{stopped}'"
        elif all(p in ("Succeeded", "Skipped") for p in phases):
            phase, message = "Succeeded", ""
        elif any(p in ("Pending", "Running") for p in phases):
            phase, message = "Running", ""
        else:
            failed = next(t for t, p in zip(tasks, phases, strict=True) if p != "Succeeded")
            phase, message = "Failed", f"child '{_id(wf, f'{wf}.{failed}')}' failed"
        root = {
            "id": wf,
            "name": wf,
            "displayName": wf,
            "type": "DAG",
            "templateName": workflow["spec"]["entrypoint"],
            "phase": phase,
            "startedAt": (workflow.get("status") or {}).get("startedAt") or now(),
            "children": [h["id"] for h in heads if h],
        }
        status = {"phase": phase, "startedAt": root["startedAt"], "nodes": {wf: root, **nodes}}
        if message:
            status["message"] = message
        if phase in FINISHED:
            status["finishedAt"] = root["finishedAt"] = now()
        workflow["status"] = status
        return self.kube._call(
            self.kube.store.replace, API_VERSION, PLURAL, meta["namespace"], wf, workflow
        )

    def sync(self, namespace: str, name: str) -> dict:
        """Act on ``spec.shutdown`` as Argo's controller does: unfinished nodes fail."""
        workflow = self.workflow(namespace, name)
        strategy = workflow["spec"].get("shutdown")
        if not strategy:
            return workflow
        nodes = dict((workflow.get("status") or {}).get("nodes") or {})
        for node in nodes.values():
            if node["phase"] not in FINISHED and node["id"] != name:
                node.update(phase="Failed", message=f"Stopped with strategy '{strategy}'")
                node["finishedAt"] = now()
        tasks = self._tasks(workflow)  # tasks that never started get no node
        nodes.pop(name, None)
        return self._write(workflow, nodes, tasks, stopped=strategy)


class FakeArgoServer:
    """The Argo Server's ``WorkflowsService`` REST API over a :class:`FakeKube`'s store."""

    def __init__(self, kube: FakeKube, token: str = "argo-token") -> None:
        self.kube, self.token = kube, token
        self.port = _free_port()
        self.requests: list[tuple[str, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def _error(status: int, code: int, message: str) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status)

    async def _call(self, func: Any, *args: Any) -> Any:
        return await asyncio.to_thread(self.kube._call, func, *args)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._error(401, 16, "token not valid")
        try:
            return await handler(request)
        except ApiError as error:
            code = {404: 5, 409: 6}.get(error.code, 2)
            return self._error(error.code, code, error.message)

    async def create(self, request: web.Request) -> web.Response:
        body = await request.json()
        ns = request.match_info["ns"]
        obj = await self._call(self.kube.store.create, API_VERSION, PLURAL, ns, body["workflow"])
        return web.json_response(obj)

    async def listing(self, request: web.Request) -> web.Response:
        selector = request.query.get("listOptions.labelSelector")
        ns = request.match_info["ns"]
        result = await self._call(self.kube.store.list, API_VERSION, PLURAL, ns, selector)
        return web.json_response({"metadata": result["metadata"], "items": result["items"] or None})

    async def get(self, request: web.Request) -> web.Response:
        m = request.match_info
        return web.json_response(
            await self._call(self.kube.store.get, API_VERSION, PLURAL, m["ns"], m["name"])
        )

    async def shutdown(self, request: web.Request) -> web.Response:
        m = request.match_info
        strategy = {"stop": "Stop", "terminate": "Terminate"}[m["verb"]]
        patch = {"spec": {"shutdown": strategy}}
        obj = await self._call(
            self.kube.store.patch, API_VERSION, PLURAL, m["ns"], m["name"], patch
        )
        return web.json_response(obj)

    async def log(self, request: web.Request) -> web.Response:
        m = request.match_info
        await self._call(self.kube.store.get, API_VERSION, PLURAL, m["ns"], m["name"])
        selector = f"workflows.argoproj.io/workflow={m['name']}"
        if request.query.get("selector"):
            selector += "," + request.query["selector"]
        pods = await self._call(self.kube.store.list, "v1", "pods", m["ns"], selector)
        tail = request.query.get("logOptions.tailLines")
        lines = []
        for pod in pods["items"]:
            name = pod["metadata"]["name"]
            text = self.kube.pod_logs.get((m["ns"], name), "")
            content = text.splitlines()
            if tail:
                content = content[-int(tail) :]
            for line in content:
                lines.append(json.dumps({"result": {"content": line, "podName": name}}))
        return web.Response(text="".join(f"{line}\n" for line in lines))

    def start(self) -> FakeArgoServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(middlewares=[self._auth])
            base = "/api/v1/workflows/{ns}"
            app.add_routes(
                [
                    web.post(base, self.create),
                    web.get(base, self.listing),
                    web.get(base + "/{name}", self.get),
                    web.put(base + "/{name}/{verb:stop|terminate}", self.shutdown),
                    web.get(base + "/{name}/log", self.log),
                ]
            )
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-argo-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Argo Server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None or self._runner is None:
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeArgoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
