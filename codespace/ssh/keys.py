"""OpenSSH public keys: parse and check one pasted key line, its fingerprint, and the
``authorized_keys`` text of a set of keys.

:func:`parse_public_key` takes what a user pastes (the contents of ``id_ed25519.pub``:
``type base64 [comment]``) and either returns a :class:`PublicKey` or raises
:class:`KeyProblem` whose message names what is wrong (a private key, a key type that is not
accepted, an RSA key under 2048 bits, a base64 blob that does not decode or whose contents do
not match its type...). Accepted types: ``ssh-ed25519``, ``ecdsa-sha2-nistp256/384/521``,
the FIDO ``sk-ssh-ed25519@openssh.com`` and ``sk-ecdsa-sha2-nistp256@openssh.com``, and
``ssh-rsa`` of 2048 bits or more. The fingerprint is ``ssh-keygen -l``'s: ``SHA256:`` and the
unpadded base64 of the SHA-256 of the key blob.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

MIN_RSA_BITS = 2048
MAX_LINE = 16 * 1024  # an RSA 16384-bit key line is ~2.8 kB; anything far longer is not a key
MAX_COMMENT = 200

ED25519 = "ssh-ed25519"
SK_ED25519 = "sk-ssh-ed25519@openssh.com"
SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
RSA = "ssh-rsa"
ECDSA_CURVES = {  # key type -> (curve name in the blob, bits, length of the uncompressed point)
    "ecdsa-sha2-nistp256": ("nistp256", 256, 65),
    "ecdsa-sha2-nistp384": ("nistp384", 384, 97),
    "ecdsa-sha2-nistp521": ("nistp521", 521, 133),
}
KEY_TYPES = (ED25519, *ECDSA_CURVES, SK_ED25519, SK_ECDSA, RSA)

_REFUSED_TYPES = {
    "ssh-dss": "DSA keys (ssh-dss) are not accepted: they are obsolete and OpenSSH 9 "
    "disables them. Make an Ed25519 key: ssh-keygen -t ed25519",
}
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class KeyProblem(ValueError):
    """A pasted public key cannot be used; the message says why (for the user)."""


@dataclass(frozen=True)
class PublicKey:
    """One checked public key."""

    type: str
    blob: bytes  # the decoded base64 part
    comment: str = ""
    bits: int = 0

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    @property
    def data(self) -> str:
        """The base64 field."""
        return base64.b64encode(self.blob).decode("ascii")

    def line(self, comment: str | None = None) -> str:
        """``type base64 comment`` as an ``authorized_keys`` line (no options)."""
        text = clean_comment(self.comment if comment is None else comment)
        return f"{self.type} {self.data}" + (f" {text}" if text else "")


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def clean_comment(text: str) -> str:
    """A comment safe on one ``authorized_keys`` line: control characters become spaces,
    runs of white space one space, at most :data:`MAX_COMMENT` characters."""
    text = "".join(" " if ch.isspace() or ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    return " ".join(text.split())[:MAX_COMMENT]


class _Reader:
    """RFC 4251 ``string`` / ``mpint`` fields of a key blob."""

    def __init__(self, blob: bytes, key_type: str) -> None:
        self.blob, self.offset, self.key_type = blob, 0, key_type

    def string(self, what: str) -> bytes:
        if self.offset + 4 > len(self.blob):
            raise KeyProblem(f"the {self.key_type} key is cut short: its {what} is missing")
        (length,) = struct.unpack(">I", self.blob[self.offset : self.offset + 4])
        start, end = self.offset + 4, self.offset + 4 + length
        if end > len(self.blob):
            raise KeyProblem(f"the {self.key_type} key is cut short: its {what} is truncated")
        self.offset = end
        return self.blob[start:end]

    def end(self) -> None:
        if self.offset != len(self.blob):
            extra = len(self.blob) - self.offset
            raise KeyProblem(f"the {self.key_type} key has {extra} unexpected bytes at its end")


def _check_type_word(word: str) -> None:
    if word in KEY_TYPES:
        return
    if word in _REFUSED_TYPES:
        raise KeyProblem(_REFUSED_TYPES[word])
    if word.endswith("-cert-v01@openssh.com"):
        raise KeyProblem(
            f"{word} is an SSH certificate, not a public key: paste the key itself "
            "(the .pub file without -cert)"
        )
    shown = word if len(word) <= 40 else word[:40] + "..."
    raise KeyProblem(
        f"unknown key type {shown!r}: the line must start with one of {', '.join(KEY_TYPES)}"
    )


def _decode(key_type: str, text: str) -> bytes:
    if not _BASE64.match(text):
        raise KeyProblem(f"the {key_type} key's second field is not base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem(f"the {key_type} key's base64 does not decode (copied partly?)") from None


def _check_blob(key_type: str, blob: bytes) -> int:
    """Check the blob's fields for ``key_type``; return the key's size in bits."""
    reader = _Reader(blob, key_type)
    inner = reader.string("type").decode("ascii", "replace")
    if inner != key_type:
        raise KeyProblem(f"the line says {key_type} but the key inside is {inner!r}")
    if key_type in (ED25519, SK_ED25519):
        if len(reader.string("public key")) != 32:
            raise KeyProblem(f"the {key_type} key does not have 32 bytes")
        bits = 256
    elif key_type == RSA:
        exponent = int.from_bytes(reader.string("exponent"), "big")
        bits = int.from_bytes(reader.string("modulus"), "big").bit_length()
        if exponent < 3 or exponent % 2 == 0:
            raise KeyProblem("the ssh-rsa key's public exponent is not valid")
        if bits < MIN_RSA_BITS:
            raise KeyProblem(
                f"the ssh-rsa key has {bits} bits: at least {MIN_RSA_BITS} are required "
                "(make a new key: ssh-keygen -t ed25519)"
            )
    else:
        curve_type = "ecdsa-sha2-nistp256" if key_type == SK_ECDSA else key_type
        curve, bits, point_length = ECDSA_CURVES[curve_type]
        named = reader.string("curve").decode("ascii", "replace")
        if named != curve:
            raise KeyProblem(f"the {key_type} key names curve {named!r}, not {curve}")
        point = reader.string("point")
        if len(point) != point_length or point[0] != 4:
            raise KeyProblem(f"the {key_type} key's point is not an uncompressed {curve} point")
    if key_type.startswith("sk-"):
        application = reader.string("application")
        if not application.startswith(b"ssh:"):
            raise KeyProblem(f"the {key_type} key's application is not an ssh: one")
    reader.end()
    return bits


def _refuse_other_formats(text: str) -> None:
    if "PRIVATE KEY" in text:
        raise KeyProblem(
            "this is a PRIVATE key: never paste it anywhere. Paste the public key, the "
            "contents of the .pub file (e.g. ~/.ssh/id_ed25519.pub)"
        )
    if text.startswith("---- BEGIN SSH2 PUBLIC KEY"):
        raise KeyProblem(
            "this is an RFC 4716 (PuTTY / SSH2) public key: convert it to OpenSSH's one-line "
            "form with: ssh-keygen -i -f KEYFILE"
        )
    if text.startswith("-----BEGIN"):
        raise KeyProblem("this is a PEM file, not an OpenSSH public key line")


def parse_public_key(text: str) -> PublicKey:
    """One pasted public key line -> :class:`PublicKey` (see the module doc); raises
    :class:`KeyProblem` naming what is wrong."""
    if not isinstance(text, str):
        raise KeyProblem("the key must be text")
    text = text.strip()
    if not text:
        raise KeyProblem("the key is empty: paste the contents of your .pub file")
    if len(text) > MAX_LINE:
        raise KeyProblem(f"the key is {len(text)} characters long: not a public key line")
    _refuse_other_formats(text)
    if "\n" in text or "\r" in text:
        raise KeyProblem("paste one key, on one line (add each key separately)")
    fields = text.split(None, 2)
    if fields[0] not in KEY_TYPES and any(word in KEY_TYPES for word in text.split()[1:]):
        raise KeyProblem(
            "the line starts with options before the key type: paste the key alone "
            "(type, key and comment), without authorized_keys options"
        )
    _check_type_word(fields[0])
    if len(fields) < 2:
        raise KeyProblem(f"the {fields[0]} key has no key data after its type")
    blob = _decode(fields[0], fields[1])
    bits = _check_blob(fields[0], blob)
    comment = clean_comment(fields[2]) if len(fields) > 2 else ""
    return PublicKey(type=fields[0], blob=blob, comment=comment, bits=bits)


def authorized_keys_text(keys: Iterable[PublicKey | str], *, owner: str = "") -> str:
    """An ``authorized_keys`` file with exactly ``keys`` (lines that do not parse are left
    out), with a header saying who wrote it."""
    lines = [
        "# Written by Codespace Hub: the SSH keys"
        + (f" of hub user {clean_comment(owner)}" if owner else "")
        + ". Edits are lost: add and remove keys on the hub's SSH keys page.",
    ]
    for key in keys:
        try:
            parsed = key if isinstance(key, PublicKey) else parse_public_key(key)
        except KeyProblem:
            continue
        lines.append(parsed.line())
    return "\n".join(lines) + "\n"


def read_authorized_keys(text: str) -> list[PublicKey]:
    """The keys of an ``authorized_keys`` text written by :func:`authorized_keys_text`
    (comments and lines that do not parse are skipped)."""
    found = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            found.append(parse_public_key(line))
        except KeyProblem:
            continue
    return found
