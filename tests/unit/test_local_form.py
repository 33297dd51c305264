"""spawner.form and spawner.progress: the spawn form and the replayable progress log."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from spawner.form import parse_form, render_form
from spawner.progress import ProgressLog


def test_form_escapes_values_and_lists_profiles() -> None:
    html = render_form(
        [{"slug": "small", "display_name": "Small <2 CPU>", "description": "for notebooks"}],
        {"repo": '"><script>alert(1)</script>'},
    )
    assert "<script>" not in html and "&quot;&gt;&lt;script&gt;" in html
    assert 'value="small"' in html and "Small &lt;2 CPU&gt; - for notebooks" in html


def test_form_fields_become_validated_options() -> None:
    options = parse_form({"repo": ["https://example.org/r.git"], "ref": ["main"], "profile": [""]})
    assert options == {"repo": "https://example.org/r.git", "ref": "main"}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"repo": ["--upload-pack=x"]}, "starts with '-'"),
        ({"repo": ["https://e.org/r.git"], "ref": ["a..b"]}, "not a valid git ref"),
        ({"ref": ["main"]}, "repo is required"),
    ],
)
def test_bad_form_values_are_refused_with_the_reason(form: dict, message: str) -> None:
    with pytest.raises(ValueError, match="Invalid codespace options") as refused:
        parse_form(form)
    assert message in str(refused.value)


async def test_progress_log_replays_for_every_follower_and_ends_when_closed() -> None:
    log = ProgressLog()
    log.step(10, "fetch: repo")
    log.line("Cloning into ...")

    async def collect() -> list[str]:
        return [str(event["message"]) async for event in log.follow()]

    first = asyncio.create_task(collect())
    await asyncio.sleep(0)
    log.step(50, "environment: cache hit")
    log.close()
    second = await collect()
    assert await first == second
    assert [m.split("] ", 1)[1] for m in second] == [
        "fetch: repo",
        "    Cloning into ...",
        "environment: cache hit",
    ]


def test_spawner_refuses_an_unknown_profile_before_starting() -> None:
    from tornado import web

    from spawner.local import LocalCodespaceSpawner
    from spawner.local_form import _check_user_options

    spawner = LocalCodespaceSpawner(
        profiles=[{"slug": "small", "display_name": "Small"}], allowed_repo_roots=["/srv"]
    )
    _check_user_options(spawner, {"repo": "/srv/repo", "profile": "small"})
    with pytest.raises(web.HTTPError) as refused:
        _check_user_options(spawner, {"repo": "/srv/repo", "profile": "huge"})
    assert refused.value.status_code == 400
    assert "'huge' is not one of the hub's profiles" in refused.value.log_message


@pytest.mark.parametrize(
    ("roots", "repo", "refused"),
    [
        ([], "/srv/repo", "none are allowed on this hub"),
        ([], "file:///srv/repo", "none are allowed on this hub"),
        (["/srv"], "/srv/repo", None),
        (["/srv"], "file:///srv/repo", None),
        (["/srv"], "/srvx/repo", "outside the directories the hub allows (/srv)"),
        (["/srv"], "https://example.org/a/repo.git", None),
        (["/"], "DATA/workspaces/bob/demo", "outside the directories"),  # another user's
    ],
)
def test_local_repositories_only_under_the_allowed_roots(
    tmp_path: Path, roots: list[str], repo: str, refused: str | None
) -> None:
    from tornado import web

    from spawner.local import LocalCodespaceSpawner
    from spawner.local_form import _check_user_options

    data = tmp_path / "data"
    spawner = LocalCodespaceSpawner(allowed_repo_roots=roots, data_dir=str(data))
    options = {"repo": repo.replace("DATA", str(data))}
    if refused is None:
        _check_user_options(spawner, options)
        return
    with pytest.raises(web.HTTPError) as error:
        _check_user_options(spawner, options)
    assert error.value.status_code == 400 and refused in error.value.log_message


def _catalog(tmp_path: Path) -> Path:
    (tmp_path / "iris").mkdir()
    catalog = tmp_path / "datasets.yaml"
    catalog.write_text(
        "datasets:\n"
        "  - {name: iris, description: flowers, source: iris}\n"
        "  - {name: ghost, description: gone, source: /nonexistent/ghost}\n"
        "  - {name: gone-url, source: 'file:///nonexistent/url'}\n"
        "  - {name: weather, source: 's3://climate/weather/'}\n"
    )
    return catalog


def test_catalog_datasets_whose_local_source_is_missing_are_shown_disabled(tmp_path) -> None:
    from codespace.datasets.catalog import Catalog
    from spawner.form import catalog_choices

    selectable, unavailable = catalog_choices(Catalog(_catalog(tmp_path)).entries().values())
    assert selectable == [("iris", "flowers"), ("weather", "")]
    assert unavailable == [
        ("ghost", "unavailable: its source /nonexistent/ghost does not exist"),
        ("gone-url", "unavailable: its source /nonexistent/url does not exist"),
    ]
    html = render_form(datasets=selectable, unavailable=unavailable)
    assert '<option value="iris">iris - flowers</option>' in html
    assert (
        '<option value="ghost" disabled>ghost (unavailable: its source /nonexistent/ghost '
        "does not exist)</option>"
    ) in html
    assert "Greyed-out datasets cannot be picked now" in html


def _spawner(tmp_path: Path, catalog: str):
    from spawner.local import LocalCodespaceSpawner

    return LocalCodespaceSpawner(
        data_dir=str(tmp_path / "data"),
        dataset_catalog=catalog,
        user=SimpleNamespace(name="alice"),
        orm_spawner=SimpleNamespace(name="demo", server=None),
    )


def test_the_local_spawner_form_marks_missing_sources_and_refuses_them_with_400(tmp_path) -> None:
    from tornado import web

    spawner = _spawner(tmp_path, str(_catalog(tmp_path)))
    html = spawner._render_options_form()
    assert '<option value="iris">' in html and '<option value="weather">' in html
    assert '<option value="ghost" disabled>' in html
    # What JupyterHub calls with the posted form (run_options_from_form).
    picked = spawner.run_options_from_form({"repo": ["/srv/r"], "datasets": ["iris", "weather"]})
    assert picked["datasets"] == ["iris", "weather"]
    with pytest.raises(web.HTTPError) as refused:
        spawner.run_options_from_form({"repo": ["/srv/r"], "datasets": ["iris", "ghost"]})
    assert refused.value.status_code == 400
    message = refused.value.jupyterhub_message
    assert message.startswith("dataset 'ghost' cannot be mounted (unavailable: its source")
    assert "'iris'" not in message
    # Other bad values keep their own refusal (the form shows the validator's message).
    with pytest.raises(ValueError, match="repo is required"):
        spawner.run_options_from_form({"datasets": ["iris"]})


def test_an_unreadable_catalog_is_a_note_on_the_form_not_an_error(tmp_path) -> None:
    spawner = _spawner(tmp_path, str(tmp_path / "missing.yaml"))
    assert "The dataset catalog cannot be read" in spawner._render_options_form()
    assert spawner.run_options_from_form({"repo": ["/srv/r"]}) == {"repo": "/srv/r"}
