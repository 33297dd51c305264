"""``DeployButton("model.joblib")``: deploy a model from a notebook with one click (ipywidgets).

A button "Deploy model.joblib"; a click creates the deployment (the format is read from the
file on the server), the state shows as it comes up (creating, loading, ready, or failed with
the reason), then the endpoint's URL and a "Test request" button that sends the example
request built from the model's signature. Talks to the server through
:class:`~codespace.deploy.sdk.DeployApi` (over a :class:`~codespace.client.CodespaceClient`);
a background thread follows the state while the deployment comes up.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import PurePosixPath
from typing import Any

import ipywidgets as widgets

from codespace.client import ApiError, CodespaceClient
from codespace.deploy.records import CREATING
from codespace.deploy.sdk import DeployApi, deployment_spec
from codespace.widgets.base import Follows, error_html

POLL_SECONDS = 1.0
STATE_COLOURS = {"ready": "success", "idle": "info", "failed": "error"}


def state_html(record: dict[str, Any]) -> str:
    state = record["state"]
    colour = STATE_COLOURS.get(state, "warn")
    reason = f": {record['reason']}" if record.get("reason") else ""
    return (
        f'<span style="color:var(--jp-{colour}-color1)"><b>{html.escape(state)}</b></span>'
        f"{html.escape(reason)}"
    )


class DeployButton(Follows, widgets.VBox):
    """Deploy one model file (or directory) of the workspace, then try it.

    ``options`` are those of :func:`codespace.deploy.deploy`: ``format``, ``protocol``,
    ``resources``, ``min_replicas``, ``idle_timeout``, ``backend``.
    """

    def __init__(
        self,
        artifact: str,
        name: str | None = None,
        *,
        client: CodespaceClient | DeployApi | None = None,
        poll: float = POLL_SECONDS,
        **options: Any,
    ) -> None:
        self.poll = poll
        self.api = client if isinstance(client, DeployApi) else DeployApi(client)
        self.spec = deployment_spec(artifact, name, **options)
        self.record: dict[str, Any] | None = None
        label = PurePosixPath(artifact).name or artifact
        self.button = widgets.Button(description=f"Deploy {label}", icon="rocket")
        self.button.layout.width = "auto"
        self.state = widgets.HTML()
        self.url = widgets.HTML()
        self.test_button = widgets.Button(description="Test request", icon="paper-plane")
        self.test_button.layout.display = "none"
        self.result = widgets.HTML()
        self.message = widgets.HTML()
        self.button.on_click(lambda _: self.deploy())
        self.test_button.on_click(lambda _: self.test())
        super().__init__(
            [
                widgets.HBox([self.button, self.state]),
                self.url,
                self.test_button,
                self.result,
                self.message,
            ]
        )

    # --- actions -------------------------------------------------------------------------

    def _guard(self, action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except (ApiError, ValueError, TypeError) as error:
            self.message.value = error_html(str(error))
            return None

    def deploy(self) -> dict[str, Any] | None:
        """Create the deployment and follow it until it serves or fails."""
        self.message.value = ""
        self.result.value = ""
        self.button.disabled = True
        record = self._guard(self.api.create, self.spec)
        if record is None:
            self.button.disabled = False
            return None
        self.show(record)
        self._watch()
        return record

    def refresh(self) -> dict[str, Any] | None:
        if self.record is None:
            return None
        record = self._guard(self.api.get, self.record["name"])
        if record is not None:
            self.show(record)
        return record

    def show(self, record: dict[str, Any]) -> None:
        self.record = record
        self.state.value = state_html(record)
        endpoint = record.get("endpoint") or {}
        serving = record["state"] not in CREATING and record["state"] != "failed"
        if serving and endpoint.get("url"):
            url = html.escape(endpoint["url"])
            infer = html.escape(endpoint.get("infer") or "")
            self.url.value = (
                f'URL: <a href="{url}" target="_blank"><code>{url}</code></a>'
                f"<br>{html.escape(record['protocol'])} requests: <code>POST {infer}</code>"
            )
            self.test_button.layout.display = None
        else:
            self.url.value = ""
            self.test_button.layout.display = "none"
        if record["state"] == "failed":
            self.button.disabled = False  # try again (after a fix)

    def test(self) -> Any:
        """Send the example request of the model's signature; shows and returns the answer."""
        if self.record is None:
            return None
        name = self.record["name"]
        signature = self._guard(self.api.signature, name)
        if signature is None:
            return None
        example = signature.get("example") or {}
        if not example:
            note = signature.get("note") or "the model's signature gives no example request"
            self.result.value = html.escape(note)
            return None
        answer = self._guard(self.api.predict, name, example)
        if answer is not None:
            self.result.value = (
                f"<b>request</b><pre>{html.escape(json.dumps(example))}</pre>"
                f"<b>answer</b><pre>{html.escape(json.dumps(answer, indent=1))}</pre>"
            )
        return answer

    def _watch(self) -> None:
        """Refresh in the background until the deployment is no longer coming up."""

        def loop() -> None:
            while self.record is not None and self.record["state"] in CREATING:
                time.sleep(self.poll)
                if self.refresh() is None:
                    return

        self._follow(loop)
