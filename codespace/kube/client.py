"""The Kubernetes API client of the backends that use it (Argo jobs, KServe deployments).

Unlike the rest of :mod:`codespace.kube`, this module talks to a cluster: kubernetes_asyncio
(and aiohttp) are imported when first used. It gives a backend:

- :func:`namespace_from`: the namespace to work in (the ``namespace`` option, else the pod's);
- :func:`configuration`: the client's configuration from the backend's connection options:
  ``api_url`` with ``token`` or ``token_file`` (read again at each request: a projected
  token rotates), ``ca`` and ``verify_ssl``; else the in-cluster config; else ``kubeconfig``
  (or ``$KUBECONFIG``, ``~/.kube/config``);
- :class:`KubeClient`: one namespace's API calls, with the API's errors as the backend's:
  404 -> LookupError, 409 -> :class:`Conflict`, unreachable / credentials refused / server
  errors -> the backend's "unavailable" exception (HTTP 503), other refusals -> its error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class Conflict(Exception):
    """An object of that name exists already."""


def namespace_from(options: Mapping[str, Any], environment: Mapping[str, str]) -> str:
    """The ``namespace`` option, else ``$POD_NAMESPACE``, the service account's, ``default``."""
    if options.get("namespace"):
        return str(options["namespace"])
    if environment.get("POD_NAMESPACE"):
        return environment["POD_NAMESPACE"]
    if SERVICE_ACCOUNT_NAMESPACE.exists():
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    return "default"


def is_unavailable(status: int | None) -> bool:
    """Credentials refused or the server failing: the backend cannot serve now."""
    return status in (401, 403) or (status or 0) >= 500


async def configuration(options: Mapping[str, Any], unavailable: type[Exception]) -> Any:
    """A kubernetes_asyncio ``Configuration`` from the connection options (see the module);
    ``unavailable`` when there is no API to talk to."""
    from kubernetes_asyncio import client, config

    configuration = client.Configuration()
    if options.get("api_url"):
        configuration.host = str(options["api_url"]).rstrip("/")
        configuration.verify_ssl = bool(options.get("verify_ssl", True))
        configuration.ssl_ca_cert = options.get("ca")
        if options.get("token") or options.get("token_file"):
            configuration.api_key_prefix["BearerToken"] = "Bearer"
            configuration.api_key["BearerToken"] = options.get("token") or ""
        if options.get("token_file"):
            path = Path(str(options["token_file"]))

            def reread(conf: Any) -> None:  # a projected token rotates
                conf.api_key["BearerToken"] = path.read_text(encoding="utf-8").strip()

            configuration.refresh_api_key_hook = reread
        return configuration
    try:
        if options.get("kubeconfig"):
            raise config.ConfigException("a kubeconfig is configured")
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        try:
            await config.load_kube_config(
                config_file=options.get("kubeconfig"), client_configuration=configuration
            )
        except (config.ConfigException, OSError, ValueError) as error:
            raise unavailable(f"no Kubernetes API to talk to: {error}") from error
    return configuration


class KubeClient:
    """API calls on one namespace. ``connection``: the connection options (see the module);
    ``api_client``: a kubernetes_asyncio ``ApiClient`` to use (not closed here)."""

    unavailable: ClassVar[type[Exception]]  # the backend's "cannot serve now" (HTTP 503)
    refused: ClassVar[type[Exception]]  # the backend's error for other refusals

    def __init__(
        self, namespace: str, connection: Mapping[str, Any] | None = None, *, api_client: Any = None
    ) -> None:
        self.namespace = namespace
        self.connection = dict(connection or {})
        self._api_client = api_client
        self._owns_client = api_client is None

    async def _client(self) -> Any:
        if self._api_client is None:
            from kubernetes_asyncio import client

            settings = await configuration(self.connection, self.unavailable)
            self._api_client = client.ApiClient(configuration=settings)
        return self._api_client

    async def _call(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``client.<api>(...).<method>``, the API's errors as the backend's."""
        import aiohttp
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        target = getattr(client, api)(await self._client())
        try:
            return await getattr(target, method)(*args, **kwargs)
        except ApiException as error:
            if error.status == 404:
                raise LookupError(error.reason) from error
            if error.status == 409:
                raise Conflict(error.reason) from error
            body = (error.body or "")[:300]
            kind = self.unavailable if is_unavailable(error.status) else self.refused
            raise kind(f"Kubernetes API: {error.status} {error.reason}: {body}") from error
        except (aiohttp.ClientError, OSError) as error:
            raise self.unavailable(f"cannot reach the Kubernetes API: {error}") from error

    async def _serialized(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`_call`, its answer as JSON data (a core object, a list of them)."""
        result = await self._call(api, method, *args, **kwargs)
        return (await self._client()).sanitize_for_serialization(result)

    async def close(self) -> None:
        if self._owns_client and self._api_client is not None:
            await self._api_client.close()
            self._api_client = None
