"""SSH into the codespace: a jupyter-server-proxy entry that starts its sshd on demand.

``setup_sshd()`` returns the ``c.ServerProxy.servers["sshd"]`` entry (see
``config/singleuser/jupyter_server_config.py``), or None when this server has no sshd (not
installed, or the spawner gave it no SSH settings). The entry is a ``raw_socket_proxy``:
the websocket at ``<server URL>/sshd/`` (``/user/<name>/<server>/sshd/``; the hub's
authentication applies, a token needs ``access:servers`` on this server) carries the raw
SSH stream to a unix socket, where :mod:`codespace.ssh.listen` starts one ``sshd -i`` per
connection, as the codespace's account. It starts on the first connection and has no
launcher card. The configuration and the rules are in :mod:`codespace.ssh.sshd` and
:mod:`codespace.ssh.runtime`.
"""

from __future__ import annotations

import os
from typing import Any

from codespace.ssh.runtime import config_path, current_uid, proxy_command


def setup_sshd() -> dict[str, Any] | None:
    """The server-proxy entry, or None when this codespace has no sshd."""
    if current_uid() == 0:
        return None  # never a root sshd (see codespace.ssh.runtime)
    config = config_path(os.environ)
    if config is None:
        return None
    command = proxy_command(config, os.environ)
    if command is None:
        return None
    return {
        "command": command,
        "unix_socket": True,
        "raw_socket_proxy": True,
        "timeout": 20,
        "launcher_entry": {"enabled": False},
    }
