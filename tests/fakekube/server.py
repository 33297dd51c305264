"""HTTP front of the fake API server (aiohttp) and the thread-safe :class:`FakeKube` handle."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakekube.errors import ApiError, now
from tests.fakekube.kubelet import Kubelet
from tests.fakekube.quota import check_pod_quota
from tests.fakekube.resources import CRD_API, CRD_PLURAL, sort_versions
from tests.fakekube.store import Store, Watcher


@dataclass
class JobOutcome:
    """What a Job does in the fake: succeed or fail, with this log."""

    succeeded: bool = True
    log: str = ""
    reason: str = "BackoffLimitExceeded"
    message: str = "Job has reached the specified backoff limit"


def _api_version(request: web.Request) -> str:
    group = request.match_info.get("group")
    version = request.match_info.get("version", "v1")
    return f"{group}/{version}" if group else version


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _patch_type(body: Any) -> str:
    """``json`` for an RFC 6902 patch (a list), else ``merge``. By the body, not the
    Content-Type: kubernetes_asyncio's ``patch_*_custom_object*`` label a merge patch (a dict)
    ``application/json-patch+json`` unless told otherwise, and the fake has always taken it."""
    if isinstance(body, list):
        return "json"
    return "merge"


POD_GRACE_SECONDS = 30  # what a pod's deletionGracePeriodSeconds shows while it stops


class Api:
    """The routes; all state lives in the :class:`Store`."""

    def __init__(self, store: Store, kubelet: Kubelet, fake: FakeKube) -> None:
        self.store, self.kubelet, self.fake = store, kubelet, fake

    def routes(self) -> list[web.RouteDef]:
        core = "/api/{version:v1}"
        apis = "/apis/{group}/{version}"
        routes = [
            web.get("/version", self.version),
            web.get("/api", self.discovery),
            web.get("/api/v1", self.core_resources),
            web.get("/apis", self.group_list),
            web.get("/apis/{group}", self.group),
            web.get("/apis/{group}/{version}", self.group_resources),
            web.post("/api/v1/namespaces", self.create_namespace),
            web.get("/api/v1/namespaces/{name}", self.get_namespace),
            web.route("*", "/v2/{path:.*}", self.registry),
        ]
        for prefix in (core, apis):  # namespaced first: aiohttp takes the first match
            routes += [
                web.get(prefix + "/{plural}", self.collection),
                web.get(prefix + "/namespaces/{ns}/{plural}", self.collection),
                web.delete(prefix + "/namespaces/{ns}/{plural}", self.delete_collection),
                web.post(prefix + "/namespaces/{ns}/{plural}", self.create),
                web.get(prefix + "/namespaces/{ns}/{plural}/{name}", self.get),
                web.put(prefix + "/namespaces/{ns}/{plural}/{name}", self.replace),
                web.patch(prefix + "/namespaces/{ns}/{plural}/{name}", self.patch),
                web.delete(prefix + "/namespaces/{ns}/{plural}/{name}", self.delete),
                web.get(prefix + "/namespaces/{ns}/{plural}/{name}/{sub}", self.get_sub),
                web.put(prefix + "/namespaces/{ns}/{plural}/{name}/{sub}", self.replace),
                web.patch(prefix + "/namespaces/{ns}/{plural}/{name}/{sub}", self.patch),
            ]
        for prefix in (core, apis):  # cluster-scoped objects (CRDs, ...)
            routes += [
                web.post(prefix + "/{plural}", self.create),
                web.delete(prefix + "/{plural}", self.delete_collection),
                web.get(prefix + "/{plural}/{name}", self.get),
                web.put(prefix + "/{plural}/{name}", self.replace),
                web.patch(prefix + "/{plural}/{name}", self.patch),
                web.delete(prefix + "/{plural}/{name}", self.delete),
                web.get(prefix + "/{plural}/{name}/{sub}", self.get_sub),
                web.put(prefix + "/{plural}/{name}/{sub}", self.replace),
                web.patch(prefix + "/{plural}/{name}/{sub}", self.patch),
            ]
        return routes

    @web.middleware
    async def errors(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as error:
            return _json(error.status(), error.code)
        except json.JSONDecodeError as error:
            return _json(ApiError(400, "BadRequest", f"invalid JSON: {error}").status(), 400)

    async def version(self, request: web.Request) -> web.Response:
        return _json({"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake"})

    async def discovery(self, request: web.Request) -> web.Response:
        return _json({"kind": "APIVersions", "versions": ["v1"]})

    # -- discovery: the built-in resources and those of every CustomResourceDefinition -------

    def _resource_list(self, api_version: str) -> dict:
        resources = sorted(
            (r for r in self.store.resources.values() if r.api_version == api_version),
            key=lambda r: r.plural,
        )
        if not resources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": api_version,
            "resources": [entry for r in resources for entry in r.discovery()],
        }

    def _groups(self) -> dict[str, dict]:
        versions: dict[str, set[str]] = {}
        for resource in self.store.resources.values():
            if resource.group:
                versions.setdefault(resource.group, set()).add(resource.version)
        groups = {}
        for name, found in sorted(versions.items()):
            entries = [
                {"groupVersion": f"{name}/{v}", "version": v} for v in sort_versions(list(found))
            ]
            groups[name] = {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": name,
                "versions": entries,
                "preferredVersion": entries[0],
            }
        return groups

    async def core_resources(self, request: web.Request) -> web.Response:
        return _json(self._resource_list("v1"))

    async def group_list(self, request: web.Request) -> web.Response:
        groups = [
            {k: v for k, v in g.items() if k not in ("kind", "apiVersion")}
            for g in self._groups().values()
        ]
        return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def group(self, request: web.Request) -> web.Response:
        group = self._groups().get(request.match_info["group"])
        if group is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(group)

    async def group_resources(self, request: web.Request) -> web.Response:
        return _json(self._resource_list(_api_version(request)))

    async def create_namespace(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = body["metadata"]["name"]
        if name in self.fake.namespaces:
            raise ApiError(409, "AlreadyExists", f'namespaces "{name}" already exists')
        self.fake.namespaces.add(name)
        return _json(body, 201)

    async def get_namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.fake.namespaces:
            raise ApiError(404, "NotFound", f'namespaces "{name}" not found')
        return _json({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def _namespace_list(self) -> dict:
        """``fake.namespaces`` (a plain set tests add to) as a ``NamespaceList``."""
        items = [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "status": {"phase": "Active"},
            }
            for name in sorted(self.fake.namespaces)
        ]
        version = str(self.store.resource_version)
        return {
            "apiVersion": "v1",
            "kind": "NamespaceList",
            "metadata": {"resourceVersion": version},
            "items": items,
        }

    async def collection(self, request: web.Request) -> web.StreamResponse:
        api_version, plural = _api_version(request), request.match_info["plural"]
        namespace = request.match_info.get("ns")
        query = request.query
        labels, fields = query.get("labelSelector"), query.get("fieldSelector")
        watching = query.get("watch") in ("true", "1", "True")
        if (api_version, plural) == ("v1", "namespaces") and namespace is None:
            listing = self._namespace_list()
            if not watching:
                return _json(listing)
            watcher = Watcher(None, labels, fields)  # the set has no history: a snapshot
            if not int(query.get("resourceVersion") or 0):
                for item in listing["items"]:
                    watcher.queue.put_nowait({"type": "ADDED", "object": item})
        elif not watching:
            return _json(self.store.list(api_version, plural, namespace, labels, fields))
        else:
            since = int(query.get("resourceVersion") or 0)
            watcher = self.store.watch(api_version, plural, namespace, labels, fields, since)
        if query.get("sendInitialEvents") == "true":
            bookmark = {
                "apiVersion": api_version,
                "kind": self.store.collection(api_version, plural).kind,
                "metadata": {
                    "resourceVersion": str(self.store.resource_version),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            }
            watcher.queue.put_nowait({"type": "BOOKMARK", "object": bookmark})
        timeout = float(query.get("timeoutSeconds") or 300)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), min(left, 5))
                except TimeoutError:
                    continue
                await response.write(json.dumps(event).encode() + b"\n")
                if event["type"] == "ERROR":  # e.g. 410 Gone: the server ends the stream
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(api_version, plural, watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def create(self, request: web.Request) -> web.Response:
        api_version, plural = _api_version(request), request.match_info["plural"]
        namespace = request.match_info.get("ns")
        body = await request.json()
        if (api_version, plural) == ("v1", "pods") and namespace:
            check_pod_quota(self.store, namespace, body)  # admission, before anything is made
        obj = self.store.create(api_version, plural, namespace, body, strict=True)
        if (api_version, plural) == ("batch/v1", "jobs"):
            asyncio.get_running_loop().create_task(self.fake.run_job(obj))
        return _json(obj, 201)

    async def get(self, request: web.Request) -> web.Response:
        m = request.match_info
        return _json(self.store.get(_api_version(request), m["plural"], m.get("ns"), m["name"]))

    async def get_sub(self, request: web.Request) -> web.Response:
        m = request.match_info
        obj = self.store.get(_api_version(request), m["plural"], m.get("ns"), m["name"])
        if m["sub"] != "log":
            return _json(obj)
        text = self.fake.pod_logs.get((m["ns"], m["name"]))
        if text is None:
            text = self.kubelet.logs(m["ns"], m["name"]) or ""
        return web.Response(text=text, content_type="text/plain")

    async def replace(self, request: web.Request) -> web.Response:
        m = request.match_info
        body = await request.json()
        obj = self.store.replace(
            _api_version(request),
            m["plural"],
            m.get("ns"),
            m["name"],
            body,
            m.get("sub"),
            strict=True,
        )
        return _json(obj)

    async def patch(self, request: web.Request) -> web.Response:
        m = request.match_info
        body = await request.json()
        obj = self.store.patch(
            _api_version(request),
            m["plural"],
            m.get("ns"),
            m["name"],
            body,
            m.get("sub"),
            patch_type=_patch_type(body),
            strict=True,
        )
        return _json(obj)

    async def delete(self, request: web.Request) -> web.Response:
        """Delete at once, or, with finalizers, mark ``deletionTimestamp`` (202 Accepted).

        A pod first shows ``deletionTimestamp`` while the kubelet stops its process."""
        m = request.match_info
        api_version, plural, ns, name = _api_version(request), m["plural"], m.get("ns"), m["name"]
        obj = await self._delete(api_version, plural, ns, name)
        return _json(obj, 202 if self.store.exists(api_version, plural, ns, name) else 200)

    async def _delete(self, api_version: str, plural: str, ns: str | None, name: str) -> dict:
        if (api_version, plural) == ("v1", "pods"):
            obj = self.store.delete(api_version, plural, ns, name, grace=POD_GRACE_SECONDS)
            await self.kubelet.kill(ns, name)
            if not self.store.exists(api_version, plural, ns, name):
                return obj
        return self.store.delete(api_version, plural, ns, name)

    async def delete_collection(self, request: web.Request) -> web.Response:
        """``deletecollection``: DELETE of every object the selectors match (finalizers hold)."""
        api_version, plural = _api_version(request), request.match_info["plural"]
        namespace = request.match_info.get("ns")
        labels, fields = request.query.get("labelSelector"), request.query.get("fieldSelector")
        listing = self.store.list(api_version, plural, namespace, labels, fields)
        for obj in listing["items"]:
            meta = obj["metadata"]
            with contextlib.suppress(ApiError):  # gone meanwhile
                await self._delete(api_version, plural, meta.get("namespace"), meta["name"])
        return _json(listing)

    async def registry(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if path == "":
            return web.Response(status=200)
        name, sep, reference = path.rpartition("/manifests/")
        if not sep:
            return web.Response(status=404)
        wanted = f"{self.fake.registry_host}/{name}:{reference}"
        if wanted not in self.fake.registry:
            return _json({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, 404)
        return web.Response(
            status=200,
            headers={
                "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                "Docker-Content-Digest": "sha256:" + "0" * 64,
            },
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeKube:
    """Start/stop the fake API server in a background thread; see :mod:`tests.fakekube`."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="fakekube-"))
        self.store = Store()
        self.kubelet = Kubelet(self.store, self.workdir)
        self.store.listeners.append(self.kubelet.on_change)
        self.namespaces: set[str] = {"default"}
        self.registry: set[str] = set()
        self.pod_logs: dict[tuple[str, str], str] = {}
        self.job_handler: Callable[[dict], JobOutcome] = lambda job: JobOutcome()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def registry_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeKube:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            app = web.Application(middlewares=[])
            api = Api(self.store, self.kubelet, self)
            app.middlewares.append(api.errors)
            app.add_routes(api.routes())
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            self._loop.run_until_complete(site.start())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fakekube", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Kubernetes API did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            await self.kubelet.shutdown()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """Write a kubeconfig that points kubectl-style clients at this server."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {"cluster": "fake", "user": "fake", "namespace": namespace},
                }
            ],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    # -- thread-safe access ----------------------------------------------------------------

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        assert self._loop is not None, "FakeKube is not started"

        async def run() -> Any:
            return func(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def _plural(self, obj: dict) -> str:
        known = self.store.plural_of(obj["apiVersion"], obj["kind"])
        return known or obj["kind"].lower() + ("es" if obj["kind"].endswith("s") else "s")

    def create(self, obj: dict, plural: str | None = None, namespace: str | None = None) -> dict:
        """Create an object (no API rules applied); a known cluster-scoped kind gets none."""

        def run() -> tuple[str, dict]:
            kind = plural or self._plural(obj)
            where = namespace or obj["metadata"].get("namespace", "default")
            if self.store.namespaced(obj["apiVersion"], kind) is False:
                where = None
            return kind, self.store.create(obj["apiVersion"], kind, where, obj)

        plural, result = self._call(run)
        if (obj["apiVersion"], plural) == ("batch/v1", "jobs"):
            asyncio.run_coroutine_threadsafe(self.run_job(result), self._loop)
        return result

    def register_crd(self, crd: dict) -> dict:
        """Create (or replace) an ``apiextensions.k8s.io/v1`` CustomResourceDefinition, as
        ``POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions`` would: its resource
        appears in discovery and gets the scope and status-subresource rules. Returns it."""

        def run() -> dict:
            name = crd["metadata"]["name"]
            if not self.store.exists(CRD_API, CRD_PLURAL, None, name):
                return self.store.create(CRD_API, CRD_PLURAL, None, crd)
            return self.store.replace(CRD_API, CRD_PLURAL, None, name, crd)

        return self._call(run)

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict | None:
        try:
            return self._call(self.store.get, api_version, plural, namespace, name)
        except ApiError:
            return None

    def list(self, api_version: str, plural: str, namespace: str | None = None) -> list[dict]:
        return self._call(self.store.list, api_version, plural, namespace)["items"]

    def set_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: dict
    ) -> dict:
        return self._call(
            self.store.replace, api_version, plural, namespace, name, {"status": status}, "status"
        )

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> None:
        """Delete an object; a pod's process is stopped first, as the kubelet would. An object
        with finalizers only gets its ``deletionTimestamp``, as through the API."""
        assert self._loop is not None, "FakeKube is not started"

        async def run() -> None:
            if (api_version, plural) == ("v1", "pods"):
                await self.kubelet.kill(namespace, name)
            with contextlib.suppress(ApiError):
                self.store.delete(api_version, plural, namespace, name)

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    # -- jobs ------------------------------------------------------------------------------

    async def run_job(self, job: dict) -> None:
        """Give a new Job a pod, logs and a final status from ``job_handler``."""
        await asyncio.sleep(0.2)
        outcome = await asyncio.to_thread(self.job_handler, job)
        meta = job["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        template = job["spec"]["template"]
        pod_name = f"{name}-{meta['uid'][:5]}"
        labels = {
            **(template.get("metadata", {}).get("labels") or {}),
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
            "controller-uid": meta["uid"],
        }
        phase = "Succeeded" if outcome.succeeded else "Failed"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod_name, "labels": labels},
            "spec": template["spec"],
        }
        self.pod_logs[(namespace, pod_name)] = outcome.log
        self.store.create("v1", "pods", namespace, pod)
        terminated = {"exitCode": 0 if outcome.succeeded else 1, "finishedAt": now()}
        statuses = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": terminated},
            }
            for c in template["spec"]["containers"]
        ]
        self.store.replace(
            "v1",
            "pods",
            namespace,
            pod_name,
            {"status": {"phase": phase, "containerStatuses": statuses}},
            "status",
        )
        if outcome.succeeded:
            condition = {"type": "Complete", "status": "True", "lastTransitionTime": now()}
            status = {"succeeded": 1, "completionTime": now()}
        else:
            condition = {
                "type": "Failed",
                "status": "True",
                "reason": outcome.reason,
                "message": outcome.message,
                "lastTransitionTime": now(),
            }
            status = {"failed": 1}
        status.update(startTime=now(), conditions=[condition])
        with contextlib.suppress(ApiError):
            self.store.replace("batch/v1", "jobs", namespace, name, {"status": status}, "status")
