"""Several named backends behind one service: what the job and deploy services share.

The server extension configures a capability's backends by name (``local``, ``slurm``,
``kserve``, ...) with a factory each; :class:`Backends` builds a backend on first use (so a
server start imports no engine client), knows the default one, lists every backend's records
at once (a backend that fails is named with its error, the others still answer) and finds a
record across the backends (remembering which backend answered for it).

A service subclasses it, names its exceptions and says what identifies a record and how new
it is (:meth:`Backends.key`, :meth:`Backends.created`). Standard library only.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar


class Backend(Protocol):
    """What the service calls on each backend."""

    async def list(self) -> builtins.list[Any]: ...

    async def get(self, key: str, /) -> Any: ...

    async def close(self) -> None: ...


B = TypeVar("B", bound=Backend)
R = TypeVar("R")  # a record


class Backends(Generic[B, R]):
    """The configured backends, by name, built lazily; listing and finding across them."""

    kind: ClassVar[str]  # in messages: "default <kind> backend ...", e.g. "job", "deploy"
    noun: ClassVar[str]  # what a record is called: "no <noun> 'x'"
    error: ClassVar[type[Exception]]  # a request that cannot be honoured (HTTP 400)
    not_found: ClassVar[type[Exception]]  # no such record for this user (HTTP 404)
    unavailable: ClassVar[type[Exception]]  # a backend that cannot be built or reached (503)

    def __init__(self, factories: Mapping[str, Callable[[], B]], default: str) -> None:
        if default not in factories:
            configured = ", ".join(factories) or "none"
            raise ValueError(
                f"default {self.kind} backend {default!r} is not configured ({configured})"
            )
        self.factories = dict(factories)
        self.default = default
        # the user's group policy: raises (a ValueError) for a backend they may not use
        self.permit: Callable[[str], None] | None = None
        self._built: dict[str, B] = {}
        self._owners: dict[str, str] = {}  # record key -> backend name, as seen

    # --- what a service says about its records ---------------------------------------------

    def key(self, record: R) -> str:
        """What identifies ``record`` across the backends (an id, a name)."""
        raise NotImplementedError

    def created(self, record: R) -> datetime:
        """When ``record`` was made: listings are newest first."""
        raise NotImplementedError

    def prepare(self, backend: B) -> None:
        """Called once with each backend just built (nothing to do by default)."""

    # --- the backends ----------------------------------------------------------------------

    def default_backend(self) -> str:
        return self.default

    def backends(self) -> builtins.list[dict[str, Any]]:
        default = self.default_backend()
        listed = [{"name": name, "default": name == default} for name in self.factories]
        if self.permit is not None:  # under a group policy: which ones the user may use
            listed = [{**item, "allowed": self.allowed(item["name"])} for item in listed]
        return listed

    def allowed(self, name: str) -> bool:
        """Whether the user's policy lets them use backend ``name``."""
        if self.permit is None:
            return True
        try:
            self.permit(name)
        except ValueError:
            return False
        return True

    def usable(self, name: str) -> B:
        """:meth:`backend` for new work (a submission, a deployment): first the user's policy
        (:attr:`permit`) must allow ``name``; what it raises reaches the caller."""
        if self.permit is not None:
            self.permit(name)
        return self.backend(name)

    def backend(self, name: str) -> B:
        """The backend configured as ``name``, built on first use."""
        if name not in self.factories:
            configured = ", ".join(self.factories)
            raise self.error(f"backend {name!r} is not configured here (configured: {configured})")
        if name not in self._built:
            try:
                self._built[name] = self.factories[name]()
            except Exception as error:  # the site's configuration or engine, not the request
                logging.getLogger(type(self).__module__).exception(
                    "%s backend %s could not be built", self.kind, name
                )
                raise self.unavailable(f"backend {name!r} is unavailable: {error}") from error
            self.prepare(self._built[name])
        return self._built[name]

    # --- across the backends ---------------------------------------------------------------

    async def list(self) -> tuple[builtins.list[R], dict[str, str]]:
        """Every backend's records, newest first, and the backends that failed (name -> why)."""
        names = builtins.list(self.factories)
        results = await asyncio.gather(
            *(self._list_one(name) for name in names), return_exceptions=True
        )
        records: builtins.list[R] = []
        problems: dict[str, str] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                problems[name] = str(result)
                continue
            records.extend(result)
            self._owners.update((self.key(record), name) for record in result)
        records.sort(key=lambda record: self.created(record).timestamp(), reverse=True)
        return records, problems

    async def _list_one(self, name: str) -> builtins.list[R]:
        return await self.backend(name).list()

    async def find(self, key: str) -> tuple[B, R]:
        """The backend holding ``key`` and its record; ``not_found`` from all of them
        (``unavailable`` when a backend that could hold it did not answer)."""
        known = self._owners.get(key)
        order = [known] if known in self.factories else []
        order += [name for name in self.factories if name != known]
        unavailable = []
        for name in order:
            try:
                backend = self.backend(name)
                record = await backend.get(key)
            except self.not_found:
                continue
            except self.unavailable:
                unavailable.append(name)
                continue
            self._owners[key] = name
            return backend, record
        self._owners.pop(key, None)
        if unavailable:
            raise self.unavailable(
                f"no {self.noun} {key!r} in the backends that answered "
                f"({', '.join(unavailable)}: unavailable)"
            )
        raise self.not_found(f"no {self.noun} {key!r}")

    async def get(self, key: str) -> R:
        return (await self.find(key))[1]

    async def close(self) -> None:
        for backend in reversed(builtins.list(self._built.values())):
            await backend.close()
        self._built.clear()
