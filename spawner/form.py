"""The spawn form: repository, ref, (when an admin defined some) a profile, and datasets.

``render_form`` builds the HTML (values escaped); ``parse_form`` turns the submitted fields
into a validated :class:`~codespace.options.UserOptions` dict, so a bad value is refused on the
form with the validator's message. ``catalog_choices`` splits the local catalog's datasets into
those the form offers and those it shows disabled (a local source that does not exist).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from codespace.datasets.models import CatalogEntry
from codespace.options import UserOptions


class DatasetUnavailable(ValueError):
    """A dataset picked on the form that the form showed as unavailable (the hub answers 400)."""


def render_form(
    profiles: Sequence[Mapping[str, str]] = (),
    defaults: Mapping[str, str] | None = None,
    datasets: Sequence[tuple[str, str]] = (),
    datasets_note: str = "",
    unavailable: Sequence[tuple[str, str]] = (),
) -> str:
    """HTML for JupyterHub's spawn page (it wraps this in its own <form>).

    ``datasets`` are ``(name, description)`` pairs offered in a multi-select (mounted at
    start in addition to the repository's own); ``datasets_note`` is shown under it (for
    example why the catalog could not be read). ``unavailable`` are ``(name, why)`` pairs
    listed in the same select but disabled (e.g. a Fluid Dataset that is not Bound).
    """
    defaults = defaults or {}
    repo = escape(defaults.get("repo", ""), quote=True)
    ref = escape(defaults.get("ref", ""), quote=True)
    parts = [
        '<div class="form-group">',
        '<label for="codespace-repo">Repository</label>',
        f'<input class="form-control" id="codespace-repo" name="repo" value="{repo}" required '
        'placeholder="https://github.com/org/repo.git or /path/to/repo">',
        '<small class="form-text text-muted">An https://, ssh:// or file:// URL, '
        "user@host:path, or an absolute path on the hub's machine.</small>",
        "</div>",
        '<div class="form-group">',
        '<label for="codespace-ref">Branch, tag or commit</label>',
        f'<input class="form-control" id="codespace-ref" name="ref" value="{ref}" '
        'placeholder="default branch">',
        "</div>",
    ]
    if profiles:
        parts += [
            '<div class="form-group">',
            '<label for="codespace-profile">Profile</label>',
            '<select class="form-control" id="codespace-profile" name="profile">',
        ]
        for profile in profiles:
            slug = escape(profile["slug"], quote=True)
            label = escape(profile.get("display_name", profile["slug"]))
            description = profile.get("description")
            if description:
                label += " - " + escape(description)
            parts.append(f'<option value="{slug}">{label}</option>')
        parts += ["</select>", "</div>"]
    if datasets or unavailable or datasets_note:
        parts += _datasets_field(datasets, datasets_note, unavailable)
    return "\n".join(parts)


def _datasets_field(
    datasets: Sequence[tuple[str, str]], note: str, unavailable: Sequence[tuple[str, str]] = ()
) -> list[str]:
    size = max(2, min(len(datasets) + len(unavailable), 8))
    parts = [
        '<div class="form-group">',
        '<label for="codespace-datasets">Datasets</label>',
        f'<select class="form-control" id="codespace-datasets" name="datasets" multiple '
        f'size="{size}">',
    ]
    for name, description in datasets:
        label = escape(name) + (f" - {escape(description)}" if description else "")
        parts.append(f'<option value="{escape(name, quote=True)}">{label}</option>')
    for name, why in unavailable:
        parts.append(
            f'<option value="{escape(name, quote=True)}" disabled>'
            f"{escape(name)} ({escape(why)})</option>"
        )
    parts.append("</select>")
    help_text = (
        escape(note)
        if note
        else ("Mounted under datasets/ in the workspace, with the ones the repository lists.")
    )
    if unavailable and not note:
        help_text += " Greyed-out datasets cannot be picked now; the reason is next to each."
    parts += [f'<small class="form-text text-muted">{help_text}</small>', "</div>"]
    return parts


def catalog_choices(
    entries: Iterable[CatalogEntry],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(selectable, unavailable)`` for the local catalog, in its order: entries as
    ``(name, description)``, except those whose source is a local path that is missing (or
    cannot be read), as ``(name, why)``. Remote URLs are offered; they are checked when mounted."""
    selectable, unavailable = [], []
    for entry in entries:
        why = None if entry.is_remote else _local_source_problem(entry.source)
        if why:
            unavailable.append((entry.name, why))
        else:
            selectable.append((entry.name, entry.description))
    return selectable, unavailable


def _local_source_problem(source: str) -> str | None:
    path = Path(source.removeprefix("file://"))
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return f"unavailable: its source {path} does not exist"
    except OSError as error:
        return f"unavailable: its source {path} cannot be read ({error.strerror or error})"
    return None


def parse_form(
    formdata: Mapping[str, Any], unavailable: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Form fields (lists of strings) -> validated user options; ValueError with a clear text.

    ``unavailable`` maps the datasets the form showed disabled to why: picking one anyway (a
    hand-made POST, or a source that vanished while the form was open) raises
    :class:`DatasetUnavailable`."""
    fields = {key: formdata[key] for key in ("repo", "ref", "profile", "config") if key in formdata}
    flat: dict[str, Any] = {
        key: value[0] if isinstance(value, list) and value else value
        for key, value in fields.items()
    }
    datasets = formdata.get("datasets")
    if datasets:  # a multi-select: every picked value
        flat["datasets"] = [datasets] if isinstance(datasets, str) else list(datasets)
    check_datasets(flat.get("datasets", ()), unavailable or {})
    return validate_options(flat)


def check_datasets(picked: Iterable[str], unavailable: Mapping[str, str]) -> None:
    """Refuse picked datasets that are unavailable (``name -> why``): DatasetUnavailable."""
    refused = [name for name in picked if name in unavailable]
    if refused:
        raise DatasetUnavailable(
            "; ".join(f"dataset {n!r} cannot be mounted ({unavailable[n]})" for n in refused)
            + ". Pick the other datasets, or ask an admin to fix the dataset catalog."
        )


def validate_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """User options from the form or the REST API -> a clean dict; ValueError explains a refusal."""
    try:
        parsed = UserOptions.model_validate(dict(options))
    except ValidationError as error:
        messages = "; ".join(_message(item) for item in error.errors())
        raise ValueError(f"Invalid codespace options: {messages}") from None
    return parsed.model_dump(exclude_none=True, exclude_defaults=True) | {"repo": parsed.repo}


def _message(item: Mapping[str, Any]) -> str:
    message = str(item.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    location = ".".join(str(part) for part in item.get("loc", ()))
    if item.get("type") == "missing":
        return f"{location} is required"
    if item.get("type") == "extra_forbidden":
        return f"unknown option {location!r}"
    return message if location and location in message else f"{location}: {message}"
