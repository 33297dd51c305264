"""Jobs: the notebook SDK, and (server side) one backend interface with several backends.

From a notebook (or a script), the module-level functions talk to this codespace's server::

    from codespace import jobs
    job = jobs.submit(["python", "train.py", "--epochs", "3"], resources={"timeLimit": "2h"})
    job.status()              # JobRecord(state='running', ...)
    job.wait(); job.logs(tail=50)
    nb = jobs.submit(notebook="report.ipynb", parameters={"alpha": 0.5})
    nb.wait(); nb.output_notebook   # 'codespace-jobs/<id>/report.ipynb'
    jobs.list()               # your jobs, newest first

Two sides, kept apart (DESIGN §4). Importing this package loads only the standard library:
the SDK (:mod:`~codespace.jobs.sdk`) and its records (:mod:`~codespace.jobs.records`) run in
the repository's environment. The server side (the pydantic models in
:mod:`~codespace.jobs.models`, the interface in :mod:`~codespace.jobs.backend`, the local
backend in :mod:`~codespace.jobs.local`, the engines' backends) is imported from its own
modules, or lazily through this package's attributes (``JobBackend``, ``Submission``, ...).
"""

from __future__ import annotations

from codespace._lazy import lazy_attributes
from codespace.client import ApiError
from codespace.jobs.records import JobRecord, JobResources, JobSpec
from codespace.jobs.sdk import Job, get, list, submit

# Server-side names, imported on first use (PEP 562) so the kernel side never needs pydantic.
_LAZY = {
    "JobBackend": "codespace.jobs.backend",
    "JobError": "codespace.jobs.backend",
    "JobNotFound": "codespace.jobs.backend",
    "JobSettings": "codespace.jobs.backend",
    "Submission": "codespace.jobs.models",
}
__getattr__, __dir__ = lazy_attributes(globals(), _LAZY)


# The lazy server-side names stay out of __all__: ``import *`` in a notebook loads no pydantic.
__all__ = ["ApiError", "Job", "JobRecord", "JobResources", "JobSpec", "get", "list", "submit"]
