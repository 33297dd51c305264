"""The fake Kubernetes API behaves like the real one where our code depends on it."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
from kubernetes_asyncio import client, config, watch

from tests.fakekube import FakeKube, JobOutcome

DATASET = {
    "apiVersion": "data.fluid.io/v1alpha1",
    "kind": "Dataset",
    "metadata": {"name": "mnist", "namespace": "ns"},
    "spec": {"mounts": [{"mountPoint": "s3://b/mnist", "name": "mnist"}]},
}


@pytest.fixture
def kube(tmp_path):
    with FakeKube() as fake:
        fake.kubeconfig_path = fake.kubeconfig(tmp_path / "kubeconfig")
        yield fake


async def _api(kube):
    configuration = client.Configuration()
    await config.load_kube_config(str(kube.kubeconfig_path), client_configuration=configuration)
    return client.ApiClient(configuration)


def test_custom_objects_crud_and_watch(kube):
    async def scenario():
        async with await _api(kube) as api:
            custom = client.CustomObjectsApi(api)
            group = ("data.fluid.io", "v1alpha1", "ns", "datasets")
            await custom.create_namespaced_custom_object(*group, DATASET)
            with pytest.raises(client.ApiException) as conflict:
                await custom.create_namespaced_custom_object(*group, DATASET)
            assert conflict.value.status == 409
            listed = await custom.list_namespaced_custom_object(*group)
            version = listed["metadata"]["resourceVersion"]
            await custom.patch_namespaced_custom_object_status(
                *group, "mnist", {"status": {"phase": "Bound"}}
            )
            seen = []
            async with watch.Watch().stream(
                custom.list_namespaced_custom_object,
                *group,
                resource_version=version,
                timeout_seconds=1,
            ) as stream:
                async for event in stream:
                    seen.append((event["type"], event["object"].get("status", {}).get("phase")))
            assert seen == [("MODIFIED", "Bound")]
            got = await custom.get_namespaced_custom_object(*group, "mnist")
            assert got["status"]["phase"] == "Bound" and got["spec"] == DATASET["spec"]
            await custom.delete_namespaced_custom_object(*group, "mnist")
            with pytest.raises(client.ApiException) as missing:
                await custom.get_namespaced_custom_object(*group, "mnist")
            assert missing.value.status == 404

    asyncio.run(scenario())


def test_jobs_get_a_pod_logs_and_a_final_condition(kube):
    kube.job_handler = lambda job: JobOutcome(succeeded=False, log="step 1\nboom\n")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "ns"},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
            }
        },
    }

    async def scenario():
        async with await _api(kube) as api:
            batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
            await batch.create_namespaced_job("ns", job)
            for _ in range(50):
                current = await batch.read_namespaced_job_status("j", "ns")
                if current.status and current.status.conditions:
                    break
                await asyncio.sleep(0.1)
            assert current.status.conditions[0].type == "Failed"
            pods = await core.list_namespaced_pod("ns", label_selector="job-name=j")
            assert pods.items[0].status.phase == "Failed"
            log = await core.read_namespaced_pod_log(
                pods.items[0].metadata.name, "ns", container="c"
            )
            assert log == "step 1\nboom\n"

    asyncio.run(scenario())


def test_kubelet_runs_a_pod_on_its_own_loopback_address_and_checks_claims(kube):
    code = (
        "import os, http.server; http.server.HTTPServer((os.environ['IP'], 8888),"
        " http.server.BaseHTTPRequestHandler).serve_forever()"
    )
    server = [sys.executable, "-c", code]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "ns"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "command": server,
                    "env": [{"name": "IP", "value": "0.0.0.0"}],
                }
            ]
        },
    }
    kube.create(pod)
    claimed = {**pod, "metadata": {"name": "claimed", "namespace": "ns"}}
    claimed["spec"] = {
        **pod["spec"],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "nope"}}],
    }
    kube.create(claimed)
    for _ in range(100):
        running = kube.get("v1", "pods", "ns", "web")
        if running["status"].get("phase") == "Running":
            break
        asyncio.run(asyncio.sleep(0.05))
    ip = running["status"]["podIP"]
    assert ip.startswith("127.0.0.") and ip != "127.0.0.1"
    events = [
        e for e in kube.list("v1", "events", "ns") if e["involvedObject"]["name"] == "claimed"
    ]
    assert [e["reason"] for e in events] == ["FailedScheduling"]
    assert 'persistentvolumeclaim "nope" not found' in events[0]["message"]
    kube.delete("v1", "pods", "ns", "web")


def _pod(name: str, limits: dict[str, str]) -> dict:
    container = {"name": "c", "image": "x", "resources": {"limits": limits}}
    spec = {"schedulerName": "nobody", "containers": [container]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_a_pod_over_a_namespace_quota_is_refused_with_the_api_servers_message(kube):
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "team", "namespace": "ns"},
            "spec": {"hard": {"pods": "2", "requests.nvidia.com/gpu": "0", "limits.cpu": "3"}},
        }
    )

    async def scenario() -> list[tuple[int, str]]:
        answers = []
        async with await _api(kube) as api:
            core = client.CoreV1Api(api)
            for name, limits in [
                ("gpu", {"nvidia.com/gpu": "1"}),
                ("big", {"cpu": "4"}),
                ("a", {"cpu": "1"}),
                ("b", {"cpu": "2"}),
                ("c", {"cpu": "100m"}),
            ]:
                try:
                    await core.create_namespaced_pod("ns", _pod(name, limits))
                    answers.append((201, name))
                except client.ApiException as error:
                    answers.append((error.status, json.loads(error.body)["message"]))
        return answers

    gpu, big, a, b, c = asyncio.run(scenario())
    assert gpu == (
        403,
        'pods "gpu" is forbidden: exceeded quota: team, requested: '
        "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=0, "
        "limited: requests.nvidia.com/gpu=0",
    )
    assert big[0] == 403 and "requested: limits.cpu=4, used: limits.cpu=0, limited" in big[1]
    assert a == (201, "a") and b == (201, "b")
    assert c[0] == 403 and "requested: limits.cpu=0.1,pods=1, used: limits.cpu=3,pods=2" in c[1]
    assert {p["metadata"]["name"] for p in kube.list("v1", "pods", "ns")} == {"a", "b"}
