"""Notebook widgets over the codespace server's REST API (ipywidgets)."""

from codespace.widgets.datasets import DatasetBrowser

__all__ = ["DatasetBrowser"]
