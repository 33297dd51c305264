"""The isolation half of :class:`~spawner.local.LocalCodespaceSpawner`: its traits and steps.

When the hub runs as root, a start makes (or finds) the user's account and this server's
directories (:meth:`IsolatedSpawnerMixin._isolation`), the codespace's cgroup once the spec's
``resources`` are known (:meth:`~IsolatedSpawnerMixin._limit`), and its sandbox once its
environment is (:meth:`~IsolatedSpawnerMixin._confine`); a stop removes the cgroup. The
pieces are in :mod:`spawner.local_isolation` and :mod:`codespace.local`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from traitlets import Bool, Dict, Integer, Unicode
from traitlets.config import LoggingConfigurable

from codespace.datasets.backend import DatasetError
from codespace.datasets.catalog import Catalog
from codespace.local.isolation import Isolation, trust_files
from codespace.local.limits import Cgroup, CgroupLimits
from codespace.local.prepare import LocalPaths
from codespace.spec.model import Codespace
from spawner import local_isolation as isolation
from spawner.progress import ProgressLog


def private_log(path: Path) -> int:
    """A log file the hub appends to (mode 0600: it holds the codespace's output)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)


def _local_sources(catalog: Path) -> list[Path]:
    """The catalog's local dataset directories: a codespace's sandbox shows them read-only
    (the accounts must be able to read them: make them world- or group-readable)."""
    try:
        entries = Catalog(catalog).entries().values()
    except DatasetError:
        return []
    return [Path(e.source.removeprefix("file://")) for e in entries if not e.is_remote]


class IsolatedSpawnerMixin(LoggingConfigurable):
    """Accounts, limits and the sandbox for the local spawner (see the module doc)."""

    isolate_users = Bool(
        True,
        config=True,
        help="""When the hub runs as root: run each hub user's codespaces as a system account
        of their own (``cs-<name>``), each codespace in a cgroup with its limits. Without root
        every codespace runs as the hub's own user (one person on a laptop).""",
    )
    sandbox = Bool(
        True,
        config=True,
        help="""Run codespaces in a bubblewrap sandbox that hides the rest of the machine (the
        hub's data directory, other users' workspaces, /root, /home) when bwrap works here.""",
    )
    default_cpu = Unicode(
        "", config=True, help="CPU limit of a codespace whose spec sets none ('' = none), e.g. '2'."
    )
    default_memory = Unicode(
        "4Gi",
        config=True,
        help="Memory limit of a codespace whose spec sets none ('' = none), e.g. '4Gi'.",
    )
    max_cpu = Unicode("", config=True, help="Highest CPU limit a spec may ask for ('' = none).")
    max_memory = Unicode(
        "", config=True, help="Highest memory limit a spec may ask for ('' = none), e.g. '16Gi'."
    )
    pids_limit = Integer(4096, config=True, help="Processes (and threads) a codespace may run.")
    codespaces_cpu_weight = Integer(
        25,
        config=True,
        help="""CPU weight of all codespaces together against the hub (100 is the default
        weight): when the CPUs are busy the hub and its proxy keep answering.""",
    )
    cgroup_state = Dict(help="This codespace's cgroup (spawner state).")

    def _isolation_settings(self) -> isolation.Settings:
        datasets = self.dataset_settings()
        extra_ro = [datasets.cache_dir, *(Path(p) for p in self.vsix_dirs)]
        extra_ro += trust_files(os.environ)  # the CA bundles the codespace's variables name
        if datasets.catalog is not None:
            extra_ro += [datasets.catalog, *_local_sources(datasets.catalog)]
        return isolation.Settings(
            data_dir=Path(self.data_dir).resolve(),
            sandbox=self.sandbox,
            defaults=CgroupLimits.parse(
                cpu=self.default_cpu or None,
                memory=self.default_memory or None,
                pids=self.pids_limit,
            ),
            maximum=CgroupLimits.parse(cpu=self.max_cpu or None, memory=self.max_memory or None),
            cpu_weight=self.codespaces_cpu_weight,
            extra_ro=tuple(extra_ro),
        )

    async def _isolation(self, paths: LocalPaths, log: ProgressLog) -> Isolation:
        """The account of this user and this server's directories (see local_isolation)."""
        self._oom_reported = False
        if not (self.isolate_users and os.geteuid() == 0):
            paths.server_dir.mkdir(parents=True, exist_ok=True)
            return Isolation()
        self._settings = self._isolation_settings()  # for this start (reads the catalog)
        account = await asyncio.to_thread(
            isolation.prepare_account,
            self._settings,
            self.user.name,
            paths.workspace,
            paths.server_dir,
        )
        # the hub's shared dataset cache: made now, so the sandbox can show it (read-only)
        self.dataset_settings().cache_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        log.step(3, f"account: running as {account.name} (uid {account.uid})")
        return Isolation(account)

    def _limit(self, spec: Codespace, log: ProgressLog, iso: Isolation, key: str) -> None:
        """Make the codespace's cgroup ``key`` with the spec's limits (or the defaults)."""
        if not iso.active:
            return
        settings = self._settings
        requested = isolation.account_limits(spec.resources.cpu, spec.resources.memory)
        limits = requested.or_defaults(settings.defaults).within(settings.maximum)
        iso.cgroup = isolation.codespace_cgroup(settings, key, limits)
        if iso.cgroup is None:
            log.line(f"warning: limits are not enforced: {isolation.host_cgroups().sentence()}")
            return
        self.cgroup_state = {**iso.cgroup.to_state(), "limits": limits.describe()}
        log.step(33, f"limits: {limits.describe()}")

    def _confine(self, iso: Isolation, paths: LocalPaths, env: Path) -> None:
        """The sandbox of this codespace, once its environment is known."""
        if not iso.active:
            return
        iso.sandbox = isolation.sandbox_prefix(
            self._settings,
            iso.account,
            workspace=paths.workspace,
            server_dir=paths.server_dir,
            env=env,
            devices=isolation.gpu_devices(getattr(self, "_gpu_env", {})),
            files=self._sandbox_files(iso, paths),
        )

    def _sandbox_files(self, iso: Isolation, paths: LocalPaths) -> dict[str, Path]:
        """Files the sandbox shows instead of the host's (spawner.ssh: /etc/group)."""
        return {}

    def _cgroup(self) -> Cgroup | None:
        return Cgroup.from_state(self.cgroup_state) if self.cgroup_state else None

    def _report_oom(self, server_log: Path) -> None:
        """Say in the server log (and the hub's) when the memory limit killed something."""
        group = self._cgroup()
        if getattr(self, "_oom_reported", False) or group is None or not group.exists():
            return
        if not group.oom_killed():
            return
        self._oom_reported = True
        limit = self.cgroup_state.get("limits", "its memory limit")
        message = (
            f"Codespace Hub: a process of this codespace was killed: out of memory ({limit}). "
            "Ask for more with resources.memory in the repository's configuration."
        )
        self.log.warning("%s/%s: %s", self.user.name, self.name, message)
        with os.fdopen(private_log(server_log), "a") as handle:
            handle.write(message + "\n")

    async def _remove_cgroup(self) -> None:
        cgroup = self._cgroup()
        if cgroup is not None and cgroup.exists():
            await asyncio.to_thread(cgroup.remove)
        self.cgroup_state = {}
