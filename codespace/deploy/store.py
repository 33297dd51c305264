"""The hub's deploy service state: deployment records and share tokens, in SQLite.

Records are the :class:`~codespace.deploy.models.DeploymentRecord` JSON, keyed by owner and
name. A share token is kept only as its SHA-256 (the token itself is shown once, when it is
minted); it calls one deployment's endpoint until it expires or the deployment is deleted.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from codespace.deploy.models import DeploymentRecord, ShareToken
from codespace.jobs.backend import open_store

TOKEN_PREFIX = "csd_"  # noqa: S105 - tells a share token from a hub token at a glance
SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    owner TEXT NOT NULL, name TEXT NOT NULL, record TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (owner, name)
);
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,
    note TEXT NOT NULL, expires REAL
);
"""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DeployStore:
    def __init__(self, path: Path) -> None:
        self.db = open_store(path, SCHEMA)

    def put(self, record: DeploymentRecord) -> None:
        self.db.execute(
            "INSERT INTO deployments (owner, name, record, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (owner, name) DO UPDATE SET record = excluded.record",
            (record.owner, record.name, record.model_dump_json(), record.created.timestamp()),
        )

    def get(self, owner: str, name: str) -> DeploymentRecord | None:
        row = self.db.execute(
            "SELECT record FROM deployments WHERE owner = ? AND name = ?", (owner, name)
        ).fetchone()
        return DeploymentRecord.model_validate_json(row[0]) if row else None

    def all(self, owner: str | None = None) -> list[DeploymentRecord]:
        if owner is None:
            rows = self.db.execute("SELECT record FROM deployments ORDER BY created DESC")
        else:
            rows = self.db.execute(
                "SELECT record FROM deployments WHERE owner = ? ORDER BY created DESC", (owner,)
            )
        return [DeploymentRecord.model_validate_json(row[0]) for row in rows]

    def delete(self, owner: str, name: str) -> None:
        self.db.execute("DELETE FROM deployments WHERE owner = ? AND name = ?", (owner, name))
        self.db.execute("DELETE FROM tokens WHERE owner = ? AND name = ?", (owner, name))

    def mint(self, owner: str, name: str, note: str, expires_in: int | None) -> ShareToken:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(seconds=expires_in) if expires_in else None
        self.db.execute(
            "INSERT INTO tokens (digest, owner, name, note, expires) VALUES (?, ?, ?, ?, ?)",
            (_digest(token), owner, name, note, expires.timestamp() if expires else None),
        )
        return ShareToken(token=token, deployment=name, note=note, expires=expires)

    def token_grants(self, token: str, owner: str, name: str) -> bool:
        """Whether ``token`` is a live share token for ``owner``'s deployment ``name``."""
        if not token.startswith(TOKEN_PREFIX):
            return False
        row = self.db.execute(
            "SELECT owner, name, expires FROM tokens WHERE digest = ?", (_digest(token),)
        ).fetchone()
        if row is None or (row[0], row[1]) != (owner, name):
            return False
        return row[2] is None or row[2] > datetime.now(UTC).timestamp()
