"""The local backend's hub side: deployments served by MLServer processes, scale to zero.

The hub's deploy service (``hub/deploy``) holds one :class:`DeployManager`. A deployment is
made in the background after ``create`` answers (its record says where it is: ``creating``
while the serving environment is made and the artifact copied, ``loading`` while the model
server starts) and ends ``ready`` once the model answered ready, or ``failed`` with the log's
last lines (nothing keeps running then). With ``minReplicas: 0`` the server stops after
``idleTimeout`` seconds without a request (state ``idle``) and the next request starts it
again and waits for it (a cold start). Everything runs as the owner's account, confined
(:class:`Confiner`, given by the hub): the copy of the artifact, reading the codespace's
packages, the build of the serving environment, the model server (in a network namespace
of its own, reached through a unix socket).

Files, per deployment ``<root>/<owner>/<name>/`` (root's, 0711): ``settings.json`` and
``model-settings.json`` (MLServer's), ``server.log`` (root's: the service reads it),
``model/`` (the artifact, the account's) and ``run/`` (the server's working directory, the
account's). The server's unix socket is in ``/run/codespace-deploy/<16 hex>/`` (the account's,
0700): a data directory's path may be longer than a unix socket's path may be (107 bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Protocol

from codespace.deploy import metrics, serving
from codespace.deploy.backend import DeployError, DeploymentExists, DeploymentNotFound
from codespace.deploy.formats import FORMATS, FormatError, ModelFormat, detect
from codespace.deploy.inspect_model import signature_of
from codespace.deploy.models import (
    DeploymentRecord,
    DeploymentSpec,
    ShareToken,
    Signature,
    endpoint,
)
from codespace.deploy.servers import (
    ModelServers,
    ServerFailed,
    ServerProcess,
    log_tail,
    release,
    start_process,
    terminate,
    wait_ready,
)
from codespace.deploy.serving_env import (
    CodespaceEnv,
    ServingEnvError,
    codespace_env,
    ensure_serving_env,
)
from codespace.deploy.store import DeployStore
from codespace.local.envbuild.uv import BuildAs
from codespace.local.limits import Cgroup, CgroupError, CgroupLimits
from codespace.streaming import stream

log = logging.getLogger(__name__)
Wrap = Callable[[list[str]], list[str]]
REAP_INTERVAL = 2.0
ENVS_FILE = "environments.json"  # the serving and shared environments the server runs


class Confiner(Protocol):
    """How the hub runs things as a user's account (the identity without isolation)."""

    def prepare(self, owner: str) -> None:
        """Make the owner's account (blocking)."""

    def wrap(
        self,
        owner: str,
        *,
        rw: Sequence[Path],
        ro: Sequence[Path],
        network: bool,
        cgroup: Cgroup | None = None,
    ) -> Wrap: ...

    def cgroup(self, key: str, limits: CgroupLimits) -> Cgroup | None:
        """A cgroup ``key`` with ``limits`` (None where limits cannot be enforced)."""

    def enforces_limits(self) -> bool:
        """Whether :meth:`cgroup` gives groups that enforce limits."""

    def build_as(self, owner: str, ro: Sequence[Path]) -> BuildAs | None: ...

    def own(self, owner: str, path: Path) -> None:
        """Make ``path`` (a directory the hub made) the account's, mode 0700."""

    def env(self, owner: str, home: Path) -> dict[str, str]:
        """A process environment with nothing of the hub's secrets."""

    def allowed(self, owner: str) -> Sequence[Path]:
        """Where the owner's workspaces and environments may be (resolved)."""


@dataclass(frozen=True)
class Source:
    """Where a deployment comes from: the codespace's workspace and environment prefix."""

    workspace: Path
    env_prefix: Path


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def default_socket_root() -> Path:
    """``/run/codespace-deploy`` for a hub run as root, else one in the temporary directory."""
    if os.geteuid() == 0 and Path("/run").is_dir():
        return Path("/run/codespace-deploy")
    return Path(tempfile.gettempdir()) / f"codespace-deploy-{os.getuid()}"


class DeployManager:
    def __init__(
        self,
        root: Path,
        env_cache: Path,
        confiner: Confiner,
        public_url: str,
        socket_root: Path | None = None,
    ) -> None:
        self.root = root
        self.env_cache = env_cache
        self.confiner = confiner
        self.public_url = public_url.rstrip("/") + "/"
        root.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.store = DeployStore(root / "deployments.sqlite")
        self.servers = ModelServers()
        # unix socket paths are limited to 107 bytes: the sockets live in a short directory
        self.socket_root = socket_root or default_socket_root()
        self.last_request: dict[str, float] = {}  # monotonic: for scale to zero
        self.last_seen: dict[str, float] = {}  # wall clock: for the record
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._reaper: asyncio.Task[None] | None = None

    # -- records ------------------------------------------------------------------------------
    def _dir(self, owner: str, name: str) -> Path:
        return self.root / owner / name

    def url(self, owner: str, name: str) -> str:
        return f"{self.public_url}endpoints/{owner}/{name}/"

    def _record(self, owner: str, name: str) -> DeploymentRecord:
        record = self.store.get(owner, name)
        if record is None:
            raise DeploymentNotFound(f"you have no deployment named {name!r}")
        return self._live(record)

    def _live(self, record: DeploymentRecord) -> DeploymentRecord:
        key = f"{record.owner}/{record.name}"
        if record.state in ("ready", "idle"):
            running = self.servers.get(key) is not None
            state = "ready" if running else "idle"
            reason = "" if running else "scaled to zero: the next request starts it"
            if self.servers.starting(key):
                state, reason = "loading", "starting the model server (cold start)"
            record = record.model_copy(update={"state": state, "reason": reason})
        seen = self.last_seen.get(key)
        if seen is not None:
            record = record.model_copy(update={"lastRequest": datetime.fromtimestamp(seen, UTC)})
        return record

    def list(self, owner: str) -> list[DeploymentRecord]:
        return [self._live(record) for record in self.store.all(owner)]

    def get(self, owner: str, name: str) -> DeploymentRecord:
        return self._record(owner, name)

    def everyone(self) -> list[DeploymentRecord]:
        """Every owner's deployments, live (for the metrics: no handler lists these)."""
        return [self._live(record) for record in self.store.all()]

    # -- create ---------------------------------------------------------------------------------
    def check_source(self, owner: str, source: Source, artifact: str) -> tuple[Path, Path]:
        """The artifact's and environment's resolved paths, inside the owner's places."""
        allowed = self.confiner.allowed(owner)
        workspace = source.workspace.resolve()
        prefix = source.env_prefix.resolve()
        if not _within(workspace, allowed):
            raise DeployError(f"workspace {source.workspace} is not one of yours")
        if not _within(prefix, allowed):
            raise DeployError(f"environment {source.env_prefix} is not one of yours")
        if PurePosixPath(artifact).is_absolute() or ".." in PurePosixPath(artifact).parts:
            raise DeployError(f"artifact {artifact!r} is not a path inside the workspace")
        return workspace / artifact, prefix

    async def create(self, owner: str, spec: DeploymentSpec, source: Source) -> DeploymentRecord:
        if self.store.get(owner, spec.name) is not None:
            raise DeploymentExists(f"you already have a deployment named {spec.name!r}")
        artifact, prefix = self.check_source(owner, source, spec.artifact)
        fmt = FORMATS.get(spec.format or "")
        if fmt is None:  # the codespace's API reads it from the artifact before calling here
            raise DeployError(f"format: {spec.format!r} is not one of {', '.join(FORMATS)}")
        try:
            serving.serving_requirements(fmt, spec.protocol)
        except ValueError as error:
            raise DeployError(str(error)) from None
        limits = self._limits(spec)
        env = codespace_env(prefix)
        warnings = []
        if spec.resources.gpu is not None:
            warnings.append("resources.gpu: the local backend gives deployments no GPU (ignored)")
        if spec.maxReplicas > 1:
            warnings.append("maxReplicas: the local backend runs one server (ignored)")
        if limits != CgroupLimits() and not self.confiner.enforces_limits():
            warnings.append("resources: cgroups are not usable here, limits are not enforced")
        record = DeploymentRecord(
            name=spec.name,
            owner=owner,
            backend="local",
            state="creating",
            reason="queued",
            format=fmt.name,
            protocol=spec.protocol,
            created=datetime.now(UTC),
            endpoint=endpoint(self.url(owner, spec.name), spec.name, spec.protocol),
            warnings=warnings,
            spec=spec,
        )
        self.store.put(record)
        task = asyncio.ensure_future(self._make(record, artifact, env))
        self._tasks[f"{owner}/{spec.name}"] = task
        task.add_done_callback(lambda _t: self._tasks.pop(f"{owner}/{spec.name}", None))
        return record

    @staticmethod
    def _limits(spec: DeploymentSpec) -> CgroupLimits:
        try:
            return CgroupLimits.parse(cpu=spec.resources.cpu, memory=spec.resources.memory)
        except (ValueError, CgroupError) as error:
            raise DeployError(f"resources: {error}") from None

    def _update(self, record: DeploymentRecord, **changes) -> DeploymentRecord:
        record = record.model_copy(update=changes)
        if self.store.get(record.owner, record.name) is not None:  # not deleted meanwhile
            self.store.put(record)
        return record

    async def _make(self, record: DeploymentRecord, artifact: Path, env: CodespaceEnv) -> None:
        owner, name = record.owner, record.name
        directory = self._dir(owner, name)
        try:
            await asyncio.to_thread(self.confiner.prepare, owner)
            record = self._update(record, reason="copying the model")
            await self._copy(owner, artifact, directory)
            fmt = detect(directory / serving.MODEL_DIR / artifact.name, record.format)

            def say(line: str) -> None:
                nonlocal record
                record = self._update(record, reason=line[-300:])

            built = await ensure_serving_env(
                self.env_cache,
                env,
                serving.serving_requirements(fmt, record.protocol),
                library=fmt.library,
                inspect_wrap=self.confiner.wrap(owner, rw=[], ro=env.dirs, network=True),
                inspect_env=self.confiner.env(owner, directory / serving.RUN_DIR),
                build_as=self.confiner.build_as(owner, env.dirs),
                say=say,
            )
            self._write_settings(directory, record, fmt, artifact.name, built.path, env.shared)
            record = self._update(
                record,
                state="loading",
                reason="starting the model server",
                warnings=record.warnings + built.warnings,
            )
            key = f"{owner}/{name}"
            await self.servers.ensure(key, lambda: self._start(owner, name))
            self.last_request[key] = time.monotonic()
            self._update(record, state="ready", reason="")
        except asyncio.CancelledError:
            raise
        except (DeployError, FormatError, ServingEnvError, ServerFailed, OSError) as error:
            log.warning("deployment %s/%s failed: %s", owner, name, error)
            await self.servers.stop(f"{owner}/{name}")
            self._update(record, state="failed", reason=str(error))
            await asyncio.to_thread(self._clean_files, directory)
        except Exception as error:  # a bug must not leave the record "creating" forever
            log.exception("deployment %s/%s failed", owner, name)
            await self.servers.stop(f"{owner}/{name}")
            self._update(record, state="failed", reason=f"internal error: {error}")

    async def _copy(self, owner: str, artifact: Path, directory: Path) -> None:
        """The artifact into ``model/``, copied by the account (it reads what it may only)."""
        for sub in (directory.parent, directory):
            sub.mkdir(mode=0o711, exist_ok=True)
        for sub in (serving.MODEL_DIR, serving.RUN_DIR):
            path = directory / sub
            path.mkdir(mode=0o700, exist_ok=True)
            await asyncio.to_thread(self.confiner.own, owner, path)
        target = directory / serving.MODEL_DIR
        wrap = self.confiner.wrap(owner, rw=[target], ro=[artifact.parent], network=True)
        argv = ["cp", "-R", "--no-preserve=ownership", "--", str(artifact), f"{target}/"]
        done = await stream(wrap(argv), env=self.confiner.env(owner, target))
        if not done.ok:
            raise DeployError(f"cannot copy {artifact.name}: {done.tail_text()}")

    @staticmethod
    def _write_settings(
        directory: Path,
        record: DeploymentRecord,
        fmt: ModelFormat,
        artifact: str,
        env: Path,
        shared: Path,
    ) -> None:
        (directory / "settings.json").write_text(json.dumps(serving.server_settings()))
        model = serving.model_settings(record.name, fmt, artifact)
        (directory / "model-settings.json").write_text(json.dumps(model))
        places = {"env": str(env), "shared": str(shared)}
        (directory / ENVS_FILE).write_text(json.dumps(places))

    def _wrap_server(
        self, owner: str, name: str, cgroup: Cgroup | None = None
    ) -> tuple[Wrap, Path]:
        """How to run in the deployment's server sandbox, and its serving environment."""
        directory = self._dir(owner, name)
        places = json.loads((directory / ENVS_FILE).read_text())
        env_path, shared = Path(places["env"]), Path(places["shared"])
        ro = [directory, env_path, shared]
        rw = [directory / serving.RUN_DIR, self._socket_dir(owner, name)]
        wrap = self.confiner.wrap(owner, rw=rw, ro=ro, network=False, cgroup=cgroup)
        return wrap, env_path

    def _socket_dir(self, owner: str, name: str) -> Path:
        digest = hashlib.sha256(f"{self.root}\0{owner}\0{name}".encode()).hexdigest()[:16]
        return self.socket_root / digest

    def _make_socket_dir(self, owner: str, name: str) -> Path:
        """The deployment's socket directory: the account's, 0700, in a root-owned 0711 one."""
        self.socket_root.mkdir(mode=0o711, parents=True, exist_ok=True)
        path = self._socket_dir(owner, name)
        path.mkdir(mode=0o700, exist_ok=True)
        self.confiner.own(owner, path)
        return path

    @staticmethod
    def _clean_files(directory: Path) -> None:
        for sub in (serving.MODEL_DIR, serving.RUN_DIR):
            shutil.rmtree(directory / sub, ignore_errors=True)

    # -- serving --------------------------------------------------------------------------------
    async def _start(self, owner: str, name: str) -> ServerProcess:
        directory = self._dir(owner, name)
        run = directory / serving.RUN_DIR
        sockets = await asyncio.to_thread(self._make_socket_dir, owner, name)
        record = self._record(owner, name)
        key = "deploy-" + hashlib.sha256(f"{owner}/{name}".encode()).hexdigest()[:16]
        cgroup = await asyncio.to_thread(self.confiner.cgroup, key, self._limits(record.spec))
        wrap, env_path = self._wrap_server(owner, name, cgroup)
        argv = wrap(
            serving.server_argv(
                env_path,
                directory,
                protocol=record.protocol,
                model=name,
                fmt=record.format,
                artifact=record.spec.artifact,
                socket=sockets / serving.SOCKET,
            )
        )
        log_path = directory / serving.LOG_FILE
        process = await start_process(argv, log_path, run, self.confiner.env(owner, run))
        socket = sockets / serving.SOCKET
        server = ServerProcess(process, socket, log_path, time.monotonic(), cgroup)
        try:
            await wait_ready(server, serving.ready_path(name), serving.READY_TIMEOUT)
        except BaseException:
            await asyncio.shield(terminate(server.process))
            await asyncio.shield(release(cgroup))
            raise
        return server

    async def server_for(self, owner: str, name: str) -> ServerProcess:
        """The deployment's running server (a cold start when it was scaled to zero)."""
        record = self._record(owner, name)
        if record.state in ("creating", "failed"):
            why = f": {record.reason}" if record.reason else ""
            raise DeployError(f"deployment {name!r} is {record.state}{why}")
        key = f"{owner}/{name}"
        started = self.last_request[key] = time.monotonic()
        cold = self.servers.get(key) is None and not self.servers.starting(key)
        try:
            server = await self.servers.ensure(key, lambda: self._start(owner, name))
        except ServerFailed as error:
            raise DeployError(f"deployment {name!r} could not start: {error}") from None
        self.last_request[key] = time.monotonic()
        if cold:  # this request started it (others waiting for the same start do not count)
            metrics.cold_start(owner, name, self.last_request[key] - started)
        return server

    def touch(self, owner: str, name: str) -> None:
        self.last_request[f"{owner}/{name}"] = time.monotonic()
        self.last_seen[f"{owner}/{name}"] = time.time()

    # -- scale to zero --------------------------------------------------------------------------
    def start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.ensure_future(self._reap_forever())

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL)
            try:
                await self.reap()
            except Exception:
                log.exception("deploy: stopping idle servers failed")

    async def reap(self, now: float | None = None) -> list[str]:
        """Stop the servers of scale-to-zero deployments idle past their ``idleTimeout``."""
        now = time.monotonic() if now is None else now
        stopped = []
        for key in list(self.servers.running):
            owner, name = key.split("/", 1)
            record = self.store.get(owner, name)
            if record is None or not record.spec.scale_to_zero:
                continue
            if now - self.last_request.get(key, 0.0) >= record.spec.idleTimeout:
                await self.servers.stop(key)
                metrics.scaled_to_zero(owner, name)
                stopped.append(key)
        return stopped

    # -- the rest -------------------------------------------------------------------------------
    async def delete(self, owner: str, name: str) -> None:
        self._record(owner, name)
        key = f"{owner}/{name}"
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.servers.stop(key)
        self.store.delete(owner, name)
        self.last_request.pop(key, None)
        await asyncio.to_thread(shutil.rmtree, self._dir(owner, name), True)
        await asyncio.to_thread(shutil.rmtree, self._socket_dir(owner, name), True)

    def logs(self, owner: str, name: str, tail: int | None = None) -> str:
        self._record(owner, name)
        return log_tail(self._dir(owner, name) / serving.LOG_FILE, tail or 0)

    def share(self, owner: str, name: str, note: str, expires_in: int | None) -> ShareToken:
        self._record(owner, name)
        return self.store.mint(owner, name, note, expires_in)

    async def signature(self, owner: str, name: str) -> Signature:
        record = self._record(owner, name)
        directory = self._dir(owner, name)
        if record.state in ("creating", "failed"):
            raise DeployError(f"deployment {name!r} is {record.state}")
        wrap, env_path = self._wrap_server(owner, name)
        return await signature_of(
            wrap,
            env_path / "bin" / "python",
            directory / serving.MODEL_DIR / PurePosixPath(record.spec.artifact).name,
            record,
            self.confiner.env(owner, directory / serving.RUN_DIR),
        )

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for task in list(self._tasks.values()):
            task.cancel()
        await self.servers.stop_all()
