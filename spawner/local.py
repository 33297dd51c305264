"""``LocalCodespaceSpawner``: a codespace on the hub's own machine.

A start runs :func:`codespace.local.prepare.prepare` (fetch, resolve, environment, lifecycle; each a
progress event on the spawn page) and then starts ``jupyterhub-singleuser`` from the platform
environment as a local process, with the workspace as its root, the repository's uv
environment as the default kernel and the environment of terminals and VS Code. Datasets
(the spec's and those picked in the form) are linked into ``<workspace>/datasets/`` from the
hub's dataset catalog before the lifecycle commands run (:mod:`codespace.datasets.attach`).
A GPU request (``resources.gpu``) is granted from this machine's NVIDIA GPUs right after the
spec is read (:mod:`codespace.gpu`; whole GPUs are not given to two running servers, see
:mod:`codespace.local.gpu_grants`); a request that cannot be met ends the start unless optional.

When the hub runs as root, each hub user's codespaces run as a system account of their own,
each in a cgroup with its limits and a bubblewrap sandbox (:mod:`spawner.isolated`); without
root they run as the hub's own user, like JupyterHub's ``SimpleLocalProcessSpawner``. The
lifecycle commands after ``waitFor`` run beside the server in a process group of their own,
ended when it stops. Servers outlive the hub (``start_new_session``); with
``JupyterHub.cleanup_servers = False`` a restarted hub finds them again through the pid and
paths kept in the spawner state.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from codespace.datasets.attach import LocalDatasetSettings, extension_config
from codespace.datasets.catalog import CATALOG_ENV
from codespace.git import GitError
from codespace.gpu import GpuUnavailable
from codespace.lifecycle_runner import job_text, runner_argv
from codespace.local.envbuild import KERNEL_NAME, UvEnvBuilder
from codespace.local.envbuild.uv import BuildAs
from codespace.local.isolation import Isolation, host_env
from codespace.local.prepare import ERRORS_FILE, LocalPaths, Prepared, prepare
from codespace.local.vscode import plan_extensions
from codespace.options import UserOptions
from codespace.policy import PolicyRefused
from codespace.spec.model import Codespace
from spawner import local_isolation as isolation
from spawner.form import (
    validate_options,
)
from spawner.git_credentials import GitCredentialsMixin
from spawner.isolated import IsolatedSpawnerMixin, private_log
from spawner.local_form import LocalFormMixin
from spawner.local_gpu import LocalGpuMixin
from spawner.local_process import (
    DEFAULT_SERVER_DIR,
    end_process_group,
    write_bashrc,
    write_private_json,
)
from spawner.local_slurm import codespace_slurm
from spawner.metrics import count_prepared, metered_start
from spawner.policy import PolicyMixin, start_refused
from spawner.progress import ProgressLog
from spawner.ssh import LocalSshMixin
from spawner.start_gate import gate_for, wait_listening
from spawner.traits import sources_trait

SINGLEUSER_CONFIG = Path(__file__).resolve().parent.parent / "config" / "singleuser"


def _safe(name: str) -> str:
    return quote(name, safe="") or DEFAULT_SERVER_DIR


class LocalCodespaceSpawner(
    LocalFormMixin,
    PolicyMixin,
    GitCredentialsMixin,
    LocalSshMixin,
    LocalGpuMixin,
    IsolatedSpawnerMixin,
    LocalProcessSpawner,
):
    """Spawn codespaces from git repositories as local processes."""

    data_dir = Unicode(
        "data",
        config=True,
        help="Directory for workspaces, the environment cache and per-server state.",
    )
    profiles = List(
        Dict(),
        config=True,
        help="""Profiles users may pick: dicts with ``slug``, ``display_name`` and
        ``description``; ``env`` (a dict) is added to the server's environment.""",
    )
    code_server = Unicode(
        config=True,
        help="Path of the code-server executable for VS Code in the browser ('' disables it).",
    )
    delete_workspace_on_remove = Bool(
        False,
        config=True,
        help="""Delete a named server's workspace when the server is removed. Off by default:
        removing a server keeps its workspace, and a server made again with the same name
        finds it.""",
    )
    uv_cache_dir = Unicode(
        "",
        config=True,
        help="""uv's download/build cache (default ``<data_dir>/env-cache/uv-cache``). Keep it
        on the same file system as the data directory: environments hard-link from it.""",
    )
    vsix_dirs = List(
        Unicode(),
        config=True,
        help="""Directories with ``publisher.name-version.vsix`` files for the VS Code
        extensions repositories ask for (``customizations.vscode.extensions``). Default:
        ``<data_dir>/vsix``.""",
    )
    singleuser_config_dir = Unicode(
        str(SINGLEUSER_CONFIG),
        config=True,
        help="Jupyter config directory added for every server (VS Code launcher entry).",
    )

    dataset_catalog = Unicode(
        "",
        config=True,
        help="""The dataset catalog (YAML, see codespace.datasets.catalog) whose datasets the
        spawn form offers and codespaces mount. Default: ``<data_dir>/datasets.yaml`` when
        that file exists (looked up at each spawn, so it can be added later).""",
    )
    dataset_cache_dir = Unicode(
        "",
        config=True,
        help="""Prewarmed copies of remote datasets and prewarm history, shared by every
        codespace of this hub. Default: ``<data_dir>/datasets-cache``.""",
    )
    dataset_storage_options = Dict(
        config=True,
        help="""fsspec options per protocol for remote dataset sources, e.g.
        ``{"s3": {"endpoint_url": "http://127.0.0.1:9000"}}``; given to the hub's mounts and
        to each server's extension (written mode 0600 in the server's state directory).""",
    )

    lifecycle_timeout = Float(
        600.0,
        config=True,
        help="""Seconds a lifecycle command the start waits for (up to ``waitFor``) may run.
        Past it the command's processes are killed and the codespace starts without it,
        the reason shown on the spawn page and in CODESPACE_ERRORS.md. 0 means no limit.""",
    )

    codespace_sources = sources_trait()
    slurm_url = Unicode(
        "",
        config=True,
        help="""slurmrestd's URL (JWT auth): codespaces get the Slurm job backend beside the
        local one, with a token the hub mints for the codespace's account (``scontrol
        token``), so jobs run on the cluster as that account. Empty: no Slurm.""",
    )
    slurm_conf = Unicode("", config=True, help="slurm.conf for scontrol (default: Slurm's).")
    slurm_token_lifespan = Integer(
        7 * 86400, config=True, help="Seconds a codespace's Slurm token is valid (per start)."
    )
    concurrent_server_starts = Integer(
        0,
        config=True,
        help="""How many codespace servers start at once (their start is the CPU-heavy part:
        about a CPU-second each); later ones wait in line, first come first served, and the
        spawn page says so. 0: the number of CPUs.""",
    )
    allowed_repo_roots = List(
        Unicode(),
        config=True,
        help="""Directories under which a local path or file:// URL may be given as a
        repository (none by default: only https://, ssh:// and user@host: repositories).
        The clone runs as the user's account, which must be able to read it.""",
    )
    workspace = Unicode(help="This server's workspace (kept in the spawner state).")
    server_dir = Unicode(help="This server's state directory (kept in the spawner state).")
    lifecycle_pid = Integer(
        0, help="Process group of the background lifecycle commands (spawner state)."
    )

    @default("code_server")
    def _default_code_server(self) -> str:
        bundled = (
            Path(__file__).resolve().parent.parent
            / ".tools/code-server/node_modules/.bin/code-server"
        )
        return str(bundled) if bundled.exists() else (shutil.which("code-server") or "")

    @default("vsix_dirs")
    def _default_vsix_dirs(self) -> list[str]:
        return [str(Path(self.data_dir).resolve() / "vsix")]

    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return 900  # a cold environment build can take minutes

    @default("http_timeout")
    def _default_http_timeout(self) -> int:
        return 60

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    def make_preexec_fn(self, name: str) -> None:
        """Run as the hub's user (the embedded mode has no system user per hub user)."""
        return None

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        env["USER"] = self.user.name
        env.setdefault("SHELL", "/bin/bash")
        return env

    # -- paths and state ---------------------------------------------------------------

    def local_paths(self) -> LocalPaths:
        root = Path(self.data_dir).resolve()
        user, server = _safe(self.user.name), _safe(self.name)
        return LocalPaths(
            workspace=Path(self.workspace or root / "workspaces" / user / server),
            server_dir=Path(self.server_dir or root / "servers" / user / server),
        )

    def dataset_settings(self) -> LocalDatasetSettings:
        root = Path(self.data_dir).resolve()
        catalog: Path | None = Path(self.dataset_catalog or root / "datasets.yaml").resolve()
        if not self.dataset_catalog and not catalog.exists():
            catalog = None
        return LocalDatasetSettings(
            catalog=catalog,
            cache_dir=Path(self.dataset_cache_dir or root / "datasets-cache").resolve(),
            state_dir=self.local_paths().server_dir / "state",
            storage_options=dict(self.dataset_storage_options),
        )

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.workspace = state.get("workspace", "")
        self.server_dir = state.get("server_dir", "")
        self.lifecycle_pid = state.get("lifecycle_pid", 0)
        self.cgroup_state = state.get("cgroup", {})

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self.workspace:
            state["workspace"] = self.workspace
            state["server_dir"] = self.server_dir
        if self.lifecycle_pid:
            state["lifecycle_pid"] = self.lifecycle_pid
        if self.cgroup_state:
            state["cgroup"] = self.cgroup_state
        return state

    # -- start ---------------------------------------------------------------------------

    @metered_start("local")  # spawns by result, phase durations (spawner.metrics)
    async def start(self) -> tuple[str, int]:
        self._progress = log = ProgressLog()
        try:
            options = UserOptions.model_validate(validate_options(self.user_options or {}))
        except ValueError as error:
            log.step(1, str(error))
            log.close()
            raise
        await self._end_background()  # left by an earlier start of this server
        try:
            return await self._start(options, log)
        except (PolicyRefused, GpuUnavailable, GitError) as error:  # the request, not the hub
            raise start_refused(error) from None
        except asyncio.CancelledError:  # the user stopped a pending spawn
            log.step(99, "stopped while starting")
            self._release_gpu()
            raise
        finally:
            log.close()

    async def _start(self, options: UserOptions, log: ProgressLog) -> tuple[str, int]:
        paths = self.local_paths()
        self.workspace, self.server_dir = str(paths.workspace), str(paths.server_dir)
        iso = self._iso = await self._isolation(paths, log)
        datasets = self.dataset_settings()
        builder = UvEnvBuilder(
            Path(self.data_dir).resolve() / "env-cache",
            uv_cache_dir=Path(self.uv_cache_dir) if self.uv_cache_dir else None,
        )
        base_env = {**self._kept_env(), **iso.env()}

        def who() -> BuildAs | None:
            if not iso.active:
                return None
            home = iso.account.home
            uv_env = builder.account_env(home)
            return isolation.build_as(self._settings, iso, paths.workspace, uv_env)

        try:
            prepared = await prepare(
                options,
                paths,
                builder,
                log,
                base_env=base_env,
                datasets=datasets,
                check_spec=lambda spec: self._check_spec(spec, log, iso),
                lifecycle_timeout=self.lifecycle_timeout or None,
                isolation=iso,
                confine=lambda spec, env: self._confine(iso, paths, env.path),
                build_as=who,
                sources=self.codespace_sources,
                clone_env=self.git_clone_env(options.repo),
            )
        except Exception as error:
            log.step(99, f"failed: {error}")
            self._release_gpu()
            raise
        count_prepared(prepared)  # its environment cache lookup, a recovery
        self._apply(prepared, options, datasets, log)
        self._server_env.update(self._start_ssh(paths, iso, self.get_env(), log.line))
        self._report_vscode(prepared, log)

        def launched() -> None:  # the server's process runs: its GPU grant, the later commands
            if self.pid:
                self._gpu_registry().started(self._gpu_key(), self.pid)
            self._start_background(prepared, paths, iso)

        try:
            return await self._start_process(paths, iso, log, launched)
        except Exception:
            self._release_gpu()
            raise

    def _kept_env(self) -> dict[str, str]:
        """What lifecycle commands get of the hub's environment: ``env_keep`` (like the
        server, JupyterHub's ``Spawner.get_env``) and how to reach package indexes; never
        the hub's secrets."""
        kept = {key: os.environ[key] for key in self.env_keep if key in os.environ}
        return {**host_env(os.environ), **kept}

    def _check_spec(self, spec: Codespace, log: ProgressLog, iso: Isolation) -> None:
        """Check the policy, claim the GPU, then make the cgroup with the spec's limits."""
        self._claim_gpu(self.enforce_policy_spec(spec, log.line), log)
        if iso.active:
            key = f"{iso.account.name}.{_safe(self.name)}".replace("%", "_")
            self._limit(spec, log, iso, key)

    def _start_background(self, prepared: Prepared, paths: LocalPaths, iso: Isolation) -> None:
        """Run the lifecycle commands after ``waitFor`` beside the server (own group),
        confined like the server; the job goes on the runner's stdin."""
        if not prepared.background:
            return
        job = job_text(
            paths.workspace, prepared.lifecycle_env, prepared.background, background=True
        )
        with os.fdopen(private_log(paths.server_dir / "lifecycle-runner.log"), "ab") as output:
            process = subprocess.Popen(
                iso.confined(runner_argv()),
                cwd=paths.workspace,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=output,
                start_new_session=True,
                env=prepared.lifecycle_env,
            )
        assert process.stdin is not None
        process.stdin.write(job.encode())
        process.stdin.close()
        self.lifecycle_pid = process.pid
        self._lifecycle_process = process  # reaped in _end_background

    async def _end_background(self) -> None:
        """End the background lifecycle commands: SIGTERM to the runner's group (it stops the
        running command's own group), SIGKILL what is left after a few seconds."""
        if self.lifecycle_pid:
            await end_process_group(self.lifecycle_pid, grace=3.0)
        process = getattr(self, "_lifecycle_process", None)
        if process is not None:
            process.wait()
            self._lifecycle_process = None
        self.lifecycle_pid = 0

    def _apply(
        self,
        prepared: Prepared,
        options: UserOptions,
        datasets: LocalDatasetSettings,
        log: ProgressLog,
    ) -> None:
        """Point the server at the workspace, the repo env kernel, the error file and the
        dataset catalog (our server extension's settings, in a per-server config dir)."""
        paths = self.local_paths()
        server_config = paths.server_dir / "jupyter-config"
        config = extension_config(datasets, paths.workspace)
        config["CodespaceExtension"].update(self._slurm_settings(log))
        config["ServerApp"]["terminado_settings"] = {
            "shell_command": ["/bin/bash", "--rcfile", str(write_bashrc(paths.server_dir))]
        }
        account = self._iso.account if getattr(self, "_iso", None) else None
        write_private_json(
            server_config / "jupyter_server_config.json",
            config,
            group=account.gid if account else None,
        )
        self.notebook_dir = str(paths.workspace)
        noteworthy = prepared.problems or prepared.warnings
        self.default_url = f"/lab/tree/{ERRORS_FILE}" if noteworthy else "/lab"
        profile_env = self._profile(options.profile).get("env", {})
        jupyter_path = [str(paths.jupyter_data), os.environ.get("JUPYTER_PATH", "")]
        config_path = [
            str(server_config),
            self.singleuser_config_dir,
            os.environ.get("JUPYTER_CONFIG_PATH", ""),
        ]
        self._server_env = {
            **{str(k): str(v) for k, v in profile_env.items()},
            **prepared.server_env,
            "JUPYTER_PATH": os.pathsep.join(p for p in jupyter_path if p),
            "JUPYTER_CONFIG_PATH": os.pathsep.join(p for p in config_path if p),
            "CODESPACE_SERVER_DIR": str(paths.server_dir),
            "CODESPACE_CODE_SERVER": self.code_server,
            "CODESPACE_VSIX_PATH": os.pathsep.join(self.vsix_dirs),
            CATALOG_ENV: str(datasets.catalog or ""),
            **getattr(self, "_gpu_env", {}),
            **self.git_helper_env(),  # git push to the Git host asks the hub for the token
            **self.policy_env(),  # jobs, deployments, dataset mounts: the user's rules
        }

    def _slurm_settings(self, log: ProgressLog) -> dict[str, Any]:
        """The Slurm job backend with a token for the codespace's account (spawner.local_slurm)."""
        if not self.slurm_url:
            return {}
        iso = getattr(self, "_iso", None)
        user = iso.account.name if iso is not None and iso.account else self.user.name
        return codespace_slurm(
            self.slurm_url, user, self.slurm_token_lifespan, self.slurm_conf, log.line
        )

    def _report_vscode(self, prepared: Prepared, log: ProgressLog) -> None:
        if not self.code_server:
            log.line("VS Code: code-server is not installed; the VS Code launcher is off")
            return
        wanted = prepared.spec.customizations.vscode.extensions
        plan = plan_extensions(wanted, [Path(p) for p in self.vsix_dirs])
        if plan.install:
            log.line("VS Code: installs on first open: " + ", ".join(plan.install))
        if plan.missing:
            log.line("VS Code: no local VSIX, not installed: " + ", ".join(plan.missing))

    def _profile(self, slug: str | None) -> dict[str, Any]:
        if not slug:
            return {}
        for profile in self.profiles:
            if profile.get("slug") == slug:
                return profile
        raise ValueError(f"profile {slug!r} is not one of the hub's profiles")

    def get_args(self) -> list[str]:
        args = [
            *super().get_args(),
            f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
            f"--KernelSpecManager.allowed_kernelspecs={KERNEL_NAME}",  # not the platform's
        ]
        if os.geteuid() == 0:
            args.append("--ServerApp.allow_root=True")  # the single-user server refuses root
        return args

    def get_env(self) -> dict[str, str]:
        env = {**host_env(os.environ), **super().get_env()}  # pip in a codespace reaches indexes
        env.update(getattr(self, "_server_env", {}))
        return env

    async def _start_process(
        self, paths: LocalPaths, iso: Isolation, log: ProgressLog, launched: Callable[[], None]
    ) -> tuple[str, int]:
        """``jupyterhub-singleuser`` as the account, in the cgroup and the sandbox; at most
        ``concurrent_server_starts`` at once (see spawner.start_gate)."""
        if not hasattr(self, "_singleuser_cmd"):
            self._singleuser_cmd = list(self.cmd)
        self.cmd = iso.confined(self._singleuser_cmd)
        self._server_env.update(iso.env())
        log_path = paths.server_dir / "server.log"
        gate = gate_for(self.concurrent_server_starts or os.cpu_count() or 1)

        def waiting(place: int) -> None:
            log.step(95, f"server: waiting to start, {place} in line ({gate.size} start at once)")

        async with gate.slot(waiting):
            log.step(96, "server: starting JupyterLab")
            with os.fdopen(private_log(log_path), "ab") as handle:
                kwargs = {"stdout": handle, "stderr": handle, "cwd": str(paths.workspace)}
                self.popen_kwargs = kwargs
                ip, port = await super().start()
            launched()

            def alive() -> bool:
                return self.proc is not None and self.proc.poll() is None

            await wait_listening(ip or "127.0.0.1", port, alive, timeout=self.start_timeout)
        return ip, port

    async def poll(self) -> int | None:
        status = await super().poll()
        if status is not None:
            self._report_oom(self.local_paths().server_dir / "server.log")
        return status

    async def stop(self, now: bool = False) -> None:
        """Stop the server's whole process group first (bwrap does not forward signals, and
        code-server's extension host outlives its parent), then what is left in its cgroup."""
        group = self.pid
        await self._end_background()
        if group:
            await end_process_group(group)
        await super().stop(now=now)
        self._report_oom(self.local_paths().server_dir / "server.log")
        await self._remove_cgroup()
        self._release_gpu()

    async def progress(self):  # type: ignore[override]
        log = getattr(self, "_progress", None)
        if log is None:
            return
        async for event in log.follow():
            yield event

    # -- removal -------------------------------------------------------------------------

    def delete_forever(self) -> None:
        """Called when a named server is removed: keep the workspace unless configured."""
        paths = self.local_paths()
        if self.delete_workspace_on_remove:
            shutil.rmtree(paths.workspace, ignore_errors=True)
            shutil.rmtree(paths.server_dir, ignore_errors=True)
            self.log.info("Removed workspace %s", paths.workspace)
        else:
            self.log.info("Server removed; its workspace %s is kept", paths.workspace)
