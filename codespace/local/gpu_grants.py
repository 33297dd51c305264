"""Which GPUs the codespaces of one machine hold: a small registry file under a lock.

The local spawner claims a grant before it starts a server and releases it when the server
stops. The file (``gpu-grants.json`` in the hub's data directory) survives hub restarts, as
running servers do; ``flock`` on a sibling lock file keeps two hubs on one data directory (or
two spawns) from handing out the same GPU. An entry whose server process is gone, or whose
spawn never recorded a process within ``stale_after`` seconds, is dropped at the next claim.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from codespace.gpu import Gpu, GpuGrant, grant
from codespace.spec.model import GpuRequest

REGISTRY_FILE = "gpu-grants.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class GpuRegistry:
    """Grants held by the servers of this data directory, keyed ``user/server``."""

    def __init__(self, data_dir: Path, *, stale_after: float = 3600.0) -> None:
        self.path = Path(data_dir) / REGISTRY_FILE
        self.lock_path = self.path.with_suffix(".lock")
        self.stale_after = stale_after

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                entries = self._read()
                yield entries
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _prune(self, entries: dict[str, dict[str, Any]]) -> None:
        now = time.time()
        for key, entry in list(entries.items()):
            pid = entry.get("pid")
            if pid and not _alive(int(pid)):
                del entries[key]
            elif not pid and now - float(entry.get("claimedAt", 0)) > self.stale_after:
                del entries[key]

    def held(self) -> dict[str, dict[str, Any]]:
        """The current entries (pruned), for display and tests."""
        with self._locked() as entries:
            self._prune(entries)
            return dict(entries)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The live entries, read without the lock and without writing (for metrics: the
        file is replaced whole, so a read sees one version of it)."""
        entries = self._read()
        self._prune(entries)
        return entries

    def claim(
        self, key: str, request: GpuRequest | None, discover: Callable[[], list[Gpu]]
    ) -> GpuGrant:
        """Grant ``request`` to ``key`` from what others do not hold; record it.

        ``discover`` is only called when something is asked. A grant ``key`` held before (a
        restart) is given back first. Raises :class:`~codespace.gpu.GpuUnavailable`.
        """
        with self._locked() as entries:
            entries.pop(key, None)
            if request is None:
                return GpuGrant()
            self._prune(entries)
            exclusive: set[str] = set()
            shared: dict[str, int] = {}
            for entry in entries.values():
                for device in entry.get("devices", []):
                    if entry.get("exclusive", True):
                        exclusive.add(device)
                    else:
                        shared[device] = shared.get(device, 0) + int(entry.get("memoryMib") or 0)
            granted = grant(request, discover(), exclusive, shared)
            if granted.devices:
                entries[key] = {
                    "devices": granted.devices,
                    "exclusive": granted.exclusive,
                    "memoryMib": granted.memory_mib,
                    "claimedAt": time.time(),
                    "pid": None,
                }
            return granted

    def started(self, key: str, pid: int) -> None:
        """Record the server process holding ``key``'s grant (so a dead one frees it)."""
        with self._locked() as entries:
            if key in entries:
                entries[key]["pid"] = pid

    def release(self, key: str) -> None:
        with self._locked() as entries:
            entries.pop(key, None)
