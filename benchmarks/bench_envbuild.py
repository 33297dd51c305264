"""Cold environment build: uv (our builder) vs ``python -m venv && pip install``.

Both build a new environment for the same requirements (an offline wheel plus the kernel
layer: ipykernel, ipywidgets, pydantic, PyYAML) with their own download caches already warm
(one untimed build each first), so the ratio compares installing, not downloading.
Prints the median of a few runs and the ratio; target: uv <= 0.2 x pip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codespace.local.envbuild import UvEnvBuilder
from codespace.local.envbuild.kernel import kernel_layer_requirements
from codespace.spec.model import Codespace, Python
from tests.helpers.repos import fixture_repo

RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def uv_build(builder: UvEnvBuilder, repo: Path) -> float:
    spec = Codespace(python=Python(requirements=["requirements.txt"]))
    started = time.perf_counter()
    built = asyncio.run(builder.build(repo, spec, uuid.uuid4().hex))
    elapsed = time.perf_counter() - started
    assert not built.cache_hit
    shutil.rmtree(built.path)
    return elapsed


def pip_build(work: Path, repo: Path) -> float:
    env = work / f"venv-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    subprocess.run([sys._base_executable, "-m", "venv", str(env)], check=True)
    install = subprocess.run(
        [
            str(env / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            "requirements.txt",
            *kernel_layer_requirements(),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:
        raise RuntimeError(f"pip install failed:\n{install.stdout}{install.stderr}")
    elapsed = time.perf_counter() - started
    shutil.rmtree(env)
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-envbuild-") as tmp:
        work = Path(tmp)
        repo = fixture_repo(work)
        builder = UvEnvBuilder(work / "cache")
        uv_build(builder, repo)  # warm uv's cache
        pip_build(work, repo)  # warm pip's cache
        uv_times, pip_times = [], []
        for _ in range(RUNS):
            uv_times.append(uv_build(builder, repo))
            pip_times.append(pip_build(work, repo))
    uv_s, pip_s = statistics.median(uv_times), statistics.median(pip_times)
    print(
        f"cold env build, uv (codespace builder): {uv_s:6.2f} s  (runs: "
        f"{', '.join(f'{t:.2f}' for t in uv_times)})"
    )
    print(
        f"cold env build, venv + pip:             {pip_s:6.2f} s  (runs: "
        f"{', '.join(f'{t:.2f}' for t in pip_times)})"
    )
    print(f"cold env build ratio uv/pip: {uv_s / pip_s:.3f}x (target <= 0.2x)")


if __name__ == "__main__":
    main()
