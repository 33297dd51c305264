"""Local GPU grants: what a codespace on one machine gets for its GPU request."""

from __future__ import annotations

import shutil

import pytest

from codespace.gpu import Gpu, GpuUnavailable, discover, grant, parse_nvidia_smi
from codespace.spec.model import Resources

SMI = """0, GPU-aaaa, NVIDIA H100 80GB HBM3, 81559, 1024
1, GPU-bbbb, NVIDIA H100 80GB HBM3, 81559, 80000
"""


def gpus() -> list[Gpu]:
    return parse_nvidia_smi(SMI)


def request(value):
    return Resources(gpu=value).gpu


def test_parse_nvidia_smi_reads_every_gpu_and_skips_noise():
    parsed = parse_nvidia_smi(SMI + "garbage line\n")
    assert [(g.index, g.uuid, g.memory_mib, g.used_mib) for g in parsed] == [
        (0, "GPU-aaaa", 81559, 1024),
        (1, "GPU-bbbb", 81559, 80000),
    ]


def test_whole_gpus_are_exclusive_and_visible_through_cuda_visible_devices():
    first = grant(request(1), gpus(), exclusive_in_use=set())
    assert first.env()["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"
    # the same words as the Kubernetes builders' whole-GPU mode
    assert first.env()["CODESPACE_GPU_SHARING"] == "exclusive"
    assert first.env()["CODESPACE_GPU_MEMORY_MIB"] == "81559"
    second = grant(request(1), gpus(), exclusive_in_use=set(first.devices))
    assert second.env()["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb"
    with pytest.raises(GpuUnavailable, match="1 whole GPU; this machine has 2 GPU"):
        grant(request(1), gpus(), exclusive_in_use={"GPU-aaaa", "GPU-bbbb"})


def test_a_fraction_shares_the_gpu_with_enough_free_memory():
    share = grant(request({"fraction": 0.25}), gpus(), exclusive_in_use=set())
    env = share.env()
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"
    assert env["CODESPACE_GPU_SHARING"] == "shared"
    assert env["CODESPACE_GPU_FRACTION"] == "0.25"
    # GPU-bbbb is almost full, so a memory request lands on GPU-aaaa too.
    assert grant(request({"memory": "10Gi"}), gpus(), set()).devices == ["GPU-aaaa"]


def test_a_gpu_with_a_share_promised_elsewhere_is_not_given_whole_or_overbooked():
    shared = {"GPU-aaaa": 60000}
    whole = grant(request(1), gpus(), set(), shared)
    assert whole.devices == ["GPU-bbbb"]
    with pytest.raises(GpuUnavailable, match="no GPU on this machine has that much free"):
        grant(request({"memory": "30Gi"}), gpus(), set(), shared)
    assert grant(request({"memory": "10Gi"}), gpus(), set(), shared).devices == ["GPU-aaaa"]


def test_kube_whole_gpu_mode_announces_the_same_sharing_word():
    from codespace.kube.config import parse_config
    from codespace.kube.gpu import choose_profile

    config = parse_config({"profiles": [{"name": "gpu", "gpu": {"mode": "exclusive"}}]})
    _, plan = choose_profile(request(1), config.profiles)
    local = grant(request(1), gpus(), set())
    assert plan.env["CODESPACE_GPU_SHARING"] == local.env()["CODESPACE_GPU_SHARING"]
    assert plan.env["CODESPACE_GPU_COUNT"] == local.env()["CODESPACE_GPU_COUNT"] == "1"


def test_no_gpu_is_a_clear_error_unless_optional():
    with pytest.raises(GpuUnavailable, match="this machine has no NVIDIA GPU"):
        grant(request({"fraction": 0.5}), [], set())
    optional = grant(request({"count": 1, "optional": True}), [], set())
    assert optional.devices == [] and "starting without a GPU" in optional.note
    assert optional.env()["CUDA_VISIBLE_DEVICES"] == ""


def test_no_request_means_no_gpu_and_no_error():
    assert grant(None, gpus(), set()).env()["CODESPACE_GPU_COUNT"] == "0"


@pytest.mark.skipif(not shutil.which("nvidia-smi"), reason="hardware: no NVIDIA GPU here")
def test_discover_reads_the_real_driver():
    found = discover()
    assert found, "nvidia-smi is present but reported no GPU"
    assert all(gpu.uuid.startswith(("GPU-", "MIG-")) and gpu.memory_mib > 0 for gpu in found)
    share = grant(request({"fraction": 0.5}), found, set())
    assert share.devices == [found[0].uuid]
