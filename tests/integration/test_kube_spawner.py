"""A real JupyterHub with KubeCodespaceSpawner against the fake Kubernetes API.

KubeSpawner's own code (reflectors, PVC and pod creation, readiness, stop) runs unchanged;
the fake kubelet runs the pod's ``jupyterhub-singleuser`` as a local process, so the lab is
reached through the real proxy. No Kubernetes cluster is involved.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.fakekube import FakeKube, JobOutcome
from tests.helpers.hub import running_hub
from tests.helpers.k8s_schema import assert_valid
from tests.helpers.repos import commit_files, make_repo

pytestmark = pytest.mark.integration

NAMESPACE = "codespaces"
VENV_BIN = str(Path(sys.executable).parent)


def kube_document(kube: FakeKube) -> dict:
    return {
        "registry": {"prefix": f"{kube.registry_host}/codespaces", "insecure": True},
        "build": {"baseImage": "registry.example.org/singleuser:test"},
        "profiles": [
            {"name": "small", "default": True, "cpu": 2, "memory": "4Gi"},
            {"name": "gpu", "cpu": 4, "memory": "16Gi", "gpu": {"mode": "exclusive"}},
        ],
    }


@pytest.fixture(scope="module")
def kube():
    with FakeKube() as fake:
        fake.namespaces.add(NAMESPACE)
        fake.kubelet.base_env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin"}
        built: list[dict] = []

        def build(job: dict) -> JobOutcome:
            built.append(job)
            image = job["metadata"]["annotations"]["codespace.io/image"]
            if "nosuchpackage" in json.dumps(job):
                return JobOutcome(
                    succeeded=False,
                    log="#5 [2/6] RUN apt-get update\nE: Unable to locate package nosuchpackage\n",
                )
            fake.registry.add(image)
            return JobOutcome(log=f"#1 building {image}\n#9 pushing {image} done\n")

        fake.job_handler = build
        fake.built = built
        yield fake


@pytest.fixture(scope="module")
def hub(kube, tmp_path_factory):
    data = tmp_path_factory.mktemp("kubehub")
    kubeconfig = kube.kubeconfig(data / "kubeconfig", namespace=NAMESPACE)
    extra = f"""
c.JupyterHub.spawner_class = "spawner.kubernetes.KubeCodespaceSpawner"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}  # answer 202, follow progress
c.KubeCodespaceSpawner.namespace = {NAMESPACE!r}
c.KubeCodespaceSpawner.codespace_config = {kube_document(kube)!r}
c.KubeCodespaceSpawner.args = ["--ServerApp.allow_root=True"]
c.KubeCodespaceSpawner.start_timeout = 120
c.KubeCodespaceSpawner.http_timeout = 60
"""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    with running_hub(data / "hub", extra_config=extra, base_config=None, env=env) as running:
        yield running


def pods(kube: FakeKube) -> dict[str, dict]:
    return {
        p["metadata"]["name"]: p
        for p in kube.list("v1", "pods", NAMESPACE)
        if "job-name" not in p["metadata"].get("labels", {})
    }


def messages(events: list[dict]) -> str:
    return "\n".join(str(event.get("message", "")) for event in events)


def test_spawn_builds_then_serves_the_lab_and_stop_keeps_the_workspace(kube, hub, tmp_path):
    repo = make_repo(
        tmp_path / "proj",
        {
            ".codespace/codespace.yaml": "python:\n  requirements: [requirements.txt]\n"
            "containerEnv: {GREETING: '{username} hi'}\n",
            "requirements.txt": "rich\n",
            "main.py": "print(1)\n",
        },
    )
    events = hub.spawn("alice", "demo", {"repo": str(repo)}, timeout=180)
    text = messages(events)
    assert events[-1].get("ready"), text + hub.log_text()[-3000:]
    assert "Building image" in text and "pushing" in text  # the build log streamed
    assert "Successfully assigned" in text  # KubeSpawner's pod events follow ours
    assert len(kube.built) == 1
    assert_valid(kube.built[0])

    pod = pods(kube)["jupyter-alice--demo"]
    assert_valid({k: v for k, v in pod.items() if k != "status"})
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    image = kube.built[0]["metadata"]["annotations"]["codespace.io/image"]
    assert container["image"] == image
    assert env["CODESPACE_IMAGE"] == image
    assert env["GREETING"] == "{username} hi"  # data, not a KubeSpawner template
    assert pod["spec"]["initContainers"][0]["name"] == "clone-repository"
    assert kube.get("v1", "persistentvolumeclaims", NAMESPACE, "claim-alice--demo")

    response = hub.server_request("alice", "demo", "api/status")
    assert response.status_code == 200, response.text
    assert "started" in response.json()

    hub.stop("alice", "demo")
    assert "jupyter-alice--demo" not in pods(kube)
    assert kube.get("v1", "persistentvolumeclaims", NAMESPACE, "claim-alice--demo")

    # a code-only commit: same environment hash, the image is in the registry, no build
    commit_files(repo, {"main.py": "print(2)\n"})
    events = hub.spawn("alice", "demo", {"repo": str(repo)}, timeout=180)
    assert events[-1].get("ready"), messages(events)
    assert "no build needed" in messages(events)
    assert len(kube.built) == 1
    hub.stop("alice", "demo")


def test_an_unbound_dataset_fails_the_spawn_at_once(kube, hub, tmp_path):
    kube.create(
        {
            "apiVersion": "data.fluid.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "imagenet", "namespace": NAMESPACE},
            "spec": {"mounts": [{"mountPoint": "s3://bucket/imagenet", "name": "imagenet"}]},
        }
    )
    status = {
        "phase": "NotBound",
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "NoRuntime", "message": "no runtime"}
        ],
    }
    assert_valid(
        kube.set_status("data.fluid.io/v1alpha1", "datasets", NAMESPACE, "imagenet", status)
    )
    repo = make_repo(tmp_path / "data", {"README.md": "x\n"})
    events = hub.spawn("bob", "data", {"repo": str(repo), "datasets": "imagenet"}, timeout=60)
    assert events[-1].get("failed"), messages(events)
    assert "dataset 'imagenet' in namespace 'codespaces' is NotBound" in events[-1]["message"]
    assert "no runtime" in events[-1]["message"]
    assert "jupyter-bob--data" not in pods(kube)


def test_a_bound_dataset_is_mounted_from_the_pvc_fluid_made(kube, hub, tmp_path):
    dataset = {
        "apiVersion": "data.fluid.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "mnist", "namespace": NAMESPACE},
        "spec": {"mounts": [{"mountPoint": "s3://bucket/mnist", "name": "mnist"}]},
    }
    kube.create(dataset)
    kube.set_status("data.fluid.io/v1alpha1", "datasets", NAMESPACE, "mnist", {"phase": "Bound"})
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "mnist", "namespace": NAMESPACE},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kube.create(assert_valid(claim), plural="persistentvolumeclaims")
    repo = make_repo(
        tmp_path / "mnist",
        {".codespace/codespace.yaml": "datasets: [{name: mnist, mountPath: /data/mnist}]\n"},
    )
    events = hub.spawn("frank", "ml", {"repo": str(repo)}, timeout=120)
    assert events[-1].get("ready"), messages(events)
    pod = pods(kube)["jupyter-frank--ml"]
    assert pod["metadata"]["labels"]["fuse.serverful.fluid.io/inject"] == "true"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["dataset-mnist"]["persistentVolumeClaim"]["claimName"] == "mnist"
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/data/mnist"]["readOnly"] is True
    hub.stop("frank", "ml")


def test_a_spec_error_starts_a_recovery_codespace_and_says_why(kube, hub, tmp_path):
    repo = make_repo(tmp_path / "broken", {".codespace/codespace.yaml": "pythn: {}\n"})
    events = hub.spawn("gina", "broken", {"repo": str(repo)}, timeout=120)
    text = messages(events)
    assert events[-1].get("ready"), text
    assert "recovery codespace" in text and ".codespace/codespace.yaml:1" in text
    hub.stop("gina", "broken")


def test_an_image_that_cannot_be_pulled_fails_the_spawn_at_once(kube, hub, tmp_path):
    # A devcontainer image is the base of the codespace's image (built with the platform
    # added); here the registry loses the built image, so the pull fails.
    kube.kubelet.pullable = lambda image: "unpullable" not in image
    try:
        repo = make_repo(
            tmp_path / "unpullable",
            {".codespace/codespace.yaml": "image: registry.example.org/missing:1\n"},
        )
        events = hub.spawn("carol", "img", {"repo": str(repo)}, timeout=60)
    finally:
        kube.kubelet.pullable = lambda image: True
    assert events[-1].get("failed"), messages(events)
    assert "ErrImagePull" in events[-1]["message"] or "ImagePullBackOff" in events[-1]["message"]
    assert "unpullable" in events[-1]["message"]
    hub.stop("carol", "img")
    assert "jupyter-carol--img" not in pods(kube)


def test_an_unschedulable_gpu_pod_fails_the_spawn_at_once(kube, hub, tmp_path):
    repo = make_repo(tmp_path / "gpu", {".codespace/codespace.yaml": "resources: {gpu: 1}\n"})
    events = hub.spawn("dave", "gpu", {"repo": str(repo)}, timeout=60)
    assert events[-1].get("failed"), messages(events)
    assert "Insufficient nvidia.com/gpu" in events[-1]["message"]
    hub.stop("dave", "gpu")
    assert "jupyter-dave--gpu" not in pods(kube)  # the pending pod was deleted


def test_an_optional_gpu_no_node_has_free_starts_the_codespace_without_it(kube, hub, tmp_path):
    spec = "resources: {gpu: {count: 1, optional: true}}\n"
    repo = make_repo(tmp_path / "maybe-gpu", {".codespace/codespace.yaml": spec})
    events = hub.spawn("ivy", "gpu", {"repo": str(repo)}, timeout=120)
    text = messages(events)
    assert events[-1].get("ready"), text + hub.log_text()[-3000:]
    # the progress says why: the scheduler's reason, then the start without the GPU
    assert "starting without a GPU: no node has nvidia.com/gpu free now" in text, text
    assert "Insufficient nvidia.com/gpu" in text
    pod = pods(kube)["jupyter-ivy--gpu"]
    container = pod["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    assert pod["metadata"]["labels"]["codespace.io/profile"] == "gpu"  # the profile it chose
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["CODESPACE_GPU_COUNT"] == "0"
    runtime = json.loads(env["CODESPACE_LAUNCH"])  # CODESPACE_ERRORS.md says it too
    assert any("starting without a GPU" in warning for warning in runtime["warnings"])
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/CODESPACE_ERRORS.md"
    assert hub.server_request("ivy", "gpu", "api/status").status_code == 200
    hub.stop("ivy", "gpu")


def test_a_namespace_quota_with_no_gpu_left(kube, hub, tmp_path):
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "gpus", "namespace": NAMESPACE},
        "spec": {"hard": {"requests.nvidia.com/gpu": "0"}},
    }
    kube.create(quota)
    kube.kubelet.capacity["nvidia.com/gpu"] = "1"  # a node has one: only the quota says no
    try:
        spec = "resources: {gpu: {count: 1, optional: true}}\n"
        optional = make_repo(tmp_path / "optional", {".codespace/codespace.yaml": spec})
        events = hub.spawn("jack", "opt", {"repo": str(optional)}, timeout=120)
        text = messages(events)
        assert events[-1].get("ready"), text
        assert (
            "starting without a GPU: the namespace's quota has no GPU left "
            '(pods "jupyter-jack--opt" is forbidden: exceeded quota: gpus' in text
        ), text
        container = pods(kube)["jupyter-jack--opt"]["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
        hub.stop("jack", "opt")

        required = make_repo(
            tmp_path / "required", {".codespace/codespace.yaml": "resources: {gpu: 1}\n"}
        )
        events = hub.spawn("jack", "req", {"repo": str(required)}, timeout=60)
        failure = events[-1].get("message", "")
        assert events[-1].get("failed"), messages(events)
        assert (
            'The codespace cannot start: pods "jupyter-jack--req" is forbidden: exceeded quota: '
            "gpus, requested: requests.nvidia.com/gpu=1" in failure
        ), failure
        assert "HTTP response headers" not in failure  # not KubeSpawner's raw ApiException
        hub.stop("jack", "req")
    finally:
        kube.delete("v1", "resourcequotas", NAMESPACE, "gpus")
        kube.kubelet.capacity.pop("nvidia.com/gpu", None)


def test_a_failed_build_gives_a_recovery_codespace_with_its_log(kube, hub, tmp_path):
    repo = make_repo(tmp_path / "bad", {".codespace/codespace.yaml": "apt: [nosuchpackage]\n"})
    events = hub.spawn("erin", "bad", {"repo": str(repo)}, timeout=120)
    text = messages(events)
    assert events[-1].get("ready"), text  # never locked out
    assert "image build failed" in text and "starting a recovery codespace" in text
    assert "Unable to locate package nosuchpackage" in text
    pod = pods(kube)["jupyter-erin--bad"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/singleuser:test"  # the platform's
    assert container["args"][:2] == ["codespace-start", "--"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    runtime = json.loads(env["CODESPACE_LAUNCH"])  # what the entrypoint writes and runs
    assert runtime["recovery"] is True
    problem = "\n".join(runtime["problems"])
    assert "The image could not be built" in problem and "nosuchpackage" in problem
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/lab/tree/CODESPACE_ERRORS.md"  # the lab opens it
    response = hub.server_request("erin", "bad", "api/status")
    assert response.status_code == 200
    hub.stop("erin", "bad")
