"""A small SQLite file of the hub's own (SSH keys, activity): private, opened per use.

:func:`private_db` makes the file mode 0600 before SQLite does (it keeps that mode, for its
journal too), applies ``schema`` and yields a connection inside one transaction (committed
when the block ends without an error), closed afterwards. For state read and written a few
times a minute by the hub's handlers, where a connection per use is simplest and safe
across the hub's processes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def private_db(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    db = sqlite3.connect(path, timeout=10)
    try:
        with db:
            db.execute(schema)
            yield db
    finally:
        db.close()
