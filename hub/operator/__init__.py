"""GitOps: the ``Codespace`` custom resource's operator (kopf), README "GitOps".

- :mod:`hub.operator.resource`: the resource's spec, the hub's view, what to do, the status
  (plain data);
- :mod:`hub.operator.hubapi`: the hub's REST API with the operator's service token;
- :mod:`hub.operator.app`: the kopf handlers (``kopf run --standalone -m hub.operator.app``).

The CRD is ``config/helm/codespace-crd.yaml``; the operator's Deployment and RBAC
``config/helm/operator.yaml``.
"""
