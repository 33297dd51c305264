"""A codespace whose *optional* GPU the cluster cannot give now starts without it.

Two ways a pod waits for a GPU: no node has one free (the scheduler's ``Insufficient
nvidia.com/gpu``; :meth:`KubeCodespaceSpawner.is_pod_running` raises
:class:`OptionalGpuUnavailable` instead of ending the spawn), or the namespace's
ResourceQuota has none left (the API server refuses the pod with ``403 exceeded quota``).
When the codespace asked for its GPU with ``optional: true``, :meth:`OptionalGpuRetry._start`
deletes the pending pod and makes it again from the same launch plan without the GPU (the
same profile and image: :func:`codespace.kube.plan.make_kube_plan`'s ``without_gpu``); the
progress and ``CODESPACE_ERRORS.md`` say why. Any other quota refusal ends the start with the
API server's message instead of KubeSpawner's raw ``ApiException``.
"""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio.client import ApiException
from kubespawner import KubeSpawner

from codespace.kube.plan import make_kube_plan
from spawner.kube.failfast import gpu_shortage, quota_refusal


class OptionalGpuUnavailable(RuntimeError):
    """The pod cannot be scheduled for lack of a GPU the codespace can start without."""


class OptionalGpuRetry:
    """For :class:`~spawner.kubernetes.KubeCodespaceSpawner` (before KubeSpawner in its
    bases): its ``codespace_plan``, ``kube_config``, ``_names``, ``git_auth``, ``_progress``
    and ``_replan`` (applied by its ``load_user_options``)."""

    def _optional_gpu_short(self, reason: str) -> bool:
        plan = self.codespace_plan
        request = plan.launch.spec.resources.gpu if plan is not None else None
        return bool(request and request.optional and gpu_shortage(reason, plan.gpu.limits))

    async def _start(self) -> Any:
        """KubeSpawner's start; when the pod waits for an *optional* GPU that no node has
        free, or the namespace's quota refuses the pod for its GPU, the pod is made again
        without the GPU (the same profile and image), and the progress and
        ``CODESPACE_ERRORS.md`` say so. Another quota refusal ends the start with the API
        server's message."""
        try:
            return await super()._start()
        except OptionalGpuUnavailable as error:
            limits = self.codespace_plan.gpu.limits if self.codespace_plan else {}
            why = f"no node has {', '.join(limits)} free now ({error})"
        except ApiException as error:
            refusal = quota_refusal(error.status, error.body)
            if refusal is None:
                raise
            if not self._optional_gpu_short(refusal):
                raise RuntimeError(f"The codespace cannot start: {refusal}") from None
            why = f"the namespace's quota has no GPU left ({refusal})"
        plan = self.codespace_plan
        assert plan is not None
        await KubeSpawner.stop(self, now=True)  # a pending pod (the Git Secret stays)
        git_auth = self.git_auth(plan.launch.repo)
        config = self.kube_config()
        self._replan = make_kube_plan(plan.launch, config, self._names(), git_auth, why)
        if self._progress is not None:
            self._progress.step(62, f"warning: {self._replan.gpu.note}; creating the pod again")
        return await super()._start()  # load_user_options applies the new plan
