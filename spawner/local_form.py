"""The local spawner's options: the spawn form and the checks of what a user asks for.

The form offers the hub's profiles and the catalog's datasets (a missing local source shown
disabled with why), only those the user's group policy allows (:mod:`spawner.policy`); the
options a request gives (form, REST API, launch link) are checked before anything starts:
values, profile, datasets, the policy, and the local repository roots (a refusal is a 400).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado import web
from traitlets import HasTraits, default

from codespace.datasets.backend import DatasetError
from codespace.datasets.catalog import Catalog
from codespace.options import check_local_repo
from spawner.form import (
    DatasetUnavailable,
    catalog_choices,
    check_datasets,
    parse_form,
    render_form,
    validate_options,
)


def _check_user_options(spawner: Any, user_options: dict[str, Any]) -> None:
    """Refuse bad options before the spawn starts: the API answers 400 with the reason."""
    try:
        options = validate_options(user_options or {})
        spawner._profile(options.get("profile"))
        spawner.check_policy_options(options)  # profile, datasets, running codespaces
        if options.get("datasets"):  # a catalog dataset whose source is missing: refused
            check_datasets(options["datasets"], dict(spawner._form_datasets()[1]))
        check_local_repo(
            options["repo"],
            [Path(root) for root in spawner.allowed_repo_roots],
            refused=[Path(spawner.data_dir)],
        )
    except ValueError as error:
        raise web.HTTPError(400, str(error), reason=str(error)) from None


class LocalFormMixin(HasTraits):
    """The form and the option checks (needs ``profiles``, ``dataset_settings``, the
    policy's ``allowed_*`` and ``check_policy_options``)."""

    @default("options_form")
    def _default_options_form(self) -> Any:
        return LocalFormMixin._render_options_form  # called per spawn: catalog is live

    def _render_options_form(self) -> str:
        datasets, unavailable, note = self._form_datasets()
        allowed = set(self.allowed_profile_slugs([p.get("slug", "") for p in self.profiles]))
        names = set(self.allowed_dataset_names([name for name, _ in datasets + unavailable]))
        return render_form(
            [p for p in self.profiles if p.get("slug") in allowed],
            datasets=[choice for choice in datasets if choice[0] in names],
            datasets_note=note,
            unavailable=[choice for choice in unavailable if choice[0] in names],
        )

    def _form_datasets(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]], str]:
        """The catalog's datasets for the form: selectable, unavailable (a local source that
        is missing: shown disabled with why), and a note when the catalog cannot be read."""
        try:
            entries = Catalog(self.dataset_settings().catalog).entries()
        except DatasetError as error:
            return [], [], f"The dataset catalog cannot be read: {error}"
        return (*catalog_choices(entries.values()), "")

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return self._options_from_form

    def _options_from_form(self, formdata: dict[str, Any]) -> dict[str, Any]:
        """The form's fields as options; a dataset the form showed unavailable is a 400."""
        try:
            return parse_form(formdata, unavailable=dict(self._form_datasets()[1]))
        except DatasetUnavailable as error:
            refusal = web.HTTPError(400, str(error), reason="Dataset unavailable")
            refusal.jupyterhub_message = str(error)  # type: ignore[attr-defined]
            raise refusal from None

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        return _check_user_options
