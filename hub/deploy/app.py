"""``python -m hub.deploy.app``: the hub's deploy service (a JupyterHub-managed service).

It serves the local deploy backend at ``/services/codespace-deploy/`` through the hub's
proxy:

``api/deployments[/<name>[/logs|/tokens|/signature]]``  the owner's deployments (the server
    extension's :class:`~codespace.deploy.local.LocalDeployBackend` calls it with the
    codespace server's token; any token of the user with access to this service works);
``endpoints/<user>/<name>/...``  the model's KServe protocol (``v2/models/<name>/infer``,
    ``.../ready``, metadata): a scale-to-zero deployment is started on the first request
    and the request waits for it;
``metrics``  Prometheus text (:mod:`codespace.deploy.metrics`), for a hub token with the
    ``read:metrics`` scope (a user's or a service's, as for JupyterHub's ``/hub/metrics``).

Every other request needs ``Authorization: token <t>`` (or ``Bearer``): a hub token of the
deployment's owner (with ``access:services!service=codespace-deploy``, which the local hub
gives every user and every codespace server), or for an endpoint a share token the owner
minted for that deployment. Other users' tokens are refused (403), as are requests without
one (401). The service runs as the hub's user; what runs a user's code is confined to the
user's account (:mod:`hub.deploy.isolation`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubAuth
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import ValidationError
from tornado import httpserver, ioloop, web

from codespace.deploy import metrics
from codespace.deploy.backend import DeployError, DeploymentExists, DeploymentNotFound
from codespace.deploy.manager import DeployManager, Source
from codespace.deploy.models import DeploymentSpec
from codespace.policy import PolicyRefused, read_policy
from hub.deploy.isolation import HubConfiner
from hub.deploy.proxy import forward

log = logging.getLogger("codespace.deploy")
NAME = r"(?P<name>[a-z][-a-z0-9]{0,44})"


class _Handler(web.RequestHandler):
    @property
    def manager(self) -> DeployManager:
        return self.settings["manager"]

    @property
    def auth(self) -> HubAuth:
        return self.settings["hub_auth"]

    def check_xsrf_cookie(self) -> None:  # token-authenticated API: no cookies are used
        return

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = exc.log_message if isinstance(exc, web.HTTPError) and exc.log_message else None
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message or self._reason}))

    def token(self) -> str:
        header = self.request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or not value.strip():
            raise web.HTTPError(401, "a token is required (Authorization: token ...)")
        return value.strip()

    async def hub_user(self, token: str) -> str | None:
        """The hub user a token belongs to, if it may use this service."""
        model = await self.hub_model(token)
        return model["name"] if model else None

    async def hub_model(self, token: str) -> dict[str, Any] | None:
        """The hub's model of the token's user (name, groups), if it may use this service."""
        model = await self.auth.user_for_token(token, sync=False)
        if not model or model.get("kind", "user") != "user":
            return None
        if not self.auth.check_scopes(self.auth.access_scopes, model):
            return None
        return model

    async def owner(self) -> str:
        model = await self.hub_model(self.token())
        if model is None:
            raise web.HTTPError(403, "this token may not use the deploy service")
        self._groups = list(model.get("groups") or [])
        return model["name"]

    def check_policy(self) -> None:
        """The owner's group policy must allow local deployments (403 naming the rule)."""
        policy = read_policy(self.settings.get("policy_file") or "")
        if policy is None:
            return
        try:
            policy.for_groups(getattr(self, "_groups", [])).check_deploy_backend("local")
        except PolicyRefused as error:
            raise web.HTTPError(403, str(error)) from None

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, default=str))

    async def guarded(self, work) -> Any:
        try:
            return await work()
        except DeploymentNotFound as error:
            raise web.HTTPError(404, str(error)) from None
        except DeploymentExists as error:
            raise web.HTTPError(409, str(error)) from None
        except DeployError as error:
            raise web.HTTPError(400, str(error)) from None


def _json(record: Any) -> Any:
    return record.model_dump(mode="json")


class DeploymentsHandler(_Handler):
    async def get(self) -> None:
        owner = await self.owner()
        self.reply({"deployments": [_json(r) for r in self.manager.list(owner)]})

    async def post(self) -> None:
        owner = await self.owner()
        self.check_policy()
        try:
            body = json.loads(self.request.body or b"{}")
            spec = DeploymentSpec.model_validate(body.get("spec") or {})
            source = Source(Path(body["source"]["workspace"]), Path(body["source"]["env"]))
        except (ValueError, KeyError, TypeError, ValidationError) as error:
            raise web.HTTPError(400, f"bad deployment request: {error}") from None

        async def create() -> Any:
            return await self.manager.create(owner, spec, source)

        self.reply(_json(await self.guarded(create)), 201)


class DeploymentHandler(_Handler):
    async def get(self, name: str) -> None:
        owner = await self.owner()
        self.reply(_json(await self.guarded(lambda: _now(self.manager.get(owner, name)))))

    async def delete(self, name: str) -> None:
        owner = await self.owner()
        await self.guarded(lambda: self.manager.delete(owner, name))
        self.set_status(204)
        self.finish()


class LogsHandler(_Handler):
    async def get(self, name: str) -> None:
        owner = await self.owner()
        tail = int(self.get_argument("tail", "0") or 0)
        text = await self.guarded(lambda: _now(self.manager.logs(owner, name, tail)))
        self.reply({"text": text})


class TokensHandler(_Handler):
    async def post(self, name: str) -> None:
        owner = await self.owner()
        body = json.loads(self.request.body or b"{}")
        note, expires = str(body.get("note") or ""), body.get("expiresIn")
        if expires is not None and (not isinstance(expires, int) or expires <= 0):
            raise web.HTTPError(400, "expiresIn must be a positive number of seconds")
        shared = await self.guarded(lambda: _now(self.manager.share(owner, name, note, expires)))
        self.reply(_json(shared), 201)


class SignatureHandler(_Handler):
    async def get(self, name: str) -> None:
        owner = await self.owner()
        self.reply(_json(await self.guarded(lambda: self.manager.signature(owner, name))))


class MetricsHandler(_Handler):
    """Prometheus text for a hub token with ``read:metrics`` (a user's or a service's)."""

    async def get(self) -> None:
        model = await self.auth.user_for_token(self.token(), sync=False)
        if not model or not self.auth.check_scopes("read:metrics", model):
            raise web.HTTPError(403, "the metrics need a token with the read:metrics scope")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(REGISTRY))


class HomeHandler(web.RequestHandler):
    """The service's root: people go to the hub's home page (JupyterHub also checks here
    that the service is up)."""

    def get(self) -> None:
        self.redirect(self.settings["home_url"])


class EndpointHandler(_Handler):
    """The model's own API, for its owner or a holder of one of its share tokens."""

    metered: tuple[str, str] | None = None  # (owner, name) once the token was accepted

    async def _allowed(self, owner: str, name: str) -> None:
        token = self.token()
        if not self.manager.store.token_grants(token, owner, name):
            user = await self.hub_user(token)
            if user != owner:
                raise web.HTTPError(403, f"this token may not call {owner}'s deployment {name}")
        if self.manager.store.get(owner, name) is not None:  # no series for unknown names
            self.metered = (owner, name)  # (nor for refused requests)

    def on_finish(self) -> None:
        if self.metered is not None:
            seconds = self.request.request_time()
            metrics.request_done(*self.metered, self.get_status(), seconds)

    async def _forward(self, owner: str, name: str, path: str) -> None:
        await self._allowed(owner, name)
        server = await self.guarded(lambda: self.manager.server_for(owner, name))
        status, headers, body = await forward(server, self.request, "/" + path)
        self.manager.touch(owner, name)
        self.set_status(status)
        for key, value in headers:
            self.set_header(key, value)
        self.finish(body)

    async def get(self, owner: str, name: str, path: str) -> None:
        await self._forward(owner, name, path)

    async def post(self, owner: str, name: str, path: str) -> None:
        await self._forward(owner, name, path)


async def _now(value: Any) -> Any:
    return value


def make_app(
    manager: DeployManager,
    prefix: str,
    hub_auth: HubAuth,
    policy_file: str = "",
    hub_home: str = "/hub/home",
) -> web.Application:
    prefix = "/" + prefix.strip("/") + "/"
    api = f"{prefix}api/deployments"
    return web.Application(
        [
            (prefix, HomeHandler),
            (api, DeploymentsHandler),
            (rf"{api}/{NAME}", DeploymentHandler),
            (rf"{api}/{NAME}/logs", LogsHandler),
            (rf"{api}/{NAME}/tokens", TokensHandler),
            (rf"{api}/{NAME}/signature", SignatureHandler),
            (rf"{prefix}endpoints/(?P<owner>[^/]+)/{NAME}/(?P<path>.*)", EndpointHandler),
            (f"{prefix}metrics", MetricsHandler),
        ],
        manager=manager,
        hub_auth=hub_auth,
        policy_file=policy_file,  # the group policy (codespace.policy), "" for none
        home_url=hub_home,
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="[deploy %(levelname)s] %(message)s")
    data_dir = Path(os.environ.get("CODESPACE_HUB_DATA_DIR", "data")).resolve()
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/codespace-deploy/")
    listen = urlsplit(os.environ["JUPYTERHUB_SERVICE_URL"])
    public = os.environ.get("CODESPACE_DEPLOY_PUBLIC_URL", prefix)
    confiner = HubConfiner(data_dir, sandbox=os.environ.get("CODESPACE_HUB_SANDBOX", "1") != "0")
    manager = DeployManager(data_dir / "deployments", data_dir / "env-cache", confiner, public)
    REGISTRY.register(metrics.DeploymentStates(manager.everyone))
    hub_auth = HubAuth(cache_max_age=60)
    policy = os.environ.get("CODESPACE_HUB_POLICY", "")
    home = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/hub/home"
    app = make_app(manager, prefix, hub_auth, policy, home)
    server = httpserver.HTTPServer(app, xheaders=True)
    server.listen(listen.port or 80, listen.hostname or "127.0.0.1")
    loop = ioloop.IOLoop.current()
    loop.add_callback(manager.start_reaper)

    async def shutdown() -> None:
        server.stop()
        await manager.close()  # the model servers end with the service
        loop.stop()

    def on_signal(_sig: int, _frame: Any) -> None:
        loop.add_callback_from_signal(shutdown)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("deploy service on %s (prefix %s)", listen.geturl(), prefix)
    loop.start()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
