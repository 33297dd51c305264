"""Run a kopf operator in a background thread against a :class:`FakeKube`.

kopf needs from the fake: discovery (``GET /api``, ``/api/v1``, ``/apis``,
``/apis/<group>/<version>``) to resolve its handlers' resources, list + watch, merge patches
(the body; ``/status`` when the resource has that subresource), JSON patches with a ``test``
of ``metadata.resourceVersion`` (finalizers; a 422 on a stale version), finalizer-held
deletion, ``POST`` of ``v1`` Events, and list + watch of ``customresourcedefinitions`` (to see
CRDs come and go, unless ``settings.scanning.disabled``). It needs no leases: the operator
runs standalone (no kopf peering CRDs here).

Use::

    registry = kopf.OperatorRegistry()

    @kopf.on.create("codespace.io", "v1alpha1", "codespaces", registry=registry)
    def created(patch, **_):
        patch.status["phase"] = "Ready"

    kube.register_crd(CRD)
    with KopfOperator(kube, registry):      # returns once kopf is ready
        ...                                 # create/patch/delete objects, poll kube.get(...)
    # leaving the block stops kopf (stop flag) and re-raises what crashed it

Logs in with an ``@kopf.on.login`` handler that answers the fake's URL and token (so neither
``KUBECONFIG`` nor an API client library is needed); a registry used with it keeps that
handler. ``kopf run --standalone`` in a subprocess with ``KUBECONFIG=kube.kubeconfig(path)``
works too (kopf's default registry logs in through kubernetes_asyncio).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection
from typing import Any

import kopf

from tests.fakekube.server import FakeKube


def fake_settings() -> kopf.OperatorSettings:
    """Settings for tests: standalone (no peering), short server-side watch timeouts."""
    settings = kopf.OperatorSettings()
    settings.peering.standalone = True
    settings.watching.server_timeout = 30
    settings.watching.reconnect_backoff = 0.1
    return settings


class KopfOperator:
    """A kopf operator on its own thread and event loop, logged in to ``kube``."""

    def __init__(
        self,
        kube: FakeKube,
        registry: kopf.OperatorRegistry,
        *,
        settings: kopf.OperatorSettings | None = None,
        namespaces: Collection[str] = (),
        ready_timeout: float = 15,
        **operator_kwargs: Any,
    ) -> None:
        self.kube, self.registry = kube, registry
        self.settings = settings or fake_settings()
        self.namespaces = tuple(namespaces)
        self.ready_timeout = ready_timeout
        self.operator_kwargs = operator_kwargs
        self.stop_flag, self.ready_flag = threading.Event(), threading.Event()
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(
                server=kube.url, scheme="Bearer", token="fake-token", default_namespace="default"
            )

        kopf.on.login(registry=registry, id="fakekube-login")(login)

    def _run(self) -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=self.registry,
                    settings=self.settings,
                    clusterwide=not self.namespaces,
                    namespaces=self.namespaces,
                    stop_flag=self.stop_flag,
                    ready_flag=self.ready_flag,
                    **self.operator_kwargs,
                )
            )
        except BaseException as error:  # noqa: BLE001 - reported by stop()
            self.error = error
            self.ready_flag.set()

    def start(self) -> KopfOperator:
        self._thread = threading.Thread(target=self._run, name="kopf-operator", daemon=True)
        self._thread.start()
        if not self.ready_flag.wait(self.ready_timeout) or self.error is not None:
            self.stop()
            raise RuntimeError(f"kopf did not start: {self.error!r}")
        return self

    def stop(self, timeout: float = 20) -> None:
        """Set the stop flag, wait for the thread, re-raise what crashed the operator."""
        self.stop_flag.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("kopf did not stop in time")
            self._thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    def __enter__(self) -> KopfOperator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
