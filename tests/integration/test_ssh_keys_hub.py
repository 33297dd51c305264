"""SSH keys at a real hub: the REST API and the page (hub.ssh_keys), each user's own keys
only, and a running local codespace's authorized_keys and session API following them.

One hub serves the module; each test uses its own users.
"""

from __future__ import annotations

import getpass
import os
import re
from html import unescape
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from codespace.ssh.keys import read_authorized_keys
from tests.helpers.hub import RunningHub, running_hub, uv_cache_config
from tests.helpers.repos import fixture_repo
from tests.helpers.ssh_keys import KEYS, line

pytestmark = pytest.mark.integration

API = "/codespace/ssh-keys"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("ssh-keys-hub") / "hub"
    with running_hub(data, extra_config=uv_cache_config(tmp_path_factory)) as running:
        yield running


def user_token(hub: RunningHub, user: str, scopes: list[str] | None = None) -> str:
    hub.ensure_user(user)
    body = {"note": "ssh-keys test", **({"scopes": scopes} if scopes is not None else {})}
    response = hub.api("POST", f"/users/{user}/tokens", json=body)
    response.raise_for_status()
    return response.json()["token"]


def login(hub: RunningHub, user: str) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{hub.url}hub/login", timeout=60)
    password = (hub.data_dir / "secrets" / "user-password").read_text().strip()
    data = {"username": user, "password": password, "_xsrf": xsrf_of(page.text)}
    response = session.post(f"{hub.url}hub/login", data=data, timeout=60)
    assert response.ok and "/hub/login" not in response.url, response.text[-2000:]
    return session


def xsrf_of(html: str) -> str:
    match = re.search(r'name="_xsrf" value="([^"]+)"', html)
    assert match, html[-2000:]
    return unescape(match.group(1))


def test_api_add_list_remove_with_the_users_token(hub: RunningHub) -> None:
    token = user_token(hub, "kira")
    assert hub.api("GET", API, token=token).json() == {"keys": []}
    added = hub.api("POST", API, token=token, json={"key": line("ED25519", "kira@l"), "title": "l"})
    assert added.status_code == 201, added.text
    assert added.json() == {
        "fingerprint": KEYS["ED25519"][2],
        "type": "ssh-ed25519",
        "comment": "kira@l",
        "title": "l",
        "added": added.json()["added"],
    }
    again = hub.api("POST", API, token=token, json={"key": line("ED25519"), "title": "x"})
    assert again.status_code == 409 and KEYS["ED25519"][2] in again.json()["message"]
    bad = hub.api("POST", API, token=token, json={"key": line("RSA_1024")})
    assert bad.status_code == 400 and "1024 bits" in bad.json()["message"]
    private = hub.api("POST", API, token=token, json={"key": "-----BEGIN OPENSSH PRIVATE KEY-----"})
    assert private.status_code == 400 and "PRIVATE" in private.json()["message"]
    assert hub.api("POST", API, token=token, json={"title": "no key"}).status_code == 400
    listed = hub.api("GET", API, token=token).json()["keys"]
    assert [key["fingerprint"] for key in listed] == [KEYS["ED25519"][2]]
    path = f"{API}/{quote(KEYS['ED25519'][2], safe='')}"
    assert hub.api("DELETE", path, token=token).status_code == 204
    assert hub.api("DELETE", path, token=token).status_code == 404
    assert hub.api("GET", API, token=token).json() == {"keys": []}


def test_each_user_sees_and_changes_only_their_own_keys(hub: RunningHub) -> None:
    lena, milo = user_token(hub, "lena"), user_token(hub, "milo")
    hub.api("POST", API, token=lena, json={"key": line("ECDSA_256")}).raise_for_status()
    assert hub.api("GET", API, token=milo).json() == {"keys": []}
    path = f"{API}/{quote(KEYS['ECDSA_256'][2], safe='')}"
    assert hub.api("DELETE", path, token=milo).status_code == 404
    assert len(hub.api("GET", API, token=lena).json()["keys"]) == 1
    # the same public key may be another user's too
    assert hub.api("POST", API, token=milo, json={"key": line("ECDSA_256")}).status_code == 201
    assert hub.api("GET", API).status_code == 403  # a service is not a user: no keys
    assert requests.get(f"{hub.url}hub/api{API}", timeout=60).status_code == 403


def test_a_token_without_the_tokens_scope_cannot_add_keys(hub: RunningHub) -> None:
    reader = user_token(hub, "nora", scopes=["read:tokens!user=nora"])
    assert hub.api("GET", API, token=reader).status_code == 200
    refused = hub.api("POST", API, token=reader, json={"key": line("ED25519")})
    assert refused.status_code == 403
    narrow = user_token(hub, "nora", scopes=["read:users!user=nora"])
    assert hub.api("GET", API, token=narrow).status_code == 403


def test_the_page_adds_and_removes_keys_with_xsrf(hub: RunningHub) -> None:
    session = login(hub, "otto")
    home = session.get(f"{hub.url}hub/home", timeout=60).text
    assert 'href="/hub/ssh-keys"' in home
    page = session.get(f"{hub.url}hub/ssh-keys", timeout=60)
    assert page.status_code == 200 and 'id="no-ssh-keys"' in page.text
    form = {"action": "add", "key": line("ED25519", "otto@pc"), "title": "pc"}
    refused = session.post(f"{hub.url}hub/ssh-keys", data=form, timeout=60)
    assert refused.status_code == 403  # no XSRF token
    form["_xsrf"] = xsrf_of(page.text)
    added = session.post(f"{hub.url}hub/ssh-keys", data=form, timeout=60)
    assert added.status_code == 200 and KEYS["ED25519"][2] in added.text
    assert 'id="ssh-key-notice"' in added.text
    bad = dict(form, key=line("DSA"))
    shown = session.post(f"{hub.url}hub/ssh-keys", data=bad, timeout=60)
    assert shown.status_code == 400 and "DSA keys" in unescape(shown.text)
    remove = {"action": "remove", "fingerprint": KEYS["ED25519"][2], "_xsrf": form["_xsrf"]}
    removed = session.post(f"{hub.url}hub/ssh-keys", data=remove, timeout=60)
    assert removed.status_code == 200 and 'id="no-ssh-keys"' in removed.text


def test_a_running_codespace_follows_its_owners_keys(hub: RunningHub, tmp_path: Path) -> None:
    repo = fixture_repo(tmp_path)
    token = user_token(hub, "pia")
    hub.api("POST", API, token=token, json={"key": line("ED25519")}).raise_for_status()
    events = hub.spawn("pia", "proj", {"repo": str(repo), "ref": "main"})
    assert events[-1].get("ready"), events
    session = hub.server_request("pia", "proj", "codespace/api/session").json()["ssh"]
    assert session["available"], session
    assert session["user"] == ("cs-pia" if os.geteuid() == 0 else getpass.getuser())
    assert session["path"] == "/user/pia/proj/sshd/"
    assert session["hostKeyFingerprint"].startswith("SHA256:")
    keys_file = hub.data_dir / "servers" / "pia" / "proj" / "ssh" / "authorized_keys"

    def fingerprints() -> list[str]:
        return [k.fingerprint for k in read_authorized_keys(keys_file.read_text())]

    assert fingerprints() == [KEYS["ED25519"][2]]
    hub.api("POST", API, token=token, json={"key": line("ECDSA_384")}).raise_for_status()
    assert fingerprints() == [KEYS["ED25519"][2], KEYS["ECDSA_384"][2]]  # at once
    for name in ("ED25519", "ECDSA_384"):
        path = f"{API}/{quote(KEYS[name][2], safe='')}"
        assert hub.api("DELETE", path, token=token).status_code == 204
    assert fingerprints() == []
    later = hub.server_request("pia", "proj", "codespace/api/session").json()["ssh"]
    assert not later["available"] and "/hub/ssh-keys" in later["reason"]
    hub.stop("pia", "proj")
    hub.spawn("pia", "proj", {"repo": str(repo), "ref": "main"})
    again = hub.server_request("pia", "proj", "codespace/api/session").json()["ssh"]
    assert again["hostKeyFingerprint"] == session["hostKeyFingerprint"]  # kept
    hub.stop("pia", "proj")
