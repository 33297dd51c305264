"""Notebook widgets over the codespace server's REST API (ipywidgets)."""

from codespace.widgets.datasets import DatasetBrowser
from codespace.widgets.deploy import DeployButton
from codespace.widgets.jobs import JobPanel

__all__ = ["DatasetBrowser", "DeployButton", "JobPanel"]
