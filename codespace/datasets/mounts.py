"""Which datasets a codespace mounts at start: a pure plan both spawners follow.

Inputs are plain data: the resolved :class:`~codespace.spec.model.Codespace` (its
``datasets``), the names the user picked in the spawn form (``UserOptions.datasets``) and
the names recorded by ``mount`` from a running codespace that could not mount live
(:class:`PendingMounts`). The spawners turn each :class:`DatasetMount` into what their mode
needs: a symlink under ``<workspace>/datasets/`` (local) or the PVC that Fluid creates with
the dataset's name (Kubernetes; see :func:`codespace.kube.datasets.dataset_mounts`). Both
get to them through the launch plan (:mod:`codespace.launch`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from codespace.spec.model import Codespace

MountOrigin = Literal["spec", "options", "pending"]
DATASETS_ENV = "CODESPACE_DATASETS"  # name=path,... of the mounted datasets, in both modes


class DatasetMount(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    mountPath: str = Field(..., description="Absolute path in a container")
    readOnly: bool = True
    prewarm: bool | list[str] = False
    origin: MountOrigin = Field(..., description="Who asked: the spec, the spawn form, or mount()")

    def workspace_link(self, workspace: Path) -> Path:
        """Where the local spawner links it: ``<workspace>/datasets/<name>``."""
        return workspace / "datasets" / self.name


def plan_mounts(
    codespace: Codespace, requested: Sequence[str] = (), pending: Iterable[str] = ()
) -> list[DatasetMount]:
    """Datasets to mount: the spec's (with their settings), then the form's, then pending ones.

    A name given twice is mounted once, with the spec's settings when the spec lists it.
    """
    plan: dict[str, DatasetMount] = {}
    for dataset in codespace.datasets:
        plan[dataset.name] = DatasetMount(
            name=dataset.name,
            mountPath=dataset.mount_path,
            readOnly=dataset.readOnly,
            prewarm=dataset.prewarm,
            origin="spec",
        )
    for origin, names in (("options", requested), ("pending", pending)):
        for name in names:
            if name not in plan:
                plan[name] = DatasetMount(name=name, mountPath=f"/datasets/{name}", origin=origin)
    return list(plan.values())


class PendingMounts:
    """Datasets a running codespace asked for but can only get at its next start.

    A small JSON file in the user's persistent home; the spawner reads it with
    :meth:`names` and passes them to :func:`plan_mounts` as ``pending``.
    """

    FILENAME = "pending-datasets.json"

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / self.FILENAME

    def names(self) -> list[str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except ValueError:
            return []
        return [name for name in data.get("datasets", []) if isinstance(name, str)]

    def add(self, name: str) -> None:
        self._write([*dict.fromkeys([*self.names(), name])])

    def remove(self, name: str) -> None:
        self._write([n for n in self.names() if n != name])

    def _write(self, names: list[str]) -> None:
        """Replace the record atomically through a new file (never through a name someone
        else could have made a symlink), owned like its directory: the hub, as root, and
        the codespace's server, as its account, both write it."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pending-", suffix=".tmp")
        try:
            owner = os.stat(directory)
            if os.geteuid() == 0:
                os.fchown(fd, owner.st_uid, owner.st_gid)
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps({"datasets": names}, indent=2) + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
