"""The hub's SSH public keys: per hub user, in one SQLite file under the hub's data dir.

:class:`KeyStore` adds (a key already stored for that user is refused with
:class:`KeyExists`), lists and removes keys by fingerprint. A key is checked by
:func:`codespace.ssh.keys.parse_public_key` before it is stored. The file is created mode
0600: only the hub reads it. Each call opens its own connection (the hub calls it from its
event loop; each statement takes well under a millisecond).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codespace.private_db import private_db
from codespace.ssh.keys import (
    KeyProblem,
    PublicKey,
    authorized_keys_text,
    clean_comment,
    parse_public_key,
)

MAX_KEYS_PER_USER = 100
MAX_TITLE = 100
SCHEMA = """
CREATE TABLE IF NOT EXISTS ssh_keys (
    user TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    comment TEXT NOT NULL,
    title TEXT NOT NULL,
    added TEXT NOT NULL,
    PRIMARY KEY (user, fingerprint)
)
"""


class KeyExists(KeyProblem):
    """The user already has this key."""


class TooManyKeys(KeyProblem):
    """The user has :data:`MAX_KEYS_PER_USER` keys."""


@dataclass(frozen=True)
class StoredKey:
    """One key of one hub user."""

    user: str
    key: PublicKey
    title: str
    added: str  # ISO 8601, UTC

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    def to_json(self) -> dict[str, Any]:
        """The REST API's model of a key."""
        return {
            "fingerprint": self.fingerprint,
            "type": self.key.type,
            "comment": self.key.comment,
            "title": self.title,
            "added": self.added,
        }


def _title(title: str, key: PublicKey) -> str:
    text = clean_comment(title or "")[:MAX_TITLE]
    return text or key.comment[:MAX_TITLE] or f"{key.type} key"


class KeyStore:
    """SSH public keys per hub user (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _db(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return private_db(self.path, SCHEMA)

    def add(self, user: str, key: str | PublicKey, title: str = "") -> StoredKey:
        """Store ``key`` (a pasted line, checked here) for ``user``; raises
        :class:`~codespace.ssh.keys.KeyProblem` for a bad key, :class:`KeyExists` for a key
        the user already has, :class:`TooManyKeys` past :data:`MAX_KEYS_PER_USER`."""
        parsed = key if isinstance(key, PublicKey) else parse_public_key(key)
        added = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        stored = StoredKey(user, parsed, _title(title, parsed), added)
        with self._db() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM ssh_keys WHERE user = ?", (user,)
            ).fetchone()
            if count >= MAX_KEYS_PER_USER:
                raise TooManyKeys(f"you have {count} SSH keys, the most allowed: remove one")
            try:
                db.execute(
                    "INSERT INTO ssh_keys VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        user,
                        parsed.fingerprint,
                        parsed.type,
                        parsed.data,
                        parsed.comment,
                        stored.title,
                        added,
                    ),
                )
            except sqlite3.IntegrityError:
                raise KeyExists(f"you already added this key ({parsed.fingerprint})") from None
        return stored

    def list(self, user: str) -> list[StoredKey]:
        """``user``'s keys, oldest first."""
        with self._db() as db:
            rows = db.execute(
                "SELECT type, key, comment, title, added FROM ssh_keys WHERE user = ? "
                "ORDER BY added, rowid",
                (user,),
            ).fetchall()
        found = []
        for key_type, data, comment, title, added in rows:
            try:
                key = parse_public_key(f"{key_type} {data} {comment}")
            except KeyProblem:  # stored by an older, laxer hub: not offered
                continue
            found.append(StoredKey(user, key, title, added))
        return found

    def get(self, user: str, fingerprint: str) -> StoredKey | None:
        return next((key for key in self.list(user) if key.fingerprint == fingerprint), None)

    def remove(self, user: str, fingerprint: str) -> bool:
        """Remove ``user``'s key ``fingerprint``; False when the user has no such key."""
        with self._db() as db:
            done = db.execute(
                "DELETE FROM ssh_keys WHERE user = ? AND fingerprint = ?", (user, fingerprint)
            )
            return done.rowcount > 0

    def authorized_keys(self, user: str) -> str:
        """The ``authorized_keys`` text of exactly ``user``'s keys."""
        return authorized_keys_text([stored.key for stored in self.list(user)], owner=user)
