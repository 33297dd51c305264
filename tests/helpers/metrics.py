"""Reading Prometheus metrics back in tests: every sample of the default registry, parsed
from its text exposition with prometheus_client's parser, and how much one moved; a fake of
the HubAuth methods our handlers call."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def values() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the default registry, read back from its text exposition."""
    text = generate_latest(REGISTRY).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metric: str, /, **labels: str) -> float:
    return values().get((metric, frozenset(labels.items())), 0.0)


class Moves:
    """How much a sample changed since this was made: ``moves("name", label=...)``."""

    def __init__(self) -> None:
        self.before = values()

    def __call__(self, metric: str, /, **labels: str) -> float:
        key = (metric, frozenset(labels.items()))
        return values().get(key, 0.0) - self.before.get(key, 0.0)


class FakeHubAuth:
    """The part of JupyterHub's HubAuth the handlers use: tokens -> models with scopes."""

    access_scopes = frozenset({"access:services!service=codespace-deploy"})

    def __init__(self, models: dict[str, dict[str, Any]]) -> None:
        self.models = models

    def get_token(self, handler, in_cookie: bool = True) -> str | None:
        header = handler.request.headers.get("Authorization", "")
        return header.partition(" ")[2] or None

    async def user_for_token(self, token: str, sync: bool = True) -> dict[str, Any] | None:
        return self.models.get(token)

    def check_scopes(self, required, model: dict[str, Any]) -> set[str]:
        from jupyterhub.services.auth import check_scopes

        return check_scopes(required, set(model["scopes"]))


METRICS_TOKEN = {"kind": "service", "name": "prometheus", "scopes": ["read:metrics"]}
