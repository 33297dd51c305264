"""The serving layer of a codespace image: MLServer beside the repository environment.

``python -I -m codespace.deploy.image_layer --env ENV --target /opt/codespace/serving`` (a
``RUN`` line of every image :mod:`codespace.kube.image` builds, by the platform's Python).
It makes in the image what the local backend makes per serving environment
(:mod:`codespace.deploy.serving_env`): a virtualenv on the environment's base Python with
MLServer and the runtimes of the model libraries the environment has (scikit-learn ->
``mlserver-sklearn``, XGBoost, LightGBM, MLflow, transformers), every package pinned to the
environment's version, and a ``.pth`` showing the environment behind it. KServe's
``ServingRuntime`` for the codespace (:mod:`codespace.deploy.kserve`) runs its Python, so an
endpoint loads a model with the notebook's libraries. An environment with none of those
libraries gets no layer, and a layer that cannot be installed is a warning in the build log,
never a failed image: the endpoint then says what is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from codespace.deploy.serving import MLSERVER, constraints
from codespace.deploy.serving_env import INSPECT, PTH_NAME

PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
# the distribution the environment has -> the MLServer runtime that serves its models
RUNTIMES = {
    "scikit-learn": "mlserver-sklearn",
    "xgboost": "mlserver-xgboost",
    "lightgbm": "mlserver-lightgbm",
    "mlflow": "mlserver-mlflow",
    "transformers": "mlserver-huggingface",
}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def layer_requirements(installed: Mapping[str, str]) -> list[str]:
    """MLServer and the runtimes for the libraries in ``installed`` ([] when none is)."""
    present = {_normal(name) for name in installed}
    runtimes = [f"{runtime}>=1.7.1,<1.8" for lib, runtime in RUNTIMES.items() if lib in present]
    return [MLSERVER, *runtimes] if runtimes else []


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def build(env: Path, target: Path, uv: str) -> str:
    """Make the layer; return what happened (one line for the build log)."""
    probe = _run([str(env / "bin" / "python"), "-I", "-c", INSPECT, "/nonexistent"])
    if probe.returncode != 0:
        return f"no serving layer: {env} cannot be read: {probe.stderr.strip()[-300:]}"
    info = json.loads(probe.stdout.strip().splitlines()[-1])
    requirements = layer_requirements(info["dists"])
    if not requirements:
        return "no serving layer: the environment has no model library MLServer serves"
    target.mkdir(parents=True, exist_ok=True)
    (target / "constraints.txt").write_text(constraints(info["dists"]))
    venv = [uv, "venv", "--no-project", "--no-config", "--allow-existing", "--python", info["base"]]
    venv.append(str(target))
    created = _run(venv)
    if created.returncode != 0:
        return f"no serving layer: uv venv failed: {created.stderr.strip()[-300:]}"
    python = str(target / "bin" / "python")
    pins = ["-c", str(target / "constraints.txt")]
    installed = _run([uv, "pip", "install", "--python", python, *pins, *requirements])
    wanted = " ".join(requirements)
    if installed.returncode != 0:
        why = installed.stderr.strip()[-500:]
        return f"no serving layer: {wanted} cannot be installed with the env's versions: {why}"
    line = f"import site; site.addsitedir({_purelib(env / 'bin' / 'python')!r})\n"
    (Path(_purelib(Path(python))) / PTH_NAME).write_text(line)
    return f"serving layer: {wanted} in {target}"


def _purelib(python: Path) -> str:
    return _run([str(python), "-c", PURELIB]).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codespace.deploy.image_layer")
    parser.add_argument("--env", required=True, type=Path)
    parser.add_argument("--target", required=True, type=Path)
    parser.add_argument("--uv", default="uv")
    args = parser.parse_args(argv)
    print(f"codespace: {build(args.env, args.target, args.uv)}", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
