"""What the codespaces home page and launch links show and decide, as plain functions.

A *codespace* is a named server made with a repository: JupyterHub keeps its user options
(``repo``, ``ref``, ``profile``, ``datasets``) in the server's database row, and the spawner
keeps its state there too. Nothing here talks to JupyterHub's handlers: the functions take the
server rows (duck-typed: ``name``, ``user_options``, ``state``, ``last_activity``, ``server``)
and return plain data, so tests call them directly.

- :func:`describe` -> :class:`Codespace`: repository, ref, state, last activity (and its
  source, when the server reported one), why the culler stopped it, environment and the URLs
  the page links to (JupyterLab, VS Code, progress, launch link);
- :func:`launch_path`, :func:`badge_markdown`: the shareable link and its README badge;
- :func:`parse_open`: the ``open`` query value, a path inside the repository;
- :func:`pick_name`: a readable, unique server name from the repository (JupyterHub's
  named-server rules: 1-30 lowercase letters, digits and single hyphens, a letter first);
- :func:`find_codespace`: the user's codespace for a repository and ref, to reuse.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from codespace.activity.sources import DESCRIPTIONS, iso
from codespace.activity.store import ServerActivity
from codespace.local.envbuild.overlay import MARKER as LAYER_MARKER
from codespace.local.envbuild.uv import MARKER as ENV_MARKER
from codespace.local.prepare import LAYER_DIR

NAME_MAX = 30  # JupyterHub 6's limit for server names
_SLUG_RUN = re.compile(r"[^a-z0-9]+")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")
OPEN_MAX = 1024


class Refused(ValueError):
    """A request the hub refuses before it creates or starts anything (shown on the page)."""


@dataclass(frozen=True)
class Codespace:
    """One row of the home page."""

    owner: str
    name: str
    display_name: str
    repo: str
    ref: str
    profile: str
    datasets: list[str]
    state: str  # running, starting, stopping, stopped or failed
    last_activity: str  # ISO 8601 UTC ("...Z"), or "" when never active
    environment: str
    lab_url: str
    vscode_url: str
    progress_url: str
    launch_path: str  # /hub/codespaces/new?repo=...&ref=... (the page makes it absolute)
    activity_source: str = ""  # what was active last ("kernel", ...), when the server said
    stop_message: str = ""  # why the culler stopped it ("Stopped after 30 min idle ...")
    stopped_at: str = ""  # when (ISO 8601 UTC "...Z"; the page shows the local time)


@dataclass(frozen=True)
class Urls:
    """Where the hub and the users' servers live (``/`` and ``/hub/`` by default)."""

    base_url: str = "/"
    hub_base_url: str = "/hub/"

    def server(self, owner: str, name: str) -> str:
        return f"{self.base_url}user/{quote(owner, safe='')}/{quote(name, safe='')}/"

    def lab(self, owner: str, name: str, open_path: str = "") -> str:
        if open_path:
            return f"{self.server(owner, name)}lab/tree/{quote(open_path, safe='/')}"
        return f"{self.server(owner, name)}lab"

    def vscode(self, owner: str, name: str) -> str:
        return f"{self.server(owner, name)}vscode/"

    def progress(self, owner: str, name: str, next_url: str = "") -> str:
        url = f"{self.hub_base_url}spawn-pending/{quote(owner, safe='')}/{quote(name, safe='')}"
        return f"{url}?{urlencode({'next': next_url})}" if next_url else url

    def launch(self, repo: str, ref: str = "", open_path: str = "") -> str:
        return launch_path(self.hub_base_url, repo, ref, open_path)


def launch_path(hub_base_url: str, repo: str, ref: str = "", open_path: str = "") -> str:
    """``/hub/codespaces/new?repo=...&ref=...&open=...`` (empty values left out)."""
    query = {"repo": repo, "ref": ref, "open": open_path}
    return f"{hub_base_url}codespaces/new?" + urlencode({k: v for k, v in query.items() if v})


def badge_markdown(launch_url: str, badge_url: str, label: str = "Open in Codespace Hub") -> str:
    """A README badge: ``[![label](badge)](launch link)``."""
    return f"[![{label}]({badge_url})]({launch_url})"


def parse_open(value: str | None) -> str:
    """The ``open`` value of a launch link: a relative path inside the repository, normalised
    (``./a//b`` -> ``a/b``); "" for none. Refuses absolute paths, ``..``, URLs and schemes,
    backslashes and control characters."""
    value = (value or "").strip()
    if not value:
        return ""
    if len(value) > OPEN_MAX:
        raise Refused(f"open: the path is longer than {OPEN_MAX} characters")
    if _CONTROL.search(value):
        raise Refused("open: the path contains control characters or backslashes")
    if value.startswith("/") or _SCHEME.match(value):
        raise Refused(f"open: {value!r} must be a path inside the repository, like dir/a.ipynb")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise Refused(f"open: {value!r} must not contain '..'")
    return "/".join(parts)


def same_repo(a: str, b: str) -> bool:
    """Whether two repository locations name the same repository (``.git``, trailing ``/``)."""

    def norm(repo: str) -> str:
        return repo.strip().rstrip("/").removesuffix(".git").rstrip("/")

    return bool(a) and norm(a) == norm(b)


def _slug(text: str) -> str:
    return _SLUG_RUN.sub("-", text.lower()).strip("-")


def repo_short_name(repo: str) -> str:
    """``https://host/org/my_repo.git`` -> ``my_repo``; ``user@host:org/x`` -> ``x``."""
    tail = repo.strip().rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return tail.removesuffix(".git")


def _fit(name: str, room: int = NAME_MAX) -> str:
    return name[:room].rstrip("-")


def pick_name(repo: str, ref: str, taken: Iterable[str]) -> str:
    """A server name for a new codespace of ``repo`` (and ``ref``) that is not ``taken``:
    the repository's short name, then with the ref, then numbered (``demo``, ``demo-dev``,
    ``demo-2``)."""
    used = set(taken)
    base = _fit(_slug(repo_short_name(repo))) or "codespace"
    if not base[0].isalpha():
        base = _fit(f"cs-{base}")
    candidates = [base]
    if ref and _slug(ref):
        candidates.append(_fit(f"{_fit(base, 18)}-{_slug(ref)}"))
    for candidate in candidates:
        if candidate not in used:
            return candidate
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = _fit(base, NAME_MAX - len(suffix)) + suffix
        if candidate not in used:
            return candidate
        number += 1


def options_of(row: Any) -> dict[str, Any]:
    """The user options saved in a server row ({} when none)."""
    options = getattr(row, "user_options", None)
    return dict(options) if isinstance(options, Mapping) else {}


def find_codespace(rows: Iterable[Any], repo: str, ref: str) -> Any | None:
    """The most recently active server row whose options name ``repo`` at ``ref``."""
    matches = [
        row
        for row in rows
        if getattr(row, "name", "")
        and same_repo(str(options_of(row).get("repo", "")), repo)
        and (options_of(row).get("ref") or "") == (ref or "")
    ]
    matches.sort(key=lambda row: getattr(row, "last_activity", None) or datetime.min)
    return matches[-1] if matches else None


def server_state(row: Any, wrapper: Any | None) -> str:
    """running / starting / stopping / stopped / failed, from JupyterHub's Spawner wrapper
    when one is loaded (``pending``, ``ready``, the last spawn's failure) or the row."""
    if wrapper is not None:
        pending = getattr(wrapper, "pending", None)
        if pending == "spawn":
            return "starting"
        if pending == "stop":
            return "stopping"
        if getattr(wrapper, "ready", False):
            return "running"
        if getattr(wrapper, "_failed", False):  # JupyterHub keeps the last spawn's error
            return "failed"
        return "stopped"
    return "running" if getattr(row, "server", None) is not None else "stopped"


def environment_status(state: Mapping[str, Any] | None, server_state_name: str) -> str:
    """What the page says about the environment: ``preparing`` while starting; else for the
    environment of the last start (local mode: the codespace's layer names the shared
    environment it sits on) ``cached`` (the next start reuses it) or ``not cached`` (the next
    start builds it); ``-`` when there was no start (or the spawner keeps no such record)."""
    if server_state_name == "starting":
        return "preparing (see the progress)"
    server_dir = (state or {}).get("server_dir")
    if not server_dir:
        return "-"
    try:
        layer = json.loads((Path(server_dir) / LAYER_DIR / LAYER_MARKER).read_text())
        base = Path(str(layer["base"]))
    except (OSError, ValueError, KeyError, TypeError):
        return "not built (the last start did not get that far)"
    if (base / ENV_MARKER).is_file():
        return f"cached ({base.name[:12]})"
    return "not cached: the next start builds it"


def _iso(value: datetime | None) -> str:
    return value.isoformat() + "Z" if value else ""


def activity_fields(state: str, activity: ServerActivity | None) -> dict[str, str]:
    """The last activity's source, and the culler's stop while the server is stopped."""
    fields: dict[str, str] = {}
    report = activity.report if activity else None
    if report is not None and report.source:
        fields["activity_source"] = DESCRIPTIONS.get(report.source, report.source)
    stopped = activity.stopped if activity else None
    if stopped is not None and state in ("stopped", "failed"):
        fields["stop_message"] = stopped.message
        fields["stopped_at"] = iso(stopped.at) or ""
    return fields


def describe(
    owner: str, row: Any, wrapper: Any | None, urls: Urls, activity: ServerActivity | None = None
) -> Codespace:
    """The home page's view of one named server row (``wrapper``: JupyterHub's Spawner object
    for it when loaded; ``activity``: the hub's activity record of the server)."""
    options = options_of(row)
    state = server_state(row, wrapper)
    repo = str(options.get("repo", ""))
    ref = str(options.get("ref") or "")
    datasets = options.get("datasets") or []
    name = str(row.name)
    return Codespace(
        owner=owner,
        name=name,
        display_name=str(getattr(row, "display_name", "") or name),
        repo=repo,
        ref=ref,
        profile=str(options.get("profile") or ""),
        datasets=[str(item) for item in datasets] if isinstance(datasets, list) else [],
        state=state,
        last_activity=_iso(getattr(row, "last_activity", None)),
        environment=environment_status(getattr(row, "state", None), state),
        lab_url=urls.lab(owner, name),
        vscode_url=urls.vscode(owner, name),
        progress_url=urls.progress(owner, name),
        launch_path=urls.launch(repo, ref) if repo else "",
        **activity_fields(state, activity),
    )
