"""The whole plan: pod overrides, workspace PVC and clone, Fluid dataset mounts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codespace.datasets.mounts import DatasetMount
from codespace.kube.config import ConfigError, WorkspaceConfig, load_config, parse_config
from codespace.kube.datasets import DatasetNotReady, dataset_mounts, dataset_problem
from codespace.kube.image import image_tag
from codespace.kube.plan import Names, PlanError
from codespace.kube.workspace import checkout_name, clone_init_container
from codespace.options import UserOptions
from codespace.spec.model import Codespace
from tests.conftest import require_executable
from tests.helpers.k8s_schema import assert_all_valid, assert_valid
from tests.helpers.plans import kube_plan
from tests.helpers.repos import git, make_repo

HASH = "c0ffee" * 10 + "abcd"
REPO = "https://github.com/org/proj.git"
NAMES = Names(namespace="alice-ns", pod="jupyter-alice", pvc="claim-alice")


def plan(codespace=None, config=None, **options):
    options.setdefault("repo", REPO)
    return kube_plan(
        codespace or Codespace(), UserOptions(**options), config or parse_config({}), HASH, NAMES
    )


def test_default_plan_is_a_pvc_and_a_pod_without_a_build():
    result = plan()
    kinds = [obj["kind"] for obj in assert_all_valid(result.objects())]
    assert kinds == ["PersistentVolumeClaim", "Pod"]
    pod = result.preview_pod()
    assert pod["metadata"]["name"] == "jupyter-alice"
    assert pod["spec"]["volumes"][0] == {
        "name": "workspace",
        "persistentVolumeClaim": {"claimName": "claim-alice"},
    }
    assert pod["spec"]["containers"][0]["workingDir"] == "/workspaces/proj"
    assert result.env["CODESPACE_GPU_COUNT"] == "0"
    assert result.env["CODESPACE_WORKSPACE_CLAIM"] == "claim-alice"


def test_environment_keys_trigger_a_build_job_first():
    result = plan(Codespace(python={"requirements": ["requirements.txt"]}))
    objects = assert_all_valid(result.objects())
    assert [o["kind"] for o in objects] == ["Job", "PersistentVolumeClaim", "Pod"]
    assert objects[2]["spec"]["containers"][0]["image"] == result.image.image
    platform = parse_config({}).build.baseImage
    assert result.image.image.endswith(":" + image_tag(HASH, platform))
    # the same environment on another platform image (an upgrade) is another image
    upgraded = parse_config({"build": {"baseImage": "ghcr.io/codespace-hub/singleuser:9"}})
    again = plan(Codespace(python={"requirements": ["requirements.txt"]}), config=upgraded)
    assert again.image.image != result.image.image


def test_overrides_name_real_kubespawner_settings():
    result = plan(Codespace(containerEnv={"A": "1"}, resources={"cpu": 1, "memory": "2Gi"}))
    overrides = result.kubespawner_overrides()
    assert overrides["environment"]["A"] == "1"
    assert overrides["cpu_limit"] == 2.0 and overrides["cpu_guarantee"] == 1.0
    assert overrides["mem_limit"] == 8 * 2**30 and overrides["mem_guarantee"] == 2 * 2**30
    assert overrides["storage_capacity"] == "10Gi" and overrides["storage_pvc_ensure"] is True


def test_asking_for_more_cpu_than_the_profile_allows_is_refused():
    with pytest.raises(PlanError, match="asks for 16 CPU; profile 'default' allows 2"):
        plan(Codespace(resources={"cpu": 16}))


def test_datasets_mount_fluid_pvcs_read_only_unless_asked():
    config = parse_config({"profiles": [{"name": "cached", "datasetCacheAffinity": True}]})
    codespace = Codespace(
        datasets=[
            {"name": "imagenet"},
            {"name": "scratch", "mountPath": "/data/s", "readOnly": False},
        ]
    )
    result = plan(codespace, config, datasets=["mnist"])
    pod = assert_valid(result.preview_pod())
    labels = pod["metadata"]["labels"]
    assert labels["fuse.serverful.fluid.io/inject"] == "true"
    assert labels["fluid.io/dataset.imagenet.sched"] == "required"
    assert labels["fluid.io/dataset.mnist.sched"] == "required"
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/datasets/imagenet"]["readOnly"] is True
    assert mounts["/data/s"]["readOnly"] is False
    assert mounts["/datasets/mnist"]["readOnly"] is True
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]}
    assert claims["dataset-imagenet"] == "imagenet"
    assert (
        result.env["CODESPACE_DATASETS"]
        == "imagenet=/datasets/imagenet,scratch=/data/s,mnist=/datasets/mnist"
    )


def test_no_cache_affinity_label_without_the_profile_asking():
    labels = dataset_mounts([DatasetMount(name="d", mountPath="/datasets/d", origin="spec")]).labels
    assert labels == {"fuse.serverful.fluid.io/inject": "true"}


def test_a_dataset_name_too_long_for_the_affinity_label_is_refused():
    with pytest.raises(DatasetNotReady, match="too long"):
        dataset_mounts(
            [DatasetMount(name="x" * 55, mountPath="/d", origin="spec")], cache_affinity=True
        )


def test_dataset_problem_reports_phase_and_conditions():
    assert dataset_problem("d", "ns", {"status": {"phase": "Bound"}}) is None
    assert "does not exist in namespace 'ns'" in dataset_problem("d", "ns", None)
    obj = {
        "status": {
            "phase": "NotBound",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "NoRuntime",
                    "message": "no runtime bound",
                }
            ],
        }
    }
    message = dataset_problem("d", "ns", obj)
    assert (
        message == "dataset 'd' in namespace 'ns' is NotBound, not Bound: "
        "Ready=False (NoRuntime): no runtime bound"
    )


def test_user_strings_are_kept_verbatim():
    # containerEnv with braces must reach the pod unchanged (the spawner escapes templates)
    result = plan(Codespace(containerEnv={"FMT": "{username}"}))
    assert result.kubespawner_overrides()["environment"]["FMT"] == "{username}"


@pytest.mark.parametrize(
    ("repo", "name"),
    [(REPO, "proj"), ("git@h:a/b.git", "b"), ("/srv/x/", "x"), ("https://h/.git", "workspace")],
)
def test_checkout_directory_names(repo, name):
    assert checkout_name(repo) == name


def test_clone_init_container_clones_once_and_keeps_work(tmp_path: Path):
    require_executable("git")
    origin = make_repo(tmp_path / "origin", {"a.txt": "one"})
    git(origin, "branch", "feature")
    workspace = WorkspaceConfig(mountPath=str(tmp_path / "workspaces"))
    init = clone_init_container("img", str(origin), "feature", workspace)
    assert_valid(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}], "initContainers": [init]},
        }
    )

    def run():
        return subprocess.run(
            ["sh", "-c", init["command"][2], "clone", *init["args"]],
            check=True,
            capture_output=True,
            text=True,
        )

    assert "cloned" in run().stdout
    checkout = tmp_path / "workspaces" / "origin"
    branch = subprocess.run(
        ["git", "-C", str(checkout), "branch", "--show-current"], capture_output=True, text=True
    )
    assert branch.stdout.strip() == "feature"
    (checkout / "a.txt").write_text("my uncommitted work")
    assert "keeping the existing checkout" in run().stdout  # a restart
    assert (checkout / "a.txt").read_text() == "my uncommitted work"


def test_config_errors_name_the_key(tmp_path: Path):
    path = tmp_path / "kube.yaml"
    path.write_text("profiles:\n  - name: a\n    gpu: {mode: mig}\n  - name: a\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "mode mig needs migProfiles" in str(caught.value)
    assert str(path) in str(caught.value)
    with pytest.raises(ConfigError, match=r"registry\.prefx: Extra inputs"):
        parse_config({"registry": {"prefx": "x"}})


def test_override_traits_lists_every_override():
    from codespace.kube.plan import OVERRIDE_TRAITS

    config = parse_config(
        {
            "registry": {"pullSecrets": ["p"]},
            "profiles": [
                {
                    "name": "v",
                    "gpu": {"mode": "vgpu", "memory": "8Gi", "runtimeClassName": "nvidia"},
                }
            ],
        }
    )
    result = plan(Codespace(resources={"gpu": 0.5}), config)
    assert set(result.kubespawner_overrides()) <= set(OVERRIDE_TRAITS)
