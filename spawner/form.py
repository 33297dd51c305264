"""The spawn form: repository, ref, (when an admin defined some) a profile, and datasets.

``render_form`` builds the HTML (values escaped); ``parse_form`` turns the submitted fields
into a validated :class:`~codespace.options.UserOptions` dict, so a bad value is refused on the
form with the validator's message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pydantic import ValidationError

from codespace.options import UserOptions


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
    parts += [f'<small class="form-text text-muted">{help_text}</small>', "</div>"]
    return parts


def parse_form(formdata: Mapping[str, Any]) -> dict[str, Any]:
    """Form fields (lists of strings) -> validated user options; ValueError with a clear text."""
    fields = {key: formdata[key] for key in ("repo", "ref", "profile", "config") if key in formdata}
    flat: dict[str, Any] = {
        key: value[0] if isinstance(value, list) and value else value
        for key, value in fields.items()
    }
    datasets = formdata.get("datasets")
    if datasets:  # a multi-select: every picked value
        flat["datasets"] = [datasets] if isinstance(datasets, str) else list(datasets)
    return validate_options(flat)


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
