"""``codespace plan PATH --target kubernetes``: every printed object is schema-valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from codespace.cli import main
from tests.helpers.k8s_schema import assert_all_valid

MIG = ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"]
PROFILES = {
    "whole": {"mode": "exclusive", "maxCount": 2, "runtimeClassName": "nvidia"},
    "sliced": {"mode": "time-slicing", "resource": "nvidia.com/gpu.shared", "replicas": 4},
    "mig": {"mode": "mig", "migProfiles": MIG},
    "hami": {"mode": "hami", "memory": "24Gi"},
    "vgpu": {"mode": "vgpu", "memory": "16Gi"},
}


def repo(tmp_path: Path, manifest: str) -> Path:
    root = tmp_path / "repo"
    (root / ".codespace").mkdir(parents=True)
    (root / ".codespace" / "codespace.yaml").write_text(manifest)
    (root / "requirements.txt").write_text("numpy\n")
    return root


def config_file(tmp_path: Path) -> Path:
    profiles = [{"name": "cpu", "default": True}]
    profiles += [
        {"name": name, "gpu": gpu, "datasetCacheAffinity": True} for name, gpu in PROFILES.items()
    ]
    path = tmp_path / "kube.yaml"
    path.write_text(
        yaml.safe_dump({"registry": {"prefix": "reg.example.org/cs"}, "profiles": profiles})
    )
    return path


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_plan_prints_valid_objects_for_every_gpu_mode(tmp_path, capsys, profile):
    root = repo(
        tmp_path,
        "python: {requirements: [requirements.txt]}\n"
        "resources: {gpu: {fraction: 0.25}}\n"
        "datasets: [{name: imagenet}, {name: scratch, readOnly: false}]\n",
    )
    code = main(
        [
            "plan",
            str(root),
            "--target",
            "kubernetes",
            "--config",
            str(config_file(tmp_path)),
            "--profile",
            profile,
            "--repo",
            "https://github.com/org/proj.git",
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    document = json.loads(out.out)
    assert document["kind"] == "List"
    objects = assert_all_valid(document["items"])
    assert [o["kind"] for o in objects] == ["Job", "PersistentVolumeClaim", "Pod"]
    pod = objects[-1]
    assert pod["metadata"]["labels"]["fluid.io/dataset.imagenet.sched"] == "required"
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["CODESPACE_GPU_SHARING"] == PROFILES[profile]["mode"]
    assert objects[0]["metadata"]["annotations"]["codespace.io/image"].startswith(
        "reg.example.org/cs/github-com-org-proj:"
    )


def test_plan_yaml_without_config_uses_the_default_profile(tmp_path, capsys):
    root = repo(tmp_path, "apt: [curl]\n")
    assert main(["plan", str(root), "--target", "kubernetes", "--repo", "https://h/a.git"]) == 0
    objects = assert_all_valid(list(yaml.safe_load_all(capsys.readouterr().out)))
    assert objects[-1]["metadata"]["labels"]["codespace.io/profile"] == "default"


def test_plan_refuses_a_gpu_request_the_default_profile_cannot_give(tmp_path, capsys):
    root = repo(tmp_path, "resources: {gpu: 1}\n")
    assert main(["plan", str(root), "--target", "kubernetes", "--repo", "https://h/a.git"]) == 1
    err = capsys.readouterr().err
    assert "GPU request (1 whole GPU) cannot be met" in err
    assert "profile 'default' has no GPUs" in err


def test_plan_reports_spec_errors_with_their_location(tmp_path, capsys):
    root = repo(tmp_path, "pythn: {}\n")
    assert main(["plan", str(root), "--repo", "https://h/a.git"]) == 1
    assert ".codespace/codespace.yaml:1" in capsys.readouterr().err


def test_devcontainer_host_requirements_gpu_is_the_same_request(tmp_path, capsys):
    root = tmp_path / "dc"
    (root / ".devcontainer").mkdir(parents=True)
    (root / ".devcontainer" / "devcontainer.json").write_text(
        '{"image": "registry.example.org/img:1", "hostRequirements": {"gpu": {"memory": "10gb"}}}'
    )
    args = ["plan", str(root), "--config", str(config_file(tmp_path)), "--profile", "mig"]
    assert main([*args, "--repo", "https://h/a.git", "--json"]) == 0
    items = assert_all_valid(json.loads(capsys.readouterr().out)["items"])
    pod = items[-1]
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/mig-1g.10gb"] == "1"
    # the devcontainer image is the base of the codespace image, which the Job builds
    assert items[0]["kind"] == "Job"
    built = items[0]["metadata"]["annotations"]["codespace.io/image"]
    assert pod["spec"]["containers"][0]["image"] == built != "registry.example.org/img:1"
