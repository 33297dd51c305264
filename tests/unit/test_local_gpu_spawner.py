"""The local spawner's GPU decision, with a fake ``nvidia-smi`` (no GPU on this machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from codespace import gpu
from codespace.local.gpu_grants import GpuRegistry
from codespace.spec.model import Codespace
from spawner.local import LocalCodespaceSpawner
from spawner.progress import ProgressLog

SMI = """0, GPU-aaaa, NVIDIA H100 80GB HBM3, 81559, 0
1, GPU-bbbb, NVIDIA H100 80GB HBM3, 81559, 0
"""


@pytest.fixture(autouse=True)
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gpu, "discover", lambda: gpu.parse_nvidia_smi(SMI))


def spawner(tmp_path: Path, server: str) -> LocalCodespaceSpawner:
    return LocalCodespaceSpawner(
        data_dir=str(tmp_path),
        user=SimpleNamespace(name="alice"),
        orm_spawner=SimpleNamespace(name=server, server=None),
    )


def claim(s: LocalCodespaceSpawner, gpu_request) -> tuple[dict[str, str], str]:
    log = ProgressLog()
    s._claim_gpu(Codespace(resources={"gpu": gpu_request}), log)
    return s._gpu_env, "\n".join(str(e["message"]) for e in log.events)


def test_whole_gpus_go_to_one_server_each_until_released(tmp_path: Path) -> None:
    first, second, third = (spawner(tmp_path, name) for name in ("a", "b", "c"))
    env, text = claim(first, 1)
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"
    assert env["CODESPACE_GPU_SHARING"] == "exclusive"
    assert "GPU: 1 whole GPU granted: GPU-aaaa (exclusive)" in text
    assert claim(second, 1)[0]["CUDA_VISIBLE_DEVICES"] == "GPU-bbbb"

    with pytest.raises(gpu.GpuUnavailable, match="GPU request not met: asked for 1 whole GPU"):
        claim(third, 1)
    env, text = claim(third, {"count": 1, "optional": True})
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["CODESPACE_GPU_COUNT"] == "0"
    assert "warning: GPU: starting without a GPU" in text

    first._release_gpu()  # what stop() does
    assert claim(third, 1)[0]["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa"


def test_a_share_is_announced_and_a_second_share_fits_beside_it(tmp_path: Path) -> None:
    env, _ = claim(spawner(tmp_path, "a"), {"fraction": 0.5})
    assert env["CODESPACE_GPU_SHARING"] == "shared"
    assert env["CODESPACE_GPU_FRACTION"] == "0.5"
    assert claim(spawner(tmp_path, "b"), {"fraction": 0.5})[0]["CUDA_VISIBLE_DEVICES"] == (
        "GPU-aaaa"
    )
    # GPU-aaaa is fully promised now; a third half lands on the other GPU.
    assert claim(spawner(tmp_path, "c"), {"fraction": 0.5})[0]["CUDA_VISIBLE_DEVICES"] == (
        "GPU-bbbb"
    )


def test_a_server_that_died_frees_its_gpu(tmp_path: Path) -> None:
    holder = spawner(tmp_path, "a")
    claim(holder, 2)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    GpuRegistry(tmp_path).started("alice/a", int(gone.stdout))
    assert claim(spawner(tmp_path, "b"), 2)[0]["CUDA_VISIBLE_DEVICES"] == "GPU-aaaa,GPU-bbbb"


def test_no_request_hides_the_gpus_without_asking_the_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> list:
        raise AssertionError("nvidia-smi was run for a codespace that asked for no GPU")

    monkeypatch.setattr(gpu, "discover", refuse)
    env, _ = claim(spawner(tmp_path, "a"), None)
    assert env == {"CUDA_VISIBLE_DEVICES": "", "CODESPACE_GPU_COUNT": "0"}
