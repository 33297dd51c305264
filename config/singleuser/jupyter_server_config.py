# Jupyter server configuration added to every local codespace server (JUPYTER_CONFIG_PATH)
# and installed in the single-user images (/etc/jupyter).
# The spawner sets the CODESPACE_* environment this reads; see extensions/vscode.py (VS Code
# in the browser) and extensions/sshd.py (ssh, scp and desktop VS Code through <server>/sshd/).
from pathlib import Path

from extensions.sshd import setup_sshd
from extensions.startup import node_roots, skip_yarn_config
from extensions.vscode import setup_code_server

c = get_config()  # noqa: F821

# No Node.js processes at start for building JupyterLab or finding language servers
# (extensions/startup.py: about 1 CPU-second of a 2-second start).
skip_yarn_config()
c.LanguageServerManager.node_roots = node_roots()

# Terminal input (not output) is codespace activity (extensions/activity.py).
c.TerminalsExtensionApp.terminal_manager_class = "extensions.activity.InputTerminalManager"

_servers = {}
_vscode = setup_code_server(icon_path=str(Path(__file__).with_name("vscode.svg")))
if _vscode:
    _servers["vscode"] = _vscode
_sshd = setup_sshd()
if _sshd:
    _servers["sshd"] = _sshd
if _servers:
    c.ServerProxy.servers = _servers
