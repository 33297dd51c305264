"""How the deploy service runs things as a hub user's account (the spawner's isolation).

When the hub runs as root, a deployment's commands (the copy of the artifact, reading the
codespace's packages, the serving environment's build, the model server) run as the owner's
system account, in a bubblewrap sandbox that shows the directories they need and hides the
data directory, like the owner's codespaces (:mod:`spawner.local_isolation`). Without root
they run as the hub's user, in the data directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

from codespace.local.accounts import Account, ensure_account, own_dir, running_as_root
from codespace.local.envbuild.uv import BuildAs, UvEnvBuilder
from codespace.local.isolation import Isolation, host_env
from codespace.local.limits import Cgroup, CgroupLimits
from codespace.local.sandbox import ALWAYS_HIDDEN, bwrap_argv, env_python_dirs, platform_dirs
from spawner import local_isolation

Wrap = Callable[[list[str]], list[str]]
CPU_WEIGHT = 25  # the codespaces' parent group's weight (LocalCodespaceSpawner's default)


def _with_pythons(dirs: Sequence[Path]) -> list[Path]:
    """``dirs`` and the Python installations their environments come from."""
    found: list[Path] = []
    for path in dirs:
        for item in (path, *env_python_dirs(path)):
            if item not in found:
                found.append(item)
    return found


class HubConfiner:
    """:class:`codespace.deploy.manager.Confiner` for the local hub."""

    def __init__(self, data_dir: Path, *, sandbox: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.isolate = running_as_root()
        self.sandbox = sandbox and self.isolate and local_isolation.host_sandbox().ok
        self._accounts: dict[str, Account] = {}

    def _account(self, owner: str) -> Account | None:
        if not self.isolate:
            return None
        if owner not in self._accounts:
            self.prepare(owner)
        return self._accounts[owner]

    def prepare(self, owner: str) -> None:
        if not self.isolate or owner in self._accounts:
            return
        account = ensure_account(owner, home_root=self.data_dir / "homes")
        local_isolation.build_cache_dir(self.data_dir, account, sandboxed=self.sandbox)
        self._accounts[owner] = account

    def enforces_limits(self) -> bool:
        return self.isolate and local_isolation.host_cgroups().enforced

    def cgroup(self, key: str, limits: CgroupLimits) -> Cgroup | None:
        if not self.isolate:
            return None
        settings = local_isolation.Settings(
            data_dir=self.data_dir,
            sandbox=self.sandbox,
            defaults=limits,
            maximum=limits,
            cpu_weight=CPU_WEIGHT,
        )
        return local_isolation.codespace_cgroup(settings, key, limits)

    def wrap(
        self,
        owner: str,
        *,
        rw: Sequence[Path],
        ro: Sequence[Path],
        network: bool,
        cgroup: Cgroup | None = None,
    ) -> Wrap:
        account = self._account(owner)
        if account is None:
            return list
        sandbox = None
        if self.sandbox:
            place = rw[0] if rw else account.home
            sandbox = bwrap_argv(
                workspace=place,
                server_dir=place,
                home=account.home,
                env_dirs=_with_pythons(ro),
                platform_dirs=platform_dirs(),
                extra_rw=rw[1:],
                hide=(*ALWAYS_HIDDEN, str(self.data_dir)),
                share_network=network,
                die_with_parent=True,  # nothing of a deployment outlives the service
            )
        return Isolation(account, cgroup, sandbox).confined

    def build_as(self, owner: str, ro: Sequence[Path]) -> BuildAs | None:
        account = self._account(owner)
        if account is None:
            return None
        settings = local_isolation.Settings(
            data_dir=self.data_dir,
            sandbox=self.sandbox,
            defaults=None,  # type: ignore[arg-type] - limits are not used for builds
            maximum=None,  # type: ignore[arg-type]
            cpu_weight=100,
            extra_ro=tuple(_with_pythons(ro)),
        )
        uv_env = UvEnvBuilder(self.data_dir / "env-cache").account_env(account.home)
        return local_isolation.build_as(settings, Isolation(account), account.home, uv_env)

    def own(self, owner: str, path: Path) -> None:
        own_dir(path, self._account(owner), mode=0o700)

    def env(self, owner: str, home: Path) -> dict[str, str]:
        env = host_env(os.environ)
        env.update({"HOME": str(home), "NO_COLOR": "1"})
        account = self._account(owner)
        if account is not None:
            env.update({"USER": account.name, "LOGNAME": account.name})
        return env

    def allowed(self, owner: str) -> Sequence[Path]:
        data = self.data_dir
        if not self.isolate:
            return [data]
        user = quote(owner, safe="")  # as the spawner names them (LocalCodespaceSpawner)
        return [data / "workspaces" / user, data / "servers" / user, data / "env-cache" / "envs"]
