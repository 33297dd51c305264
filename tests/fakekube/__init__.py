"""A test-only fake Kubernetes API server with a "kubelet" that runs pods as local processes.

Enough of the API for KubeSpawner, kubernetes_asyncio, kopf and our own code to run
unchanged: list, watch, get, create, delete, merge-patch, JSON-patch and replace of namespaced
and cluster-scoped objects, for the core kinds (pods, events, persistentvolumeclaims,
services, secrets, configmaps), ``batch/v1`` jobs and any custom resource
(``/apis/<group>/<version>/namespaces/<ns>/<plural>``), plus pod logs. Plain HTTP on
127.0.0.1, no authentication, no RBAC. It is not a Kubernetes: no admission, no defaulting
beyond metadata and CRD schemas, no validation of built-in kinds (tests validate objects with
:mod:`tests.helpers.k8s_schema`).

Custom resources (:mod:`tests.fakekube.store` has the rules): a ``CustomResourceDefinition``
created through ``POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions`` or
``kube.register_crd(crd)`` puts its resource into discovery (``GET /api/v1``, ``/apis``,
``/apis/<group>``, ``/apis/<group>/<version>``, with ``<plural>/status`` when it has that
subresource), enforces its scope, splits writes between the object and ``/status``, and
prunes, defaults and validates its objects by the schema (:mod:`tests.fakekube.schema`).
For every kind: ``DELETE`` of an object with finalizers sets ``deletionTimestamp`` and keeps
it until an update removes the last one; ``generation`` grows with the spec; an update that
changes nothing is no event. A kopf operator runs against it
(:class:`tests.fakekube.kopf_operator.KopfOperator`).

Use::

    from tests.fakekube import FakeKube

    with FakeKube() as kube:                      # starts in a background thread
        kube.kubeconfig(tmp_path / "kubeconfig")  # a kubeconfig that points at it
        kube.register_crd(crd)                    # a CustomResourceDefinition (a dict)
        kube.url                                  # http://127.0.0.1:PORT
        kube.create({"apiVersion": "data.fluid.io/v1alpha1", "kind": "Dataset", ...})
        kube.set_status("data.fluid.io/v1alpha1", "datasets", "ns", "name", {"phase": "Bound"})
        kube.get("v1", "pods", "ns", "jupyter-alice")  # None when absent
        kube.list("batch/v1", "jobs", "ns")

Every method is thread-safe (it runs on the server's event loop and waits), so synchronous
tests, a hub in a subprocess and async code can all drive it. Watchers see every change.

A pod that would go over a ``ResourceQuota`` of its namespace is refused with the API
server's ``403 exceeded quota`` (:mod:`tests.fakekube.quota`).

The kubelet (``kube.kubelet``, a :class:`Kubelet`) acts on each new pod:

1. *schedule*: the pod's resource limits must fit ``kubelet.capacity`` (extended resources
   such as ``nvidia.com/gpu`` absent from it count as 0) minus what running pods use, and
   every PVC it mounts must exist; otherwise the pod stays Pending with condition
   ``PodScheduled=False (Unschedulable)`` and a ``FailedScheduling`` event, like the real
   scheduler. A ``schedulerName`` not in ``kubelet.schedulers`` leaves it Pending silently.
2. *pull*: ``kubelet.pullable(image) -> bool`` (default: every image) decides; a refused
   image gives ``ErrImagePull`` then ``ImagePullBackOff`` and ``Failed``/``BackOff`` events.
3. *run*: init containers are recorded as completed without running (they would need the
   image's filesystem). The first container's ``command + args`` runs as a local process
   with the container's ``env`` (literal values; ``valueFrom`` is skipped) over
   ``kubelet.base_env``. Each pod gets its own loopback address 127.0.0.N as its pod IP,
   and ``0.0.0.0`` in env values is replaced by it (the pod's network namespace, emulated),
   so several servers can all listen on port 8888. The pod turns Running/Ready when the
   process has started, Succeeded/Failed when it exits; deleting the pod kills the process
   group.

Jobs: on creation, ``kube.job_handler(job) -> JobOutcome`` (default: succeed at once) decides
the outcome; the fake creates the Job's pod (labels ``job-name`` and
``batch.kubernetes.io/job-name``) in phase Succeeded/Failed with the outcome's log as the
log of every container, and sets the Job's status and ``Complete``/``Failed`` condition.

Argo Workflows (:mod:`tests.fakekube.argo`): ``ArgoController(kube).advance(ns, name,
{"task": NodeOutcome(...)})`` plays Argo's controller (``status.nodes``, the pods with their
logs; ``sync`` acts on ``spec.shutdown``), and ``FakeArgoServer(kube, token=...)`` serves the
Argo Server's ``WorkflowsService`` REST endpoints over the same store.

KServe (:mod:`tests.fakekube.kserve`): ``serving.kserve.io`` InferenceServices and
ServingRuntimes are stored like any custom resource; ``KServeController(kube)`` plays KServe's
controller (``ready``, ``fail``, ``loading``... write the status KServe writes; ``pod``
creates a predictor pod with its log).

A tiny registry is served at ``/v2/``: ``HEAD /v2/<name>/manifests/<tag>`` answers 200 for
the references in ``kube.registry`` (a set of ``"<host:port>/<name>:<tag>"`` strings;
``kube.registry_host`` is the host part) and 404 otherwise.
"""

from tests.fakekube.server import FakeKube, JobOutcome, Kubelet

__all__ = ["FakeKube", "JobOutcome", "Kubelet"]
