"""``DatasetBrowser()``: the Datasets sidebar in a notebook (ipywidgets).

A filterable table; pick a dataset to see its status and files; prewarm (with a live
progress bar) and mount. Talks to the server through :class:`~codespace.client.CodespaceClient`
(or any object with the same dataset methods, e.g. ``DirectClient``).
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets as widgets

from codespace.client import ApiError, CodespaceClient
from codespace.datasets.errors import DatasetError
from codespace.widgets.base import error_html

COLUMNS = ("name", "source", "phase", "size", "files", "cached", "mount path")
POLL_SECONDS = 1.0


def _row(dataset: dict[str, Any]) -> tuple[str, ...]:
    status = dataset["status"]
    return (
        dataset["name"],
        dataset["source"],
        status["phase"],
        status.get("ufsTotal") or "",
        "" if status.get("fileNum") is None else str(status["fileNum"]),
        status.get("cachedPercentage") or "",
        dataset["mountPath"] if dataset.get("mounted") else "",
    )


def table_html(datasets: list[dict[str, Any]], needle: str = "") -> str:
    needle = needle.strip().lower()
    rows = [
        _row(d)
        for d in datasets
        if not needle
        or any(needle in v.lower() for v in (d["name"], d["description"], d["source"], *d["tags"]))
    ]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table class="codespace-datasets"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


class DatasetBrowser(widgets.VBox):
    """Browse, prewarm and mount datasets from a notebook."""

    def __init__(self, client: Any = None, **kwargs: Any) -> None:
        self.client = client if client is not None else CodespaceClient()
        self.datasets: list[dict[str, Any]] = []
        self.filter = widgets.Text(placeholder="Filter datasets", description="Filter")
        self.table = widgets.HTML()
        self.choice = widgets.Dropdown(options=[], description="Dataset")
        self.detail = widgets.HTML()
        self.files = widgets.Select(options=[], rows=10, description="Files")
        self.path = ""
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="Prewarm")
        self.message = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.prewarm_button = widgets.Button(description="Prewarm", icon="fire")
        self.mount_button = widgets.Button(description="Mount", icon="link")
        self.filter.observe(lambda _: self._render_table(), names="value")
        self.choice.observe(lambda change: self.select(change["new"]), names="value")
        self.files.observe(self._open_entry, names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.prewarm_button.on_click(lambda _: self.prewarm())
        self.mount_button.on_click(lambda _: self.mount())
        super().__init__(
            [
                widgets.HBox([self.filter, self.refresh_button]),
                self.table,
                widgets.HBox([self.choice, self.prewarm_button, self.mount_button]),
                self.detail,
                self.progress,
                self.files,
                self.message,
            ],
            **kwargs,
        )
        self.refresh()

    # --- actions -------------------------------------------------------------------------

    def _guard(self, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except (ApiError, DatasetError, ValueError) as error:
            self.message.value = error_html(str(error))
            return None

    def refresh(self) -> None:
        datasets = self._guard(self.client.list_datasets)
        if datasets is None:
            return
        self.datasets = datasets
        self._render_table()
        names = [d["name"] for d in datasets]
        current = self.choice.value
        self.choice.options = names
        self.choice.value = current if current in names else (names[0] if names else None)

    def _render_table(self) -> None:
        self.table.value = table_html(self.datasets, self.filter.value)

    def select(self, name: str | None) -> None:
        if not name:
            self.detail.value = ""
            self.files.options = []
            return
        dataset = self._guard(self.client.get_dataset, name)
        if dataset is None:
            return
        status = dataset["status"]
        facts = {
            "Description": dataset["description"],
            "Source": dataset["source"],
            "Phase": status["phase"],
            "Size": status.get("ufsTotal"),
            "Files": status.get("fileNum"),
            "Cached": status.get("cachedPercentage"),
            "Cache hit ratio": status.get("cacheHitRatio"),
            **{f"Runtime {k}": v for k, v in (status.get("runtimePhases") or {}).items()},
            "Mounted at": dataset["mountPath"] if dataset["mounted"] else "not mounted",
            "Note": status.get("message"),
        }
        self.detail.value = (
            "<dl>"
            + "".join(
                f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                for k, v in facts.items()
                if v not in (None, "")
            )
            + "</dl>"
        )
        self.show_files("")

    def show_files(self, path: str) -> None:
        name = self.choice.value
        page = self._guard(self.client.list_files, name, path)
        if page is None:
            return
        self.path = page["path"]
        options = [(".. (up)", "..")] if self.path else []
        options += [
            (e["name"] + ("/" if e["type"] == "directory" else ""), e["path"])
            for e in page["entries"]
        ]
        if page.get("nextCursor"):
            options.append((f"... {page['total'] - len(page['entries'])} more", None))
        self.files.unobserve(self._open_entry, names="value")
        self.files.options = options
        self.files.value = None
        self.files.observe(self._open_entry, names="value")

    def _open_entry(self, change: dict[str, Any]) -> None:
        value = change["new"]
        if value == "..":
            self.show_files(self.path.rsplit("/", 1)[0] if "/" in self.path else "")
        elif value and any(label.endswith("/") and v == value for label, v in self.files.options):
            self.show_files(value)

    def prewarm(self, *, wait: bool = False) -> None:
        name = self.choice.value
        op = self._guard(self.client.prewarm, name, None)
        if op is None:
            return
        self._show_progress(op)
        watcher = threading.Thread(target=self._watch, args=(name,), daemon=True)
        watcher.start()
        if wait:
            watcher.join()

    def _watch(self, name: str) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            history = self._guard(self.client.prewarm_history, name)
            if not history:
                return
            self._show_progress(history[0])
            if history[0]["phase"] in ("Complete", "Failed"):
                self.refresh()
                if self.choice.value == name:
                    self.select(name)
                return

    def _show_progress(self, op: dict[str, Any]) -> None:
        self.progress.max = max(op.get("bytesTotal") or 1, 1)
        self.progress.value = min(op.get("bytesDone") or 0, self.progress.max)
        if op["phase"] == "Complete" and not op.get("bytesTotal"):
            self.progress.value = self.progress.max
        self.progress.bar_style = {"Complete": "success", "Failed": "danger"}.get(
            op["phase"], "info"
        )
        self.message.value = html.escape(f"prewarm {op['phase']}: {op.get('message') or ''}")

    def mount(self) -> None:
        result = self._guard(self.client.mount, self.choice.value)
        if result is not None:
            state = "Mounted" if result["mounted"] else "Recorded for the next start"
            self.message.value = html.escape(
                f"{state} at {result['mountPath']}: {result['message']}"
            )
            self.refresh()
