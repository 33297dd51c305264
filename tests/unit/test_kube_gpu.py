"""GPU requests under each sharing mode: the resources, scheduler and env a pod gets."""

from __future__ import annotations

import pytest

from codespace.kube.config import GpuConfig, Profile, parse_config
from codespace.kube.gpu import GpuUnsatisfiable, choose_profile, plan_gpu_for
from codespace.kube.plan import make_kube_plan
from codespace.launch import LAUNCH_ENV, RuntimePlan
from codespace.options import UserOptions
from codespace.spec.model import Codespace, GpuRequest
from tests.helpers.k8s_schema import assert_all_valid
from tests.helpers.plans import kube_plan

MIG = ["1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"]


def profile(mode: str, **gpu) -> Profile:
    return Profile(name=f"p-{mode}", gpu=GpuConfig(mode=mode, **gpu))


def test_whole_gpus_use_nvidia_gpu():
    plan = plan_gpu_for(GpuRequest(count=2), profile("exclusive", maxCount=4))
    assert plan.limits == {"nvidia.com/gpu": "2"}
    assert plan.env["CODESPACE_GPU_COUNT"] == "2"
    assert plan.env["CODESPACE_GPU_SHARING"] == "exclusive"


def test_whole_gpus_beyond_the_profile_maximum_are_refused():
    with pytest.raises(GpuUnsatisfiable, match="at most 1 GPU"):
        plan_gpu_for(GpuRequest(count=2), profile("exclusive"))


@pytest.mark.parametrize(
    ("resource", "expected"), [(None, "nvidia.com/gpu"), ("nvidia.com/gpu.shared", None)]
)
def test_time_slicing_asks_for_one_replica(resource, expected):
    plan = plan_gpu_for(
        GpuRequest(fraction=0.25), profile("time-slicing", resource=resource, replicas=4)
    )
    assert plan.limits == {expected or resource: "1"}
    assert plan.env["CODESPACE_GPU_FRACTION"] == "0.25"
    assert plan.env["CODESPACE_GPU_SHARING"] == "time-slicing"


@pytest.mark.parametrize(
    ("request_", "mig"),
    [
        (GpuRequest(memory="8Gi"), "1g.10gb"),
        (GpuRequest(memory="10Gi"), "1g.10gb"),
        (GpuRequest(memory="12Gi"), "2g.20gb"),
        (GpuRequest(fraction=0.4), "3g.40gb"),  # 2.8 of 7 slices, 32 of 80 GB
        (GpuRequest(fraction=0.5), "7g.80gb"),  # 3.5 slices: no 4g profile is offered
        (GpuRequest(fraction=0.3, memory="30Gi"), "3g.40gb"),
        (GpuRequest(count=1), "7g.80gb"),
    ],
)
def test_mig_picks_the_smallest_profile_that_fits(request_, mig):
    plan = plan_gpu_for(request_, profile("mig", migProfiles=MIG))
    assert plan.limits == {f"nvidia.com/mig-{mig}": "1"}
    assert plan.env["CODESPACE_GPU_RESOURCE"] == f"nvidia.com/mig-{mig}"


def test_mig_refuses_more_memory_than_its_largest_profile():
    with pytest.raises(GpuUnsatisfiable, match=r"largest MIG profile is 3g\.40gb"):
        plan_gpu_for(GpuRequest(memory="50Gi"), profile("mig", migProfiles=MIG[:3]))


def test_hami_memory_request_sets_gpumem_in_mib():
    plan = plan_gpu_for(GpuRequest(memory="10Gi"), profile("hami", memory="40Gi"))
    assert plan.limits == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem": "10240",
        "nvidia.com/gpucores": "25",
    }
    assert plan.env["CODESPACE_GPU_MEMORY_MIB"] == "10240"


def test_hami_fraction_without_card_memory_uses_percentages():
    plan = plan_gpu_for(GpuRequest(fraction=0.3), profile("hami"))
    assert plan.limits == {
        "nvidia.com/gpu": "1",
        "nvidia.com/gpumem-percentage": "30",
        "nvidia.com/gpucores": "30",
    }


def test_volcano_vgpu_sets_scheduler_and_memory():
    plan = plan_gpu_for(GpuRequest(fraction=0.5), profile("vgpu", memory="16Gi"))
    assert plan.limits == {
        "volcano.sh/vgpu-number": "1",
        "volcano.sh/vgpu-memory": "8192",
        "volcano.sh/vgpu-cores": "50",
    }
    assert plan.scheduler_name == "volcano"


def test_runtime_class_and_node_placement_come_from_the_profile():
    p = profile(
        "exclusive",
        runtimeClassName="nvidia",
        nodeSelector={"nvidia.com/gpu.present": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    plan = plan_gpu_for(GpuRequest(count=1), p)
    assert plan.runtime_class_name == "nvidia"
    assert plan.node_selector == {"nvidia.com/gpu.present": "true"}


def test_a_request_no_profile_can_meet_names_the_request_and_every_profile():
    profiles = [Profile(name="cpu", default=True), profile("mig", migProfiles=MIG[:2])]
    with pytest.raises(GpuUnsatisfiable) as caught:
        choose_profile(GpuRequest(memory="40Gi"), profiles)
    message = str(caught.value)
    assert "40Gi of GPU memory" in message
    assert "'cpu'" in message and "'p-mig'" in message


def test_the_default_profile_is_passed_over_for_one_that_has_gpus():
    profiles = [Profile(name="cpu", default=True), profile("hami")]
    chosen, plan = choose_profile(GpuRequest(fraction=0.5), profiles)
    assert chosen.name == "p-hami"
    assert plan.granted


def test_a_named_profile_is_not_silently_replaced():
    profiles = [Profile(name="cpu", default=True), profile("hami")]
    with pytest.raises(GpuUnsatisfiable, match="'cpu' has no GPUs"):
        choose_profile(GpuRequest(fraction=0.5), profiles, wanted="cpu")


def test_an_optional_request_starts_without_a_gpu():
    chosen, plan = choose_profile(GpuRequest(count=1, optional=True), [Profile(name="cpu")])
    assert chosen.name == "cpu" and not plan.granted
    assert "starting without a GPU" in plan.note
    assert plan.env == {"CODESPACE_GPU_COUNT": "0"}


def test_an_optional_gpu_dropped_for_lack_of_a_free_one_keeps_the_profile_and_image():
    # the spawner's second try when no node has the GPU free (spawner.kubernetes._start)
    config = parse_config(
        {
            "build": {"gpuBaseImage": "registry.example.org/singleuser-gpu:1"},
            "profiles": [{"name": "cpu", "default": True}, EXAMPLE_PROFILES[0]],
        }
    )
    codespace = Codespace(resources={"gpu": {"count": 1, "optional": True}})
    options = UserOptions(repo="https://example.org/a/b.git")
    with_gpu = kube_plan(codespace, options, config)
    dropped = make_kube_plan(with_gpu.launch, config, without_gpu="no node has it free")
    assert with_gpu.gpu.granted and not dropped.gpu.granted
    assert dropped.profile.name == "whole" and dropped.image.image == with_gpu.image.image
    pod_env = dropped.env
    assert pod_env["CODESPACE_GPU_COUNT"] == "0" and "CODESPACE_GPU_RESOURCE" not in pod_env
    assert "nvidia.com/gpu" not in dropped.resources.get("limits", {})
    note = "starting without a GPU: no node has it free"
    assert dropped.warnings[0] == note
    assert note in RuntimePlan.from_json(pod_env[LAUNCH_ENV]).warnings  # CODESPACE_ERRORS.md


def test_sharing_preference_picks_the_matching_profile():
    profiles = [profile("exclusive"), profile("hami"), profile("mig", migProfiles=MIG)]
    chosen, _ = choose_profile(GpuRequest(fraction=0.2, sharing="mig"), profiles)
    assert chosen.name == "p-mig"


EXAMPLE_PROFILES = [
    {"name": "whole", "gpu": {"mode": "exclusive", "maxCount": 2, "runtimeClassName": "nvidia"}},
    {"name": "sliced", "gpu": {"mode": "time-slicing", "resource": "nvidia.com/gpu.shared"}},
    {"name": "mig", "gpu": {"mode": "mig", "migProfiles": MIG}},
    {"name": "hami", "gpu": {"mode": "hami", "memory": "24Gi", "schedulerName": "hami-scheduler"}},
    {"name": "vgpu", "gpu": {"mode": "vgpu", "memory": "16Gi"}},
]


@pytest.mark.parametrize("name", [p["name"] for p in EXAMPLE_PROFILES])
@pytest.mark.parametrize("gpu", [{"count": 1}, {"fraction": 0.5}, {"memory": "4Gi"}])
def test_every_mode_emits_schema_valid_objects(name, gpu):
    config = parse_config({"profiles": EXAMPLE_PROFILES})
    codespace = Codespace(resources={"gpu": gpu})
    plan = kube_plan(
        codespace, UserOptions(repo="https://example.org/a/b.git", profile=name), config, "f" * 64
    )
    assert plan.gpu.granted
    pod = plan.preview_pod()
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert set(plan.gpu.limits) <= set(limits)
    assert_all_valid(plan.objects())
