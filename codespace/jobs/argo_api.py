"""How the Argo backend reaches Argo: the Kubernetes API, or an Argo Server's REST API.

Both give the backend (:mod:`codespace.jobs.argo`) the same few calls on one namespace's
Workflows: create (:class:`Conflict` when the name is taken), get (None when absent), list
by label selector, shut down (``Stop`` / ``Terminate``) and the logs of a job's pods. An API
that cannot be reached, refuses the credentials or fails on its side is
:class:`~codespace.jobs.service.BackendUnavailable` (HTTP 503, and the job service looks in
the other backends); other refusals are :class:`JobError`. Their clients (kubernetes_asyncio,
aiohttp) are imported when first used.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codespace.jobs.argo_workflow import (
    GROUP,
    JOB_LABEL,
    MAIN_CONTAINER,
    PLURAL,
    VERSION,
    WORKFLOW_LABEL,
)
from codespace.jobs.backend import BackendUnavailable, JobError
from codespace.kube.client import Conflict, KubeClient, is_unavailable

NODE_NAME = "workflows.argoproj.io/node-name"  # Argo's annotation on a pod: its node


class ArgoApi(ABC):
    """One namespace's Workflows."""

    namespace: str

    @abstractmethod
    async def create(self, workflow: dict) -> dict: ...

    @abstractmethod
    async def get(self, name: str) -> dict | None: ...

    @abstractmethod
    async def list(self, selector: str) -> list[dict]: ...

    @abstractmethod
    async def shutdown(self, name: str, strategy: str) -> dict | None:
        """Stop (exit handlers run) or Terminate the Workflow; its new state."""

    @abstractmethod
    async def pod_logs(self, workflow: str, job: str, tail: int | None) -> list[tuple[str, str]]:
        """``(pod or node, text)`` of each of the job's pods (attempts, array copies), in order."""

    async def own_pod(self, name: str) -> dict | None:
        """This server's pod (to find its workspace volume), when the API can tell."""
        return None

    async def claim(self, name: str) -> dict | None:
        """A PersistentVolumeClaim of the namespace, when the API can tell."""
        return None

    async def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the connection."""


def _natural(text: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


class KubeApi(KubeClient, ArgoApi):
    """The ``argoproj.io/v1alpha1`` Workflow custom resource through the Kubernetes API."""

    unavailable, refused = BackendUnavailable, JobError

    def __init__(
        self, namespace: str, *, api_client: Any = None, kubeconfig: str | None = None
    ) -> None:
        super().__init__(namespace, {"kubeconfig": kubeconfig}, api_client=api_client)
        self.kubeconfig = kubeconfig

    async def _custom(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._call(
            "CustomObjectsApi", method, GROUP, VERSION, self.namespace, PLURAL, *args, **kwargs
        )

    async def create(self, workflow: dict) -> dict:
        return await self._custom("create_namespaced_custom_object", workflow)

    async def get(self, name: str) -> dict | None:
        try:
            return await self._custom("get_namespaced_custom_object", name)
        except LookupError:
            return None

    async def list(self, selector: str) -> list[dict]:
        listing = await self._custom("list_namespaced_custom_object", label_selector=selector)
        return listing.get("items") or []

    async def shutdown(self, name: str, strategy: str) -> dict | None:
        try:
            return await self._custom(
                "patch_namespaced_custom_object",
                name,
                {"spec": {"shutdown": strategy}},
                _content_type="application/merge-patch+json",  # CRs take no strategic merge
            )
        except LookupError:
            return None

    async def pod_logs(self, workflow: str, job: str, tail: int | None) -> list[tuple[str, str]]:
        selector = f"{WORKFLOW_LABEL}={workflow},{JOB_LABEL}={job}"
        listing = await self._serialized(
            "CoreV1Api", "list_namespaced_pod", self.namespace, label_selector=selector
        )
        pods = []
        for pod in listing.get("items") or []:
            meta = pod["metadata"]
            node = (meta.get("annotations") or {}).get(NODE_NAME) or meta["name"]
            label = node.removeprefix(f"{workflow}.")
            pods.append((_natural(label), meta.get("creationTimestamp") or "", meta["name"], label))
        texts = []
        for *_, pod_name, label in sorted(pods):
            try:
                text = await self._call(
                    "CoreV1Api",
                    "read_namespaced_pod_log",
                    pod_name,
                    self.namespace,
                    container=MAIN_CONTAINER,
                    tail_lines=tail,
                )
            except (LookupError, JobError):  # gone, or its container has not started
                continue
            texts.append((label, text or ""))
        return texts

    async def own_pod(self, name: str) -> dict | None:
        try:
            return await self._serialized("CoreV1Api", "read_namespaced_pod", name, self.namespace)
        except (LookupError, JobError):
            return None

    async def claim(self, name: str) -> dict | None:
        try:
            return await self._serialized(
                "CoreV1Api", "read_namespaced_persistent_volume_claim", name, self.namespace
            )
        except (LookupError, JobError):
            return None


class ServerApi(ArgoApi):
    """An Argo Server's ``WorkflowsService`` REST API, with a bearer token."""

    def __init__(
        self,
        url: str,
        namespace: str,
        token: str | Callable[[], str] | None = None,
        *,
        verify_ssl: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.namespace = namespace
        self._token = token
        self.verify_ssl = verify_ssl
        self._session: Any = None

    @classmethod
    def token_from_file(cls, path: str) -> Callable[[], str]:
        """Read the token at each request (a projected service-account token rotates)."""
        return lambda: Path(path).read_text(encoding="utf-8").strip()

    def _headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        if not token:
            return {}
        return {"Authorization": token if token.startswith("Bearer ") else f"Bearer {token}"}

    async def _request(self, method: str, path: str, **kwargs: Any) -> str:
        """The response text; 404 -> LookupError, 409 -> Conflict, other errors -> JobError."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.url}/api/v1/workflows/{self.namespace}{path}"
        try:
            async with self._session.request(
                method,
                url,
                headers=self._headers(),
                ssl=self.verify_ssl,
                **kwargs,
            ) as response:
                text = await response.text()
        except (aiohttp.ClientError, OSError) as error:
            raise BackendUnavailable(
                f"cannot reach the Argo Server at {self.url}: {error}"
            ) from error
        if response.status == 404:
            raise LookupError(text[:300])
        if response.status == 409:
            raise Conflict(text[:300])
        if response.status >= 400:
            try:
                message = json.loads(text).get("message") or text
            except ValueError:
                message = text
            kind = BackendUnavailable if is_unavailable(response.status) else JobError
            raise kind(f"Argo Server: {response.status} {str(message)[:300]}")
        return text

    async def create(self, workflow: dict) -> dict:
        body = {"namespace": self.namespace, "workflow": workflow}
        return json.loads(await self._request("POST", "", json=body))

    async def get(self, name: str) -> dict | None:
        try:
            return json.loads(await self._request("GET", f"/{name}"))
        except LookupError:
            return None

    async def list(self, selector: str) -> list[dict]:
        params = {"listOptions.labelSelector": selector}
        return json.loads(await self._request("GET", "", params=params)).get("items") or []

    async def shutdown(self, name: str, strategy: str) -> dict | None:
        verb = "terminate" if strategy == "Terminate" else "stop"
        body = {"name": name, "namespace": self.namespace}
        try:
            return json.loads(await self._request("PUT", f"/{name}/{verb}", json=body))
        except LookupError:
            return None

    async def pod_logs(self, workflow: str, job: str, tail: int | None) -> list[tuple[str, str]]:
        params = {"logOptions.container": MAIN_CONTAINER, "selector": f"{JOB_LABEL}={job}"}
        if tail is not None:
            params["logOptions.tailLines"] = str(tail)
        try:
            text = await self._request("GET", f"/{workflow}/log", params=params)
        except LookupError:
            return []
        lines: dict[str, list[str]] = {}
        for raw in text.splitlines():
            if raw.strip():
                entry = json.loads(raw).get("result") or {}
                lines.setdefault(entry.get("podName", ""), []).append(entry.get("content", ""))
        return [(pod, "".join(f"{line}\n" for line in content)) for pod, content in lines.items()]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
