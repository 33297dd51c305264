"""SSH into codespaces, the spawners' part: the owner's keys and the server's sshd files.

The hub keeps SSH public keys per hub user in a :class:`~codespace.ssh.store.KeyStore`
whose path is the tornado setting :data:`KEYS_SETTING` (set by
:func:`hub.home.configure_home`); a spawner reads it through ``user.settings``.

- Local (:class:`LocalSshMixin`): at each start the spawner writes ``<server dir>/ssh/``
  (host key once, ``authorized_keys`` with exactly the owner's keys, ``sshd_config`` with the
  server's session environment; root's, readable by the account: see
  :mod:`codespace.ssh.files`), a ``~/.bash_profile`` in the account's home when it has none,
  and, in the sandbox, an ``/etc/group`` without the ``tty`` group (ptys for a non-root
  sshd, see :mod:`codespace.ssh.sshd`). When the owner adds or removes a key, the hub calls
  :meth:`LocalSshMixin.refresh_ssh_keys` on their running codespaces: the new key works at
  once.
- Kubernetes (:func:`kube_ssh_env`): the pod gets the owner's keys in
  ``CODESPACE_SSH_AUTHORIZED_KEYS`` and writes its files itself on the workspace volume
  (:func:`codespace.ssh.runtime.prepare_in_pod`); key changes apply at its next start.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codespace.local.isolation import Isolation
from codespace.local.prepare import LocalPaths
from codespace.ssh.files import SshDir, SshFilesError, write_login_profile
from codespace.ssh.runtime import (
    CONFIG_ENV,
    DIR_ENV,
    KEYS_ENV,
    account_name,
    current_uid,
    tty_gid,
)
from codespace.ssh.sshd import (
    SshdSettings,
    find_sshd,
    group_without_tty,
    ptys_work,
    session_env,
    sshd_config,
)
from codespace.ssh.store import KeyStore

KEYS_SETTING = "codespace_ssh_keys"  # tornado setting: the KeyStore's path
SSH_DIR = "ssh"  # in a local server's directory
KUBE_SSH_DIR = ".codespace/ssh"  # under a pod's workspace volume


def key_store(settings: Mapping[str, Any] | None) -> KeyStore | None:
    """The hub's key store from its tornado settings (None when not configured)."""
    path = settings.get(KEYS_SETTING) if isinstance(settings, Mapping) else None
    return KeyStore(path) if isinstance(path, (str, os.PathLike)) and path else None


def owner_keys_text(user: Any) -> str | None:
    """The ``authorized_keys`` text of hub user ``user`` (JupyterHub's User), or None when
    the hub has no key store."""
    store = key_store(getattr(user, "settings", None))
    return store.authorized_keys(user.name) if store is not None else None


def kube_ssh_env(user: Any, workspace_mount: str) -> dict[str, str]:
    """A pod's SSH settings: the owner's keys and where its ssh files live."""
    text = owner_keys_text(user)
    if text is None:
        return {}
    return {KEYS_ENV: text, DIR_ENV: posixpath.join(workspace_mount, KUBE_SSH_DIR)}


def _ssh_dir(server_dir: Path, iso: Isolation) -> SshDir:
    group = iso.account.gid if iso.account is not None else None
    return SshDir(server_dir / SSH_DIR, group=group)


class LocalSshMixin:
    """The local spawner's SSH steps (see the module doc); needs ``self.user``,
    ``self.log`` and ``self.local_paths()``."""

    _ssh_tty_hidden = False

    def _sandbox_files(self, iso: Isolation, paths: LocalPaths) -> dict[str, Path]:
        """Files the sandbox shows instead of the host's: ``/etc/group`` without ``tty``."""
        self._ssh_tty_hidden = False
        if iso.account is None or tty_gid() is None or find_sshd() is None:
            return {}
        ssh = _ssh_dir(paths.server_dir, iso)
        try:
            ssh.make()
            ssh.write(
                ssh.group_file, group_without_tty(Path("/etc/group").read_text()), public=True
            )
        except (OSError, SshFilesError) as error:
            self.log.warning("SSH: no /etc/group for the sandbox: %s", error)  # type: ignore[attr-defined]
            return {}
        self._ssh_tty_hidden = True
        return {"/etc/group": ssh.group_file}

    def _tty_hidden(self, iso: Isolation) -> bool:
        """Whether this start's sandbox shows the /etc/group without ``tty``."""
        return self._ssh_tty_hidden and iso.sandbox is not None

    def _start_ssh(
        self, paths: LocalPaths, iso: Isolation, env: Mapping[str, str], line: Any
    ) -> dict[str, str]:
        """Write the server's ssh directory; return its environment ({} = no SSH, said on
        the progress log through ``line``)."""
        keys = owner_keys_text(self.user)  # type: ignore[attr-defined]
        if keys is None:
            line("SSH: off (the hub has no SSH key store; see hub.home.configure_home)")
            return {}
        if iso.account is None and current_uid() == 0:
            line("SSH: off: this codespace runs as root (the hub does not isolate users)")
            return {}
        if find_sshd() is None:
            line("SSH: off: OpenSSH's sshd is not installed on the hub's machine")
            return {}
        ssh = _ssh_dir(paths.server_dir, iso)
        user = iso.account.name if iso.account else account_name()
        try:
            ssh.make()
            host = ssh.ensure_host_key()
            ssh.write(ssh.authorized_keys, keys)
            settings = SshdSettings(
                user=user,
                host_key=str(ssh.host_key),
                authorized_keys=str(ssh.authorized_keys),
                env=session_env(env),
                permit_tty=ptys_work(tty_gid(), sandboxed=self._tty_hidden(iso)),
                start_dir=str(paths.workspace),
            )
            ssh.write(ssh.config, sshd_config(settings))
        except (OSError, SshFilesError, ValueError) as error:
            line(f"SSH: off: {error}")
            return {}
        if iso.account is not None:
            try:
                write_login_profile(iso.account.home, write=iso.write_file)
            except OSError as error:  # login shells then keep /etc/profile's PATH
                line(f"SSH: no ~/.bash_profile written: {error}")
        tty = "" if settings.permit_tty else " (no ptys: this host's /dev/pts cannot give them)"
        line(f"SSH: log in as {user}, host key {host.fingerprint}{tty}")
        return {DIR_ENV: str(ssh.path), CONFIG_ENV: str(ssh.config)}

    def refresh_ssh_keys(self, text: str) -> bool:
        """Rewrite a started server's ``authorized_keys`` (the hub calls it when the owner's
        keys change); False when the server has no ssh directory."""
        directory = self.local_paths().server_dir / SSH_DIR  # type: ignore[attr-defined]
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            return False
        if not os.path.isdir(directory) or os.path.islink(directory):
            return False
        group = st.st_gid if st.st_uid == 0 and os.geteuid() == 0 else None
        ssh = SshDir(directory, group=group)
        if not ssh.authorized_keys.exists():
            return False
        ssh.write(ssh.authorized_keys, text)
        return True
