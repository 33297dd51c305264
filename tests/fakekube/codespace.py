"""A user's running codespace in the fake cluster, as the jobs and deploy backends find it.

The backends that run next to a codespace (Argo jobs, KServe deployments) look up the
codespace's pod (its image, its workspace claim) by its labels; this puts that pod and its
workspace claim in the fake API server. The pod names a scheduler nobody runs, so the fake
kubelet leaves it alone.
"""

from __future__ import annotations

from tests.fakekube import FakeKube


def add_running_codespace(kube: FakeKube, namespace: str, user: str, image: str) -> None:
    """``claim-<user>`` and the pod ``jupyter-<user>`` that mounts it at ``/workspaces``."""
    claim = f"claim-{user}"
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"]},
        },
        "persistentvolumeclaims",
    )
    container = {
        "name": "notebook",
        "image": image,
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspaces"}],
    }
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"jupyter-{user}",
                "namespace": namespace,
                "labels": {
                    "component": "singleuser-server",
                    "hub.jupyter.org/username": user,
                    "hub.jupyter.org/servername": "",
                },
            },
            "spec": {
                "schedulerName": "not-here",
                "containers": [container],
                "volumes": [{"name": "workspace", "persistentVolumeClaim": {"claimName": claim}}],
            },
        },
        "pods",
    )
