"""One launch plan, two renderings: the local start and the pod agree on what a codespace is.

For every repository in ``tests/cases`` that resolves, the local rendering (the server's
variables as :mod:`codespace.local.prepare` computes them, the dataset links, the lifecycle
commands, the kernel layer) and the Kubernetes rendering (the pod's variables after its
entrypoint applies ``CODESPACE_LAUNCH``, its volume mounts, the commands the entrypoint
runs, the image's kernel layer) must agree, up to where each mode puts the workspace and the
environment. And the pod's entrypoint really does it: it runs the commands, writes
``CODESPACE_ERRORS.md`` and hands the expanded variables to the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from codespace.kube.config import parse_config
from codespace.kube.entrypoint import apply_launch
from codespace.kube.plan import launch_plan, make_kube_plan
from codespace.launch import (
    LAUNCH_ENV,
    PLATFORM_VARIABLES,
    Placement,
    RuntimePlan,
    make_launch_plan,
)
from codespace.options import UserOptions
from codespace.resolve import resolve
from codespace.spec.errors import SpecError
from codespace.spec.lifecycle import POST_BUILD
from tests.helpers.plans import resolution_of
from tests.unit.test_cases import CASES, NAMES

# The cases that resolve (an error case starts the platform's recovery codespace in both).
RESOLVING = [name for name in NAMES if "error:" not in (CASES / name / "expect.yaml").read_text()]

REPO = "https://github.com/org/proj.git"
OPTIONS = UserOptions(repo=REPO, datasets=["extra"])
# the server is named after the repository, as the pod's checkout is (/workspaces/proj)
LOCAL = Placement("local", "/data/workspaces/alice/proj", "/data/servers/alice/proj/env")
# a profile that can place every case: a GPU request (count, fraction, memory), 4 CPUs
CONFIG = {
    "profiles": [
        {"name": "cpu", "default": True, "cpu": 8, "memory": "64Gi"},
        {"name": "hami", "cpu": 8, "memory": "64Gi", "gpu": {"mode": "hami", "memory": "24Gi"}},
    ]
}
HOST = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/x"}


def resolved(name: str, mode: str):
    try:
        return resolve(CASES / name / "repo", mode=mode)
    except SpecError:
        return None


def normalise(value: str, placement: Placement) -> str:
    return value.replace(placement.env_prefix, "<env>").replace(placement.workspace, "<ws>")


def renderings(name: str):
    local_resolution, kube_resolution = resolved(name, "local"), resolved(name, "kubernetes")
    assert local_resolution is not None and kube_resolution is not None
    config = parse_config(CONFIG)
    options = OPTIONS
    if kube_resolution.codespace.resources.gpu:
        options = OPTIONS.model_copy(update={"profile": "hami"})
    local = make_launch_plan(local_resolution, options, LOCAL)
    kube = make_kube_plan(launch_plan(kube_resolution, options, config), config)
    return local, kube


def test_most_cases_resolve() -> None:
    assert len(RESOLVING) >= 40


@pytest.mark.parametrize("name", RESOLVING)
def test_both_renderings_agree(name: str) -> None:
    local, kube = renderings(name)
    pod = kube.preview_pod()
    container = pod["spec"]["containers"][0]
    pod_env = {item["name"]: item["value"] for item in container["env"]}
    runtime = RuntimePlan.from_json(pod_env[LAUNCH_ENV])
    # variables: what the server gets after the entrypoint, against the same outer PATH
    local_env = local.server_env(HOST)
    kube_env = runtime.server_env({**HOST, **pod_env})
    place = kube.launch.placement
    # the profile Kubernetes chose for the pod; where datasets appear (checked below)
    kube_only = {"CODESPACE_PROFILE", "CODESPACE_DATASETS"}
    assert kube_env["CODESPACE_PROFILE"] == kube.profile.name
    for env in (local_env, kube_env):  # every platform variable, in both modes
        assert set(PLATFORM_VARIABLES) <= set(env)
    assert {k: normalise(v, LOCAL) for k, v in local_env.items() if k not in kube_only} == {
        k: normalise(v, place) for k, v in kube_env.items() if k not in kube_only
    }
    for key, value in pod_env.items():  # what the pod spec shows is what the server gets
        if key in kube_env:
            assert kube_env[key] == value, key
    # mounts: the same datasets, each where CODESPACE_DATASETS says
    local_sets = {m.name: (local.placement.dataset_path(m), m.readOnly) for m in local.datasets}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]}
    kube_sets = {
        claims[m["name"]]: (m["mountPath"], m["readOnly"])
        for m in container["volumeMounts"]
        if m["name"].startswith("dataset-")
    }
    assert {k: v[1] for k, v in local_sets.items()} == {k: v[1] for k, v in kube_sets.items()}
    assert "extra" in kube_sets
    for env, sets in ((local_env, local_sets), (kube_env, kube_sets)):
        listed = dict(item.split("=", 1) for item in env["CODESPACE_DATASETS"].split(","))
        assert listed == {name: where for name, (where, _) in sets.items()}
    # lifecycle: the same commands; postBuild runs in the image build on Kubernetes
    local_steps = [s for s in local.runtime().steps if s.name != POST_BUILD]
    assert list(runtime.steps) == local_steps
    assert runtime.wait_for == local.wait_for
    dockerfile = kube.image.dockerfile or ""
    if local.spec.postBuild:
        assert local.runtime().steps[0].name == POST_BUILD and "postBuild" in dockerfile
    # kernel layer: the same pinned requirements and kernelspec, in the image when built
    assert local.environment.kernel_layer == kube.launch.environment.kernel_layer
    if dockerfile:
        for requirement in local.environment.kernel_layer.requirements:
            assert requirement in dockerfile, requirement


def test_remote_env_and_workspace_variables_expand_in_both_modes() -> None:
    from codespace.spec.model import Codespace

    spec = Codespace(
        containerEnv={"DATA": "${containerWorkspaceFolder}/data", "TOOL": "/opt/tool"},
        remoteEnv={"PATH": "${containerEnv:TOOL}/bin:${containerEnv:PATH}", "X": None},
    )
    config = parse_config({})
    resolution = resolution_of(spec)
    local = make_launch_plan(resolution, UserOptions(repo=REPO), LOCAL).server_env(HOST)
    assert local["DATA"] == "/data/workspaces/alice/proj/data"
    assert local["PATH"] == "/opt/tool/bin:/data/servers/alice/proj/env/bin:" + HOST["PATH"]
    assert "X" not in local
    kube = make_kube_plan(launch_plan(resolution, UserOptions(repo=REPO), config), config)
    pod_env = {e["name"]: e["value"] for e in kube.preview_pod()["spec"]["containers"][0]["env"]}
    assert pod_env["DATA"] == "/workspaces/proj/data"  # shown in the pod spec as it is
    assert "PATH" not in pod_env  # the image's PATH is only known in the pod
    image_env = {"PATH": "/opt/platform/bin:/usr/bin", **pod_env}
    server = apply_launch(image_env, on_line=lambda line: None)
    assert server["PATH"] == "/opt/tool/bin:/opt/codespace/env/bin:/opt/platform/bin:/usr/bin"
    assert LAUNCH_ENV not in server


def test_the_entrypoint_runs_the_commands_writes_the_errors_and_execs_the_server(
    tmp_path: Path,
) -> None:
    from codespace.spec.model import Codespace

    workspace = tmp_path / "ws"
    (workspace / ".git").mkdir(parents=True)
    spec = Codespace(
        onCreateCommand="echo created >> order",
        postStartCommand=["sh", "-c", "echo started >> order; exit 3"],
        containerEnv={"GREETING": "hi"},
        waitFor="postStartCommand",
    )
    placement = Placement("kubernetes", str(workspace), str(tmp_path / "env"))
    plan = make_launch_plan(
        resolution_of(spec),
        UserOptions(repo=REPO),
        placement,
        recovery=True,
        problems=["## The image could not be built\n\nboom\n"],
    )
    server = [sys.executable, "-c", "import os; print(os.environ['GREETING'])"]
    env = {"PATH": "/usr/bin:/bin", LAUNCH_ENV: plan.runtime().to_json()}
    for _start in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "codespace.kube.entrypoint", "--", *server],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("hi")  # the server got the variables
    # onCreate ran once (a create-time command), postStart on each start
    assert (workspace / "order").read_text().split() == ["created", "started", "started"]
    errors = (workspace / "CODESPACE_ERRORS.md").read_text()
    assert "recovery codespace" in errors and "boom" in errors
    assert "`postStartCommand` failed" in errors and "status 3" in errors
    excluded = (workspace / ".git" / "info" / "exclude").read_text().splitlines()
    assert "/CODESPACE_ERRORS.md" in excluded and "/.codespace-logs/" in excluded
    status = json.loads((workspace / ".codespace-logs" / "lifecycle-status.json").read_text())
    assert status["commands"]["postStartCommand"]["state"] == "failed"
