"""The spawner's own parts: fail-fast reading of pods, template escaping, registry check."""

from __future__ import annotations

import asyncio
import json

import pytest

from spawner.kube.build import BuildFailed, run_build_job
from spawner.kube.failfast import gpu_shortage, pod_failure, quota_refusal
from spawner.kube.registry import Credentials, ImageRef, image_exists
from spawner.kubernetes import KubeCodespaceSpawner, escape_braces
from spawner.progress import ProgressLog
from tests.fakekube import FakeKube


def pending(**status) -> dict:
    return {"metadata": {"name": "jupyter-a"}, "status": {"phase": "Pending", **status}}


def test_image_pull_errors_end_the_spawn():
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'}
    pod = pending(containerStatuses=[{"name": "notebook", "state": {"waiting": waiting}}])
    assert pod_failure(pod) == 'container notebook: ImagePullBackOff: Back-off pulling image "x:1"'


def test_a_failed_clone_init_container_ends_the_spawn():
    terminated = {"exitCode": 128, "message": "fatal: repository not found"}
    pod = pending(
        initContainerStatuses=[{"name": "clone-repository", "state": {"terminated": terminated}}]
    )
    assert "init container clone-repository failed with exit code 128" in pod_failure(pod)


def test_unschedulable_ends_the_spawn_unless_the_autoscaler_is_adding_a_node():
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    }
    pod = pending(conditions=[condition])
    assert "Insufficient nvidia.com/gpu" in pod_failure(pod)
    scale_up = [
        {"reason": "TriggeredScaleUp", "type": "Normal", "message": "pod triggered scale-up"}
    ]
    assert pod_failure(pod, scale_up) is None
    assert pod_failure(pod, event_reasons=()) is None  # configured off


def test_a_gpu_shortage_is_told_from_other_reasons_a_pod_waits():
    reason = pod_failure(
        pending(
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/3 nodes are available: 1 Insufficient cpu, 3 Insufficient "
                    "nvidia.com/mig-1g.10gb.",
                }
            ]
        )
    )
    assert gpu_shortage(reason, ["nvidia.com/mig-1g.10gb"])
    assert not gpu_shortage(reason, ["nvidia.com/gpu"])  # not the resource this pod asks for
    assert not gpu_shortage("0/3 nodes are available: 3 Insufficient memory.", [])


def test_a_quota_refusal_is_read_from_the_api_servers_status():
    message = (
        'pods "jupyter-a" is forbidden: exceeded quota: gpus, requested: '
        "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=2, limited: "
        "requests.nvidia.com/gpu=2"
    )
    body = json.dumps({"kind": "Status", "code": 403, "message": message})
    assert quota_refusal(403, body) == message
    assert gpu_shortage(message, ["nvidia.com/gpu"])
    assert quota_refusal(403, json.dumps({"message": "pods is forbidden: RBAC"})) is None
    assert quota_refusal(409, body) is None and quota_refusal(403, None) is None


def test_the_progress_puts_what_is_said_after_the_plan_before_the_next_pod_event():
    async def scenario() -> list[str]:
        log = ProgressLog()
        log.step(2, "Reading the codespace spec")
        log.close()

        async def pod_events():
            yield {"message": "FailedScheduling: 0/1 nodes: 1 Insufficient nvidia.com/gpu"}
            log.step(62, "warning: starting without a GPU; creating the pod again")
            yield {"message": "Successfully assigned jupyter-a to node-1"}
            log.step(99, "said after the last pod event")

        return [str(event["message"]) async for event in log.then(pod_events())]

    said = [message.split("] ", 1)[-1] for message in asyncio.run(scenario())]
    assert said == [
        "Reading the codespace spec",
        "FailedScheduling: 0/1 nodes: 1 Insufficient nvidia.com/gpu",
        "warning: starting without a GPU; creating the pod again",
        "Successfully assigned jupyter-a to node-1",
        "said after the last pod event",
    ]


def test_a_pod_that_is_merely_pulling_is_left_alone():
    waiting = {"reason": "ContainerCreating"}
    pod = pending(containerStatuses=[{"name": "notebook", "state": {"waiting": waiting}}])
    assert pod_failure(pod, [{"type": "Normal", "reason": "Pulling", "message": "x"}]) is None


def test_user_data_is_escaped_for_kubespawner_templates():
    assert escape_braces({"A": ["{username}", 1]}) == {"A": ["{{username}}", 1]}


def test_spawner_defaults_come_from_the_document(monkeypatch):
    # no API server is contacted for this: KubeSpawner's client set-up is stubbed out
    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kw: None)
    monkeypatch.setattr("kubespawner.spawner.shared_client", lambda name: None)
    spawner = KubeCodespaceSpawner(_mock=True)
    spawner.codespace_config = {"profiles": [{"name": "a"}, {"name": "b", "displayName": "Big"}]}
    assert [p.name for p in spawner.kube_config().profiles] == ["a", "b"]
    spawner.fluid_datasets = False  # no Dataset listing without an API server
    assert 'value="b">Big' in asyncio.run(spawner.options_form(spawner))
    assert spawner.cmd == ["codespace-start", "--", "jupyterhub-singleuser"]


@pytest.mark.parametrize(
    ("image", "ref"),
    [
        ("reg.example.org:5000/a/b:tag", ImageRef("reg.example.org:5000", "a/b", "tag")),
        ("python:3.11", ImageRef("registry-1.docker.io", "library/python", "3.11")),
        ("org/img", ImageRef("registry-1.docker.io", "org/img", "latest")),
        ("localhost/x@sha256:ab", ImageRef("localhost", "x", "sha256:ab")),
    ],
)
def test_image_references(image, ref):
    assert ImageRef.parse(image) == ref


def test_docker_config_credentials():
    text = '{"auths": {"https://reg.example.org": {"auth": "dXNlcjpwYXNz"}}}'
    assert Credentials.from_docker_config(text, "reg.example.org") == Credentials("user", "pass")
    assert Credentials.from_docker_config(text, "other.org") == Credentials()


def test_registry_manifest_head_answers_present_and_absent():
    with FakeKube() as kube:
        present = f"{kube.registry_host}/codespaces/repo:abc"
        kube.registry.add(present)

        async def check():
            return (
                await image_exists(present, insecure=True),
                await image_exists(present.replace("abc", "def"), insecure=True),
            )

        assert asyncio.run(check()) == (True, False)


def test_registry_bearer_challenge_gets_a_token_with_the_credentials():
    from aiohttp import web

    seen = {}

    async def manifest(request):
        if request.headers.get("Authorization") != "Bearer t0k":
            realm = f"http://127.0.0.1:{request.url.port}/token"
            challenge = f'Bearer realm="{realm}",service="reg",scope="repository:a/b:pull"'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        return web.Response(status=200)

    async def token(request):
        seen["query"] = dict(request.query)
        seen["auth"] = request.headers.get("Authorization")
        return web.json_response({"token": "t0k"})

    async def scenario():
        app = web.Application()
        app.add_routes([web.head("/v2/a/b/manifests/x", manifest), web.get("/token", token)])
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            return await image_exists(
                f"127.0.0.1:{port}/a/b:x", Credentials("u", "p"), insecure=True
            )
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) is True
    assert seen["query"] == {"service": "reg", "scope": "repository:a/b:pull"}
    assert seen["auth"] == "Basic dTpw"


class _Raw:
    def __init__(self, data):
        self.data = data

    async def read(self):
        return json.dumps(self.data).encode()


def test_a_build_pod_that_cannot_start_fails_the_build_at_once():
    waiting = {"reason": "ImagePullBackOff", "message": "moby/buildkit: not found"}
    pod = {
        "metadata": {"name": "codespace-build-1-abcde"},
        "spec": {"containers": [{"name": "build"}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"name": "build", "state": {"waiting": waiting}}],
        },
    }

    class Batch:
        async def create_namespaced_job(self, namespace, job):
            return job

        async def read_namespaced_job_status(self, name, namespace, **kw):
            return _Raw({"status": {}})

    class Core:
        async def list_namespaced_pod(self, namespace, **kw):
            assert kw["label_selector"] == "job-name=codespace-build-1"
            return _Raw({"items": [pod]})

    job = {"metadata": {"name": "codespace-build-1", "namespace": "ns"}}
    with pytest.raises(BuildFailed, match="ImagePullBackOff: moby/buildkit: not found"):
        asyncio.run(run_build_job(Batch(), Core(), job, lambda line: None, poll_seconds=0))


def test_a_new_spawn_forgets_the_previous_plan(monkeypatch):
    from codespace.kube.config import parse_config
    from codespace.options import UserOptions
    from codespace.spec.model import Codespace
    from tests.helpers.plans import kube_plan

    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kw: None)
    monkeypatch.setattr("kubespawner.spawner.shared_client", lambda name: None)
    spawner = KubeCodespaceSpawner(_mock=True)
    spawner.environment = {"ADMIN": "1"}
    config = parse_config({"profiles": [{"name": "v", "gpu": {"mode": "vgpu", "memory": "8Gi"}}]})
    options = UserOptions(repo="https://h/a.git")
    gpu_plan = kube_plan(Codespace(resources={"gpu": 0.5}), options, config, "a" * 64)
    spawner._apply_plan(gpu_plan)
    assert spawner.scheduler_name == "volcano"
    assert spawner.extra_resource_limits["volcano.sh/vgpu-memory"] == "4096"
    cpu_plan = kube_plan(Codespace(), options, config, "a" * 64)
    spawner._apply_plan(cpu_plan)
    assert spawner.scheduler_name is None
    assert spawner.extra_resource_limits == {}
    assert spawner.environment["ADMIN"] == "1"  # the admin's values stay
    assert "CODESPACE_GPU_RESOURCE" not in spawner.environment


def test_options_are_checked_before_the_start_without_side_effects(monkeypatch):
    from tornado import web

    from spawner.kubernetes import check_user_options

    monkeypatch.setattr("kubespawner.spawner.load_config", lambda **kw: None)
    monkeypatch.setattr("kubespawner.spawner.shared_client", lambda name: None)
    spawner = KubeCodespaceSpawner(_mock=True)
    spawner.codespace_config = {"profiles": [{"name": "small"}, {"name": "gpu"}]}
    assert spawner.apply_user_options is check_user_options
    check_user_options(spawner, {"repo": "https://h/a.git", "profile": "gpu"})  # accepted
    for bad, words in (
        ({"repo": "https://h/a.git", "profile": "huge"}, "profile 'huge' is not one"),
        ({"repo": "relative/path"}, "relative/path"),
    ):
        with pytest.raises(web.HTTPError) as refused:
            check_user_options(spawner, bad)
        assert refused.value.status_code == 400 and words in refused.value.log_message
