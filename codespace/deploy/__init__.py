"""Deploy: the notebook SDK, and (server side) one backend interface with several backends.

From a notebook (or a script), the module-level functions talk to this codespace's server::

    from codespace import deploy
    endpoint = deploy.deploy("model.joblib")   # format detected; waits until it serves
    endpoint.url                               # the authenticated KServe-protocol endpoint
    endpoint.predict([[5.1, 3.5, 1.4, 0.2]])   # a V2 infer request; its output's data
    endpoint.logs(tail=20); endpoint.share("for a colleague", expires_in=86400)
    deploy.list(); deploy.delete("model")

Two sides, kept apart (DESIGN §4). Importing this package loads only the standard library:
the SDK (:mod:`~codespace.deploy.sdk`) and its records (:mod:`~codespace.deploy.records`) run
in the repository's environment. The server side (the pydantic models in
:mod:`~codespace.deploy.models`, the format detector :mod:`~codespace.deploy.formats`, the
interface in :mod:`~codespace.deploy.backend`, the service and the backends) is imported from
its own modules, or lazily through this package's attributes (``DeployBackend``, ...).
"""

from __future__ import annotations

from codespace._lazy import lazy_attributes
from codespace.client import ApiError
from codespace.deploy.records import (
    DeploymentRecord,
    DeploymentSpec,
    DeployResources,
    Endpoint,
    ShareToken,
    Signature,
)
from codespace.deploy.sdk import Deployment, DeploymentFailed, delete, deploy, get, list

# Server-side names, imported on first use (PEP 562) so the kernel side never needs pydantic.
_LAZY = {
    "BackendUnavailable": "codespace.deploy.backend",
    "DeployBackend": "codespace.deploy.backend",
    "DeployError": "codespace.deploy.backend",
    "DeploymentExists": "codespace.deploy.backend",
    "DeploymentNotFound": "codespace.deploy.backend",
    "DeploySettings": "codespace.deploy.backend",
    "DeployService": "codespace.deploy.service",
    "FormatError": "codespace.deploy.formats",
    "Response": "codespace.deploy.backend",
}
__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


# The lazy server-side names stay out of __all__: ``import *`` in a notebook loads no pydantic.
__all__ = [
    "ApiError",
    "DeployResources",
    "Deployment",
    "DeploymentFailed",
    "DeploymentRecord",
    "DeploymentSpec",
    "Endpoint",
    "ShareToken",
    "Signature",
    "delete",
    "deploy",
    "get",
    "list",
]
