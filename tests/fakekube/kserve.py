"""KServe-shaped behaviour on the fake API: a scripted InferenceService "controller".

The fake API server already stores any namespaced custom resource, so ``serving.kserve.io``
``inferenceservices`` and ``servingruntimes`` need no routes of their own. No KServe runs
here, so a test plays its controller with :class:`KServeController`: it writes the
``status`` KServe writes (``conditions`` Ready / PredictorReady / IngressReady, ``url``,
``address``, ``components.predictor``, ``modelStatus`` with its states, copies and last
failure; every status validates against the InferenceService CRD) and creates the
predictor's pods as KServe's Deployment or Knative revision would (labels
``serving.kserve.io/inferenceservice`` and ``component: predictor``, a ``kserve-container``
with the runtime's image), with their log served by the pod-log endpoint. The pods name a
scheduler the fake kubelet does not run, so they stay records, never processes::

    controller = KServeController(kube)
    controller.ready("ns", "iris-1a2b3c", url="http://iris.example")
    controller.fail("ns", "iris-1a2b3c", "RevisionFailed", "Container failed with: ...")
    controller.pod("ns", "iris-1a2b3c", log="...", waiting="CrashLoopBackOff", restarts=3)
"""

from __future__ import annotations

from typing import Any

from tests.fakekube.errors import now
from tests.fakekube.server import FakeKube

API_VERSION, PLURAL = "serving.kserve.io/v1beta1", "inferenceservices"
RUNTIMES = ("serving.kserve.io/v1alpha1", "servingruntimes")
POD_LABEL = "serving.kserve.io/inferenceservice"
SCHEDULER = "fake-kserve-controller"  # not the kubelet's: predictor pods are records only


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, Any]:
    condition = {"type": kind, "status": status, "lastTransitionTime": now()}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


class KServeController:
    """Sets InferenceService statuses on a :class:`FakeKube` and creates predictor pods."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube

    def service(self, namespace: str, name: str) -> dict:
        isvc = self.kube.get(API_VERSION, PLURAL, namespace, name)
        assert isvc is not None, f"no InferenceService {namespace}/{name}"
        return isvc

    def _mode(self, isvc: dict) -> str:
        annotations = isvc["metadata"].get("annotations") or {}
        return annotations.get("serving.kserve.io/deploymentMode", "RawDeployment")

    def _write(self, namespace: str, name: str, status: dict) -> dict:
        isvc = self.service(namespace, name)
        status.setdefault("deploymentMode", self._mode(isvc))
        runtime = (isvc["spec"]["predictor"].get("model") or {}).get("runtime")
        if runtime:
            status.setdefault("servingRuntimeName", runtime)
        status.setdefault("observedGeneration", 1)
        return self.kube.set_status(API_VERSION, PLURAL, namespace, name, status)

    def creating(self, namespace: str, name: str) -> dict:
        """Reconciled, revision not ready yet (Knative's Unknown conditions)."""
        message = f"Configuration {name}-predictor is waiting for a Revision to become ready."
        conditions = [
            _condition("PredictorReady", "Unknown", "RevisionMissing", message),
            _condition("Ready", "Unknown", "RevisionMissing", message),
        ]
        model = {"transitionStatus": "InProgress", "states": {"activeModelState": "Pending"}}
        return self._write(namespace, name, {"conditions": conditions, "modelStatus": model})

    def loading(self, namespace: str, name: str) -> dict:
        """The storage initializer runs (KServe's model state Loading)."""
        conditions = [
            _condition("PredictorReady", "Unknown", "ProgressDeadlineNotExceeded"),
            _condition("Ready", "Unknown", "ProgressDeadlineNotExceeded"),
        ]
        states = {"activeModelState": "Pending", "targetModelState": "Loading"}
        model = {"transitionStatus": "InProgress", "states": states}
        return self._write(namespace, name, {"conditions": conditions, "modelStatus": model})

    def ready(
        self, namespace: str, name: str, url: str, address: str | None = None, copies: int = 1
    ) -> dict:
        """Ready with its URL (``copies`` 0: a Serverless deployment scaled to zero)."""
        conditions = [
            _condition("IngressReady", "True"),
            _condition("PredictorReady", "True"),
            _condition("Ready", "True"),
        ]
        predictor: dict[str, Any] = {"url": url, "latestReadyRevision": f"{name}-predictor-1"}
        predictor["latestCreatedRevision"] = predictor["latestReadyRevision"]
        status: dict[str, Any] = {
            "conditions": conditions,
            "url": url,
            "components": {"predictor": predictor},
            "modelStatus": {
                "transitionStatus": "UpToDate",
                "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                "copies": {"failedCopies": 0, "totalCopies": copies},
            },
        }
        if address:
            status["address"] = {"url": address}
        return self._write(namespace, name, status)

    def fail(
        self, namespace: str, name: str, reason: str, message: str, model_failed: bool = False
    ) -> dict:
        """Ready False with ``reason``/``message`` (and a failed model load when asked)."""
        conditions = [
            _condition("PredictorReady", "False", reason, message),
            _condition("Ready", "False", reason, message),
        ]
        model: dict[str, Any] = {"transitionStatus": "InProgress"}
        model["states"] = {"activeModelState": "Pending", "targetModelState": "Pending"}
        if model_failed:
            model["transitionStatus"] = "BlockedByFailedLoad"
            model["states"]["targetModelState"] = "FailedToLoad"
            info = {"reason": "ModelLoadFailed", "message": message, "exitCode": 1}
            model["lastFailureInfo"] = {**info, "time": now()}
        return self._write(namespace, name, {"conditions": conditions, "modelStatus": model})

    def pod(
        self,
        namespace: str,
        name: str,
        log: str = "",
        *,
        index: int = 0,
        waiting: str | None = None,
        restarts: int = 0,
    ) -> str:
        """A predictor pod of the service with ``log``; ``waiting``: its container's reason
        (``CrashLoopBackOff``, ``ImagePullBackOff``...), else Running. Returns its name."""
        isvc = self.service(namespace, name)
        runtime = isvc["spec"]["predictor"].get("model", {}).get("runtime")
        image = "kserve/sklearnserver:v0.15.0"
        if runtime:
            found = self.kube.get(*RUNTIMES, namespace, runtime)
            image = found["spec"]["containers"][0]["image"] if found else image
        pod_name = f"{name}-predictor-{index:05d}-deployment-abcde"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "labels": {POD_LABEL: name, "component": "predictor", "app": f"{name}-predictor"},
            },
            "spec": {
                "schedulerName": SCHEDULER,
                "containers": [{"name": "kserve-container", "image": image}],
            },
        }
        self.kube.pod_logs[(namespace, pod_name)] = log
        if self.kube.get("v1", "pods", namespace, pod_name) is None:
            self.kube.create(pod, "pods", namespace)
        state: dict[str, Any] = {"running": {"startedAt": now()}}
        if waiting:
            state = {"waiting": {"reason": waiting, "message": f"back-off restarting ({waiting})"}}
        container = {
            "name": "kserve-container",
            "image": image,
            "imageID": "",
            "ready": not waiting,
            "restartCount": restarts,
            "state": state,
        }
        status = {"phase": "Running", "containerStatuses": [container]}
        self.kube.set_status("v1", "pods", namespace, pod_name, status)
        return pod_name
