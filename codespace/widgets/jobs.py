"""``JobPanel()``: the Jobs sidebar in a notebook (ipywidgets).

Submit a script or notebook of the workspace (or a command) to any configured backend, see
your jobs with their state and reason, follow the selected job's log, cancel or resubmit it.
Talks to the server through :class:`~codespace.client.CodespaceClient` (or any object with
the same job methods); a background thread refreshes while a job is queued or running.
"""

from __future__ import annotations

import html
import shlex
import time
from typing import Any

import ipywidgets as widgets

from codespace.client import ApiError, CodespaceClient
from codespace.jobs.sdk import job_spec
from codespace.widgets.base import Follows, error_html

COLUMNS = ("name", "backend", "state", "reason", "id")
UNFINISHED = ("queued", "running")
POLL_SECONDS = 2.0
LOG_LINES = 40


def table_html(jobs: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(str(job.get(column) or ''))}</td>" for column in COLUMNS)
        + "</tr>"
        for job in jobs
    )
    return (
        f'<table class="codespace-jobs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def spec_from_form(what: str, backend: str | None, time_limit: str) -> dict[str, Any]:
    """A job spec from the panel's fields: a notebook, a script, or a command line."""
    what = what.strip()
    if not what:
        raise ValueError("give a notebook, a script or a command to run")
    resources = {"timeLimit": time_limit.strip()} if time_limit.strip() else None
    if what.endswith(".ipynb"):
        return job_spec(notebook=what, backend=backend, resources=resources)
    words = shlex.split(what)
    if len(words) == 1 and words[0].endswith((".py", ".sh")):
        return job_spec(script=words[0], backend=backend, resources=resources)
    return job_spec(command=words, backend=backend, resources=resources)


class JobPanel(Follows, widgets.VBox):
    """Submit, watch, read the logs of, cancel and resubmit jobs from a notebook."""

    def __init__(self, client: Any = None, **kwargs: Any) -> None:
        self.client = client if client is not None else CodespaceClient()
        self.jobs: list[dict[str, Any]] = []
        self.what = widgets.Text(
            placeholder="train.py, report.ipynb or a command", description="Run"
        )
        self.backend = widgets.Dropdown(options=[], description="Backend")
        self.time_limit = widgets.Text(placeholder="e.g. 30m", description="Time limit")
        self.submit_button = widgets.Button(description="Submit", icon="play")
        self.table = widgets.HTML()
        self.choice = widgets.Dropdown(options=[], description="Job")
        self.detail = widgets.HTML()
        self.message = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop")
        self.resubmit_button = widgets.Button(description="Resubmit", icon="repeat")
        self.submit_button.on_click(lambda _: self.submit())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.resubmit_button.on_click(lambda _: self.resubmit())
        self.choice.observe(lambda change: self.show(change["new"]), names="value")
        super().__init__(
            [
                widgets.HBox([self.what, self.backend]),
                widgets.HBox([self.time_limit, self.submit_button]),
                widgets.HBox([self.refresh_button]),
                self.table,
                widgets.HBox([self.choice, self.cancel_button, self.resubmit_button]),
                self.detail,
                self.message,
            ],
            **kwargs,
        )
        self._load_backends()
        self.refresh()

    # --- actions -------------------------------------------------------------------------

    def _guard(self, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except (ApiError, ValueError) as error:
            self.message.value = error_html(str(error))
            return None

    def _load_backends(self) -> None:
        backends = self._guard(self.client.job_backends) or []
        self.backend.options = [b["name"] for b in backends]
        default = [b["name"] for b in backends if b.get("default")]
        self.backend.value = default[0] if default else (self.backend.options or (None,))[0]

    def refresh(self) -> None:
        jobs = self._guard(self.client.list_jobs)
        if jobs is None:
            return
        self.jobs = jobs
        self.table.value = table_html(jobs)
        options = [(f"{job['name']} ({job['state']})", job["id"]) for job in jobs]
        current = self.choice.value
        self.choice.options = options
        ids = [value for _, value in options]
        self.choice.value = current if current in ids else (ids[0] if ids else None)
        if any(job["state"] in UNFINISHED for job in jobs):
            self._watch()

    def submit(self) -> list[dict[str, Any]] | None:
        spec = self._guard(
            spec_from_form, self.what.value, self.backend.value, self.time_limit.value
        )
        if spec is None:
            return None
        made = self._guard(self.client.submit_jobs, spec)
        if made:
            self.message.value = html.escape(f"submitted {made[0]['name']} ({made[0]['id']})")
            self.refresh()
            self.choice.value = made[0]["id"]
        return made

    def show(self, job_id: str | None) -> None:
        if not job_id:
            self.detail.value = ""
            return
        job = self._guard(self.client.get_job, job_id)
        text = self._guard(self.client.job_logs, job_id, LOG_LINES)
        if job is None or text is None:
            return
        facts = f"{job['state']}" + (f": {job['reason']}" if job.get("reason") else "")
        if job.get("outputNotebook"):
            facts += f" — output notebook: {job['outputNotebook']}"
        self.detail.value = f"<b>{html.escape(facts)}</b><pre>{html.escape(text)}</pre>"

    def cancel(self) -> None:
        if self.choice.value and self._guard(self.client.cancel_job, self.choice.value):
            self.refresh()
            self.show(self.choice.value)

    def resubmit(self) -> None:
        if self.choice.value and self._guard(self.client.resubmit_job, self.choice.value):
            self.refresh()

    def _watch(self) -> None:
        """Refresh in the background until no job is queued or running."""

        def loop() -> None:
            while True:
                time.sleep(POLL_SECONDS)
                jobs = self._guard(self.client.list_jobs)
                if jobs is None:
                    return
                self.jobs = jobs
                self.table.value = table_html(jobs)
                self.show(self.choice.value)
                if not any(job["state"] in UNFINISHED for job in jobs):
                    return

        self._follow(loop)
