"""The REST API under /codespace/api/datasets, served by a real jupyter_server (pytest-jupyter)."""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

from codespace.client import ApiError
from tests.datasets_support import write_catalog

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    data = tmp_path / "data" / "iris"
    (data / "raw").mkdir(parents=True)
    (data / "raw" / "iris.csv").write_text("sepal,petal\n1,2\n")
    (tmp_path / "data" / "private.txt").write_text("TOP-SECRET")
    return write_catalog(
        tmp_path / "catalog.yaml",
        [{"name": "iris", "description": "flowers", "source": str(data), "tags": ["tabular"]}],
    )


@pytest.fixture
def jp_server_config(catalog: Path, tmp_path: Path) -> dict:
    return {
        "ServerApp": {"jpserver_extensions": {"extensions": True}},
        "CodespaceExtension": {
            "dataset_catalog": str(catalog),
            "dataset_cache_dir": str(tmp_path / "cache"),
        },
    }


# pytest-asyncio (asyncio_mode=auto) would run async tests on a loop of its own, while the
# pytest-jupyter server lives on ``jp_asyncio_loop``: tests here are sync and drive that loop.
async def fetch_json(jp_fetch, *parts, **kwargs):
    response = await jp_fetch("codespace", "api", "datasets", *parts, **kwargs)
    return response.code, json.loads(response.body)


async def expect_error(jp_fetch, code: int, *parts, **kwargs) -> str:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("codespace", "api", "datasets", *parts, **kwargs)
    assert info.value.code == code, info.value.response.body
    return info.value.response.body.decode()


def test_list_get_and_files(jp_fetch, run) -> None:
    run(_list_get_and_files(jp_fetch))


async def _list_get_and_files(jp_fetch) -> None:
    code, body = await fetch_json(jp_fetch)
    assert code == 200 and body["backend"] == "local"
    assert [d["name"] for d in body["datasets"]] == ["iris"]
    code, iris = await fetch_json(jp_fetch, "iris")
    assert iris["status"]["phase"] == "Bound" and iris["status"]["fileNum"] == 1
    code, page = await fetch_json(jp_fetch, "iris", "files", params={"path": "raw"})
    assert [e["path"] for e in page["entries"]] == ["raw/iris.csv"]


def test_anonymous_requests_are_refused(jp_fetch, run) -> None:
    run(_anonymous(jp_fetch))


async def _anonymous(jp_fetch) -> None:
    for parts, method in (((), "GET"), (("iris", "files"), "GET"), (("iris", "mount"), "POST")):
        body = None if method == "GET" else "{}"
        await expect_error(
            jp_fetch, 403, *parts, method=method, body=body, headers={"Authorization": ""}
        )


@pytest.mark.parametrize("path", ["../", "raw/../../", "/etc", "/", "..", "raw/../../private.txt"])
def test_paths_outside_the_dataset_are_refused(jp_fetch, run, path: str) -> None:
    message = run(expect_error(jp_fetch, 400, "iris", "files", params={"path": path}))
    assert "TOP-SECRET" not in message


def test_unknown_dataset_is_404(jp_fetch, run) -> None:
    run(_unknown(jp_fetch))


async def _unknown(jp_fetch) -> None:
    await expect_error(jp_fetch, 404, "nope")
    await expect_error(jp_fetch, 404, "nope", "files")
    await expect_error(jp_fetch, 404, "Not_A_Label")
    await expect_error(jp_fetch, 404, "nope", "prewarm", method="POST", body="{}")


def test_prewarm_and_mount(jp_fetch, run, jp_root_dir: Path) -> None:
    run(_prewarm_and_mount(jp_fetch, jp_root_dir))


async def _prewarm_and_mount(jp_fetch, jp_root_dir: Path) -> None:
    code, op = await fetch_json(jp_fetch, "iris", "prewarm", method="POST", body="{}")
    assert code == 202 and op["phase"] == "Complete"
    code, history = await fetch_json(jp_fetch, "iris", "prewarm")
    assert [o["id"] for o in history["operations"]] == [op["id"]]
    await expect_error(jp_fetch, 400, "iris", "prewarm", method="POST", body='{"paths": "x"}')
    code, mounted = await fetch_json(jp_fetch, "iris", "mount", method="POST", body="{}")
    assert mounted["mounted"] and mounted["mountPath"] == str(jp_root_dir / "datasets" / "iris")
    code, iris = await fetch_json(jp_fetch, "iris")
    assert iris["mounted"] and iris["contentsPath"] == "datasets/iris"  # for the file browser
    assert (jp_root_dir / "datasets" / "iris" / "raw" / "iris.csv").exists()
    code, unmounted = await fetch_json(jp_fetch, "iris", "mount", method="DELETE")
    assert not unmounted["mounted"] and not (jp_root_dir / "datasets" / "iris").exists()


def test_writes_with_a_cookie_need_the_xsrf_token(jp_fetch, run, jp_serverapp) -> None:
    """A browser (cookie) session must send X-XSRFToken on POST; the token header alone works."""
    run(_xsrf(jp_fetch, jp_serverapp))


async def _xsrf(jp_fetch, jp_serverapp) -> None:
    login = await jp_fetch("login", headers={"Authorization": ""})
    xsrf = re.search(r"_xsrf=([^;]+)", login.headers.get("Set-Cookie", "")).group(1)
    form = urllib.parse.urlencode({"_xsrf": xsrf, "password": jp_serverapp.identity_provider.token})
    with pytest.raises(HTTPClientError) as redirect:
        await jp_fetch(
            "login",
            method="POST",
            body=form,
            headers={"Authorization": "", "Cookie": f"_xsrf={xsrf}"},
            follow_redirects=False,
        )
    assert redirect.value.code == 302
    cookies = [c.split(";")[0] for c in redirect.value.response.headers.get_list("Set-Cookie")]
    session = "; ".join([*cookies, f"_xsrf={xsrf}"])
    browser = {"Authorization": "", "Cookie": session}
    code, _ = await fetch_json(jp_fetch, headers=browser)  # reads need no XSRF token
    assert code == 200
    await expect_error(jp_fetch, 403, "iris", "mount", method="POST", body="{}", headers=browser)
    code, mounted = await fetch_json(
        jp_fetch,
        "iris",
        "mount",
        method="POST",
        body="{}",
        headers={**browser, "X-XSRFToken": xsrf},
    )
    assert code == 200 and mounted["mounted"]


def test_kernel_client_sdk_and_cli_through_the_server(
    jp_fetch, run, jp_serverapp, jp_http_port, jp_base_url, monkeypatch, capsys
) -> None:
    """What a notebook does: the stdlib client with the server's URL and token from the env."""
    import asyncio

    from codespace import datasets
    from codespace.cli import main

    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", jp_serverapp.identity_provider.token)

    def in_thread(function, *args):  # the server runs on this thread's loop
        return run(asyncio.to_thread(function, *args))

    listed = in_thread(datasets.list)
    assert [d.name for d in listed] == ["iris"] and listed[0].status.phase == "Bound"
    assert [e.path for e in in_thread(datasets.files, "iris", "raw").entries] == ["raw/iris.csv"]
    mounted = in_thread(datasets.mount, "iris")
    assert mounted.mounted and "NOT enforced" in mounted.message
    with pytest.raises(ApiError, match="404"):
        in_thread(datasets.get, "nope")

    assert in_thread(main, ["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "iris" in out and "Bound" in out
    assert in_thread(main, ["datasets", "files", "iris", "../"]) == 1
    assert "contains '..'" in capsys.readouterr().err

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "wrong")
    with pytest.raises(ApiError, match="403"):
        in_thread(datasets.list)
