"""The Kubernetes rendering of a launch plan: everything a spawn creates, in one pure function.

:func:`make_kube_plan` turns a :class:`~codespace.launch.LaunchPlan` (made for the pod's
placement by :func:`launch_plan`) and the admin's document into a :class:`KubePlan`. The
spawner applies :meth:`KubePlan.kubespawner_overrides` to KubeSpawner's traits and creates
:attr:`KubePlan.build_job` when the image is missing; ``codespace plan`` prints
:meth:`KubePlan.objects` (the build Job, the workspace PVC and a preview of the pod
KubeSpawner will create from the same overrides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from codespace.datasets.mounts import DatasetMount
from codespace.kube.build_job import build_job
from codespace.kube.config import KubeConfig, Profile
from codespace.kube.datasets import dataset_mounts
from codespace.kube.gpu import GpuPlan, choose_profile, no_gpu
from codespace.kube.image import ENV_PREFIX, ImageChoice, choose_image
from codespace.kube.quantity import to_bytes, to_cores
from codespace.kube.workspace import (
    checkout_path,
    clone_init_container,
    workspace_mount,
    workspace_pvc,
    workspace_volume,
)
from codespace.launch import LAUNCH_ENV, LaunchPlan, Placement, make_launch_plan
from codespace.options import UserOptions
from codespace.resolve import Resolution
from codespace.spec.model import Codespace

if TYPE_CHECKING:
    from codespace.kube.gitauth import GitAuthRef

COMPONENT_LABEL = "app.kubernetes.io/component"
SINGLEUSER_PORT = 8888
NB_UID = 1000
# The pod's command before the server's: applies the launch plan (codespace.kube.entrypoint).
ENTRYPOINT = ("codespace-start", "--")


# Every KubeSpawner trait KubePlan.kubespawner_overrides() may set.
OVERRIDE_TRAITS = (
    "image",
    "environment",
    "extra_labels",
    "extra_annotations",
    "init_containers",
    "volumes",
    "volume_mounts",
    "working_dir",
    "extra_resource_limits",
    "node_selector",
    "tolerations",
    "fs_gid",
    "storage_pvc_ensure",
    "storage_capacity",
    "storage_access_modes",
    "storage_class",
    "cpu_limit",
    "cpu_guarantee",
    "mem_limit",
    "mem_guarantee",
    "scheduler_name",
    "extra_pod_config",
    "image_pull_secrets",
)


class PlanError(ValueError):
    """The codespace cannot run under the chosen profile; the message says why."""


@dataclass(frozen=True)
class Names:
    """Object names the spawner owns (KubeSpawner computes them from its templates)."""

    namespace: str = "codespaces"
    pod: str = "jupyter-user"
    pvc: str = "claim-user"


@dataclass
class KubePlan:
    launch: LaunchPlan
    profile: Profile
    image: ImageChoice
    gpu: GpuPlan
    datasets: list[DatasetMount]
    names: Names
    env: dict[str, str]
    labels: dict[str, str]
    annotations: dict[str, str]
    init_containers: list[dict]
    volumes: list[dict]
    volume_mounts: list[dict]
    working_dir: str
    resources: dict[str, Any]  # cpu_limit, cpu_guarantee, mem_limit, mem_guarantee
    node_selector: dict[str, str]
    tolerations: list[dict]
    pvc: dict
    build_job: dict | None
    pull_secrets: list[str]
    fs_gid: int
    warnings: list[str] = field(default_factory=list)

    def kubespawner_overrides(self) -> dict[str, Any]:
        """KubeSpawner trait name -> value; applied as a profile's kubespawner_override."""
        overrides: dict[str, Any] = {
            "image": self.image.image,
            "environment": dict(self.env),
            "extra_labels": dict(self.labels),
            "extra_annotations": dict(self.annotations),
            "init_containers": [dict(c) for c in self.init_containers],
            "volumes": [dict(v) for v in self.volumes],
            "volume_mounts": [dict(m) for m in self.volume_mounts],
            "working_dir": self.working_dir,
            "extra_resource_limits": dict(self.gpu.limits),
            "node_selector": dict(self.node_selector),
            "tolerations": [dict(t) for t in self.tolerations],
            "fs_gid": self.fs_gid,
            "storage_pvc_ensure": True,
            "storage_capacity": self.pvc["spec"]["resources"]["requests"]["storage"],
            "storage_access_modes": list(self.pvc["spec"]["accessModes"]),
            "storage_class": self.pvc["spec"].get("storageClassName"),
        }
        for trait, value in self.resources.items():
            if value is not None:
                overrides[trait] = to_bytes(value) if trait.startswith("mem") else value
        if self.gpu.scheduler_name:
            overrides["scheduler_name"] = self.gpu.scheduler_name
        if self.gpu.runtime_class_name:
            overrides["extra_pod_config"] = {"runtimeClassName": self.gpu.runtime_class_name}
        if self.pull_secrets:
            overrides["image_pull_secrets"] = list(self.pull_secrets)
        return overrides

    def preview_pod(self) -> dict:
        """The pod KubeSpawner will create from these overrides, minus what the hub adds
        at spawn time (API token, server URL: ``JUPYTERHUB_*`` variables)."""
        limits: dict[str, str] = dict(self.gpu.limits)
        requests: dict[str, str] = {}
        for key, trait in (("cpu", "cpu_limit"), ("memory", "mem_limit")):
            if self.resources.get(trait) is not None:
                limits[key] = str(self.resources[trait])
        for key, trait in (("cpu", "cpu_guarantee"), ("memory", "mem_guarantee")):
            if self.resources.get(trait) is not None:
                requests[key] = str(self.resources[trait])
        container = {
            "name": "notebook",
            "image": self.image.image,
            "args": [*ENTRYPOINT, "jupyterhub-singleuser"],
            "ports": [{"name": "notebook-port", "containerPort": SINGLEUSER_PORT}],
            "env": [{"name": k, "value": v} for k, v in sorted(self.env.items())],
            "volumeMounts": self.volume_mounts,
            "workingDir": self.working_dir,
            "resources": {"limits": limits, "requests": requests},
            "securityContext": {"runAsUser": NB_UID, "allowPrivilegeEscalation": False},
        }
        spec: dict[str, Any] = {
            "securityContext": {"fsGroup": self.fs_gid},
            "initContainers": self.init_containers,
            "containers": [container],
            "volumes": self.volumes,
            "restartPolicy": "OnFailure",
        }
        if self.node_selector:
            spec["nodeSelector"] = self.node_selector
        if self.tolerations:
            spec["tolerations"] = self.tolerations
        if self.gpu.scheduler_name:
            spec["schedulerName"] = self.gpu.scheduler_name
        if self.gpu.runtime_class_name:
            spec["runtimeClassName"] = self.gpu.runtime_class_name
        if self.pull_secrets:
            spec["imagePullSecrets"] = [{"name": name} for name in self.pull_secrets]
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.names.pod,
                "namespace": self.names.namespace,
                "labels": {"component": "singleuser-server", **self.labels},
                "annotations": self.annotations,
            },
            "spec": spec,
        }

    def objects(self) -> list[dict]:
        """Every object a spawn may create, in creation order."""
        first = [self.build_job] if self.build_job else []
        return [*first, self.pvc, self.preview_pod()]


def _resources(codespace: Codespace, profile: Profile) -> dict[str, Any]:
    """cpu/memory limits from the profile; the spec's amounts become guarantees (<= limit)."""
    wanted_cpu, wanted_mem = codespace.resources.cpu, codespace.resources.memory
    if wanted_cpu is not None and profile.cpu is not None:
        if to_cores(wanted_cpu) > to_cores(profile.cpu):
            raise PlanError(
                f"the codespace asks for {to_cores(wanted_cpu):g} CPU; profile {profile.name!r} "
                f"allows {to_cores(profile.cpu):g}"
            )
    if wanted_mem is not None and profile.memory is not None:
        if to_bytes(wanted_mem) > to_bytes(profile.memory):
            raise PlanError(
                f"the codespace asks for {wanted_mem} memory; profile {profile.name!r} "
                f"allows {profile.memory}"
            )
    cpu_guarantee = wanted_cpu if wanted_cpu is not None else profile.cpuGuarantee
    return {
        "cpu_limit": to_cores(profile.cpu) if profile.cpu is not None else None,
        "cpu_guarantee": to_cores(cpu_guarantee) if cpu_guarantee is not None else None,
        "mem_limit": profile.memory,
        "mem_guarantee": wanted_mem if wanted_mem is not None else profile.memoryGuarantee,
    }


def kube_placement(codespace: Codespace, repo: str, config: KubeConfig) -> Placement:
    """Where a pod has the workspace (the PVC's checkout) and the environment (the image's)."""
    workspace = codespace.workspaceFolder or checkout_path(repo, config.workspace)
    return Placement("kubernetes", workspace, ENV_PREFIX)


def launch_plan(
    resolution: Resolution,
    options: UserOptions,
    config: KubeConfig,
    *,
    pending: Sequence[str] = (),
    recovery: bool = False,
    problems: Sequence[str] = (),
) -> LaunchPlan:
    """The launch plan of a Kubernetes codespace (see :func:`codespace.launch.make_launch_plan`)."""
    placement = kube_placement(resolution.codespace, options.repo, config)
    return make_launch_plan(
        resolution, options, placement, pending=pending, recovery=recovery, problems=problems
    )


def make_kube_plan(
    launch: LaunchPlan,
    config: KubeConfig,
    names: Names = Names(),
    git_auth: GitAuthRef | None = None,
    without_gpu: str | None = None,
) -> KubePlan:
    """Render a launch plan into every object of a spawn.

    Raises GpuUnsatisfiable / PlanError / DatasetNotReady. The pod runs ``codespace-start``
    (:mod:`codespace.kube.entrypoint`) before the server: it applies the plan's runtime part,
    passed as JSON in ``CODESPACE_LAUNCH`` (the server's variables, the lifecycle commands,
    ``CODESPACE_ERRORS.md``, with this plan's warnings). ``git_auth``: the clones (the
    workspace's init container, the build Job's) read the user's Git host token from that
    Secret (:mod:`codespace.kube.gitauth`). ``without_gpu``: why an optional GPU the profile
    grants is dropped (the cluster has none free); the profile and the image stay the same.
    """
    codespace = launch.spec
    profile, gpu = choose_profile(codespace.resources.gpu, config.profiles, wanted=launch.profile)
    env_hash = launch.environment.env_hash
    image = choose_image(codespace, config, launch.repo, env_hash, gpu=gpu.granted)
    if without_gpu is not None:
        gpu = no_gpu(f"starting without a GPU: {without_gpu}")
    warnings = [gpu.note] if gpu.note else []
    warnings += list(getattr(image, "warnings", ()))
    mounts = dataset_mounts(launch.datasets, cache_affinity=profile.datasetCacheAffinity)
    workspace = config.workspace
    labels = {COMPONENT_LABEL: "codespace", "codespace.io/profile": profile.name, **mounts.labels}
    annotations = {
        "codespace.io/repo": launch.repo,
        "codespace.io/ref": launch.ref or "",
        "codespace.io/env-hash": env_hash,
        "codespace.io/image": image.image,
    }
    runtime = launch.runtime()  # with the profile this pod runs under
    runtime = replace(
        runtime,
        variables={**runtime.variables, "CODESPACE_PROFILE": profile.name},
        warnings=(*runtime.warnings, *warnings),  # CODESPACE_ERRORS.md says them too
    )
    env = {
        **runtime.static_env(),
        "CODESPACE_IMAGE": image.image,
        "CODESPACE_PROFILE": profile.name,
        "CODESPACE_WORKSPACE_CLAIM": names.pvc,  # jobs (Argo) mount the same workspace
        **gpu.env,
        LAUNCH_ENV: runtime.to_json(),
    }
    pvc_labels = {COMPONENT_LABEL: "codespace-workspace"}
    build = None
    if image.needs_build:
        build = build_job(
            image,
            config,
            repo=launch.repo,
            ref=launch.ref,
            namespace=names.namespace,
            git_auth=git_auth,
        )
    clone = clone_init_container(image.image, launch.repo, launch.ref, workspace, git_auth=git_auth)
    return KubePlan(
        launch=launch,
        profile=profile,
        image=image,
        gpu=gpu,
        datasets=list(launch.datasets),
        names=names,
        env=env,
        labels=labels,
        annotations=annotations,
        init_containers=[clone],
        volumes=[workspace_volume(names.pvc), *mounts.volumes],
        volume_mounts=[workspace_mount(workspace), *mounts.mounts],
        working_dir=launch.placement.workspace,
        resources=_resources(codespace, profile),
        node_selector={**profile.nodeSelector, **gpu.node_selector},
        tolerations=[*profile.tolerations, *gpu.tolerations],
        pvc=workspace_pvc(names.pvc, names.namespace, workspace, pvc_labels),
        build_job=build,
        pull_secrets=list(config.registry.pullSecrets),
        fs_gid=workspace.fsGroup,
        warnings=warnings,
    )
