"""The Argo backend against the fake Kubernetes API (and a fake Argo Server): submit, status
from Argo-shaped ``status.nodes``, logs from the pods, cancel, idempotency and owner scoping.

No Argo controller runs here: :class:`tests.fakekube.argo.ArgoController` plays it, setting
the nodes Argo would set and creating the pods (with logs) Argo would create. Every Workflow
the backend creates is validated against the Workflow CRD.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codespace.jobs.argo import ArgoBackend
from codespace.jobs.argo_workflow import API_VERSION, PLURAL
from codespace.jobs.backend import BackendUnavailable, JobError, JobNotFound, JobSettings
from codespace.jobs.models import Submission
from tests.fakekube import FakeKube
from tests.fakekube.argo import ArgoController, FakeArgoServer, NodeOutcome
from tests.fakekube.codespace import add_running_codespace
from tests.helpers.k8s_schema import assert_strictly_valid

NS = "codespace-alice"
IMAGE = "registry.example/codespace/repo:env-1234"
SERVER_POD = "jupyter-alice"


@pytest.fixture
def kube():
    with FakeKube() as fake:
        add_running_codespace(fake, NS, "alice", IMAGE)
        yield fake


@pytest.fixture
def controller(kube: FakeKube) -> ArgoController:
    return ArgoController(kube)


def settings(tmp_path: Path, owner: str = "alice", **options) -> JobSettings:
    environment = {
        "CODESPACE_IMAGE": IMAGE,
        "POD_NAMESPACE": NS,
        "HOSTNAME": SERVER_POD,
        "CODESPACE_WORKSPACE": "/workspaces/repo",
        "CODESPACE_REPO": "https://git.example/repo.git",
        "CODESPACE_DATASETS": "imagenet=/data/imagenet",
        "VIRTUAL_ENV": "/opt/codespace/env",
        "JUPYTERHUB_API_TOKEN": "never-in-a-job",
    }
    return JobSettings(
        workspace=tmp_path / "ws",
        state_dir=tmp_path / "state",
        owner=owner,
        environment=environment,
        options=options,
    )


@pytest.fixture
async def alice(kube: FakeKube, tmp_path: Path):
    config = kube.kubeconfig(tmp_path / "kubeconfig")
    backend = ArgoBackend.from_settings(settings(tmp_path, kubeconfig=str(config)))
    yield backend
    await backend.close()


@pytest.fixture
async def bob(kube: FakeKube, tmp_path: Path):
    config = kube.kubeconfig(tmp_path / "kubeconfig-bob")
    backend = ArgoBackend.from_settings(settings(tmp_path, "bob", kubeconfig=str(config)))
    yield backend
    await backend.close()


def workflows(kube: FakeKube) -> list[dict]:
    return kube.list(API_VERSION, PLURAL, NS)


PIPELINE = [
    {"name": "prep", "script": "prep.py", "datasets": ["imagenet"], "retries": 1},
    {
        "name": "train",
        "notebook": "train.ipynb",
        "parameters": {"lr": 0.1},
        "array": 2,
        "after": ["prep"],
        "resources": {"cpu": 2, "memory": "4Gi", "gpu": 1, "timeLimit": "1h"},
    },
]


async def test_submit_track_and_read_logs(kube, controller, alice) -> None:
    records = await alice.submit(Submission(jobs=PIPELINE, idempotencyKey="pipeline-0001"))
    assert [(r.name, r.state, r.reason) for r in records] == [
        ("prep", "queued", "waiting for the workflow controller"),
        ("train", "queued", "waiting for prep"),
    ]
    prep, train = records
    assert prep.owner == "alice" and prep.backend == "argo"
    assert train.outputNotebook == f"codespace-jobs/{train.id}/train-0.ipynb"

    (workflow,) = workflows(kube)
    assert_strictly_valid(workflow)
    name = workflow["metadata"]["name"]
    spec = workflow["spec"]
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "claim-alice"
    term = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["labelSelector"]["matchLabels"]["hub.jupyter.org/username"] == "alice"
    assert "never-in-a-job" not in str(workflow)

    controller.advance(NS, name, {"prep": "Running"})
    assert (await alice.get(prep.id)).state == "running"
    assert await alice.logs(train.id) == ""

    controller.advance(
        NS,
        name,
        {
            "prep": NodeOutcome(log="prepared\n", failed_attempts=1),
            "train": NodeOutcome(phase="Running", log="epoch 1 of copy {index}\n"),
        },
    )
    prep, train = [await alice.get(r.id) for r in records]
    assert (prep.state, prep.exitCode, prep.finished is not None) == ("succeeded", 0, True)
    assert train.state == "running"
    assert (
        await alice.logs(prep.id) == "==> prep(0) <==\nattempt failed\n==> prep(1) <==\nprepared\n"
    )
    assert await alice.logs(prep.id, tail=1) == "prepared\n"
    logs = await alice.logs(train.id)
    assert logs == (
        "==> train(0:0) <==\nepoch 1 of copy 0\n==> train(1:1) <==\nepoch 1 of copy 1\n"
    )

    controller.advance(NS, name, {"train": NodeOutcome(log="done {index}\n")})
    listed = await alice.list()
    assert [(r.name, r.state) for r in listed] == [("train", "succeeded"), ("prep", "succeeded")]
    assert kube.get(API_VERSION, PLURAL, NS, name)["status"]["phase"] == "Succeeded"


async def test_an_idempotency_key_never_makes_a_second_workflow(kube, alice) -> None:
    submission = Submission(jobs=PIPELINE, idempotencyKey="retry-after-timeout")
    first = await alice.submit(submission)
    again = await alice.submit(submission)
    racing = await asyncio.gather(*(alice.submit(submission) for _ in range(3)))
    assert [r.id for r in again] == [r.id for r in first]
    assert all([r.id for r in batch] == [r.id for r in first] for batch in racing)
    assert len(workflows(kube)) == 1

    fresh = Submission(jobs=PIPELINE, idempotencyKey="two-at-once-1")
    both = await asyncio.gather(alice.submit(fresh), alice.submit(fresh))  # none exists yet
    assert [r.id for r in both[0]] == [r.id for r in both[1]]
    assert len(workflows(kube)) == 2

    other = await alice.submit(Submission(jobs=PIPELINE, idempotencyKey="another-key-1"))
    plain = await alice.submit(Submission(jobs=PIPELINE))
    assert len({r.submission for r in (*first, *both[0], *other, *plain)}) == 4
    assert len(workflows(kube)) == 4


async def test_a_user_sees_only_their_own_jobs(kube, controller, alice, bob) -> None:
    (mine,) = await alice.submit(
        Submission(jobs=[{"name": "a", "command": ["true"]}], idempotencyKey="same-key-both")
    )
    (theirs,) = await bob.submit(
        Submission(jobs=[{"name": "a", "command": ["true"]}], idempotencyKey="same-key-both")
    )
    assert mine.id != theirs.id and len(workflows(kube)) == 2
    assert [r.id for r in await alice.list()] == [mine.id]
    for call in (bob.get, bob.logs, bob.cancel):
        with pytest.raises(JobNotFound):
            await call(mine.id)
    with pytest.raises(JobNotFound):
        await alice.get("000000000000-nothing")
    with pytest.raises(JobNotFound):
        await alice.get("not-an-id")
    foreign = {  # someone else's workflow in the namespace: not a record of ours
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {"name": "handmade", "namespace": NS},
        "spec": {"entrypoint": "main", "templates": [{"name": "main"}]},
    }
    kube.create(foreign, PLURAL)
    assert [r.id for r in await alice.list()] == [mine.id]


async def test_cancel_stops_the_workflow(kube, controller, alice, tmp_path) -> None:
    records = await alice.submit(Submission(jobs=PIPELINE))
    name = workflows(kube)[0]["metadata"]["name"]
    controller.advance(NS, name, {"prep": "Running"})
    cancelled = await alice.cancel(records[0].id)
    assert (cancelled.state, cancelled.reason) == (
        "cancelled",
        "cancelled (the workflow is stopping)",
    )
    assert kube.get(API_VERSION, PLURAL, NS, name)["spec"]["shutdown"] == "Stop"
    controller.sync(NS, name)
    prep, train = [await alice.get(r.id) for r in records]
    assert (prep.state, prep.reason) == ("cancelled", "Stopped with strategy 'Stop'")
    assert (train.state, train.reason) == ("cancelled", "cancelled before it started")
    assert (await alice.cancel(prep.id)).state == "cancelled"  # finished: returned as it is

    config = kube.kubeconfig(tmp_path / "kubeconfig-t")
    terminating = ArgoBackend.from_settings(
        settings(tmp_path, kubeconfig=str(config), cancel="terminate")
    )
    try:
        (job,) = await terminating.submit(
            Submission(jobs=[{"name": "x", "command": ["sleep", "1d"]}])
        )
        await terminating.cancel(job.id)
        target = next(w for w in workflows(kube) if w["metadata"]["name"].endswith(job.submission))
        assert target["spec"]["shutdown"] == "Terminate"
    finally:
        await terminating.close()


async def test_failures_carry_argos_reason(kube, controller, alice) -> None:
    records = await alice.submit(Submission(jobs=PIPELINE))
    name = workflows(kube)[0]["metadata"]["name"]
    controller.advance(
        NS,
        name,
        {
            "prep": NodeOutcome(
                phase="Failed", message="Error (exit code 3)", exit_code=3, failed_attempts=1
            ),
            "train": NodeOutcome(phase="Omitted", message="omitted: depends condition not met"),
        },
    )
    prep, train = [await alice.get(r.id) for r in records]
    assert (prep.state, prep.exitCode, prep.reason) == ("failed", 3, "Error (exit code 3)")
    assert train.state == "cancelled" and train.reason.startswith("not run:")

    (job,) = await alice.submit(Submission(jobs=[{"name": "wait", "command": ["true"]}]))
    other = next(w for w in workflows(kube) if w["metadata"]["name"].endswith(job.submission))
    unschedulable = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    controller.advance(
        NS, other["metadata"]["name"], {"wait": NodeOutcome(phase="Pending", message=unschedulable)}
    )
    assert (await alice.get(job.id)).reason == unschedulable


async def test_a_bad_job_is_refused_before_anything_is_created(kube, tmp_path) -> None:
    config = str(kube.kubeconfig(tmp_path / "kubeconfig"))
    profiles = [{"name": "cpu", "default": True}]
    backend = ArgoBackend.from_settings(settings(tmp_path, kubeconfig=config, profiles=profiles))
    try:
        gpu = {"name": "big", "command": ["true"], "resources": {"gpu": 1}}
        with pytest.raises(JobError, match=r"job 'big': resources.gpu"):
            await backend.submit(Submission(jobs=[gpu]))
        assert workflows(kube) == []
    finally:
        await backend.close()
    with pytest.raises(JobError, match="unknown option"):
        ArgoBackend.from_settings(settings(tmp_path, kubeconfg=config))


async def test_the_argo_server_api_with_a_token(kube, controller, tmp_path) -> None:
    with FakeArgoServer(kube, token="s3cret") as server:
        token_file = tmp_path / "token"
        token_file.write_text("s3cret\n")
        options = {"server_url": server.url, "token_file": str(token_file)}
        options["workspace_claim"] = "claim-alice"
        backend = ArgoBackend.from_settings(settings(tmp_path, **options))
        try:
            records = await backend.submit(Submission(jobs=PIPELINE, idempotencyKey="server-key-1"))
            assert [
                r.id
                for r in await backend.submit(
                    Submission(jobs=PIPELINE, idempotencyKey="server-key-1")
                )
            ] == [r.id for r in records]
            (workflow,) = workflows(kube)
            assert_strictly_valid(workflow)
            assert "affinity" not in workflow["spec"]  # no pod to stand next to through it
            name = workflow["metadata"]["name"]
            controller.advance(NS, name, {"prep": NodeOutcome(log="ready\n")})
            prep = await backend.get(records[0].id)
            assert prep.state == "succeeded"
            assert await backend.logs(prep.id) == "ready\n"
            assert [r.name for r in await backend.list()] == ["train", "prep"]
            cancelled = await backend.cancel(records[1].id)
            assert cancelled.state == "cancelled"
            assert kube.get(API_VERSION, PLURAL, NS, name)["spec"]["shutdown"] == "Stop"
            assert ("PUT", f"/api/v1/workflows/{NS}/{name}/stop") in server.requests
        finally:
            await backend.close()

        wrong = ArgoBackend.from_settings(
            settings(tmp_path, server_url=server.url, token="nope", workspace_claim="c")
        )
        try:
            with pytest.raises(BackendUnavailable, match="401 token not valid"):
                await wrong.list()
        finally:
            await wrong.close()
    gone = ArgoBackend.from_settings(settings(tmp_path, server_url=server.url, token="s3cret"))
    try:
        with pytest.raises(BackendUnavailable, match="cannot reach the Argo Server"):
            await gone.get(records[0].id)
    finally:
        await gone.close()


async def test_through_the_job_service_beside_another_backend(kube, controller, alice, tmp_path):
    from codespace.jobs.service import JobService
    from tests.fakekube.server import _free_port

    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(
        kube.kubeconfig(tmp_path / "k")
        .read_text()
        .replace(kube.url, f"http://127.0.0.1:{_free_port()}")
    )
    unreachable = ArgoBackend.from_settings(settings(tmp_path, kubeconfig=str(dead)))
    service = JobService({"argo": lambda: alice, "cluster-b": lambda: unreachable}, "argo")
    try:
        (record,) = await service.submit({"jobs": [{"name": "hello", "command": ["echo", "hi"]}]})
        assert (record.backend, record.state) == ("argo", "queued")
        assert (await service.get(record.id)).id == record.id  # found in the first backend
        records, problems = await service.list()
        assert [r.id for r in records] == [record.id]
        assert "cannot reach the Kubernetes API" in problems["cluster-b"]
        with pytest.raises(BackendUnavailable):
            await unreachable.get(record.id)
        nowhere = ArgoBackend.from_settings(settings(tmp_path, kubeconfig=str(tmp_path / "no")))
        with pytest.raises(BackendUnavailable, match="no Kubernetes API"):
            await nowhere.list()
        await nowhere.close()
    finally:
        await unreachable.close()
