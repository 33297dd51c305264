"""Pure Kubernetes builders: a resolved codespace + user options + an admin profile -> objects.

Nothing in this package performs I/O or imports a Kubernetes client, but
:mod:`~codespace.kube.client` (the backends' API client, which imports one when first used).
Every function takes plain typed data (:class:`~codespace.spec.model.Codespace`,
:class:`~codespace.options.UserOptions`, the models in :mod:`codespace.kube.config`) and
returns plain dicts in the Kubernetes API's own camelCase shape, so ``codespace plan --target
kubernetes`` and ``KubeCodespaceSpawner`` print and apply exactly the same objects.

Modules:

- :mod:`~codespace.kube.config`: the admin's document (registry, build, workspace, profiles)
- :mod:`~codespace.kube.quantity`: Kubernetes quantities (``500m``, ``10Gi``)
- :mod:`~codespace.kube.gpu`: a GPU request + a profile -> resources, scheduler, env
- :mod:`~codespace.kube.image`: image names, the rendered Dockerfile
- :mod:`~codespace.kube.build_job`: the image build Job
- :mod:`~codespace.kube.workspace`: the workspace PVC and the clone init container
- :mod:`~codespace.kube.datasets`: Fluid dataset mounts and the "is it Bound" check
- :mod:`~codespace.kube.gitauth`: the user's Git host token for the clones, in a Secret
- :mod:`~codespace.kube.plan`: everything above as one :class:`~codespace.kube.plan.KubePlan`
- :mod:`~codespace.kube.client`: the Kubernetes API client of the Argo and KServe backends
"""
