"""Kubernetes plans from a bare :class:`Codespace`, for tests of the renderers."""

from __future__ import annotations

from collections.abc import Sequence

from codespace.kube.config import KubeConfig
from codespace.kube.plan import KubePlan, Names, launch_plan, make_kube_plan
from codespace.options import UserOptions
from codespace.resolve import Resolution
from codespace.spec.model import Codespace


def resolution_of(codespace: Codespace, env_hash: str = "0" * 64) -> Resolution:
    return Resolution(codespace=codespace, source="(test)", source_kind="test", env_hash=env_hash)


def kube_plan(
    codespace: Codespace,
    options: UserOptions,
    config: KubeConfig,
    env_hash: str = "0" * 64,
    names: Names | None = None,
    pending: Sequence[str] = (),
) -> KubePlan:
    """The launch plan of ``codespace`` for a pod, rendered (as the spawner does)."""
    launch = launch_plan(resolution_of(codespace, env_hash), options, config, pending=pending)
    return make_kube_plan(launch, config, names or Names())
