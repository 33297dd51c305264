"""The serving environment of a deployment: the codespace's packages plus MLServer.

:func:`ensure_serving_env` reads what the codespace's environment has (run as the owner's
account: every distribution its Python sees, its own layer's ``pip install``\\s too), then
builds -- once per distinct set, in ``<env-cache>/serving/<key>`` -- a virtualenv on the same
base Python with MLServer, the format's runtime and the layer's packages, every package
pinned (``uv pip install -c``) to the version the codespace has, and a ``.pth`` that shows
the codespace's shared environment behind it (the repository's own modules a pickle names).
It is built as the account in its build sandbox (:class:`~codespace.local.envbuild.uv.BuildAs`) and
then made root's and read-only, like every environment of the cache; the shared environment
is content-addressed and kept, so a deployment outlives the codespace that made it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from codespace.deploy.serving import constraints, serving_key
from codespace.local.envbuild.kernel import site_packages
from codespace.local.envbuild.uv import BuildAs, find_uv
from codespace.streaming import stream

MARKER = "codespace-serving.json"
_LOCKS: dict[str, asyncio.Lock] = {}
PTH_NAME = "_codespace_deployed_env.pth"
Wrap = Callable[[list[str]], list[str]]
# Run by the codespace's Python (as its account): what it has, and where from.
INSPECT = r"""
import json, re, sys, platform, importlib.metadata as m
layer, library = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else "")
dists, layer_only = {}, {}
for d in m.distributions():
    name = d.metadata["Name"]
    if not name or name in dists:
        continue
    dists[name] = d.version
    if str(d.locate_file("")).startswith(layer):
        layer_only[name] = d.version
def needs(name, seen):
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        return
    seen.add(key)
    try:
        requires = m.requires(name) or []
    except m.PackageNotFoundError:
        return
    for line in requires:
        if "extra ==" not in line:
            needs(re.match(r"[A-Za-z0-9._-]+", line).group(0), seen)
closure = set()
if library:
    needs(library, closure)
print(json.dumps({"python": platform.python_version(),
                  "base": getattr(sys, "_base_executable", sys.executable),
                  "dists": dists, "layer": layer_only, "closure": sorted(closure)}))
"""


class ServingEnvError(RuntimeError):
    """The serving environment cannot be made; the message ends with the tool's last lines."""


@dataclass
class CodespaceEnv:
    """The environment a deployment comes from: the codespace's layer over a shared env."""

    python: Path  # the codespace's Python (its layer's, or the shared env's)
    shared: Path  # the shared environment (kept by the cache)
    layer: Path | None = None  # the codespace's own layer (deleted with the codespace)

    @property
    def dirs(self) -> list[Path]:
        return [p for p in (self.layer, self.shared) if p is not None]


@dataclass
class ServingEnv:
    path: Path
    cache_hit: bool
    warnings: list[str] = field(default_factory=list)


def codespace_env(prefix: Path) -> CodespaceEnv:
    """The codespace environment at ``prefix`` (its ``VIRTUAL_ENV``): a layer names its base
    in ``codespace-layer.json``."""
    marker = prefix / "codespace-layer.json"
    if marker.is_file():
        base = Path(json.loads(marker.read_text())["base"])
        return CodespaceEnv(prefix / "bin" / "python", base, prefix)
    return CodespaceEnv(prefix / "bin" / "python", prefix)


async def read_packages(
    env: CodespaceEnv, wrap: Wrap, environ: dict[str, str], library: str = ""
) -> dict:
    """What the codespace's Python has (run as its account, through ``wrap``), and which of
    its distributions ``library`` needs (itself included)."""
    layer = str(env.layer) if env.layer else "/nonexistent"
    argv = [str(env.python), "-I", "-c", INSPECT, layer, library]
    done = await stream(wrap(argv), env=environ)
    if not done.ok or not done.tail:
        raise ServingEnvError(
            f"cannot read the codespace's environment {env.python}:\n{done.tail_text()}"
        )
    return json.loads(done.tail[-1])


def _uv_env(build_as: BuildAs | None, cache: Path) -> dict[str, str]:
    if build_as is not None:
        return dict(build_as.env)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({"UV_CACHE_DIR": str(cache), "UV_NO_PROGRESS": "1", "NO_COLOR": "1"})
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    return env


async def ensure_serving_env(
    cache_dir: Path,
    env: CodespaceEnv,
    serving_packages: list[str],
    *,
    library: str = "",
    inspect_wrap: Wrap,
    inspect_env: dict[str, str],
    build_as: BuildAs | None,
    say: Callable[[str], None] = lambda _line: None,
) -> ServingEnv:
    """The serving environment with ``serving_packages`` over ``env`` (built when missing)."""
    info = await read_packages(env, inspect_wrap, inspect_env, library)
    layer_pins = [f"{n}=={v}" for n, v in sorted(info["layer"].items()) if "+" not in v]
    requirements = serving_packages + layer_pins
    pins = constraints(info["dists"])
    key = serving_key(info["python"], pins, [*requirements, str(env.shared)])
    path = cache_dir / "serving" / key
    if (path / MARKER).is_file():
        return ServingEnv(path, True, json.loads((path / MARKER).read_text())["warnings"])
    path.parent.mkdir(parents=True, exist_ok=True)
    async with _LOCKS.setdefault(key, asyncio.Lock()):  # one build per key at a time
        if (path / MARKER).is_file():
            return ServingEnv(path, True, json.loads((path / MARKER).read_text())["warnings"])
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir()
        (path / "constraints.txt").write_text(pins)
        model_pins = {n: v for n, v in info["dists"].items() if _key(n) in info["closure"]}
        (path / "constraints-model.txt").write_text(constraints(model_pins))
        (path / "requirements.txt").write_text("\n".join(requirements) + "\n")
        try:
            warnings = await _build(path, info, env, build_as, cache_dir, say)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        (path / MARKER).write_text(json.dumps({"requirements": requirements, "warnings": warnings}))
        return ServingEnv(path, False, warnings)


async def _build(
    path: Path,
    info: dict,
    env: CodespaceEnv,
    build_as: BuildAs | None,
    cache_dir: Path,
    say: Callable[[str], None],
) -> list[str]:
    wrap: Wrap = list
    if build_as is not None:
        build_as.start(path)
        wrap = build_as.wrap(path)
    uv_env = _uv_env(build_as, cache_dir / "uv-cache")
    uv = find_uv()
    say(f"serving environment: Python {info['python']}, the model server pinned to the codespace's")
    venv = [uv, "venv", "--no-project", "--no-config", "--quiet", "--allow-existing"]
    done = await stream(wrap([*venv, "--python", info["base"], str(path)]), env=uv_env)
    if not done.ok:
        raise ServingEnvError(f"uv venv failed:\n{done.tail_text()}")
    install = [uv, "pip", "install", "--python", str(path / "bin" / "python")]
    warnings: list[str] = []
    done = await stream(wrap([*install, *_files(path, "constraints.txt")]), env=uv_env, on_line=say)
    if not done.ok and info["closure"]:
        # the server needs other versions of some of the codespace's packages (kserve wants
        # psutil<6, the kernel layer has 7): pin only what the model's library needs
        why = _cause(done.tail)
        say("retrying with only the model library and what it needs pinned")
        done = await stream(
            wrap([*install, *_files(path, "constraints-model.txt")]), env=uv_env, on_line=say
        )
        if done.ok:
            warnings.append(
                f"the model server needs other versions of some of the codespace's packages "
                f"({why}); only {', '.join(info['closure'])} keep the codespace's versions"
            )
    if not done.ok:
        raise ServingEnvError(
            "the model server cannot be installed with this codespace's package versions:\n"
            + done.tail_text()
        )
    if build_as is not None:
        await asyncio.to_thread(build_as.publish, path)
    _show_shared(path, env.shared)
    return warnings


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _files(path: Path, pins: str) -> list[str]:
    return ["-r", str(path / "requirements.txt"), "-c", str(path / pins)]


def _cause(lines: list[str]) -> str:
    """uv's reason for a failed resolution, in one line."""
    causes = [line.strip().removeprefix("cause:").strip() for line in lines if "Because" in line]
    return causes[0][:300] if causes else "no solution with every package pinned"


def _show_shared(path: Path, shared: Path) -> None:
    """The ``.pth`` that puts the codespace's shared environment behind the serving one."""
    own = site_packages(path)
    target = own / PTH_NAME
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o444)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"import site; site.addsitedir({str(site_packages(shared))!r})\n")
