"""SSH public keys: parsing and checks (codespace.ssh.keys), the hub's key store
(codespace.ssh.store) and the authorized_keys text."""

from __future__ import annotations

import base64
import os
import stat
import struct
from pathlib import Path

import pytest

from codespace.ssh.keys import (
    KeyProblem,
    authorized_keys_text,
    clean_comment,
    fingerprint,
    parse_public_key,
    read_authorized_keys,
)
from codespace.ssh.store import MAX_KEYS_PER_USER, KeyExists, KeyStore, TooManyKeys
from tests.helpers.ssh_keys import KEYS, line

ACCEPTED = ["ED25519", "ECDSA_256", "ECDSA_384", "ECDSA_521", "RSA_2048", "SK_ED25519", "SK_ECDSA"]


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _line(*fields: bytes, key_type: str = "ssh-ed25519") -> str:
    return f"{key_type} {base64.b64encode(b''.join(_string(f) for f in fields)).decode()}"


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_types_parse_with_ssh_keygens_fingerprint(name: str) -> None:
    key_type, _, expected = KEYS[name]
    key = parse_public_key(line(name, "me@laptop"))
    assert key.type == key_type
    assert key.fingerprint == expected
    assert key.comment == "me@laptop"
    assert key.line() == line(name, "me@laptop")


def test_sizes_are_reported() -> None:
    assert parse_public_key(line("RSA_2048")).bits == 2048
    assert parse_public_key(line("ECDSA_521")).bits == 521
    assert parse_public_key(line("ED25519")).bits == 256


def test_fingerprint_is_sha256_unpadded_base64() -> None:
    assert fingerprint(b"") == "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"


def test_white_space_around_and_inside_is_tolerated() -> None:
    key = parse_public_key("  " + line("ED25519").replace(" ", "\t") + "  my  key \n")
    assert key.comment == "my key"


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----",
            "PRIVATE",
        ),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "PRIVATE"),
        ('---- BEGIN SSH2 PUBLIC KEY ----\nComment: "x"\nAAAA\n---- END SSH2', "ssh-keygen -i"),
        ("-----BEGIN PUBLIC KEY-----\nMIIB", "PEM"),
        (line("DSA"), "DSA"),
        (line("RSA_1024"), "1024 bits"),
        ("ssh-ed25519", "no key data"),
        ("ssh-ed25519 not*base64", "not base64"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZo9iFcAvmg", "cut short"),
        ("ssh-foo AAAA", "unknown key type 'ssh-foo'"),
        ("ssh-ed25519-cert-v01@openssh.com AAAA", "certificate"),
        (f'command="ls" {line("ED25519")}', "options"),
        (f"from=x {line('ED25519')}", "options"),
        (f"{line('ED25519')}\n{line('ECDSA_256')}", "one key"),
        ("x" * 20000, "not a public key line"),
    ],
)
def test_bad_keys_are_refused_with_what_is_wrong(text: str, said: str) -> None:
    with pytest.raises(KeyProblem, match=said):
        parse_public_key(text)


def test_the_type_on_the_line_must_be_the_type_inside() -> None:
    _, data, _ = KEYS["ED25519"]
    with pytest.raises(KeyProblem, match="says ssh-rsa but the key inside is 'ssh-ed25519'"):
        parse_public_key(f"ssh-rsa {data}")


def test_blobs_are_checked_field_by_field() -> None:
    with pytest.raises(KeyProblem, match="32 bytes"):
        parse_public_key(_line(b"ssh-ed25519", b"\x01" * 31))
    extra = base64.b64encode(_string(b"ssh-ed25519") + _string(b"\x01" * 32) + b"\0").decode()
    with pytest.raises(KeyProblem, match="1 unexpected bytes"):
        parse_public_key(f"ssh-ed25519 {extra}")
    point = b"\x04" + b"\x01" * 64
    with pytest.raises(KeyProblem, match="names curve 'nistp384'"):
        parse_public_key(
            _line(b"ecdsa-sha2-nistp256", b"nistp384", point, key_type="ecdsa-sha2-nistp256")
        )
    with pytest.raises(KeyProblem, match="not an uncompressed nistp256 point"):
        parse_public_key(
            _line(b"ecdsa-sha2-nistp256", b"nistp256", point[:-1], key_type="ecdsa-sha2-nistp256")
        )
    with pytest.raises(KeyProblem, match="application"):
        parse_public_key(
            _line(
                b"sk-ssh-ed25519@openssh.com",
                b"\x01" * 32,
                b"web:",
                key_type="sk-ssh-ed25519@openssh.com",
            )
        )
    with pytest.raises(KeyProblem, match="exponent"):
        parse_public_key(_line(b"ssh-rsa", b"\x02", b"\x01" * 256, key_type="ssh-rsa"))


def test_comments_are_made_safe_for_one_line() -> None:
    assert clean_comment("a\tb\x00c\x7f  d") == "a b c d"
    assert len(clean_comment("x" * 500)) == 200
    key = parse_public_key(line("ED25519", "tab\there"))
    assert key.line("new\ncomment") == line("ED25519", "new comment")


def test_authorized_keys_has_exactly_the_keys_that_parse() -> None:
    text = authorized_keys_text(
        [line("ED25519", "a"), parse_public_key(line("ECDSA_256")), line("DSA"), "junk"],
        owner="alice",
    )
    lines = text.splitlines()
    assert lines[0].startswith("# Written by Codespace Hub") and "alice" in lines[0]
    assert lines[1:] == [line("ED25519", "a"), line("ECDSA_256")]
    assert [k.fingerprint for k in read_authorized_keys(text)] == [
        KEYS["ED25519"][2],
        KEYS["ECDSA_256"][2],
    ]
    assert authorized_keys_text([]).count("\n") == 1


# -- the store ------------------------------------------------------------------------------


def test_store_adds_lists_and_removes_per_user(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "data" / "ssh-keys.sqlite")
    first = store.add("alice", line("ED25519", "alice@laptop"), "laptop")
    store.add("alice", line("RSA_2048"))
    store.add("bob", line("ED25519", "bob's copy"))  # another user may have the same key
    assert first.to_json() == {
        "fingerprint": KEYS["ED25519"][2],
        "type": "ssh-ed25519",
        "comment": "alice@laptop",
        "title": "laptop",
        "added": first.added,
    }
    assert first.added.endswith("Z")
    assert [k.title for k in store.list("alice")] == ["laptop", "ssh-rsa key"]
    assert [k.key.comment for k in store.list("bob")] == ["bob's copy"]
    assert store.list("carol") == []
    assert store.get("alice", KEYS["RSA_2048"][2]) is not None
    assert store.remove("alice", KEYS["ED25519"][2])
    assert not store.remove("alice", KEYS["ED25519"][2])
    assert not store.remove("carol", KEYS["ED25519"][2])
    assert [k.fingerprint for k in store.list("alice")] == [KEYS["RSA_2048"][2]]
    assert [k.fingerprint for k in store.list("bob")] == [KEYS["ED25519"][2]]


def test_store_refuses_a_duplicate_and_a_bad_key(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite")
    store.add("alice", line("ED25519", "one"))
    with pytest.raises(KeyExists, match=KEYS["ED25519"][2]):
        store.add("alice", line("ED25519", "same key, other comment"))
    with pytest.raises(KeyProblem, match="1024 bits"):
        store.add("alice", line("RSA_1024"))
    assert len(store.list("alice")) == 1


def test_store_title_defaults_to_the_comment_and_is_cleaned(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.sqlite")
    assert store.add("a", line("ED25519", "me@host")).title == "me@host"
    assert store.add("a", line("ECDSA_256"), "two\nlines").title == "two lines"
    assert len(store.add("a", line("ECDSA_384"), "t" * 300).title) == 100


def test_store_limits_keys_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("codespace.ssh.store.MAX_KEYS_PER_USER", 2)
    store = KeyStore(tmp_path / "keys.sqlite")
    store.add("a", line("ED25519"))
    store.add("a", line("ECDSA_256"))
    with pytest.raises(TooManyKeys, match="2 SSH keys"):
        store.add("a", line("ECDSA_384"))
    assert MAX_KEYS_PER_USER >= 10


def test_store_file_is_private_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "keys.sqlite"
    KeyStore(path).add("alice", line("SK_ED25519", "yubikey"))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = KeyStore(path)
    (key,) = again.list("alice")
    assert key.key.type == "sk-ssh-ed25519@openssh.com"
    text = again.authorized_keys("alice")
    assert text.splitlines()[1:] == [line("SK_ED25519", "yubikey")]
    assert again.authorized_keys("nobody-here").count("\n") == 1
