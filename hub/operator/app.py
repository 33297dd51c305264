"""The ``Codespace`` operator (kopf): each resource becomes hub API calls.

Run it with ``kopf run --standalone -m hub.operator.app --namespace=NS`` (or
``--all-namespaces``); settings come from the environment:

``CODESPACE_HUB_API_URL``      the hub's API, e.g. ``http://hub:8081/hub/api``
``CODESPACE_OPERATOR_TOKEN``   a hub service token (README, GitOps: its scopes)
``CODESPACE_HUB_PUBLIC_URL``   the hub's public address for ``status.url`` (default: the
                               API's host)
``CODESPACE_OPERATOR_WAIT``    seconds a start is followed before the status says Starting
                               and the mirror takes over (default 600)
``CODESPACE_OPERATOR_INTERVAL`` seconds between status mirrors (default 30)

On create, on a change of the ``spec`` and when the operator starts (resume), the hub is
brought to the spec (:func:`hub.operator.resource.decide`): the user and the named server are
made and started with the spec's options, a running server whose options changed is stopped
and started again with the new ones (a new ref moves a clean workspace to it), ``running:
false`` stops it. A hub that does not answer is retried with backoff; the server's name is
fixed by the resource, so a retry never makes a second one. The status mirrors the server
(phase, URL, environment hash, last activity, a Ready condition) at each step and every
``CODESPACE_OPERATOR_INTERVAL`` seconds. Deleting the resource removes the named server
(the finalizer stays until the hub has done it). The operator only reports a server that
stopped (culled, or its start failed); it starts it again when the resource changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import Any

import kopf

from hub.operator.hubapi import HubApi, HubRefused, HubUnavailable
from hub.operator.resource import CodespaceSpec, Observed, decide, status_of

GROUP, VERSION, PLURAL = "codespace.io", "v1alpha1", "codespaces"
FINALIZER = "codespace.io/operator"
PREFIX = "codespace.io"  # kopf's bookkeeping annotations
INTERVAL = float(os.environ.get("CODESPACE_OPERATOR_INTERVAL") or 30)
STEPS = 4  # a restart is a stop, a wait and a start
ENV_HASH = re.compile(r"environment: hash ([0-9a-f]+)")  # the spawners' progress line


class StillPending(RuntimeError):
    """The server is still starting or stopping; look again later."""


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=PREFIX)
    settings.posting.level = logging.WARNING  # Events for problems only
    settings.scanning.disabled = True  # no cluster-wide CRD listing: a Role is enough


def hub_api() -> HubApi:
    return HubApi(os.environ["CODESPACE_HUB_API_URL"], os.environ["CODESPACE_OPERATOR_TOKEN"])


def public_url(hub: HubApi) -> str:
    return os.environ.get("CODESPACE_HUB_PUBLIC_URL") or hub.api_url.removesuffix("/hub/api")


def backoff(retry: int) -> float:
    return float(min(60, 2 ** min(retry, 6)))


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile(
    spec: Any, name: str, meta: Any, patch: Any, retry: int, logger: Any, **_: Any
) -> None:
    """Bring the hub to the spec; the status says what it did (see the module docstring)."""
    try:
        desired = CodespaceSpec.model_validate(dict(spec))
        wanted = desired.options()
    except ValueError as error:
        patch.status.update(phase="Failed", message=f"spec: {error}")
        raise kopf.PermanentError(f"spec: {error}") from None
    server = desired.server_name(name)
    hub = hub_api()
    try:
        status = await converge(hub, desired, server, wanted, logger)
        status.update(observedGeneration=meta.get("generation"))
        patch.status.update(status)
    except (HubUnavailable, StillPending) as error:
        patch.status.update(message=f"{error}; retrying")
        raise kopf.TemporaryError(str(error), delay=backoff(retry)) from None
    except HubRefused as error:
        observed = await _observe(hub, desired, server)
        patch.status.update(
            status_of(desired, observed, public_url=public_url(hub), message=str(error))
            | {"phase": "Failed", "observedGeneration": meta.get("generation")}
        )
        raise kopf.PermanentError(str(error)) from None
    finally:
        await hub.close()


async def converge(
    hub: HubApi, desired: CodespaceSpec, server: str, wanted: dict[str, Any], logger: Any
) -> dict[str, Any]:
    """Act until the hub's server matches the spec; the status that results."""
    failed, message, env_hash = False, "", None
    for _step in range(STEPS):
        observed = await _observe(hub, desired, server)
        action = decide(desired, wanted, observed)
        logger.info("codespace %s/%s: %s", desired.owner, server, action)
        if action == "none":
            break
        if action == "wait":
            await settle(hub, desired.owner, server)
        elif action in ("stop", "restart"):
            await hub.stop(desired.owner, server)
            await settle(hub, desired.owner, server)
        else:  # start
            if not observed.exists:
                await hub.ensure_user(desired.owner)
            await hub.start(desired.owner, server, wanted)
            failed, message, env_hash = await follow(hub, desired.owner, server)
            break
    observed = await _observe(hub, desired, server)
    return status_of(
        desired,
        observed,
        public_url=public_url(hub),
        message=message,
        failed=failed and not observed.ready,
        env_hash=env_hash,
    )


async def _observe(hub: HubApi, desired: CodespaceSpec, server: str) -> Observed:
    return Observed.from_user(await hub.user(desired.owner), server)


async def settle(hub: HubApi, owner: str, server: str, limit: float = 120.0) -> None:
    """Wait until the server is neither starting nor stopping (StillPending after
    ``limit`` seconds: the handler is retried later)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while loop.time() < deadline:
        if not Observed.from_user(await hub.user(owner), server).pending:
            return
        await asyncio.sleep(1.0)
    raise StillPending(f"{owner}/{server} is still starting or stopping")


async def follow(hub: HubApi, owner: str, server: str) -> tuple[bool, str, str | None]:
    """Follow the start's progress: ``(failed, message, environment hash)``; not failed and
    no message when it takes longer than ``CODESPACE_OPERATOR_WAIT`` (the mirror reports
    the rest)."""
    limit = float(os.environ.get("CODESPACE_OPERATOR_WAIT") or 600)
    seen: dict[str, str] = {}

    async def last_event() -> dict[str, Any]:
        event: dict[str, Any] = {}
        async for event in hub.progress(owner, server):
            found = ENV_HASH.search(str(event.get("message") or ""))
            if found:
                seen["hash"] = found.group(1)
            if event.get("ready") or event.get("failed"):
                break
        return event

    try:
        event = await asyncio.wait_for(last_event(), limit)
    except TimeoutError:
        return False, "", seen.get("hash")
    if event.get("failed"):
        return True, str(event.get("message") or "the start failed"), seen.get("hash")
    return False, "", seen.get("hash")


@kopf.timer(GROUP, VERSION, PLURAL, interval=INTERVAL, initial_delay=INTERVAL)
async def mirror(spec: Any, name: str, meta: Any, status: Any, patch: Any, **_: Any) -> None:
    """Keep the status in step with the hub (a culled server, a start that finished)."""
    try:
        desired = CodespaceSpec.model_validate(dict(spec))
    except ValueError:
        return
    server = desired.server_name(name)
    hub = hub_api()
    try:
        observed = await _observe(hub, desired, server)
    except (HubUnavailable, HubRefused):
        return  # the next round looks again
    finally:
        await hub.close()
    if status.get("phase") == "Failed" and not (observed.ready or observed.pending):
        return  # keep the failure's message until the resource changes
    new = status_of(desired, observed, public_url=public_url(hub))
    if _changed(status, new):
        new["observedGeneration"] = meta.get("generation")
        patch.status.update({key: value for key, value in new.items() if key != "envHash"})


def _changed(old: Any, new: dict[str, Any]) -> bool:
    keys = ("phase", "url", "ref", "lastActivity")
    return any((old.get(key) or "") != (new.get(key) or "") for key in keys)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def remove(spec: Any, name: str, retry: int, **_: Any) -> None:
    """Remove the named server (its workspace stays, as the hub's remove keeps it)."""
    try:
        desired = CodespaceSpec.model_validate(dict(spec))
    except ValueError:
        return  # never made
    hub = hub_api()
    try:
        await hub.stop(desired.owner, desired.server_name(name), remove=True)
    except (HubUnavailable, HubRefused) as error:
        raise kopf.TemporaryError(str(error), delay=backoff(retry)) from None
    finally:
        await hub.close()
