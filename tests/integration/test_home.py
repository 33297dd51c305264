"""The codespaces home page, launch links and refused starts, against a real hub.

One hub serves the module (spawns are what take time); each test uses its own user. Pages are
fetched as a logged-in user (a ``requests`` session through JupyterHub's login form).
The first tests call the pure functions the handlers use.
"""

from __future__ import annotations

import asyncio
import json
import re
from html import unescape
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from tornado import web

from codespace.local.envbuild.overlay import MARKER as LAYER_MARKER
from codespace.local.envbuild.uv import MARKER as ENV_MARKER
from codespace.local.prepare import LAYER_DIR
from hub.codespaces import (
    Refused,
    Urls,
    badge_markdown,
    environment_status,
    find_codespace,
    launch_path,
    parse_open,
    pick_name,
    server_state,
)
from hub.refusals import check_options
from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import fixture_repo

pytestmark = pytest.mark.integration

LIMIT = 10  # config/jupyterhub_config_local.py
BAD_REPOS = ["relative/path", "", "/srv/not-allowed/repo"]


# -- the pure parts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", ""), ("README.md", "README.md"), ("./nb//a b.ipynb", "nb/a b.ipynb"), ("a/./b", "a/b")],
)
def test_open_is_a_path_inside_the_repository(value: str, expected: str) -> None:
    assert parse_open(value) == expected


@pytest.mark.parametrize(
    "value",
    ["/etc/passwd", "../x", "a/../../b", "https://evil.example/x", "javascript:alert(1)", "a\\b"],
)
def test_open_refuses_what_leaves_the_repository(value: str) -> None:
    with pytest.raises(Refused):
        parse_open(value)


def test_names_are_readable_unique_and_valid_server_names() -> None:
    valid = re.compile(r"^[a-z]([a-z0-9]|-(?!-))*[a-z0-9]$")
    repo = "https://github.com/Org/My_Big.Repo.git"
    assert pick_name(repo, "", []) == "my-big-repo"
    assert pick_name(repo, "dev", ["my-big-repo"]) == "my-big-repo-dev"
    assert pick_name(repo, "dev", ["my-big-repo", "my-big-repo-dev"]) == "my-big-repo-2"
    long = pick_name("git@host:" + "x" * 80, "feature/" + "y" * 40, ["x" * 30])
    numbered = pick_name("/srv/123", "", ["cs-123"])
    for name in (long, numbered, pick_name("/srv/---", "", [])):
        assert len(name) <= 30 and valid.match(name), name
    assert numbered == "cs-123-2"


def test_launch_links_badges_and_reuse() -> None:
    link = launch_path("/hub/", "https://h/o/r.git", "v1.0", "nb/a b.ipynb")
    assert (
        link == "/hub/codespaces/new?repo=https%3A%2F%2Fh%2Fo%2Fr.git&ref=v1.0&open=nb%2Fa+b.ipynb"
    )
    assert badge_markdown("L", "B") == "[![Open in Codespace Hub](B)](L)"
    assert Urls().lab("a b", "s", "nb/x y.ipynb") == "/user/a%20b/s/lab/tree/nb/x%20y.ipynb"
    rows = [
        SimpleNamespace(name="one", user_options={"repo": "https://h/o/r.git"}, last_activity=None),
        SimpleNamespace(name="two", user_options={"repo": "https://h/o/r", "ref": "v1.0"}),
    ]
    assert find_codespace(rows, "https://h/o/r/", "").name == "one"
    assert find_codespace(rows, "https://h/o/r.git", "v1.0").name == "two"
    assert find_codespace(rows, "https://h/o/other", "") is None
    failed = SimpleNamespace(pending=None, ready=False, _failed=True)
    assert server_state(rows[0], failed) == "failed"
    assert server_state(SimpleNamespace(server=object()), None) == "running"


def test_environment_column_reads_the_last_start(tmp_path: Path) -> None:
    env = tmp_path / "env-cache" / "envs" / "0123456789abcdef"
    layer = tmp_path / "servers" / "u" / "s" / LAYER_DIR
    layer.mkdir(parents=True)
    (layer / LAYER_MARKER).write_text(json.dumps({"base": str(env)}))
    state = {"server_dir": str(layer.parent)}
    assert environment_status(state, "stopped") == "not cached: the next start builds it"
    env.mkdir(parents=True)
    (env / ENV_MARKER).write_text("{}")
    assert environment_status(state, "running") == "cached (0123456789ab)"
    assert environment_status(state, "starting").startswith("preparing")
    assert environment_status({}, "stopped") == "-"


def test_refusals_are_the_spawners_own() -> None:
    def apply(spawner: object, options: dict) -> None:
        if options["repo"].startswith("/srv"):
            raise web.HTTPError(400, "outside the allowed directories")

    spawner = SimpleNamespace(apply_user_options=apply)
    assert asyncio.run(check_options(spawner, {"repo": "/tmp/x", "ref": ""})) == {"repo": "/tmp/x"}
    for options, reason in [
        ({"repo": "/srv/x"}, "outside the allowed"),
        ({"repo": "relative"}, "is not supported"),
        ({}, "repo is required"),
    ]:
        with pytest.raises(Refused, match=reason):
            asyncio.run(check_options(spawner, options))


# -- a real hub ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("home-hub")
    config = uv_cache_config(tmp_path_factory)
    with running_hub(data / "hub", extra_config=config) as running:
        yield running


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_repo(tmp_path_factory.mktemp("home-repo"))


def login(hub: RunningHub, user: str, *, admin: bool = False) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{hub.url}hub/login", timeout=60)
    secret = "admin-password" if admin else "user-password"
    password = (hub.data_dir / "secrets" / secret).read_text().strip()
    data = {"username": user, "password": password, "_xsrf": xsrf_of(page.text)}
    response = session.post(f"{hub.url}hub/login", data=data, timeout=60)
    assert response.ok and "/hub/login" not in response.url, response.text[-2000:]
    return session


def xsrf_of(html: str) -> str:
    """The XSRF token of a page's form (a hidden field, or in the spawn form's action URL)."""
    match = re.search(r'name="_xsrf" value="([^"]+)"|[?&;]_xsrf=([^"&]+)', html)
    assert match, html[-2000:]
    return unquote(unescape(match.group(1) or match.group(2)))


def named_servers(hub: RunningHub, user: str) -> dict:
    response = hub.api("GET", f"/users/{user}?include_stopped_servers")
    response.raise_for_status()
    return {name: model for name, model in response.json()["servers"].items() if name}


def ready(events: list[dict]) -> bool:
    return bool(events and events[-1].get("ready"))


def test_home_page_lists_the_codespaces_with_repository_and_ref(
    hub: RunningHub, repo: Path, tmp_path: Path
) -> None:
    other = fixture_repo(tmp_path, value=7)
    assert ready(hub.spawn("hana", "alpha", {"repo": str(repo), "ref": "main"}))
    assert ready(hub.spawn("hana", "beta", {"repo": f"file://{other}"}))
    hub.stop("hana", "beta")
    page = login(hub, "hana").get(f"{hub.url}hub/home", timeout=60)
    assert page.status_code == 200
    html = page.text
    rows = dict(re.findall(r'data-server="([^"]+)"\s+data-state="([^"]+)"', html))
    assert rows == {"alpha": "running", "beta": "stopped"}
    assert str(repo) in html and f"file://{other}" in html
    assert ">main</span>" in html and ">default branch</span>" in html
    assert html.count("cached (") == 2  # the environment each last start used is cached
    assert 'href="/user/hana/alpha/lab"' in html and 'href="/user/hana/alpha/vscode/"' in html
    assert "/hub/codespaces/new?repo=" in html and "/hub/codespaces/badge.svg" in html
    assert 'id="new-codespace-form"' in html and 'id="codespace-repo"' in html
    assert 'id="all-codespaces"' not in html  # not an admin

    admin = login(hub, "admin", admin=True).get(f"{hub.url}hub/home", timeout=60).text
    assert 'id="all-codespaces"' in admin and 'data-owner="hana"' in admin
    badge = requests.get(f"{hub.url}hub/codespaces/badge.svg", timeout=60)
    assert badge.headers["Content-Type"] == "image/svg+xml" and b"<svg" in badge.content
    hub.stop("hana", "alpha")


def test_launch_link_logs_in_creates_then_reuses(hub: RunningHub, repo: Path) -> None:
    link = f"{hub.url}hub/codespaces/new?repo={repo}&ref=main&open=./README.md"
    anonymous = requests.get(link, allow_redirects=False, timeout=60)
    assert anonymous.status_code == 302
    to_login = urlsplit(anonymous.headers["Location"])
    assert to_login.path.endswith("/hub/login")  # and back here after it
    assert parse_qs(to_login.query)["next"][0].startswith("/hub/codespaces/new?repo=")

    session = login(hub, "lena")
    confirm = session.get(link, timeout=60)
    assert confirm.status_code == 200 and "Create and open" in confirm.text
    assert named_servers(hub, "lena") == {}  # a GET starts nothing
    started = session.post(
        f"{hub.url}hub/codespaces/new",
        data={
            "repo": str(repo),
            "ref": "main",
            "open": "README.md",
            "_xsrf": xsrf_of(confirm.text),
        },
        allow_redirects=False,
        timeout=60,
    )
    assert started.status_code == 302, started.text[-2000:]
    location = urlsplit(started.headers["Location"])
    assert location.path == "/hub/spawn-pending/lena/repo"  # named after the repository
    lab = "/user/lena/repo/lab/tree/README.md"
    assert parse_qs(location.query)["next"] == [lab]
    assert ready(hub.follow_progress("lena", "repo", timeout=600))
    landing = session.get(f"{hub.url}{started.headers['Location'][1:]}", allow_redirects=False)
    assert landing.status_code == 302 and landing.headers["Location"] == lab

    running = session.get(link, allow_redirects=False, timeout=60)  # reused: straight there
    assert running.status_code == 302 and running.headers["Location"] == lab
    hub.stop("lena", "repo")
    again = session.get(link, timeout=60)
    assert "Start and open" in again.text and "<strong>repo</strong>" in again.text
    restarted = session.post(
        f"{hub.url}hub/codespaces/new",
        data={"repo": str(repo), "ref": "main", "open": "README.md", "_xsrf": xsrf_of(again.text)},
        allow_redirects=False,
        timeout=60,
    )
    assert urlsplit(restarted.headers["Location"]).path == "/hub/spawn-pending/lena/repo"
    assert ready(hub.follow_progress("lena", "repo", timeout=600))
    assert list(named_servers(hub, "lena")) == ["repo"]  # one codespace, reused
    hub.stop("lena", "repo")


def test_refusals_leave_no_named_server_behind(hub: RunningHub, repo: Path) -> None:
    user = "rita"
    hub.ensure_user(user)
    session = login(hub, user)
    # the REST API: more refusals than the limit, each with the spawner's reason
    for attempt in range(LIMIT + 1):
        bad = BAD_REPOS[attempt % len(BAD_REPOS)]
        response = hub.api("POST", f"/users/{user}/servers/api-{attempt}", json={"repo": bad})
        assert response.status_code == 400, response.text
        assert "maximum" not in response.json()["message"]
    assert named_servers(hub, user) == {}

    # JupyterHub's own spawn form (its page makes the server to show itself)
    for attempt in range(LIMIT + 1):
        url = f"{hub.url}hub/spawn/{user}/form-{attempt}"
        form = session.get(url, timeout=60)
        assert form.status_code == 200, form.text[-2000:]  # never "the maximum of 10"
        bad = BAD_REPOS[attempt % len(BAD_REPOS)]
        data = {"repo": bad, "_xsrf": xsrf_of(form.text)}
        refused = session.post(url, data=data, timeout=60)
        assert "Invalid codespace options" in refused.text or "outside" in refused.text
    home = session.get(f"{hub.url}hub/home", timeout=60)  # the user looks at their codespaces
    assert 'id="no-codespaces"' in home.text
    assert named_servers(hub, user) == {}

    # the New-codespace form and the launch link refuse before anything exists
    for bad in BAD_REPOS:
        data = {"repo": bad, "ref": "main", "_xsrf": xsrf_of(home.text)}
        posted = session.post(f"{hub.url}hub/codespaces/new", data=data, timeout=60)
        assert posted.status_code == 400 and 'id="codespace-error"' in posted.text
        link = session.get(f"{hub.url}hub/codespaces/new", params={"repo": bad}, timeout=60)
        assert link.status_code == 400 and 'id="codespace-error"' in link.text
    for open_path in ("../../etc/passwd", "https://evil.example/", "/etc/passwd"):
        params = {"repo": str(repo), "open": open_path}
        link = session.get(f"{hub.url}hub/codespaces/new", params=params, timeout=60)
        assert link.status_code == 400 and "open:" in link.text
    script = session.get(
        f"{hub.url}hub/codespaces/new", params={"repo": "<script>alert(1)</script>"}, timeout=60
    )
    assert "<script>alert(1)" not in script.text and "&lt;script&gt;" in script.text
    assert named_servers(hub, user) == {}

    # and a codespace can still be made
    assert ready(hub.spawn(user, "good", {"repo": str(repo)}))
    assert list(named_servers(hub, user)) == ["good"]
    hub.stop(user, "good")
