"""A codespace's ssh directory: the files its sshd reads, written safely.

The directory (``<server dir>/ssh`` locally, on the workspace volume in a pod) holds the
``sshd_config``, the ``authorized_keys`` and the host key. Locally the hub writes it as root:
the directory and its files belong to root with the account's group (0750 / 0640), so the
account's sshd reads them and the account cannot change them; the hub never writes into a
directory the account owns. Where the writer is the account itself (a pod, or a hub that is
not root), everything is the writer's, 0700 / 0600.

The host key is made once (``ssh-keygen -t ed25519``) and kept: a codespace keeps its
fingerprint across restarts, so ``known_hosts`` stays valid.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codespace.ssh.keys import KeyProblem, PublicKey, parse_public_key, read_authorized_keys
from codespace.ssh.sshd import (
    AUTHORIZED_KEYS,
    BASH_PROFILE,
    CONFIG,
    GROUP,
    HOST_KEY,
    LOGIN_FILES,
)


class SshFilesError(RuntimeError):
    """The ssh directory or one of its files cannot be written; the message says which."""


@dataclass(frozen=True)
class SshDir:
    """The files of one codespace's ssh directory; ``group`` is the account's gid when the
    writer is root (files root:group, 0640), None when the writer is the account."""

    path: Path
    group: int | None = None

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def host_key(self) -> Path:
        return self.path / HOST_KEY

    @property
    def host_key_pub(self) -> Path:
        return self.path / (HOST_KEY + ".pub")

    @property
    def authorized_keys(self) -> Path:
        return self.path / AUTHORIZED_KEYS

    @property
    def group_file(self) -> Path:
        return self.path / GROUP

    def make(self) -> None:
        """The directory (its parent must exist), never through a symlink."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(self.path, 0o700)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise SshFilesError(f"{self.path} is not a directory: {error}") from None
        try:
            if self.group is not None:
                os.fchown(fd, 0, self.group)
            os.fchmod(fd, 0o750 if self.group is not None else 0o700)
        finally:
            os.close(fd)

    def write(self, path: Path, text: str, *, public: bool = False) -> None:
        """Replace ``path`` (in this directory) atomically; 0640/0600, or 0644 if ``public``."""
        mode = 0o644 if public else (0o640 if self.group is not None else 0o600)
        temporary = path.with_name(f".{path.name}.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                if self.group is not None:
                    os.fchown(handle.fileno(), 0, self.group)
                os.fchmod(handle.fileno(), mode)
                handle.write(text)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def ensure_host_key(self, keygen: str = "ssh-keygen") -> PublicKey:
        """The codespace's ed25519 host key, made the first time (see the module doc)."""
        existing = self.host_key_public()
        if existing is not None and self.host_key.is_file():
            return existing
        for path in (self.host_key, self.host_key_pub):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        partial = self.path / f".{HOST_KEY}.new"
        for path in (partial, partial.with_name(partial.name + ".pub")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        argv = [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "codespace", "-f", str(partial)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
        except OSError as error:
            raise SshFilesError(f"ssh-keygen cannot run: {error}") from None
        if done.returncode != 0:
            raise SshFilesError(f"ssh-keygen failed: {done.stderr.strip() or done.returncode}")
        private = partial.read_text(encoding="utf-8")
        public = partial.with_name(partial.name + ".pub").read_text(encoding="utf-8")
        self.write(self.host_key, private)
        self.write(self.host_key_pub, public, public=True)
        for path in (partial, partial.with_name(partial.name + ".pub")):
            os.unlink(path)
        return parse_public_key(public)

    def host_key_public(self) -> PublicKey | None:
        """The host key's public half (None when there is none yet, or it is unreadable)."""
        try:
            return parse_public_key(self.host_key_pub.read_text(encoding="utf-8"))
        except (OSError, KeyProblem):
            return None

    def keys(self) -> list[PublicKey]:
        """The keys in ``authorized_keys`` ([] when it cannot be read)."""
        try:
            return read_authorized_keys(self.authorized_keys.read_text(encoding="utf-8"))
        except OSError:
            return []


def write_login_profile(home: Path, write: Callable[[Path, str], None] | None = None) -> bool:
    """Write :data:`~codespace.ssh.sshd.BASH_PROFILE` as ``home/.bash_profile`` when the
    home has neither ``.bash_profile`` nor ``.bash_login``; ``write(path, text)`` writes
    it (as the account), default: directly. True when written."""
    if any(os.path.lexists(home / name) for name in LOGIN_FILES):
        return False
    target = home / LOGIN_FILES[0]
    if write is None:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(BASH_PROFILE)
    else:
        write(target, BASH_PROFILE)
    return True
