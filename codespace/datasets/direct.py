"""A client with :class:`~codespace.client.CodespaceClient`'s dataset methods over a local
catalog, for the CLI's ``--catalog`` and for using the widget without a server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any


class DirectClient:
    """The client's methods over a LocalBackend (``--catalog``), returning plain JSON data."""

    def __init__(
        self, catalog: str, *, cache_dir: str | None = None, workspace: str | None = None
    ) -> None:
        from codespace.datasets.catalog import Catalog
        from codespace.datasets.local import LocalBackend

        cache = Path(cache_dir or Path.home() / ".cache" / "codespace" / "datasets")
        self.backend = LocalBackend(
            Catalog(Path(catalog)), cache_dir=cache, workspace=Path(workspace or Path.cwd())
        )

    def _run(self, coroutine: Any) -> Any:
        result = asyncio.run(coroutine)
        if isinstance(result, list):
            return [item.model_dump(mode="json") for item in result]
        return result.model_dump(mode="json")

    def list_datasets(self) -> list[dict[str, Any]]:
        return self._run(self.backend.list())

    def get_dataset(self, name: str) -> dict[str, Any]:
        return self._run(self.backend.get(name))

    def list_files(self, name: str, path: str = "", **kw: Any) -> dict[str, Any]:
        return self._run(self.backend.files(name, path, **{k: v for k, v in kw.items() if v}))

    def prewarm(self, name: str, paths: list[str] | None = None) -> dict[str, Any]:
        async def run() -> Any:  # a local prewarm runs in this process: wait for it
            op = await self.backend.prewarm(name, paths)
            while not op.finished:
                await asyncio.sleep(0.2)
            return op

        return self._run(run())

    def prewarm_history(self, name: str) -> list[dict[str, Any]]:
        return self._run(self.backend.prewarm_history(name))

    def mount(self, name: str) -> dict[str, Any]:
        return self._run(self.backend.mount(name))
